//! The hand-written fixture (`tests/fixtures/small`): a dozen records whose tables are worked
//! out by hand below.
//!
//! Day 2026-10-08 (UTC): alice's session s1 sends two api_request events (0.40 USD sonnet,
//! 1.10 USD opus given as a string) and two decisions (Edit accept, Write reject); its metrics
//! carry only `user.id` inst-a, yet belong to alice through the session: 30 lines added, 4 removed,
//! and a cost.usage point of 1.50 that is not used because s1 has events that day. Session s2
//! has metrics only, with `user.id` inst-b, a roster alias of bob: an Edit accept (2), and
//! cumulative cost 0.10 → 0.25 and input tokens 100 → 300 on claude-haiku-5-5.
//! Day 2026-10-09: a re-upload of the first line (2 duplicate records), alice's request with only
//! cost_usd_micros 2000000 and no model, carol's agents_view session with one commit, and a log
//! record of another service (ignored). idle@example.com is in the roster without activity.

use crate::util::*;

const DAILY_ACTIVITY: &str = "date,active_users,sessions\n2026-10-08,2,2\n2026-10-09,2,1\n";
const DAILY_SPEND: &str =
    "date,active_users,spend_usd\n2026-10-08,2,1.750000\n2026-10-09,2,2.000000\n";
const DAILY_SPEND_BY_MODEL: &str = "\
date,model,requests,spend_usd,input_tokens,output_tokens,cache_read_tokens,cache_creation_tokens
2026-10-08,claude-haiku-5-5,0,0.250000,300,0,0,0
2026-10-08,claude-opus-5,1,1.100000,200,80,1000,0
2026-10-08,claude-sonnet-5,1,0.400000,100,50,0,10
2026-10-09,unknown,1,2.000000,0,0,0,0
";
const DAILY_ACCEPT_RATE: &str = "\
date,tool,accepted,rejected,accept_rate
2026-10-08,Edit,3,0,1.000000
2026-10-08,Write,0,1,0.000000
2026-10-08,all,3,1,0.750000
2026-10-09,all,0,0,
";
const DAILY_LINES: &str = "date,lines_accepted,lines_removed\n2026-10-08,30,4\n2026-10-09,0,0\n";
const MEMBER_DAILY: &str = "\
date,member,member_type,role,sessions,lines_accepted,lines_removed,accepted,rejected,commits,pull_requests,requests,spend_usd,input_tokens,output_tokens,cache_read_tokens,cache_creation_tokens
2026-10-08,alice@example.com,user,developer,1,30,4,1,1,0,0,2,1.500000,300,130,1000,10
2026-10-08,bob@example.com,user,billing,1,0,0,2,0,0,0,0,0.250000,300,0,0,0
2026-10-09,alice@example.com,user,developer,1,0,0,0,0,0,0,1,2.000000,0,0,0,0
2026-10-09,carol@example.com,user,,0,0,0,0,0,1,0,0,0.000000,0,0,0,0
";
const MEMBER_MONTHLY: &str = "\
month,member,member_type,role,spend_usd,lines_accepted,sessions,active_days
2026-10-01,alice@example.com,user,developer,3.500000,30,1,2
2026-10-01,bob@example.com,user,billing,0.250000,0,1,1
2026-10-01,carol@example.com,user,,0.000000,0,0,1
2026-10-01,idle@example.com,user,admin,0.000000,0,0,0
";

#[test]
fn hand_computed_tables_for_every_analytics_role() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fx = repo().join("tests/fixtures/small");
    run(
        &[
            "run",
            "--input",
            fx.join("input").to_str().unwrap(),
            "--roster",
            fx.join("roster.csv").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    let expected = [
        ("daily_activity", DAILY_ACTIVITY),
        ("daily_spend", DAILY_SPEND),
        ("daily_spend_by_model", DAILY_SPEND_BY_MODEL),
        ("daily_accept_rate", DAILY_ACCEPT_RATE),
        ("daily_lines", DAILY_LINES),
        ("member_daily", MEMBER_DAILY),
        ("member_monthly", MEMBER_MONTHLY),
    ];
    for role in ["primary_owner", "owner", "billing", "admin", "developer"] {
        for (table, csv) in expected {
            assert_eq!(
                read(out.join(format!("reports/{role}/{table}.csv"))),
                csv,
                "{role}/{table}"
            );
            assert!(out
                .join(format!("reports/{role}/{table}.parquet"))
                .is_file());
        }
    }
    for role in ["user", "claude_code_user", "membership_admin"] {
        assert!(
            !out.join(format!("reports/{role}")).exists(),
            "{role} sees nothing"
        );
    }
    // The Parquet holds the same rows, exactly typed: checked by the independent reference.
    reference_check(
        &fx.join("input"),
        &fx.join("roster.csv"),
        &out,
        "UTC",
        "admin",
    );

    let m = manifest(&out);
    let c = &m["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(n("lines_read"), 7);
    assert_eq!(n("lines_parsed"), 7);
    assert_eq!(n("lines_quarantined"), 0);
    assert_eq!(n("records_parsed"), 18);
    assert_eq!(n("records_used"), 15);
    assert_eq!(n("records_duplicate"), 2);
    assert_eq!(n("records_ignored"), 1);
    assert_counts_add_up(&m);
    assert_eq!(m["objects"]["listed"], 5);
    assert_eq!(m["objects"]["not_telemetry"], 1);
    let objects = input_objects(&out, &m);
    assert_eq!(objects.len(), 4);
    // Each object as it is on disk (local listings take size, time and etag from the read).
    for o in &objects {
        let key = o["key"].as_str().unwrap();
        let meta = std::fs::metadata(key).unwrap();
        assert_eq!(o["size"].as_u64().unwrap(), meta.len(), "{o}");
        let mtime: chrono::DateTime<chrono::Utc> = meta.modified().unwrap().into();
        let got =
            chrono::DateTime::parse_from_rfc3339(o["last_modified"].as_str().unwrap()).unwrap();
        assert_eq!(got.timestamp_micros(), mtime.timestamp_micros(), "{o}");
        let etag = o["etag"].as_str().unwrap();
        assert!(etag.ends_with(&format!("-{:x}", meta.len())), "{o}");
    }
    assert_eq!(
        m["dates_recomputed"],
        serde_json::json!(["2026-10-08", "2026-10-09"])
    );
    // 5 roles × (13 tables × (parquet + csv) + dashboard + the export of the 2 dates).
    assert_eq!(m["outputs"].as_array().unwrap().len(), 5 * (13 * 2 + 1 + 2));
}

#[test]
fn same_input_twice_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small");
    let mut outputs = Vec::new();
    for name in ["a", "b"] {
        let out = dir.path().join(name);
        run(
            &[
                "run",
                "--input",
                fx.join("input").to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--roles",
                "admin",
            ],
            0,
        );
        outputs.push(out);
    }
    // Identical files but for the run id each Parquet file carries (masked by `reports`).
    let (a, b) = (reports(&outputs[0]), reports(&outputs[1]));
    for t in ["daily_spend", "member_daily", "member_monthly"] {
        for ext in ["parquet", "csv"] {
            let p = format!("reports/admin/{t}.{ext}");
            assert!(a.contains_key(&p), "{p}");
        }
    }
    assert!(a == b, "two runs on the same input differ");
}
