//! Generated telemetry checked against the independent reference implementation.

use crate::util::*;

#[test]
fn generated_data_matches_the_reference_in_utc_and_los_angeles() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Crosses the US daylight-saving change of 2026-11-01.
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "9",
            "--days",
            "4",
            "--start",
            "2026-10-30",
            "--seed",
            "11",
        ],
        0,
    );
    for tz in ["UTC", "America/Los_Angeles"] {
        let out = dir.path().join(tz.replace('/', "_"));
        run(
            &[
                "run",
                "--input",
                data.join("telemetry").to_str().unwrap(),
                "--roster",
                data.join("roster.csv").to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--timezone",
                tz,
            ],
            0,
        );
        reference_check(
            &data.join("telemetry"),
            &data.join("roster.csv"),
            &out,
            tz,
            "owner",
        );
        let m = manifest(&out);
        assert!(
            m["counts"]["records_duplicate"].as_u64().unwrap() > 0,
            "the generator re-uploads objects"
        );
        assert!(
            m["counts"]["records_ignored"].as_u64().unwrap() > 0,
            "and mixes in other services"
        );
    }
}

#[test]
fn generator_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let list = |p: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = walk(p)
            .into_iter()
            .map(|f| {
                (
                    f.strip_prefix(p).unwrap().display().to_string(),
                    std::fs::read(&f).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for p in [&a, &b] {
        run(
            &[
                "generate",
                "--output",
                p.to_str().unwrap(),
                "--members",
                "3",
                "--days",
                "2",
                "--seed",
                "5",
            ],
            0,
        );
    }
    let (la, lb) = (list(&a), list(&b));
    assert!(la.len() > 10);
    assert!(la
        .iter()
        .any(|(k, _)| k.contains("year=") && k.ends_with(".json.gz")));
    assert!(la == lb, "same seed, same bytes");
}

#[test]
fn embedded_default_runs_on_sample_data() {
    // `cc-analytics run` with no flags, from a directory that has `sample_data/` (as the repo root).
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(repo().join("sample_data"), dir.path().join("sample_data")).unwrap();
    run_in(Some(dir.path()), &["run"], &[], 0);
    let out = dir.path().join("out");
    for role in ["primary_owner", "owner", "billing", "admin", "developer"] {
        assert!(out
            .join(format!("reports/{role}/member_monthly.parquet"))
            .is_file());
    }
    reference_check_with(
        &repo().join("sample_data/telemetry"),
        &repo().join("sample_data/roster.csv"),
        &out,
        "UTC",
        "billing",
        Some(&repo().join("pipelines/local.toml")),
    );
    // The embedded default names two dimensions: both tables have rows for each.
    let dims = read(out.join("reports/admin/monthly_by_dimension.csv"));
    assert!(
        dims.contains(",team,payments,") && dims.contains(",cost_center,eng-100,"),
        "{dims}"
    );
}

#[test]
fn collector_sized_objects_give_the_same_tables_as_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |name: &str, extra: &[&str]| {
        let data = dir.path().join(name);
        let mut args = vec![
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "8",
            "--days",
            "3",
            "--seed",
            "12",
        ];
        args.extend_from_slice(extra);
        run(&args, 0);
        data
    };
    let big = gen("big", &["--records-per-object", "300"]);
    // Objects of up to 300 records each, of several members: the Collector's batches.
    let objects = walk(&big.join("telemetry"));
    let (mut max, mut total) = (0usize, 0usize);
    for o in &objects {
        let bytes = std::fs::read(o).unwrap();
        let text = if o.to_string_lossy().ends_with(".gz") {
            let mut s = String::new();
            use std::io::Read;
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else if o.to_string_lossy().ends_with(".zst") {
            String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap()
        } else {
            String::from_utf8(bytes).unwrap()
        };
        let records = text.matches("\"timeUnixNano\"").count();
        max = max.max(records);
        total += records;
    }
    assert!((250..=320).contains(&max), "largest object: {max} records");
    assert!(
        objects.len() * 50 < total,
        "{} objects for {total} records",
        objects.len()
    );
    let out = dir.path().join("out");
    run(
        &[
            "run",
            "--input",
            big.join("telemetry").to_str().unwrap(),
            "--roster",
            big.join("roster.csv").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    reference_check(
        &big.join("telemetry"),
        &big.join("roster.csv"),
        &out,
        "UTC",
        "owner",
    );
    // Objects are decompressed and decoded as streams: with chunks of 777 bytes every line
    // spans chunks, and the tables are the same bytes.
    let small_chunks = dir.path().join("chunks");
    run_in(
        None,
        &[
            "run",
            "--input",
            big.join("telemetry").to_str().unwrap(),
            "--roster",
            big.join("roster.csv").to_str().unwrap(),
            "--output",
            small_chunks.to_str().unwrap(),
            "--no-dashboard",
        ],
        &[("CC_ANALYTICS_STREAM_CHUNK_BYTES", "777")],
        0,
    );
    // Decoded records are merged in parts as objects are decoded: with parts of 37 records,
    // handed on in the middle of objects (chunks of 5,000 bytes), the tables are the same bytes.
    let small_parts = dir.path().join("parts");
    run_in(
        None,
        &[
            "run",
            "--input",
            big.join("telemetry").to_str().unwrap(),
            "--roster",
            big.join("roster.csv").to_str().unwrap(),
            "--output",
            small_parts.to_str().unwrap(),
            "--no-dashboard",
        ],
        &[
            ("CC_ANALYTICS_PART_RECORDS", "37"),
            ("CC_ANALYTICS_STREAM_CHUNK_BYTES", "5000"),
        ],
        0,
    );
    // Every object read as a stream (as objects past 64 MiB are) and inflated on a thread of
    // its own while its lines are decoded: the same tables.
    let streamed = dir.path().join("streamed");
    run_in(
        None,
        &[
            "run",
            "--input",
            big.join("telemetry").to_str().unwrap(),
            "--roster",
            big.join("roster.csv").to_str().unwrap(),
            "--output",
            streamed.to_str().unwrap(),
            "--no-dashboard",
        ],
        &[
            ("CC_ANALYTICS_STREAM_OBJECT_BYTES", "0"),
            ("CC_ANALYTICS_STREAM_CHUNK_BYTES", "3000"),
        ],
        0,
    );
    let m = manifest(&streamed);
    assert_eq!(m["objects"]["read"], manifest(&out)["objects"]["read"]);
    let base = reports(&out);
    for other in [&small_chunks, &small_parts, &streamed] {
        let other_reports = reports(other);
        for table in ["daily_spend_by_model", "member_daily", "member_monthly"] {
            let rel = format!("reports/owner/{table}.parquet");
            assert!(base[&rel] == other_reports[&rel], "{rel}");
        }
    }
    let (a, b) = (manifest(&out), manifest(&small_parts));
    assert_eq!(a["counts"], b["counts"]);
}
