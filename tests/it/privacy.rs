//! Privacy and hostile input: pseudonyms that cannot be undone by row order, dropped columns,
//! keys, secrets in URLs, state apart from the reports, and strings from telemetry that must stay
//! data in CSV, Parquet and the dashboard.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::dashboard::browser;
use crate::util::*;

const KEY_ENV: &str = "CC_ANALYTICS_PSEUDONYM_KEY";
const KEY: &str = "privacy-test-key-0123456789abcdef";

/// Every table pseudonymised for developer, with `role` dropped; admin sees them plain.
const POLICY: &str = r#"
pseudonym_key_env = "CC_ANALYTICS_PSEUDONYM_KEY"
[roles.admin]
tables = ["*"]
[roles.developer]
tables = ["*"]
pseudonymise = ["member"]
drop = ["role"]
"#;

/// The pseudonym, computed here with the hmac crate (not the product's code).
fn pseudonym(member: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(member.as_bytes());
    format!("m_{}", &hex::encode(mac.finalize().into_bytes())[..16])
}

fn csv_table(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn python(code: &str, args: &[&str]) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python3 (scripts/test.sh installs pyarrow)");
    assert!(
        o.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn generated(dir: &Path, members: &str) -> PathBuf {
    let data = dir.join("data");
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            members,
            "--days",
            "3",
            "--seed",
            "5",
        ],
        0,
    );
    data
}

#[test]
fn pseudonymised_tables_are_sorted_by_pseudonym_and_leave_dropped_columns_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), "30");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = dir.path().join("out");
    run_in(
        None,
        &[
            "run",
            "--input",
            data.join("telemetry").to_str().unwrap(),
            "--roster",
            data.join("roster.csv").to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        &[(KEY_ENV, KEY)],
        0,
    );
    for table in ["member_daily", "member_monthly"] {
        let (ah, admin) = csv_table(&out.join(format!("reports/admin/{table}.csv")));
        let (dh, dev) = csv_table(&out.join(format!("reports/developer/{table}.csv")));
        let role = ah.iter().position(|h| h == "role").unwrap();
        let member = ah.iter().position(|h| h == "member").unwrap();
        let mut expected_header = ah.clone();
        expected_header.remove(role);
        assert_eq!(dh, expected_header, "{table}: role dropped, nothing else");
        assert!(
            admin.len() >= 25,
            "{table}: enough rows to tell orders apart"
        );
        // The admin rows as the developer should see them: pseudonym, no role.
        let mapped: Vec<Vec<String>> = admin
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r[member] = pseudonym(&r[member]);
                r.remove(role);
                r
            })
            .collect();
        // Sorted by what is written: (date or month, pseudonym, member type).
        let key = |r: &Vec<String>| (r[0].clone(), r[1].clone(), r[2].clone());
        let mut sorted = mapped.clone();
        sorted.sort_by_key(key);
        assert_eq!(dev, sorted, "{table}: developer rows sorted by pseudonym");
        assert!(
            dev.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
            "{table} is sorted"
        );
        assert_ne!(
            dev, mapped,
            "{table}: the row order does not follow the real identities"
        );
    }
    // Parquet read by pyarrow: no `role` column, rows in pseudonym order, same as the CSV.
    let checked = python(
        r#"
import sys, pyarrow.parquet as pq
for t in ("member_daily", "member_monthly"):
    tab = pq.read_table(f"{sys.argv[1]}/reports/developer/{t}.parquet")
    assert "role" not in tab.column_names, tab.column_names
    lead = tab.column_names[0]
    keys = list(zip(tab[lead].to_pylist(), tab["member"].to_pylist(), tab["member_type"].to_pylist()))
    assert keys == sorted(keys), t
    assert all(m.startswith("m_") for m in tab["member"].to_pylist())
    admin = pq.read_table(f"{sys.argv[1]}/reports/admin/{t}.parquet")
    assert "role" in admin.column_names
print("ok")
"#,
        &[out.to_str().unwrap()],
    );
    assert_eq!(checked.trim(), "ok");
    // No real identity anywhere in the developer folder, dashboard included.
    let roster = read(data.join("roster.csv"));
    let emails: Vec<&str> = roster
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert!(emails.len() >= 15);
    for f in walk(&out.join("reports/developer")) {
        let bytes = std::fs::read(&f).unwrap();
        for e in &emails {
            assert!(!contains(&bytes, e.as_bytes()), "{} holds {e}", f.display());
        }
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

fn request(n: u64, who: (&str, &str), model: &str, cost: Value) -> Value {
    json!({"timeUnixNano": (1_791_421_200_000_000_000u64 + n * 1_000_000_000).to_string(),
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [attr("session.id", &format!("s{n}")), attr(who.0, who.1),
            attr("event.name", "api_request"), {"key": "event.sequence", "value": {"intValue": n}},
            attr("model", model), {"key": "cost_usd", "value": cost}]})
}

fn decision(n: u64, who: (&str, &str), tool: &str) -> Value {
    json!({"timeUnixNano": (1_791_421_200_000_000_000u64 + n * 1_000_000_000).to_string(),
        "body": {"stringValue": "claude_code.tool_decision"},
        "attributes": [attr("session.id", &format!("s{n}")), attr(who.0, who.1),
            attr("event.name", "tool_decision"), {"key": "event.sequence", "value": {"intValue": n}},
            attr("tool_name", tool), attr("decision", "accept")]})
}

/// Whether a spreadsheet would run the cell (the rule of contract 5.2, written out here).
fn formula_like(s: &str) -> bool {
    let numeric = s.parse::<f64>().is_ok() && s.chars().all(|c| "+-.0123456789eE".contains(c));
    s.starts_with(['=', '+', '-', '@', '\t', '\r']) && !numeric
}

#[test]
fn hostile_strings_stay_data_in_csv_parquet_and_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    // Anything the page loads would connect here: the test counts connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let long = format!("{}<b>end</b>", "W".repeat(20_000));
    let members: Vec<String> = vec![
        format!("=HYPERLINK(\"{url}/h\",\"click\")"),
        "+SUM(1,2)".into(),
        "-2+3".into(),
        "@cmd".into(),
        "\tTAB=1".into(),
        "\r=CR".into(),
        format!("<script>document.body.dataset.pwned='script';fetch('{url}/s')</script>"),
        format!("\"><img src=\"{url}/i\" onerror=\"document.body.dataset.pwned='img';alert(1)\">"),
        "line1\nline2,\"quoted\"".into(),
        "'single' & \"double\" </td></tr></table>".into(),
        "-12".into(),
        long.clone(),
    ];
    let key_name = format!("@SUM(1+1)*cmd|' /C calc'!A0<svg onload=fetch('{url}/k')>");
    let models = ["=cmd|' /C calc'!A0", "<script>alert(1)</script>"];
    let roster_member = format!("=IMPORTXML(\"{url}/r\",\"//a\")");

    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut records = Vec::new();
    let mut n = 0;
    for (i, m) in members.iter().enumerate() {
        n += 1;
        records.push(request(
            n,
            ("user.email", m),
            models[i % 2],
            json!({"doubleValue": 0.5}),
        ));
        n += 1;
        records.push(decision(n, ("user.email", m), "Edit"));
    }
    n += 1;
    records.push(request(
        n,
        ("api_key.name", &key_name),
        models[0],
        json!({"doubleValue": 1.0}),
    ));
    n += 1;
    records.push(request(
        n,
        ("user.id", "install-7"),
        "claude-x",
        json!({"doubleValue": 2.0}),
    ));
    n += 1;
    records.push(decision(n, ("user.id", "install-7"), "=EVIL()"));
    std::fs::write(input.join("logs_1.json"), log_line(records) + "\n").unwrap();
    // The roster names install-7 with a hostile member name.
    let roster = dir.path().join("roster.csv");
    let mut w = csv::Writer::from_path(&roster).unwrap();
    w.write_record(["member", "member_type", "role", "aliases"])
        .unwrap();
    w.write_record([roster_member.as_str(), "user", "developer", "install-7"])
        .unwrap();
    w.flush().unwrap();

    let out = dir.path().join("out");
    run(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--roster",
            roster.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--roles",
            "admin",
        ],
        0,
    );
    let mut expected: Vec<String> = members.clone();
    expected.push(key_name.clone());
    expected.push(roster_member.clone());
    expected.sort();

    // CSV: a real CSV reader gets every cell back, formula-like ones behind a `'`.
    let (h, rows) = csv_table(&out.join("reports/admin/member_monthly.csv"));
    let mi = h.iter().position(|c| c == "member").unwrap();
    let mut cells: Vec<String> = rows.iter().map(|r| r[mi].clone()).collect();
    cells.sort();
    let mut want: Vec<String> = expected
        .iter()
        .map(|m| {
            if formula_like(m) {
                format!("'{m}")
            } else {
                m.clone()
            }
        })
        .collect();
    want.sort();
    assert_eq!(cells, want);
    assert!(
        cells.contains(&"-12".to_string()),
        "a number stays a number"
    );
    let (h, rows) = csv_table(&out.join("reports/admin/daily_spend_by_model.csv"));
    let mo = h.iter().position(|c| c == "model").unwrap();
    let mut got: Vec<&str> = rows.iter().map(|r| r[mo].as_str()).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            "'=cmd|' /C calc'!A0",
            "<script>alert(1)</script>",
            "claude-x"
        ]
    );
    for f in walk(&out.join("reports/admin")) {
        if f.extension().is_some_and(|e| e == "csv") {
            let (_, rows) = csv_table(&f);
            for cell in rows.iter().flatten() {
                assert!(!formula_like(cell), "{}: {cell:?}", f.display());
            }
        }
    }
    // The hostile tool name is not an edit tool: it reaches no table.
    assert!(!read(out.join("reports/admin/daily_accept_rate.csv")).contains("EVIL"));

    // Parquet keeps every value exactly (pyarrow).
    let listed = python(
        r#"
import sys, json, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1] + "/reports/admin/member_monthly.parquet")
m = pq.read_table(sys.argv[1] + "/reports/admin/daily_spend_by_model.parquet")
print(json.dumps({"members": sorted(t["member"].to_pylist()), "models": sorted(m["model"].to_pylist())}))
"#,
        &[out.to_str().unwrap()],
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["members"], json!(expected));
    assert_eq!(
        listed["models"],
        json!([
            "<script>alert(1)</script>",
            "=cmd|' /C calc'!A0",
            "claude-x"
        ])
    );

    // The dashboard in headless Chromium: no script of the data runs, nothing is requested.
    let page = out.join("reports/admin/dashboard.html");
    let o = browser(
        &dir.path().join("profile"),
        &["--virtual-time-budget=3000", "--dump-dom"],
        &page,
    );
    let dom = String::from_utf8_lossy(&o.stdout).to_string();
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        dom.contains(r#"data-ready="1""#),
        "the page's own script ran: {log}"
    );
    assert!(!dom.contains("data-pwned"), "an injected script ran");
    assert!(!dom.contains("data-errors"), "script errors: {dom}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let mut connections = 0;
    while listener.accept().is_ok() {
        connections += 1;
    }
    assert_eq!(connections, 0, "the page made requests");
    // Every member is shown as text: one team row each, the long one whole.
    let team = &dom[dom.find(r#"<table id="team""#).unwrap()..];
    let team = &team[..team.find("</table>").unwrap()];
    assert_eq!(team.matches("<tr data-month=").count(), expected.len());
    assert!(team.contains(&"W".repeat(20_000)));
    assert!(team.contains("&lt;script&gt;document.body.dataset.pwned"));
    assert!(!team.contains("<img"));
}

#[test]
fn short_keys_are_refused_and_the_key_never_appears() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small");
    let policy = repo().join("pipelines/policies/least_privilege.toml");
    let out = dir.path().join("out");
    let (input, roster) = (fx.join("input"), fx.join("roster.csv"));
    let args = [
        "-vv",
        "run",
        "--input",
        input.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    let short = "0123456789abcdef";
    let r = run_in(None, &args, &[(KEY_ENV, short)], 2);
    let e = stderr(&r);
    assert!(
        e.contains("16 bytes") && e.contains("openssl rand -hex 32"),
        "{e}"
    );
    assert!(!e.contains(short), "{e}");
    assert!(!out.exists(), "nothing written");

    let r = run_in(None, &args, &[(KEY_ENV, KEY)], 0);
    assert!(!stderr(&r).contains(KEY));
    let files = walk(&out);
    assert!(files.len() > 20);
    for f in files {
        assert!(
            !contains(&std::fs::read(&f).unwrap(), KEY.as_bytes()),
            "{} holds the key",
            f.display()
        );
    }
}

#[test]
fn secrets_in_urls_are_left_out_of_the_manifest_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small");
    let out = dir.path().join("out");
    let input = format!(
        "file://{}?X-Amz-Signature=SIGSECRET&X-Amz-Credential=AKIDSECRET",
        fx.join("input").display()
    );
    let output = format!("file://{}?token=OUTSECRET", out.display());
    let r = run(&["run", "--input", &input, "--output", &output], 0);
    let m = manifest(&out);
    let text = m.to_string() + &stderr(&r);
    for secret in ["SIGSECRET", "AKIDSECRET", "OUTSECRET"] {
        assert!(!text.contains(secret), "{secret} recorded: {text}");
    }
    assert_eq!(
        m["inputs"][0],
        format!("file://{}", fx.join("input").display())
    );
    assert!(m["command_line"]
        .as_array()
        .unwrap()
        .contains(&json!(format!("file://{}", fx.join("input").display()))));
    assert!(
        m["counts"]["records_used"].as_u64().unwrap() > 0,
        "the input was read"
    );

    // A URL with user info and a signature in an error message.
    let r = run(
        &[
            "run",
            "--input",
            fx.join("input").to_str().unwrap(),
            "--output",
            dir.path().join("out2").to_str().unwrap(),
            "--roster",
            "https://user:PWSECRET@127.0.0.1:9/r.csv?sig=SIGSECRET2",
        ],
        2,
    );
    let e = stderr(&r);
    assert!(!e.contains("PWSECRET") && !e.contains("SIGSECRET2"), "{e}");
    assert!(e.contains("https://127.0.0.1:9"), "{e}");
}

#[test]
fn state_apart_from_reports_keeps_identities_out_of_the_reports_root() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small");
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    for e in walk(&fx.join("input")) {
        let rel = e.strip_prefix(fx.join("input")).unwrap();
        let to = input.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&e, &to).unwrap();
    }
    // One line of two users' records: keep@'s is fine, bad@'s cost is not a number.
    std::fs::write(
        input.join("logs_mixed.json"),
        log_line(vec![
            request(
                1,
                ("user.email", "keep@corp.test"),
                "m",
                json!({"doubleValue": 0.5}),
            ),
            request(
                2,
                ("user.email", "bad@corp.test"),
                "m",
                json!({"stringValue": "lots"}),
            ),
        ]) + "\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    // Quarantine folders of earlier runs: one past the retention, one within it.
    let recent = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y%m%dT%H%M%S%3fZ-00001")
        .to_string();
    for run_id in ["20200101T000000000Z-00001", recent.as_str()] {
        let d = state.join("_quarantine").join(run_id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("index.csv"), "x\n").unwrap();
    }
    let out = dir.path().join("reports_root");
    let policy = repo().join("pipelines/policies/least_privilege.toml");
    run_in(
        None,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--roster",
            fx.join("roster.csv").to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--roles",
            "developer",
            "--output",
            out.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--max-bad-ratio",
            "0.5",
        ],
        &[(KEY_ENV, KEY)],
        0,
    );
    // The output root holds the developer's reports and nothing else.
    let top: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["reports"]);
    let files = walk(&out);
    assert!(files
        .iter()
        .any(|f| f.ends_with("reports/developer/member_monthly.parquet")));
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for id in ["@example.com", "@corp.test", "inst-b"] {
            assert!(
                !contains(&bytes, id.as_bytes()),
                "{} holds {id}",
                f.display()
            );
        }
    }
    // The state holds facts, the manifest and the quarantine.
    for d in ["_facts", "_runs", "_quarantine"] {
        assert!(state.join(d).is_dir(), "{d}");
    }
    let m = manifest(&state);
    assert_eq!(m["state"], json!(state.to_str().unwrap()));
    assert_counts_add_up(&m);
    // The quarantine keeps the rejected record alone, not its neighbour on the line.
    let run_id = m["run_id"].as_str().unwrap();
    let q = state.join("_quarantine").join(run_id);
    let lines: Vec<PathBuf> = walk(&q)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "lines"))
        .collect();
    let kept = lines.iter().map(read).collect::<String>();
    assert!(kept.contains("bad@corp.test"), "{kept}");
    assert!(!kept.contains("keep@corp.test"), "{kept}");
    let doc: Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    assert_eq!(
        doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Expired quarantine folders are gone, recent ones stay.
    assert!(!state.join("_quarantine/20200101T000000000Z-00001").exists());
    assert!(state
        .join("_quarantine")
        .join(&recent)
        .join("index.csv")
        .is_file());

    // A second run on the same roots reuses the stored facts from the state.
    run_in(
        None,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--roster",
            fx.join("roster.csv").to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--roles",
            "developer",
            "--date",
            "2026-10-09",
            "--output",
            out.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--max-bad-ratio",
            "0.5",
        ],
        &[(KEY_ENV, KEY)],
        0,
    );
    let monthly = read(out.join("reports/developer/member_monthly.csv"));
    assert!(monthly.lines().count() > 2, "{monthly}");
}
