//! Bad input: every line accounted for, quarantined with its reason, the bad-ratio limit.

use std::io::Write;
use std::path::Path;

use crate::util::*;

const REQUEST: &str = r#"{"timeUnixNano":"1791421200000000000","body":{"stringValue":"claude_code.api_request"},"attributes":[{"key":"session.id","value":{"stringValue":"q1"}},{"key":"event.sequence","value":{"intValue":"1"}},{"key":"cost_usd","value":COST}]}"#;
const OLD_REQUEST: &str = r#"{"timeUnixNano":"1000000000000000000","body":{"stringValue":"claude_code.api_request"},"attributes":[]}"#;

fn log_line(records: &[&str]) -> String {
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"scope":{{"name":"com.anthropic.claude_code.events"}},"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    )
}

fn commit_line(session: &str) -> String {
    format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"claude_code.commit.count","sum":{{"dataPoints":[{{"attributes":[{{"key":"session.id","value":{{"stringValue":"{session}"}}}}],"timeUnixNano":"1791421300000000000","asInt":"1"}}],"aggregationTemporality":1}}}}]}}]}}]}}"#
    )
}

/// The hand fixture plus one object of broken lines and one truncated gzip object.
fn corrupted_input(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("input");
    let fx = repo().join("tests/fixtures/small/input");
    copy_dir(&fx, &input);
    let bad = input.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let bad_cost = log_line(&[&REQUEST.replace("COST", r#"{"stringValue":"lots"}"#)]);
    // Two records on one line: one fine, one dated 2001.
    let two = log_line(&[
        &REQUEST.replace("COST", r#"{"doubleValue":0.5}"#),
        OLD_REQUEST,
    ]);
    std::fs::write(
        bad.join("logs_1.json"),
        format!("{{not json\n{{\"hello\":\"world\"}}\n{bad_cost}\n{two}\n"),
    )
    .unwrap();
    // A complete gzip member with two lines, then a second member cut off after its header.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{}\n{}\n", commit_line("t1"), commit_line("t2")).as_bytes())
        .unwrap();
    let mut bytes = gz.finish().unwrap();
    let mut gz2 = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz2.write_all(commit_line("t3").as_bytes()).unwrap();
    bytes.extend_from_slice(&gz2.finish().unwrap()[..12]);
    std::fs::write(bad.join("metrics_2.json.gz"), bytes).unwrap();
    input
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

#[test]
fn every_bad_line_is_quarantined_and_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = corrupted_input(dir.path());
    let out = dir.path().join("out");
    run(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--max-bad-ratio",
            "0.5",
        ],
        0,
    );
    let m = manifest(&out);
    let c = &m["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    // 7 fixture lines + 4 in logs_1.json + 2 complete lines and 1 truncated rest in metrics_2.
    assert_eq!(n("lines_read"), 14);
    assert_eq!(n("lines_quarantined"), 3, "{c}");
    assert_eq!(n("lines_parsed"), 11);
    assert_eq!(n("lines_with_rejected_records"), 2);
    // 18 fixture records + 1 (bad cost) + 2 (one good, one from 2001) + 2 commits.
    assert_eq!(n("records_parsed"), 23);
    assert_eq!(n("records_rejected"), 2);
    assert_eq!(n("records_used"), 18);
    assert_eq!(n("records_duplicate"), 2);
    assert_eq!(n("records_ignored"), 1);
    assert_counts_add_up(&m);
    assert_eq!(
        c["quarantined_by_reason"],
        serde_json::json!({"invalid_json": 1, "not_otlp": 1, "truncated_object": 1})
    );
    assert_eq!(
        c["rejected_by_reason"],
        serde_json::json!({"bad_number": 1, "time_out_of_range": 1})
    );

    // The quarantine: an index with object, line and reason, and the lines unchanged.
    let run_id = m["run_id"].as_str().unwrap();
    let q = out.join("_quarantine").join(run_id);
    let index = read(q.join("index.csv"));
    assert_eq!(index.lines().count(), 6, "{index}");
    assert!(index.contains("bad/logs_1.json,1,invalid_json"), "{index}");
    assert!(index.contains("bad/logs_1.json,3,bad_number"), "{index}");
    assert!(
        index.contains("bad/logs_1.json,4,time_out_of_range"),
        "{index}"
    );
    assert!(
        index.contains("bad/metrics_2.json.gz,3,truncated_object"),
        "{index}"
    );
    let lines_file = index.lines().nth(1).unwrap().rsplit(',').next().unwrap();
    let body = read(out.join(lines_file));
    assert!(
        body.starts_with("{not json\n{\"hello\":\"world\"}\n"),
        "{body}"
    );

    // The good records of the bad object are used: commits from t1 and t2.
    let md = read(out.join("reports/admin/daily_activity.csv"));
    assert!(md.contains("2026-10-08,"), "{md}");
}

#[test]
fn too_much_bad_input_exits_3_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = corrupted_input(dir.path());
    let out = dir.path().join("out");
    let fx = repo().join("tests/fixtures/small/input");
    run(
        &[
            "run",
            "--input",
            fx.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    let before = read(out.join("reports/admin/member_daily.csv"));
    let r = run(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        3,
    );
    assert!(stderr(&r).contains("max-bad-ratio"), "{}", stderr(&r));
    assert_eq!(read(out.join("reports/admin/member_daily.csv")), before);
    let m = manifest(&out);
    assert_eq!(m["status"], "failed");
    assert!(out
        .join("_quarantine")
        .join(m["run_id"].as_str().unwrap())
        .join("index.csv")
        .is_file());
}

#[test]
fn an_output_that_cannot_be_written_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let fx = repo().join("tests/fixtures/small/input");
    let r = run(
        &[
            "run",
            "--input",
            fx.to_str().unwrap(),
            "--output",
            file.to_str().unwrap(),
        ],
        2,
    );
    assert!(stderr(&r).contains("not-a-dir"), "{}", stderr(&r));
}
