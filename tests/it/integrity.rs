//! Nothing lost without a word: late arrivals and healing, the shrink guard, implausible values
//! and overflow, broken input at scale, an output inside an input, symbolic link loops.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::*;

fn copy_tree(from: &Path, to: &Path) {
    for f in walk(from) {
        let t = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(t.parent().unwrap()).unwrap();
        std::fs::copy(&f, &t).unwrap();
    }
}

fn attr(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}

fn log_line(records: Vec<Value>) -> String {
    json!({"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{
        "scope": {"name": "com.anthropic.claude_code.events"}, "logRecords": records}]}]})
    .to_string()
}

/// An `api_request` of `email` in session `session`, `secs` after 2026-10-08T00:00Z.
fn request(session: &str, email: &str, seq: u64, secs: u64, cost: Value) -> Value {
    json!({"timeUnixNano": (1_791_417_600_000_000_000u64 + secs * 1_000_000_000).to_string(),
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [attr("session.id", session), attr("user.email", email),
            attr("event.name", "api_request"), {"key": "event.sequence", "value": {"intValue": seq}},
            attr("model", "claude-sonnet-5"), {"key": "cost_usd", "value": cost},
            {"key": "input_tokens", "value": {"intValue": "10"}}]})
}

fn spend_on(out: &Path, date: &str) -> f64 {
    read(out.join("reports/admin/daily_spend.csv"))
        .lines()
        .find(|l| l.starts_with(date))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .unwrap_or(0.0)
}

fn run_on(input: &Path, out: &Path, extra: &[&str], expect: i32) -> std::process::Output {
    let roster = repo().join("tests/fixtures/small/roster.csv");
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--roles",
        "admin",
    ];
    args.extend_from_slice(extra);
    run(&args, expect)
}

#[test]
fn a_late_upload_is_counted_warned_about_and_healed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    copy_tree(&repo().join("tests/fixtures/small/input"), &input);
    // E = 2026-10-08; a laptop uploads a request of E in the arrival partition of E + 5.
    let late = input.join("year=2026/month=10/day=13/hour=09/minute=00");
    std::fs::create_dir_all(&late).unwrap();
    std::fs::write(
        late.join("logs_200000001.json"),
        log_line(vec![request(
            "late-1",
            "alice@example.com",
            1,
            7200,
            json!({"doubleValue": 5.0}),
        )]) + "\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    // The nightly run of E computes E without it (its partition is not read).
    run_on(&input, &out, &["--date", "2026-10-08"], 0);
    let before = spend_on(&out, "2026-10-08");
    assert!(before > 0.0);

    // The nightly run of E + 4 (without healing) meets it: counted late, warned about.
    let r = run_on(
        &input,
        &out,
        &["--date", "2026-10-12", "--lookback-days", "3"],
        0,
    );
    let m = manifest(&out);
    assert_eq!(m["counts"]["records_late"], 1, "{}", m["counts"]);
    assert_eq!(m["counts"]["late_by_date"], json!({"2026-10-08": 1}));
    assert_eq!(m["late_dates"]["2026-10-08"]["not_in_tables"], 1);
    assert_eq!(m["late_dates"]["2026-10-08"]["healed"], false);
    assert_counts_add_up(&m);
    let e = stderr(&r);
    assert!(
        e.contains("1 late records") && e.contains("2026-10-08"),
        "{e}"
    );
    assert!(
        e.contains("--date 2026-10-12 --lookback-days 3 --heal-late"),
        "{e}"
    );
    assert_eq!(spend_on(&out, "2026-10-08"), before, "not healed");
    let status = current_commit(&out, "2026-10-08")["status"].clone();
    assert_eq!(status["late_since"], 1, "{status}");
    assert_eq!(status["arrival_through"], "2026-10-11", "{status}");

    // The nightly run of E + 5 with healing recomputes E with the late record.
    let r = run_on(
        &input,
        &out,
        &[
            "--date",
            "2026-10-13",
            "--lookback-days",
            "3",
            "--heal-late",
        ],
        0,
    );
    let m = manifest(&out);
    assert_eq!(m["dates_healed"], json!(["2026-10-08"]));
    assert!(m["dates_recomputed"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-10-08")));
    assert_eq!(m["late_dates"]["2026-10-08"]["not_in_tables"], 0);
    assert_counts_add_up(&m);
    assert!(
        !stderr(&r).contains("are not in the tables"),
        "{}",
        stderr(&r)
    );
    assert!((spend_on(&out, "2026-10-08") - (before + 5.0)).abs() < 1e-9);

    // The same tables as a clean backfill that reads every arrival partition of its dates.
    let wide = dir.path().join("wide.toml");
    std::fs::write(&wide, "max_arrival_delay_days = 10\n").unwrap();
    let clean = dir.path().join("clean");
    run_on(
        &input,
        &clean,
        &[
            "--config",
            wide.to_str().unwrap(),
            "--from",
            "2026-10-08",
            "--to",
            "2026-10-13",
        ],
        0,
    );
    assert_eq!(reports(&out), reports(&clean), "healed = clean backfill");

    // The nightly run of E + 6 still counts it late, but it is in the tables: no warning.
    let r = run_on(
        &input,
        &out,
        &["--date", "2026-10-14", "--lookback-days", "3"],
        0,
    );
    let m = manifest(&out);
    assert_eq!(m["counts"]["records_late"], 1);
    assert_eq!(m["late_dates"]["2026-10-08"]["not_in_tables"], 0);
    assert!(
        !stderr(&r).contains("are not in the tables"),
        "{}",
        stderr(&r)
    );
    assert_eq!(reports(&out), reports(&clean));

    // The shipped nightly pipeline heals.
    assert!(read(repo().join("pipelines/nightly.toml")).contains("heal_late = true"));
}

fn generated(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "6",
            "--days",
            "3",
            "--start",
            "2026-10-10",
            "--seed",
            "3",
        ],
        0,
    );
    data
}

#[test]
fn input_shrunk_by_expiry_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path());
    let input = data.join("telemetry");
    let out = dir.path().join("out");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--roles",
            "admin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let go = |extra: &[&str], code: i32| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&a, code)
    };
    go(&["--from", "2026-10-10", "--to", "2026-10-12"], 0);
    let before = reports(&out);
    let facts_11 = std::fs::read(current_facts(&out, "2026-10-11", "sessions")).unwrap();
    // A lifecycle rule expires three quarters of the objects of the first two arrival days.
    let mut removed = 0;
    for day in ["day=10", "day=11"] {
        let objects: Vec<PathBuf> = walk(&input)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&format!("month=10/{day}/")))
            .collect();
        for (i, p) in objects.iter().enumerate() {
            if i % 4 != 0 {
                std::fs::remove_file(p).unwrap();
                removed += 1;
            }
        }
    }
    assert!(removed > 10);
    let r = go(&["--from", "2026-10-10", "--to", "2026-10-12"], 1);
    let e = stderr(&r);
    assert!(
        e.contains("2026-10-10:") && e.contains("records stored") && e.contains("now"),
        "{e}"
    );
    assert!(e.contains("--allow-shrink"), "{e}");
    assert_eq!(reports(&out), before, "nothing published");
    assert_eq!(manifest(&out)["status"], "failed");

    // With --allow-shrink the smaller facts replace the stored ones; a date in the range for
    // which the input holds nothing (every arrival day that can hold 10-11 expired: events are
    // uploaded on their day or later) keeps its facts.
    for p in walk(&input) {
        let p_s = p.to_string_lossy().to_string();
        if ["day=11/", "day=12/", "day=13/", "day=14/"]
            .iter()
            .any(|d| p_s.contains(&format!("month=10/{d}")))
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let r = go(
        &[
            "--from",
            "2026-10-10",
            "--to",
            "2026-10-11",
            "--allow-shrink",
        ],
        0,
    );
    assert_ne!(reports(&out), before);
    let m = manifest(&out);
    assert_eq!(
        m["dates_recomputed"],
        json!(["2026-10-10"]),
        "{}",
        stderr(&r)
    );
    assert_eq!(
        std::fs::read(current_facts(&out, "2026-10-11", "sessions")).unwrap(),
        facts_11,
        "a date without input keeps its facts"
    );
    assert!(read(out.join("reports/admin/daily_activity.csv")).contains("2026-10-11,"));
}

#[test]
fn implausible_values_and_overflowing_sums_are_rejected_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut lines = vec![
        // One absurd cost beside an ordinary one, same session and day.
        log_line(vec![
            request("s1", "a@x.com", 1, 3600, json!({"doubleValue": 1e7})),
            request("s1", "a@x.com", 2, 3700, json!({"doubleValue": 0.25})),
        ]),
        // Tokens above 10^9.
        log_line(vec![json!({"timeUnixNano": "1791421200000000000",
            "body": {"stringValue": "claude_code.api_request"},
            "attributes": [attr("session.id", "s2"), attr("user.email", "b@x.com"),
                attr("event.name", "api_request"), {"key": "event.sequence", "value": {"intValue": 1}},
                {"key": "cost_usd", "value": {"doubleValue": 0.5}},
                {"key": "input_tokens", "value": {"intValue": "2000000000"}}]})]),
        // A cumulative cost counter whose first point is 5,000 USD: an implausible increment.
        json!({"resourceMetrics": [{"resource": {"attributes": [attr("session.id", "s3"), attr("user.email", "c@x.com")]},
            "scopeMetrics": [{"metrics": [{"name": "claude_code.cost.usage", "sum": {"aggregationTemporality": 2,
                "dataPoints": [{"attributes": [attr("model", "m")], "startTimeUnixNano": "1791417600000000000",
                    "timeUnixNano": "1791421200000000000", "asDouble": 5000.0}]}}]}]}]})
        .to_string(),
    ];
    // 9,300 requests of 999 USD in one session and day: their sum would pass 2^63 pico-USD.
    let many: Vec<Value> = (0..9_300)
        .map(|i| request("s4", "d@x.com", 10 + i, 4000, json!({"doubleValue": 999.0})))
        .collect();
    for chunk in many.chunks(1000) {
        lines.push(log_line(chunk.to_vec()));
    }
    std::fs::write(input.join("logs_1.json"), lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    run_on(&input, &out, &["--max-bad-ratio", "0.5"], 0);
    let m = manifest(&out);
    assert_counts_add_up(&m);
    let c = &m["counts"];
    let implausible = c["rejected_by_reason"]["implausible_value"]
        .as_u64()
        .unwrap();
    // 1 cost, 1 token count, 1 cumulative increment, and the requests past the 64-bit sum.
    let fit = (i64::MAX as f64 / (999.0 * 1e12)).floor() as u64; // 9,232 requests fit
    assert_eq!(implausible, 3 + (9_300 - fit), "{c}");
    assert_eq!(c["records_rejected"].as_u64().unwrap(), implausible);
    // The quarantine names the reason for the decoded ones.
    let run_id = m["run_id"].as_str().unwrap();
    let index = read(out.join("_quarantine").join(run_id).join("index.csv"));
    assert_eq!(index.matches("implausible_value").count(), 2, "{index}");
    // Spend: the ordinary 0.25 and the 999 USD requests that fit (the request with too many
    // tokens is rejected whole, its cost too); never negative.
    let spend = spend_on(&out, "2026-10-08");
    let expected = 0.25 + fit as f64 * 999.0;
    assert!((spend - expected).abs() < 1e-3, "{spend} vs {expected}");
    let tokens = read(out.join("reports/admin/daily_spend_by_model.csv"));
    assert!(!tokens.contains("2000000000"), "{tokens}");
}

#[test]
fn a_day_of_garbage_stops_early_with_exit_3_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    copy_tree(&repo().join("tests/fixtures/small/input"), &input);
    // 200,000 broken lines in 20 objects of 10,000, as the Collector batches them.
    let bad = input.join("year=2026/month=10/day=09/hour=05/minute=00");
    std::fs::create_dir_all(&bad).unwrap();
    let line = "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":\n";
    let body = line.repeat(10_000);
    for i in 0..20 {
        std::fs::write(bad.join(format!("logs_3{i:08}.json")), &body).unwrap();
    }
    let out = dir.path().join("out");
    let clock = std::time::Instant::now();
    let r = run_on(&input, &out, &[], 3);
    let took = clock.elapsed();
    let e = stderr(&r);
    assert!(e.contains("stopped after"), "{e}");
    assert!(!out.join("reports").exists(), "nothing published");
    let m = manifest(&out);
    assert_eq!(m["status"], "failed");
    let c = &m["counts"];
    assert!(
        c["lines_read"].as_u64().unwrap() < 200_000,
        "stopped before reading everything: {c}"
    );
    assert_eq!(
        c["lines_quarantined"],
        c["bad_lines_by_arrival_day"]["2026-10-09"]
    );
    assert_eq!(
        c["bad_lines_by_input"][input.to_str().unwrap()],
        c["lines_quarantined"]
    );
    // The quarantine holds what was found before stopping, one file per object.
    let run_id = m["run_id"].as_str().unwrap();
    let q = out.join("_quarantine").join(run_id);
    let files = walk(&q);
    assert!(files.iter().any(|f| f.ends_with("index.csv")));
    eprintln!("a day of garbage: exit 3 after {took:?}");
}

#[test]
fn an_output_inside_an_input_is_refused_and_symlink_loops_are_not_walked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    copy_tree(&repo().join("tests/fixtures/small/input"), &input);
    for (out, input_arg) in [
        (input.join("analytics"), input.clone()),
        (input.join("x/y/out"), input.clone()),
        (input.clone(), input.clone()),
    ] {
        let r = run_on(&input_arg, &out, &[], 2);
        assert!(
            stderr(&r).contains("holds the output root"),
            "{}",
            stderr(&r)
        );
        assert!(!out.join("reports").exists());
    }
    let r = run(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            dir.path().join("o").to_str().unwrap(),
            "--state",
            input.join("state").to_str().unwrap(),
        ],
        2,
    );
    assert!(
        stderr(&r).contains("holds the output root"),
        "{}",
        stderr(&r)
    );
    // A sibling whose name starts the same is not inside.
    run_on(&input, &dir.path().join("input-out"), &[], 0);

    // A symbolic link back up the tree: reported once, not walked.
    std::os::unix::fs::symlink(&input, input.join("year=2026/loop")).unwrap();
    let out = dir.path().join("out");
    let r = run_on(&input, &out, &[], 0);
    assert!(
        stderr(&r).contains("a symbolic link to a directory already listed"),
        "{}",
        stderr(&r)
    );
    let m = manifest(&out);
    assert_eq!(m["objects"]["links_skipped"], 1);
    let clean = dir.path().join("clean");
    std::fs::remove_file(input.join("year=2026/loop")).unwrap();
    run_on(&input, &clean, &[], 0);
    assert_eq!(reports(&out), reports(&clean));
}

/// The months before a run's dates are copied into the new table files while it decodes; a
/// late record healed into one of them changes that month after it was copied. The month must
/// be written again: the tables are a clean backfill's.
#[test]
fn a_month_copied_early_that_healing_changes_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--members", "5", "--days", "6", "--start", "2026-09-28"];
    let mut generate = vec![
        "generate",
        "--output",
        data.to_str().unwrap(),
        "--seed",
        "3",
    ];
    generate.extend_from_slice(&args);
    run(&generate, 0);
    let input = data.join("telemetry");
    let roster = data.join("roster.csv");
    let on = |out: &Path, extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["run", "--input", input.to_str().unwrap()];
        a.extend_from_slice(&["--roster", roster.to_str().unwrap()]);
        a.extend_from_slice(&["--output", out.to_str().unwrap()]);
        a.extend_from_slice(extra);
        run_in(None, &a, env, 0)
    };
    let out = dir.path().join("out");
    for d in [
        "2026-09-28",
        "2026-09-29",
        "2026-09-30",
        "2026-10-01",
        "2026-10-02",
    ] {
        on(&out, &["--date", d], &[]);
    }
    // A request of 2026-09-29 12:00 UTC uploaded on 2026-10-03: 4 days late.
    let late = input.join("year=2026/month=10/day=03/hour=09/minute=00");
    std::fs::create_dir_all(&late).unwrap();
    let mut record = request(
        "late-9",
        "late@example.com",
        1,
        0,
        json!({"doubleValue": 7.0}),
    );
    record["timeUnixNano"] = json!("1790683200000000000");
    std::fs::write(
        late.join("logs_900000001.json"),
        log_line(vec![record]) + "\n",
    )
    .unwrap();
    let debug = [("CC_ANALYTICS_LOG", "cc_analytics=debug")];
    let r = on(&out, &["--date", "2026-10-03", "--heal-late"], &debug);
    let e = stderr(&r);
    assert_eq!(manifest(&out)["dates_healed"], json!(["2026-09-29"]));
    // September was copied early (it is before the run's date), then rebuilt with the record.
    assert!(e.contains("copied early: 3 months of 3 files"), "{e}");
    assert!(
        e.contains("member_daily: the months copied early changed since; written again"),
        "{e}"
    );
    assert!(e.contains("member_daily: 0 months copied early"), "{e}");
    let member_daily = read(out.join("reports/admin/member_daily.csv"));
    assert!(
        member_daily
            .lines()
            .any(|l| l.starts_with("2026-09-29,late@example.com,")),
        "the healed record is in the month copied early"
    );
    let wide = dir.path().join("wide.toml");
    std::fs::write(&wide, "max_arrival_delay_days = 10\n").unwrap();
    let clean = dir.path().join("clean");
    let backfill = [
        "--config",
        wide.to_str().unwrap(),
        "--from",
        "2026-09-28",
        "--to",
        "2026-10-03",
    ];
    on(&clean, &backfill, &[]);
    assert_eq!(reports(&out), reports(&clean), "healed = clean backfill");
}
