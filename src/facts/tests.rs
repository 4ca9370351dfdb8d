//! Unit tests of the facts' definitions (3.3–3.7), and helpers other modules' tests use.

use super::*;
use crate::config::roster::Roster;
use crate::decode::otlp::{DecodeContext, ObjectDecoder};

/// 2026-10-08T00:00:00Z in seconds.
pub const DAY0: i64 = 1_791_417_600;

pub(crate) fn kv(attrs: &[(&str, &str)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
        .collect::<Vec<_>>()
        .join(",")
}

/// A log line with one Claude Code event.
pub fn event(name: &str, t: i64, attrs: &[(&str, &str)]) -> String {
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","body":{{"stringValue":"claude_code.{name}"}},"attributes":[{}]}}]}}]}}]}}"#,
        t * 1_000_000_000,
        kv(attrs)
    )
}

/// A metric line with one Sum point.
pub fn metric(
    name: &str,
    temporality: u8,
    start: i64,
    t: i64,
    value: f64,
    attrs: &[(&str, &str)],
) -> String {
    format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"claude_code.{name}","sum":{{"dataPoints":[{{"attributes":[{}],"startTimeUnixNano":"{}","timeUnixNano":"{}","asDouble":{value}}}],"aggregationTemporality":{temporality}}}}}]}}]}}]}}"#,
        kv(attrs),
        start * 1_000_000_000,
        t * 1_000_000_000
    )
}

/// Decodes each object (a list of lines) separately, merges them as a run would, builds
/// facts and reports.
pub fn tables(
    objects: &[Vec<String>],
    roster: &str,
    tz: &str,
) -> (Facts, u64, Vec<(&'static str, DataFrame)>) {
    let ctx = DecodeContext::new(tz.parse().unwrap(), i64::MAX);
    let roster = if roster.is_empty() {
        Roster::default()
    } else {
        Roster::parse(roster, "test").unwrap()
    };
    let mut acc = Accumulator::new(&roster, None);
    for lines in objects {
        let mut d = ObjectDecoder::new(ctx);
        for (i, l) in lines.iter().enumerate() {
            d.decode_line(i, l).unwrap();
        }
        acc.add(&d.records, &d.dict);
    }
    let duplicates = acc.duplicates();
    let facts = acc.finish().unwrap();
    let reports = crate::reports::daily::build(&facts.set, &roster, &Default::default()).unwrap();
    (facts, duplicates, reports)
}

#[test]
fn facts_cut_by_date_equal_a_filter_per_date() {
    let mut lines = Vec::new();
    for day in [0i64, 0, 1, 3, 3, 3] {
        let t = DAY0 + day * 86_400 + lines.len() as i64 * 60;
        let session = format!("s{}", lines.len() % 4);
        let email = format!("u{}@example.com", lines.len() % 3);
        lines.push(event(
            "api_request",
            t,
            &[
                ("session.id", &session),
                ("user.email", &email),
                ("model", if day == 1 { "m-b" } else { "m-a" }),
                ("cost_usd", "0.5"),
            ],
        ));
        if day != 1 {
            lines.push(event(
                "tool_decision",
                t + 1,
                &[
                    ("session.id", &session),
                    ("user.email", &email),
                    ("tool_name", "Edit"),
                    ("decision", "accept"),
                ],
            ));
        }
    }
    let (facts, _, _) = tables(&[lines], "", "UTC");
    let set = &facts.set;
    let d = |n: u32| NaiveDate::from_ymd_opt(2026, 10, 8 + n).unwrap();
    let same = |a: &FactSet, b: &FactSet| {
        a.named()
            .iter()
            .zip(b.named())
            .all(|((_, x), (_, y))| x.equals_missing(y))
    };
    let check = |set: &FactSet| {
        let cut = set.by_date().unwrap();
        assert_eq!(cut.keys().copied().collect::<Vec<_>>(), [d(0), d(1), d(3)]);
        for (date, day) in &cut {
            assert!(day.sessions.height() > 0);
            assert!(same(day, &set.on(*date).unwrap()), "{date}");
        }
        // Day 1 has no tool decisions: an empty slice, with the columns.
        assert_eq!(cut[&d(1)].tools.height(), 0);
        assert_eq!(cut[&d(1)].tools.width(), set.tools.width());
    };
    check(set);
    // A frame out of date order is filtered instead, with the same result.
    let mut reversed = set.clone();
    reversed.sessions = reversed.sessions.reverse();
    check(&reversed);
    assert!(same(&set.empty(), &set.on(d(2)).unwrap()));
}

pub fn table<'a>(t: &'a [(&'static str, DataFrame)], name: &str) -> &'a DataFrame {
    &t.iter().find(|(n, _)| *n == name).unwrap().1
}

pub fn f64s(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c)
        .unwrap()
        .as_materialized_series()
        .f64()
        .unwrap()
        .iter()
        .collect()
}
pub fn i64s(df: &DataFrame, c: &str) -> Vec<i64> {
    df.column(c)
        .unwrap()
        .as_materialized_series()
        .i64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}
pub fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    df.column(c)
        .unwrap()
        .as_materialized_series()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.map(String::from))
        .collect()
}

fn req(t: i64, session: &str, seq: &str, cost: &str) -> String {
    event(
        "api_request",
        t,
        &[
            ("session.id", session),
            ("user.email", "a@x.com"),
            ("event.sequence", seq),
            ("cost_usd", cost),
            ("model", "m1"),
        ],
    )
}

#[test]
fn a_duplicate_in_two_objects_counts_once() {
    let r = req(DAY0 + 100, "s1", "1", "0.5");
    let (f, dups, t) = tables(
        &[vec![r.clone()], vec![r, req(DAY0 + 200, "s1", "2", "0.25")]],
        "",
        "UTC",
    );
    assert_eq!(dups, 1);
    assert_eq!(f.records_used, 2);
    assert_eq!(
        f64s(table(&t, "daily_spend"), "spend_usd"),
        vec![Some(0.75)]
    );
    assert_eq!(i64s(table(&t, "daily_spend_by_model"), "requests"), vec![2]);
}

#[test]
fn events_without_sequence_are_duplicates_only_when_all_attributes_match() {
    let a = event(
        "api_request",
        DAY0 + 5,
        &[("session.id", "s"), ("cost_usd", "1")],
    );
    let b = event(
        "api_request",
        DAY0 + 5,
        &[("session.id", "s"), ("cost_usd", "2")],
    );
    let (_, dups, t) = tables(&[vec![a.clone(), a, b]], "", "UTC");
    assert_eq!(dups, 1);
    assert_eq!(f64s(table(&t, "daily_spend"), "spend_usd"), vec![Some(3.0)]);
}

#[test]
fn session_metrics_without_email_belong_to_the_member_its_events_name() {
    let lines = vec![
        req(DAY0 + 100, "s1", "1", "0.5"),
        metric(
            "lines_of_code.count",
            1,
            DAY0,
            DAY0 + 120,
            7.0,
            &[
                ("session.id", "s1"),
                ("user.id", "inst-1"),
                ("type", "added"),
            ],
        ),
        // Another session of the same install without any email: resolves to the install.
        metric(
            "lines_of_code.count",
            1,
            DAY0,
            DAY0 + 120,
            3.0,
            &[
                ("session.id", "s2"),
                ("user.id", "inst-1"),
                ("type", "added"),
            ],
        ),
    ];
    let (_, _, t) = tables(&[lines], "", "UTC");
    let md = table(&t, "member_daily");
    assert_eq!(
        strs(md, "member"),
        vec![Some("a@x.com".into()), Some("inst-1".into())]
    );
    assert_eq!(
        strs(md, "member_type"),
        vec![Some("user".into()), Some("install".into())]
    );
    assert_eq!(i64s(md, "lines_accepted"), vec![7, 3]);
    assert_eq!(i64s(table(&t, "daily_activity"), "active_users"), vec![2]);
}

#[test]
fn two_values_of_one_rank_in_a_session_go_to_the_earliest_record_whatever_the_order() {
    let commit = |t: i64, s: &str, k: &str, v: &str| {
        metric(
            "commit.count",
            1,
            DAY0,
            t,
            1.0,
            &[("session.id", s), (k, v)],
        )
    };
    // s1: zed@ at +90 (read first), amy@ at +30; s2: two e-mails at one time: the smaller.
    let a = vec![
        commit(DAY0 + 90, "s1", "user.email", "zed@x.com"),
        commit(DAY0 + 50, "s2", "user.email", "yan@x.com"),
    ];
    let b = vec![
        commit(DAY0 + 30, "s1", "user.email", "amy@x.com"),
        commit(DAY0 + 50, "s2", "user.email", "bob@x.com"),
    ];
    for objects in [[a.clone(), b.clone()], [b, a]] {
        let (_, _, t) = tables(&objects, "", "UTC");
        let md = table(&t, "member_daily");
        assert_eq!(
            strs(md, "member"),
            vec![Some("amy@x.com".into()), Some("bob@x.com".into())]
        );
        assert_eq!(i64s(md, "commits"), vec![2, 2]);
    }
}

#[test]
fn a_different_user_id_on_every_record_makes_one_member_per_session() {
    let lines: Vec<String> = (0..500)
        .map(|i| {
            metric(
                "commit.count",
                1,
                DAY0,
                DAY0 + 100 + i,
                1.0,
                &[("session.id", "s1"), ("user.id", &format!("inst-{i:03}"))],
            )
        })
        .rev()
        .collect();
    let ctx = DecodeContext::new("UTC".parse().unwrap(), i64::MAX);
    let mut acc = Accumulator::new(&Roster::default(), None);
    let mut d = ObjectDecoder::new(ctx);
    for (i, l) in lines.iter().enumerate() {
        d.decode_line(i, l).unwrap();
    }
    acc.add(&d.records, &d.dict);
    // No identity string reaches the run's dictionary or its members before the end.
    assert!(acc.dict.strings().iter().all(|s| !s.starts_with("inst-")));
    assert!(acc.members.is_empty());
    let facts = acc.finish().unwrap();
    let reports =
        crate::reports::daily::build(&facts.set, &Roster::default(), &Default::default()).unwrap();
    let md = table(&reports, "member_daily");
    assert_eq!(strs(md, "member"), vec![Some("inst-000".into())]);
    assert_eq!(i64s(md, "commits"), vec![500]);
}

#[test]
fn roster_aliases_win_and_give_type_and_role() {
    let roster =
        "member,member_type,role,aliases\nalice@x.com,user,billing,acct-9\nbot,api_key,admin,\n";
    let lines = vec![
        // Session s1 shows only the account uuid (an alias) and a raw email of another person.
        metric(
            "commit.count",
            1,
            DAY0,
            DAY0 + 60,
            1.0,
            &[("session.id", "s1"), ("user.account_uuid", "acct-9")],
        ),
        metric(
            "commit.count",
            1,
            DAY0,
            DAY0 + 70,
            1.0,
            &[("session.id", "s1"), ("user.email", "zed@x.com")],
        ),
        // An API key name equal to a roster member.
        metric(
            "commit.count",
            1,
            DAY0,
            DAY0 + 80,
            2.0,
            &[("session.id", "s2"), ("api_key.name", "bot")],
        ),
    ];
    let (_, _, t) = tables(&[lines], roster, "UTC");
    let md = table(&t, "member_daily");
    assert_eq!(
        strs(md, "member"),
        vec![Some("alice@x.com".into()), Some("bot".into())]
    );
    assert_eq!(
        strs(md, "member_type"),
        vec![Some("user".into()), Some("api_key".into())]
    );
    assert_eq!(
        strs(md, "role"),
        vec![Some("billing".into()), Some("admin".into())]
    );
    assert_eq!(i64s(md, "commits"), vec![2, 2]);
    // Roster members appear monthly even without activity; here both have some.
    let mm = table(&t, "member_monthly");
    assert_eq!(mm.height(), 2);
}

#[test]
fn dst_day_in_los_angeles_splits_at_local_midnight() {
    // 2026-03-08 (spring forward). 07:30Z on Mar 8 is Mar 7 23:30 PST; 07:30Z on Mar 9 is
    // Mar 9 00:30 PDT.
    let mar8_0730 = 1_772_955_000;
    let lines = vec![
        req(mar8_0730, "s1", "1", "1"),
        req(mar8_0730 + 86_400, "s1", "2", "2"),
        req(mar8_0730 + 86_400 - 3_600, "s1", "3", "4"), // Mar 9 06:30Z = Mar 8 23:30 PDT
    ];
    let (_, _, t) = tables(&[lines], "", "America/Los_Angeles");
    let ds = table(&t, "daily_spend");
    let dates: Vec<String> = ds
        .column("date")
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect();
    assert_eq!(dates, vec!["2026-03-07", "2026-03-08", "2026-03-09"]);
    assert_eq!(f64s(ds, "spend_usd"), vec![Some(1.0), Some(4.0), Some(2.0)]);
}

#[test]
fn cumulative_counters_are_differenced_per_series() {
    let a = [("session.id", "s1"), ("type", "added")];
    let lines = vec![
        metric("lines_of_code.count", 2, DAY0, DAY0 + 60, 10.0, &a),
        metric("lines_of_code.count", 2, DAY0, DAY0 + 120, 25.0, &a),
        metric("lines_of_code.count", 2, DAY0, DAY0 + 180, 25.0, &a),
        // A new process (new start time) starts a new series: counted whole.
        metric("lines_of_code.count", 2, DAY0 + 500, DAY0 + 560, 4.0, &a),
        // Delta points are summed.
        metric(
            "lines_of_code.count",
            1,
            DAY0,
            DAY0 + 60,
            5.0,
            &[("session.id", "s2"), ("type", "removed")],
        ),
        metric(
            "lines_of_code.count",
            1,
            DAY0 + 60,
            DAY0 + 120,
            6.0,
            &[("session.id", "s2"), ("type", "removed")],
        ),
    ];
    let (_, _, t) = tables(&[lines], "", "UTC");
    let dl = table(&t, "daily_lines");
    assert_eq!(i64s(dl, "lines_accepted"), vec![29]);
    assert_eq!(i64s(dl, "lines_removed"), vec![11]);
}

#[test]
fn events_win_over_metrics_per_session_and_day() {
    let cost = |s: &str, t: i64, v: f64| {
        metric(
            "cost.usage",
            1,
            t - 60,
            t,
            v,
            &[("session.id", s), ("model", "m1")],
        )
    };
    let tok = |s: &str, t: i64, v: f64| {
        metric(
            "token.usage",
            1,
            t - 60,
            t,
            v,
            &[("session.id", s), ("model", "m1"), ("type", "input")],
        )
    };
    let lines = vec![
        // s1 day 0: event 0.5 and its metric 0.5 → 0.5, not 1.0.
        req(DAY0 + 100, "s1", "1", "0.5"),
        cost("s1", DAY0 + 160, 0.5),
        tok("s1", DAY0 + 160, 100.0),
        // s1 day 1: the metric of a late request, and no event that day → counts.
        cost("s1", DAY0 + 86_400 + 30, 0.25),
        // s2 day 0: metrics only.
        cost("s2", DAY0 + 300, 2.0),
        tok("s2", DAY0 + 300, 40.0),
    ];
    let (_, _, t) = tables(&[lines], "", "UTC");
    assert_eq!(
        f64s(table(&t, "daily_spend"), "spend_usd"),
        vec![Some(2.5), Some(0.25)]
    );
    let m = table(&t, "daily_spend_by_model");
    assert_eq!(i64s(m, "requests"), vec![1, 0]);
    assert_eq!(i64s(m, "input_tokens"), vec![40, 0]);
}

#[test]
fn decisions_prefer_events_and_accept_rate_has_an_all_row() {
    let dec = |s: &str, t: i64, tool: &str, d: &str| {
        event(
            "tool_decision",
            t,
            &[("session.id", s), ("tool_name", tool), ("decision", d)],
        )
    };
    let dm = |s: &str, tool: &str, d: &str, v: f64| {
        metric(
            "code_edit_tool.decision",
            1,
            DAY0,
            DAY0 + 600,
            v,
            &[("session.id", s), ("tool", tool), ("decision", d)],
        )
    };
    let lines = vec![
        dec("s1", DAY0 + 10, "Edit", "accept"),
        dec("s1", DAY0 + 20, "Edit", "reject"),
        dec("s1", DAY0 + 30, "Read", "accept"), // not an edit tool
        dm("s1", "Edit", "accept", 5.0),        // ignored: s1 has decision events
        dm("s2", "MultiEdit", "accept", 3.0),   // legacy `tool` attribute, metrics only
        // Day 1 has records but no decision.
        metric(
            "commit.count",
            1,
            DAY0,
            DAY0 + 86_400 + 5,
            1.0,
            &[("session.id", "s3")],
        ),
    ];
    let (_, _, t) = tables(&[lines], "", "UTC");
    let r = table(&t, "daily_accept_rate");
    assert_eq!(
        strs(r, "tool"),
        vec![
            Some("Edit".into()),
            Some("MultiEdit".into()),
            Some("all".into()),
            Some("all".into())
        ]
    );
    assert_eq!(i64s(r, "accepted"), vec![1, 3, 4, 0]);
    assert_eq!(i64s(r, "rejected"), vec![1, 0, 1, 0]);
    assert_eq!(
        f64s(r, "accept_rate"),
        vec![Some(0.5), Some(1.0), Some(0.8), None]
    );
}

#[test]
fn agents_view_sessions_and_sessionless_records_are_not_sessions() {
    let lines = vec![
        metric(
            "session.count",
            1,
            DAY0,
            DAY0 + 60,
            1.0,
            &[
                ("session.id", "agents"),
                ("user.email", "a@x.com"),
                ("start_type", "agents_view"),
            ],
        ),
        req(DAY0 + 70, "agents", "1", "0.1"),
        metric(
            "session.count",
            1,
            DAY0,
            DAY0 + 60,
            1.0,
            &[
                ("session.id", "real"),
                ("user.email", "b@x.com"),
                ("start_type", "fresh"),
            ],
        ),
        metric(
            "commit.count",
            1,
            DAY0,
            DAY0 + 60,
            1.0,
            &[("user.id", "inst")],
        ),
        metric("commit.count", 1, DAY0, DAY0 + 60, 1.0, &[]),
    ];
    let (_, _, t) = tables(&[lines], "", "UTC");
    let a = table(&t, "daily_activity");
    assert_eq!(i64s(a, "active_users"), vec![4]);
    assert_eq!(i64s(a, "sessions"), vec![1]);
    let md = table(&t, "member_daily");
    assert_eq!(
        strs(md, "member"),
        vec![
            Some("(unattributed)".into()),
            Some("a@x.com".into()),
            Some("b@x.com".into()),
            Some("inst".into())
        ]
    );
    assert_eq!(i64s(md, "sessions"), vec![0, 0, 1, 0]);
}

#[test]
fn records_of_other_services_do_not_make_anyone_active() {
    let other = r#"{"resourceLogs":[{"scopeLogs":[{"scope":{"name":"io.other"},"logRecords":[{"timeUnixNano":"1791417700000000000","body":{"stringValue":"GET /"},"attributes":[{"key":"user.email","value":{"stringValue":"x@y.z"}}]}]}]}]}"#;
    let (f, _, t) = tables(
        &[vec![other.to_string(), req(DAY0 + 1, "s", "1", "1")]],
        "",
        "UTC",
    );
    assert_eq!(f.records_used, 1);
    assert_eq!(i64s(table(&t, "daily_activity"), "active_users"), vec![1]);
}

#[test]
fn roster_members_without_activity_get_zero_rows_per_month() {
    let roster = "member,member_type,role,aliases\nidle@x.com,user,developer,\n";
    let lines = vec![
        req(DAY0, "s", "1", "1"),
        req(DAY0 + 30 * 86_400, "s2", "1", "1"),
    ];
    let (_, _, t) = tables(&[lines], roster, "UTC");
    let mm = table(&t, "member_monthly");
    assert_eq!(
        strs(mm, "member"),
        vec![
            Some("a@x.com".into()),
            Some("idle@x.com".into()),
            Some("a@x.com".into()),
            Some("idle@x.com".into())
        ]
    );
    assert_eq!(i64s(mm, "active_days"), vec![1, 0, 1, 0]);
    assert_eq!(
        f64s(mm, "spend_usd"),
        vec![Some(1.0), Some(0.0), Some(1.0), Some(0.0)]
    );
}
