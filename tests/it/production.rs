//! Production runs: date flags, arrival pruning, incremental facts, nightly = backfill,
//! idempotence, failure and kill -9 safety, the lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::*;

fn generate(dir: &Path, days: &str, seed: &str) -> PathBuf {
    let data = dir.join("data");
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "6",
            "--days",
            days,
            "--start",
            "2026-10-10",
            "--seed",
            seed,
        ],
        0,
    );
    data
}

fn run_dates(data: &Path, out: &Path, dates: &[&str]) -> std::process::Output {
    let input = data.join("telemetry");
    let roster = data.join("roster.csv");
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(dates);
    run(&args, 0)
}

#[test]
fn backfill_equals_nightly_runs_and_reruns_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "5", "3");
    let backfill = dir.path().join("backfill");
    run_dates(
        &data,
        &backfill,
        &["--from", "2026-10-10", "--to", "2026-10-14"],
    );
    let nightly = dir.path().join("nightly");
    for d in [
        "2026-10-10",
        "2026-10-11",
        "2026-10-12",
        "2026-10-13",
        "2026-10-14",
    ] {
        let o = run_dates(&data, &nightly, &["--date", d]);
        assert!(
            stderr(&o).contains("dates:   1 recomputed"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            manifest(&nightly)["dates_recomputed"],
            serde_json::json!([d])
        );
    }
    let (a, b) = (reports(&backfill), reports(&nightly));
    // 5 roles × (13 tables × (parquet + csv) + the export of the 5 dates).
    assert_eq!(a.len(), 5 * (13 * 2 + 5));
    assert_same(&b, &a, "nightly runs against the backfill");
    let csv = String::from_utf8(a["reports/admin/daily_activity.csv"].clone()).unwrap();
    assert_eq!(csv.lines().count(), 6, "five dates: {csv}");

    // The same command again: identical tables.
    run_dates(
        &data,
        &backfill,
        &["--from", "2026-10-10", "--to", "2026-10-14"],
    );
    assert_same(&reports(&backfill), &a, "rerun");

    // A rerun of one day with lookback keeps the other stored days.
    run_dates(
        &data,
        &nightly,
        &["--date", "2026-10-14", "--lookback-days", "1"],
    );
    assert_eq!(
        manifest(&nightly)["dates_recomputed"],
        serde_json::json!(["2026-10-13", "2026-10-14"])
    );
    assert_same(&reports(&nightly), &a, "lookback rerun");
}

/// The same tables, byte for byte; on a difference, the message shows both versions' values.
fn assert_same(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>, what: &str) {
    use polars::prelude::*;
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let differ: Vec<&String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .collect();
    let Some(k) = differ
        .iter()
        .find(|k| k.ends_with(".parquet"))
        .or(differ.first())
    else {
        return;
    };
    let frame = |m: &BTreeMap<String, Vec<u8>>| -> String {
        match m.get(*k) {
            None => "(missing)".into(),
            Some(b) if k.ends_with(".parquet") => {
                let df = ParquetReader::new(std::io::Cursor::new(b.clone()))
                    .finish()
                    .unwrap();
                format!("{df:?}")
            }
            Some(b) => String::from_utf8_lossy(b).into_owned(),
        }
    };
    panic!(
        "{what}: {differ:?} differ; {k}:\n{}\n---\n{}",
        frame(got),
        frame(want)
    );
}

#[test]
fn a_nightly_run_reads_only_the_arrival_partitions_that_can_hold_its_day() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "20", "4");
    let out = dir.path().join("out");
    run_dates(&data, &out, &["--date", "2026-10-13"]);
    let m = manifest(&out);
    let o = &m["objects"];
    let n = |k: &str| o[k].as_u64().unwrap();
    // Partitions outside [D-1, D+3] are not even listed: every object listed lies inside.
    assert_eq!(n("listed"), n("read") + n("not_telemetry"));
    assert_eq!(n("skipped_by_arrival_partition"), 0);
    let files = walk(&data.join("telemetry"));
    let in_window = |p: &&PathBuf| {
        let k = p.to_str().unwrap();
        k.contains("month=10/")
            && ["12", "13", "14", "15", "16"]
                .iter()
                .any(|d| k.contains(&format!("day={d}/")))
    };
    assert_eq!(files.iter().filter(in_window).count() as u64, n("listed"));
    assert!(files.len() as u64 > 2 * n("listed"), "{o}");
    // Left out: each day directory of October outside the window, and each other month.
    let dirs = |p: &Path| -> Vec<String> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let year = data.join("telemetry/year=2026");
    let other_months = dirs(&year).iter().filter(|m| *m != "month=10").count();
    let other_days = dirs(&year.join("month=10"))
        .iter()
        .filter(|d| !["day=12", "day=13", "day=14", "day=15", "day=16"].contains(&d.as_str()))
        .count();
    assert!(other_days >= 2, "{other_days}");
    assert_eq!(n("partitions_skipped"), (other_months + other_days) as u64);
    for obj in &input_objects(&out, &m) {
        let key = obj["key"].as_str().unwrap();
        let day = key.split("day=").nth(1).unwrap()[..2]
            .parse::<u32>()
            .unwrap();
        let month = key.split("month=").nth(1).unwrap()[..2].to_string();
        assert!(
            month == "10" && (12..=16).contains(&day),
            "{key} lies outside [D-1, D+3]"
        );
    }
    assert!(m["counts"]["records_outside_range"].as_u64().unwrap() > 0);
    assert_counts_add_up(&m);
}

#[test]
fn a_failure_while_publishing_leaves_the_previous_outputs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "3", "5");
    let out = dir.path().join("out");
    run_dates(&data, &out, &["--date", "2026-10-10"]);
    let before = reports(&out);
    let input = data.join("telemetry");
    let r = run_in(
        None,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--date",
            "2026-10-11",
        ],
        &[("CC_ANALYTICS_FAIL_AFTER_COMMITS", "20")],
        1,
    );
    assert!(stderr(&r).contains("injected failure"), "{}", stderr(&r));
    assert!(
        reports(&out) == before,
        "a failed publish changed the reports"
    );
    assert!(!out.join("_staging").exists(), "staging is cleaned up");
    assert_eq!(
        lease_newest(&out).unwrap()["released"],
        true,
        "the lease is released"
    );
    // The next run works and publishes.
    run_dates(&data, &out, &["--date", "2026-10-11"]);
    assert!(reports(&out) != before);
}

#[test]
fn kill_9_leaves_readable_outputs_and_the_next_run_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "40",
            "--days",
            "4",
            "--start",
            "2026-10-10",
            "--seed",
            "8",
        ],
        0,
    );
    let dates = ["--from", "2026-10-10", "--to", "2026-10-13"];
    // What a run that is never stopped publishes.
    let clean_out = dir.path().join("clean");
    run_dates(&data, &clean_out, &dates);
    let clean = reports(&clean_out);
    let out = dir.path().join("out");
    run_dates(&data, &out, &["--date", "2026-10-10"]);
    let before = reports(&out);
    assert!(before != clean);
    let (input, roster) = (data.join("telemetry"), data.join("roster.csv"));
    for delay_ms in [50u64, 400, 1500] {
        let mut child = bin()
            .args(["run", "--input", input.to_str().unwrap()])
            .args(["--roster", roster.to_str().unwrap()])
            .args(["--output", out.to_str().unwrap()])
            .args(dates)
            .arg("-q")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let committing = std::fs::read_dir(out.join("_staging"))
            .map(|rd| rd.flatten().any(|e| e.path().join("_commit.json").exists()))
            .unwrap_or(false);
        // Without a journal the outputs are whole: the previous ones (stopped before its commit
        // point, or an earlier run already published) or the run's own (stopped after it), each
        // with the record of the run whose files they are (`reports` checks the run ids).
        if !committing {
            let now = reports(&out);
            assert!(
                now == before || now == clean,
                "killed after {delay_ms} ms outside its commit, yet the reports are mixed"
            );
        }
        // Readable whatever the moment: every Parquet file is whole.
        let now: Vec<(String, Vec<u8>)> = walk(&out.join("reports"))
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        for (k, v) in &now {
            if k.ends_with(".parquet") {
                assert!(
                    v.starts_with(b"PAR1") && v.ends_with(b"PAR1"),
                    "{k} is not a whole Parquet file"
                );
            }
        }
    }
    // The next run takes over the stale lock, restores or discards what was left, and publishes
    // the same tables as a clean run.
    run_dates(&data, &out, &dates);
    assert!(
        staging_left_in(&out).is_empty(),
        "{:?}",
        staging_left_in(&out)
    );
    assert!(reports(&out) == clean);
}

/// A run stopped while it tidies staging: its own after rolling a failed commit back, or what
/// an earlier complete commit left (its backups, which the next run removes in the background).
/// The next run must not find a journal whose backups are gone, nor undo a complete commit.
#[test]
fn a_run_stopped_while_tidying_up_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "3", "5");
    let out = dir.path().join("out");
    run_dates(&data, &out, &["--date", "2026-10-10"]);
    let before = reports(&out);
    let input = data.join("telemetry");
    let roster = data.join("roster.csv");
    let stopped = |date: &str, env: &[(&str, &str)]| {
        let mut cmd = bin();
        cmd.args(["run", "--input", input.to_str().unwrap()])
            .args(["--roster", roster.to_str().unwrap()])
            .args(["--output", out.to_str().unwrap()])
            .args(["--date", date, "-q"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert!(
            !o.status.success(),
            "the hook stops the run: {}",
            stderr(&o)
        );
        assert!(out.join("_staging").exists(), "staging is left behind");
        assert_eq!(
            lease_newest(&out).unwrap()["released"],
            false,
            "the lease is left held"
        );
    };
    // A complete commit leaves the files it replaced, marked done, to the next run.
    let done: Vec<String> = walk(&out.join("_staging"))
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(done.iter().any(|p| p.ends_with("/_done")), "{done:?}");
    assert!(staging_left_in(&out).is_empty());
    // A failed commit, rolled back, then stopped with one staged file left to delete.
    stopped(
        "2026-10-11",
        &[
            ("CC_ANALYTICS_FAIL_AFTER_COMMITS", "10"),
            ("CC_ANALYTICS_ABORT_WITH_CLEANUP_LEFT", "1"),
        ],
    );
    assert!(reports(&out) == before, "the rollback restored every file");
    let r = run_dates(&data, &out, &["--date", "2026-10-12"]);
    assert!(
        staging_left_in(&out).is_empty(),
        "{:?}",
        staging_left_in(&out)
    );
    assert!(
        !stderr(&r).contains("restoring the outputs"),
        "no journal was left: {}",
        stderr(&r)
    );
    let after_12 = reports(&out);
    assert!(after_12 != before);
    // The next run, stopped while it removes what that complete commit left (one file to
    // go): what the commit published stays, and the run after removes the rest.
    stopped(
        "2026-10-11",
        &[("CC_ANALYTICS_ABORT_WITH_EARLIER_LEFT", "1")],
    );
    assert!(
        reports(&out) == after_12,
        "a complete commit is never undone"
    );
    let clean = dir.path().join("clean");
    run_dates(&data, &clean, &["--date", "2026-10-10"]);
    run_dates(&data, &clean, &["--date", "2026-10-12"]);
    run_dates(&data, &clean, &["--date", "2026-10-11"]);
    run_dates(&data, &out, &["--date", "2026-10-11"]);
    assert!(
        staging_left_in(&out).is_empty(),
        "{:?}",
        staging_left_in(&out)
    );
    assert!(reports(&out) == reports(&clean));
}

#[test]
fn a_live_lease_is_never_taken_and_an_expired_one_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "2", "6");
    let out = dir.path().join("out");
    run_dates(&data, &out, &[]);
    let before = reports(&out);
    let top = lease_newest(&out).unwrap()["seq"].as_u64().unwrap();
    let plant = |seq: u64, run: &str, expires: chrono::DateTime<chrono::Utc>| {
        // Another machine's record: its host name and pid say nothing here.
        let rec = serde_json::json!({
            "seq": seq, "run_id": run, "host": "backfill-0",
            "acquired_at": chrono::Utc::now().to_rfc3339(), "expires_at": expires.to_rfc3339(),
            "released": false,
        });
        std::fs::write(out.join(format!("_lease/{seq:012}.json")), rec.to_string()).unwrap();
    };
    let input = data.join("telemetry");
    let args = [
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    // A holder whose lease runs for another hour: refused after waiting one lease length
    // (2 s in the tests) without a renewal.
    plant(
        top + 1,
        "other-run",
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let t = std::time::Instant::now();
    let r = run(&args, 1);
    assert!(stderr(&r).contains("other-run"), "{}", stderr(&r));
    assert!(t.elapsed().as_secs_f64() >= 2.0, "it waited for a renewal");
    assert!(reports(&out) == before);
    // A live holder that renews: a thread creates the next record every 0.5 s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewer = {
        let (stop, out) = (stop.clone(), out.clone());
        std::thread::spawn(move || {
            let mut seq = top + 2;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let rec = serde_json::json!({
                    "seq": seq, "run_id": "live-run", "host": "backfill-1",
                    "acquired_at": chrono::Utc::now().to_rfc3339(),
                    "expires_at": (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339(),
                    "released": false,
                });
                std::fs::write(out.join(format!("_lease/{seq:012}.json")), rec.to_string())
                    .unwrap();
                seq += 1;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            seq
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let r = run(&args, 1);
    assert!(stderr(&r).contains("live-run"), "{}", stderr(&r));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let next = renewer.join().unwrap();
    assert!(reports(&out) == before);
    // An expired record of a run that never released: taken over, and released after.
    plant(
        next,
        "dead-run",
        chrono::Utc::now() - chrono::Duration::seconds(5),
    );
    let r = run(&args, 0);
    assert!(
        stderr(&r).contains("taking over the lease of run dead-run"),
        "{}",
        stderr(&r)
    );
    let last = lease_newest(&out).unwrap();
    assert_eq!(last["released"], true);
    assert!(last["seq"].as_u64().unwrap() > next);
}

#[test]
fn a_different_time_zone_on_stored_facts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small/input");
    let out = dir.path().join("out");
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
    let r = run(
        &[
            "run",
            "--input",
            fx.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--timezone",
            "Europe/Berlin",
        ],
        2,
    );
    assert!(stderr(&r).contains("UTC"), "{}", stderr(&r));
}

#[test]
fn facts_stored_in_an_older_layout_are_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small/input");
    let out = dir.path().join("out");
    let args = [
        "run",
        "--input",
        fx.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    run(&args, 0);
    let reports = |out: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        walk(&out.join("reports"))
            .into_iter()
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let before = reports(&out);
    // The meta file as the first version wrote it: a time zone, no layout.
    std::fs::write(out.join("_facts/_meta.json"), r#"{"timezone":"UTC"}"#).unwrap();
    let r = run(&args, 2);
    assert!(stderr(&r).contains("older layout"), "{}", stderr(&r));
    assert_eq!(reports(&out), before);
}

#[test]
fn a_backfill_in_windows_equals_one_window_and_nightly_runs_and_resumes_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "6", "21");
    let range = ["--from", "2026-10-10", "--to", "2026-10-15"];
    // One window, then windows of two days.
    let one = dir.path().join("one");
    let mut a = range.to_vec();
    a.extend(["--window-days", "30"]);
    run_dates(&data, &one, &a);
    let windows = dir.path().join("windows");
    let mut a = range.to_vec();
    a.extend(["--window-days", "2"]);
    run_dates(&data, &windows, &a);
    assert_eq!(reports(&one), reports(&windows), "windows = one window");
    let m = manifest(&windows);
    assert_counts_add_up(&m);
    assert_eq!(m["dates_recomputed"].as_array().unwrap().len(), 6);
    // The objects file lists every object read, once per window that read it.
    let objects = input_objects(&windows, &m);
    assert_eq!(objects.len() as u64, m["objects"]["read"].as_u64().unwrap());
    assert!(objects.len() > 20);
    // Nightly runs over each day give the same tables.
    let nightly = dir.path().join("nightly");
    for d in 10..=15 {
        let day = format!("2026-10-{d}");
        run_dates(&data, &nightly, &["--date", &day]);
    }
    assert_eq!(reports(&one), reports(&nightly), "windows = nightly runs");

    // Killed after its second window, then started again with the same command: the two
    // committed windows are not redone, and the tables converge to the same bytes.
    let resumed = dir.path().join("resumed");
    let input = data.join("telemetry");
    let roster = data.join("roster.csv");
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
        "--output",
        resumed.to_str().unwrap(),
        "--window-days",
        "2",
    ];
    args.extend(range);
    let killed = bin()
        .args(&args)
        .env("CC_ANALYTICS_ABORT_AFTER_WINDOWS", "2")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "aborted");
    assert!(!resumed.join("reports").exists(), "no tables yet");
    let progress = walk(&resumed.join("_backfills"));
    assert_eq!(progress.len(), 1, "{progress:?}");
    let r = run(&args, 0);
    let m = manifest(&resumed);
    assert_eq!(
        m["windows_skipped"],
        serde_json::json!(["2026-10-10 … 2026-10-11", "2026-10-12 … 2026-10-13"]),
        "{}",
        stderr(&r)
    );
    assert_eq!(
        m["dates_recomputed"],
        serde_json::json!(["2026-10-14", "2026-10-15"])
    );
    assert_eq!(reports(&resumed), reports(&one), "resumed = ran through");
    assert!(
        !resumed.join("_backfills").exists() || walk(&resumed.join("_backfills")).is_empty(),
        "the progress record goes once the backfill is published"
    );
    // Run again: a finished backfill recomputes everything, same bytes.
    run(&args, 0);
    assert_eq!(
        manifest(&resumed)["dates_recomputed"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(reports(&resumed), reports(&one));
}

#[test]
fn a_nightly_run_rebuilds_only_the_months_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "5",
            "--days",
            "50",
            "--start",
            "2026-08-20",
            "--seed",
            "4",
            "--sessions-per-day",
            "0.5",
        ],
        0,
    );
    let out = dir.path().join("out");
    run_dates(
        &data,
        &out,
        &[
            "--from",
            "2026-08-20",
            "--to",
            "2026-10-08",
            "--window-days",
            "60",
        ],
    );
    let m = manifest(&out);
    assert_eq!(
        m["table_months"],
        serde_json::json!({"rebuilt": 3, "reused": 0})
    );
    // A nightly run of a day of October: August and September are read as they were built.
    run_dates(&data, &out, &["--date", "2026-10-05"]);
    let m = manifest(&out);
    assert_eq!(
        m["table_months"],
        serde_json::json!({"rebuilt": 1, "reused": 2})
    );
    let fresh = dir.path().join("fresh");
    run_dates(
        &data,
        &fresh,
        &[
            "--from",
            "2026-08-20",
            "--to",
            "2026-10-08",
            "--window-days",
            "60",
        ],
    );
    assert_eq!(
        reports(&out),
        reports(&fresh),
        "reused months = rebuilt months"
    );
    // Rows cut short (no fingerprint) are rebuilt, and so is every month after a roster change.
    std::fs::remove_file(out.join("_tables/month=2026-08/_fingerprint")).unwrap();
    run_dates(&data, &out, &["--date", "2026-10-05"]);
    assert_eq!(
        manifest(&out)["table_months"],
        serde_json::json!({"rebuilt": 2, "reused": 1})
    );
    let roster = data.join("roster.csv");
    let mut text = read(&roster);
    text.push_str("new@example.com,user,admin,\n");
    std::fs::write(&roster, text).unwrap();
    run_dates(&data, &out, &["--date", "2026-10-05"]);
    assert_eq!(
        manifest(&out)["table_months"],
        serde_json::json!({"rebuilt": 3, "reused": 0})
    );
    assert!(
        read(out.join("reports/admin/member_monthly.csv")).contains("2026-08-01,new@example.com")
    );
}

/// A publish stopped half-way (kill -9 after some files are in place, the journal written) is
/// rolled back by the next run of any kind: here a shard, which otherwise takes no lease.
#[test]
fn a_shard_rolls_back_a_publish_stopped_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "3", "5");
    let out = dir.path().join("out");
    run_dates(&data, &out, &["--date", "2026-10-10"]);
    let before = reports(&out);
    let input = data.join("telemetry");
    let o = bin()
        .args(["run", "--input", input.to_str().unwrap()])
        .args([
            "--output",
            out.to_str().unwrap(),
            "--date",
            "2026-10-11",
            "-q",
        ])
        .env("CC_ANALYTICS_ABORT_AFTER_COMMITS", "7")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the hook stops the run");
    let journal = walk(&out.join("_staging"))
        .into_iter()
        .any(|p| p.ends_with("_commit.json"));
    assert!(journal, "stopped after its commit point");
    // Some report files are the stopped run's, the rest the previous run's: a mix.
    let mixed = walk(&out.join("reports"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(mixed > 7);
    let r = run_in(
        None,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--from",
            "2026-10-12",
            "--to",
            "2026-10-13",
            "--shard-index",
            "0",
            "--shard-count",
            "2",
        ],
        &[],
        0,
    );
    assert!(
        stderr(&r).contains("restoring the outputs it replaced"),
        "{}",
        stderr(&r)
    );
    assert!(!out.join("_staging").exists());
    // The previous tables again, each folder with its record (`reports` checks the run ids).
    assert!(reports(&out) == before);
    assert_eq!(lease_newest(&out).unwrap()["released"], true);
}

/// Each month's CSV rows of a streamed table, encoded once per form and kept under
/// `_tables/month=…/_csv/`: (path, bytes, modification time).
fn kept_csv(out: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    walk(&out.join("_tables"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/_csv/"))
        .map(|p| {
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
            (rel, (std::fs::read(&p).unwrap(), modified))
        })
        .collect()
}

/// A run that rebuilds a month replaces that month's kept encodings (CSV rows, Parquet of the
/// month alone) and copies the others' as they were; the tables are the same bytes as when
/// every month is encoded afresh.
#[test]
fn kept_month_encodings_are_the_bytes_a_fresh_encoding_gives() {
    let dir = tempfile::tempdir().unwrap();
    // 2026-10-10 … 2026-11-03: two months.
    let data = generate(dir.path(), "25", "4");
    let out = dir.path().join("out");
    run_dates(&data, &out, &["--from", "2026-10-10", "--to", "2026-11-03"]);
    let first = kept_csv(&out);
    let october = |k: &String| k.contains("month=2026-10/");
    // Two months × three streamed tables × one form (every role that sees them under the
    // default policy sees them alike) × two encodings.
    assert_eq!(first.len(), 12, "{:?}", first.keys());
    for ext in [".csv.zst", ".parquet"] {
        assert_eq!(
            first.keys().filter(|k| k.ends_with(ext)).count(),
            6,
            "{:?}",
            first.keys()
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    // An encoding kept by an older version (another key) is removed, not kept forever.
    let stale = out.join("_tables/month=2026-10/_csv/member_daily-0123456789abcdef.csv");
    std::fs::write(&stale, "2026-10-10,old\n").unwrap();
    run_dates(&data, &out, &["--date", "2026-11-02"]);
    assert!(!stale.exists(), "a stale kept encoding is removed");
    let second = kept_csv(&out);
    assert_eq!(second.len(), first.len(), "{:?}", second.keys());
    for (k, v) in first.iter().filter(|(k, _)| october(k)) {
        assert_eq!(
            second.get(k),
            Some(v),
            "October's {k} kept as it was, not written again"
        );
    }
    let november = |m: &BTreeMap<String, _>| -> Vec<String> {
        m.keys().filter(|k| !october(k)).cloned().collect()
    };
    let (old, new) = (november(&first), november(&second));
    assert!(
        old.iter().all(|k| !new.contains(k)),
        "November rebuilt: its old encodings are gone, new ones kept: {old:?} / {new:?}"
    );
    let with_kept = reports(&out);
    // Without any kept rows, the same run encodes every month afresh: the same tables.
    for k in second.keys() {
        std::fs::remove_file(out.join(k)).unwrap();
    }
    run_dates(&data, &out, &["--date", "2026-11-02"]);
    assert_same(
        &reports(&out),
        &with_kept,
        "kept encodings against fresh ones",
    );
    let csv = String::from_utf8(with_kept["reports/admin/member_daily.csv"].clone()).unwrap();
    assert!(csv.starts_with("date,member,"), "one header: {csv:.80}");
    // October's kept rows, compressed, are the file's rows after the header, byte for byte.
    let (k, (kept, _)) = second
        .iter()
        .find(|(k, _)| october(k) && k.contains("/member_daily-") && k.ends_with(".csv.zst"))
        .expect("October's kept member_daily rows");
    let rows = zstd::decode_all(&kept[..]).unwrap();
    let header = csv.find('\n').unwrap() + 1;
    assert!(
        csv.as_bytes()[header..].starts_with(&rows) && !rows.is_empty(),
        "{k}: the kept rows are October's rows of the published file"
    );
    assert_eq!(csv.matches("date,member,").count(), 1);
    assert!(csv.contains("\n2026-10-10,") && csv.contains("\n2026-11-03,"));
}

/// Whether files under `dir` take user extended attributes (where reuse records its layouts).
fn user_xattrs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let file = dir.join("xattr-probe");
    std::fs::write(&file, b"").unwrap();
    let path = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
    let name = c"user.cc_analytics.probe";
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is one byte.
    let r = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    std::fs::remove_file(&file).unwrap();
    r == 0
}

/// On a local disk a run reuses the per-member CSV files the run before last replaced, up to
/// the first month changed since, and appends the rest: the same tables as runs that write
/// every file whole (`reuse_replaced_files = false`), also when an older month changed between.
#[test]
fn replaced_csv_files_are_reused_up_to_the_first_changed_month() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // 2026-09-10 … 2026-11-08: September, October, November.
    let data = dir.path().join("data");
    let g = [
        "generate",
        "--output",
        data.to_str().unwrap(),
        "--members",
        "6",
    ];
    run(
        &[
            &g[..],
            &["--days", "60", "--start", "2026-09-10", "--seed", "7"],
        ]
        .concat(),
        0,
    );
    let (on_toml, off) = (dir.path().join("on.toml"), dir.path().join("off.toml"));
    std::fs::write(&on_toml, "").unwrap();
    std::fs::write(&off, "reuse_replaced_files = false\n").unwrap();
    let (input, roster) = (data.join("telemetry"), data.join("roster.csv"));
    let debug = [("CC_ANALYTICS_LOG", "cc_analytics=debug")];
    let on = |out: &Path, step: &[&str], whole: bool| -> String {
        let mut a = vec![step[0]];
        if step[0] == "run" {
            a.extend_from_slice(&["--input", input.to_str().unwrap()]);
        }
        a.extend_from_slice(&["--roster", roster.to_str().unwrap()]);
        a.extend_from_slice(&["--output", out.to_str().unwrap()]);
        let config = if whole { &off } else { &on_toml };
        a.extend_from_slice(&["--config", config.to_str().unwrap()]);
        a.extend_from_slice(&step[1..]);
        stderr(&run_in(None, &a, &debug, 0))
    };
    let (out, whole) = (dir.path().join("out"), dir.path().join("whole"));
    let inode = || {
        std::fs::metadata(out.join("reports/admin/member_daily.csv"))
            .unwrap()
            .ino()
    };
    let reused = |e: &str| -> Option<String> {
        let at = e.find("member_daily.csv: reusing ")?;
        Some(e[at..].split(" of a replaced file").next()?.to_string())
    };
    // What each step reuses of member_daily.csv: the files the step before last replaced
    // (none for the first two), as far as their months are still the run's.
    let steps: [(&[&str], Option<&str>); 6] = [
        (&["run", "--from", "2026-09-10", "--to", "2026-11-05"], None),
        (&["run", "--date", "2026-11-06"], None),
        // The backfill's files: September and October unchanged (November is recomputed).
        (&["run", "--date", "2026-11-07"], Some("reusing 2 months")),
        // October recomputed: only September is still the same.
        (&["run", "--date", "2026-10-20"], Some("reusing 1 months")),
        // The third step's files hold the October before the fourth step: September only.
        (&["run", "--date", "2026-11-08"], Some("reusing 1 months")),
        // The fourth step's files: September and the October it rebuilt.
        (&["reports"], Some("reusing 2 months")),
    ];
    // Without user extended attributes (some filesystems), nothing is reused and the files
    // are written whole: still the same bytes.
    let xattrs = user_xattrs(dir.path());
    if !xattrs {
        eprintln!(
            "no user extended attributes under {}: no reuse expected",
            dir.path().display()
        );
    }
    let mut first = 0;
    for (i, (step, want)) in steps.iter().enumerate() {
        let want = want.filter(|_| xattrs);
        let e = on(&out, step, false);
        let got = reused(&e);
        assert_eq!(
            got.as_deref().map(|g| g.split(" (").next().unwrap()),
            want.map(|w| format!("member_daily.csv: {w}")).as_deref(),
            "step {i} {step:?}: {e}"
        );
        let w = on(&whole, step, true);
        assert!(!w.contains("reusing"), "{w}");
        assert_same(
            &reports(&out),
            &reports(&whole),
            &format!("step {i} {step:?}"),
        );
        match i {
            0 => first = inode(),
            // The backfill's own file, its months kept and the rest appended.
            2 if xattrs => assert_eq!(inode(), first),
            _ => {}
        }
    }
    assert!(
        !walk(&out.join("_staging"))
            .iter()
            .any(|p| p.to_string_lossy().contains("/_reuse/")),
        "nothing taken to reuse is left"
    );
}

/// A run for some roles (`--roles`) knows only their forms of the per-member tables: it keeps
/// the encodings of the forms only other roles see (removing them would make the next run
/// for every role encode all their months again); a run for every role removes what no form uses.
#[test]
fn a_run_for_some_roles_keeps_the_other_forms_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "25", "6");
    let policy = admin_and_pseudonymised_developer(dir.path(), "");
    let (input, out) = (data.join("telemetry"), dir.path().join("out"));
    let key = [("CC_ANALYTICS_PSEUDONYM_KEY", "k".repeat(40))];
    let key: Vec<(&str, &str)> = key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let on = |extra: &[&str]| {
        let mut a = vec!["run", "--input", input.to_str().unwrap()];
        a.extend_from_slice(&["--output", out.to_str().unwrap()]);
        a.extend_from_slice(&["--policy", policy.to_str().unwrap()]);
        a.extend_from_slice(extra);
        run_in(None, &a, &key, 0);
    };
    let october = |out: &Path| -> Vec<String> {
        kept_csv(out)
            .into_keys()
            .filter(|k| k.contains("month=2026-10/"))
            .collect()
    };
    on(&["--from", "2026-10-10", "--to", "2026-11-03"]);
    // Two forms (admin, developer's pseudonymised) × three tables × two encodings.
    let both = october(&out);
    assert_eq!(both.len(), 12, "{both:?}");
    on(&["--date", "2026-11-02", "--roles", "admin"]);
    assert_eq!(
        october(&out),
        both,
        "the developer form's encodings are kept"
    );
    // A form no role has any more: removed by the next run for every role.
    std::fs::write(
        &policy,
        "pseudonym_key_env = \"CC_ANALYTICS_PSEUDONYM_KEY\"\n[roles.admin]\ntables = [\"*\"]\n",
    )
    .unwrap();
    on(&["--date", "2026-11-02"]);
    assert_eq!(october(&out).len(), 6, "{:?}", october(&out));
}
