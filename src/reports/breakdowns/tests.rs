//! Unit tests of the dimension and per-member breakdowns (contract 5.5).

use super::*;
use crate::config::dimensions::Dimension;
use crate::decode::otlp::{DecodeContext, ObjectDecoder};
use crate::facts::tests::{kv, DAY0};
use crate::facts::Accumulator;

/// An `api_request` event costing `usd`, with record and resource attributes.
fn request(t: i64, usd: f64, own: &[(&str, &str)], res: &[(&str, &str)]) -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","body":{{"stringValue":"claude_code.api_request"}},"attributes":[{},{{"key":"cost_usd","value":{{"doubleValue":{usd}}}}}]}}]}}]}}]}}"#,
        kv(res),
        t * 1_000_000_000,
        kv(own)
    )
}

fn team() -> Dimensions {
    Dimensions::new(vec![Dimension {
        name: "team".into(),
        attributes: vec!["team.id".into(), "team".into()],
        roster: Some("team".into()),
    }])
    .unwrap()
}

/// The daily and monthly tables of one object's lines, with the `team` dimension.
fn run(lines: &[String], roster: &str) -> (DataFrame, DataFrame) {
    let dims = team();
    let mut ctx = DecodeContext::new(chrono_tz::UTC, i64::MAX);
    ctx.tags = dims.keys;
    let roster = if roster.is_empty() {
        Roster::default()
    } else {
        Roster::parse(roster, "r").unwrap()
    };
    let mut acc = Accumulator::new(&roster, None).with_dimensions(&dims);
    let mut d = ObjectDecoder::new(ctx);
    for (i, l) in lines.iter().enumerate() {
        d.decode_line(i, l).unwrap();
    }
    acc.add(&d.records, &d.dict);
    let facts = acc.finish().unwrap();
    by_dimension(&facts.set.sessions, &roster, &dims).unwrap()
}

/// (date offset in days from DAY0's date, value, active users, sessions, spend).
fn rows(df: &DataFrame) -> Vec<(i32, String, i64, i64, f64)> {
    let day0 = (DAY0 / 86_400) as i32;
    let d = days(df).unwrap();
    let v = strs(df, c::VALUE).unwrap();
    let u = ints(df, c::ACTIVE_USERS).unwrap();
    let s = ints(df, c::SESSIONS).unwrap();
    let spend: Vec<f64> = df
        .column(c::SPEND_USD)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    (0..df.height())
        .map(|r| (d[r] - day0, v[r].unwrap().to_string(), u[r], s[r], spend[r]))
        .collect()
}

const H: i64 = 3600;

#[test]
fn the_first_attribute_key_wins_over_a_smaller_value_of_a_later_key() {
    let lines = [
        request(
            DAY0 + H,
            1.0,
            &[("session.id", "s"), ("team", "alpha")],
            &[],
        ),
        request(
            DAY0 + 2 * H,
            2.0,
            &[("session.id", "s"), ("team.id", "zeta")],
            &[],
        ),
    ];
    let (daily, _) = run(&lines, "");
    assert_eq!(rows(&daily), [(0, "zeta".into(), 1, 1, 3.0)]);
}

#[test]
fn a_record_attribute_wins_over_a_resource_attribute_then_the_smaller_value() {
    let lines = [
        // One record: record value beats its own resource value.
        request(
            DAY0 + H,
            1.0,
            &[("session.id", "a"), ("team.id", "zz")],
            &[("team.id", "aa")],
        ),
        // Across records of one session: a record value beats another record's resource value.
        request(DAY0 + H, 1.0, &[("session.id", "b")], &[("team.id", "aa")]),
        request(
            DAY0 + 2 * H,
            1.0,
            &[("session.id", "b"), ("team.id", "yy")],
            &[],
        ),
        // Two record values: the smaller by bytes ("B" < "a").
        request(DAY0 + H, 1.0, &[("session.id", "c"), ("team.id", "a")], &[]),
        request(
            DAY0 + 2 * H,
            1.0,
            &[("session.id", "c"), ("team.id", "B")],
            &[],
        ),
    ];
    let (daily, _) = run(&lines, "");
    let values: Vec<String> = rows(&daily).into_iter().map(|r| r.1).collect();
    assert_eq!(values, ["B", "yy", "zz"]);
}

#[test]
fn without_telemetry_the_roster_column_then_none() {
    let roster = "member,member_type,role,aliases,team\n\
                  r@x,user,developer,,gamma\n\
                  e@x,user,developer,,\n";
    let lines = [
        request(
            DAY0 + H,
            1.0,
            &[("session.id", "1"), ("user.email", "r@x")],
            &[],
        ),
        request(
            DAY0 + H,
            2.0,
            &[("session.id", "2"), ("user.email", "e@x")],
            &[],
        ),
        request(
            DAY0 + H,
            4.0,
            &[("session.id", "3"), ("user.email", "out@x")],
            &[],
        ),
        // Telemetry beats the roster.
        request(
            DAY0 + H,
            8.0,
            &[
                ("session.id", "4"),
                ("user.email", "r@x"),
                ("team", "delta"),
            ],
            &[],
        ),
    ];
    let (daily, _) = run(&lines, roster);
    assert_eq!(
        rows(&daily),
        [
            (0, "(none)".into(), 2, 2, 6.0),
            (0, "delta".into(), 1, 1, 8.0),
            (0, "gamma".into(), 1, 1, 1.0),
        ]
    );
}

#[test]
fn a_team_change_mid_range_keeps_earlier_days_under_the_old_team() {
    let lines = [
        request(
            DAY0 + H,
            1.0,
            &[("session.id", "s1"), ("user.email", "m@x")],
            &[("team.id", "old")],
        ),
        request(
            DAY0 + 86_400 + H,
            2.0,
            &[("session.id", "s2"), ("user.email", "m@x")],
            &[("team.id", "new")],
        ),
        // A session across midnight: its second day carries no team, the roster's applies.
        request(
            DAY0 + 86_400 - 60,
            4.0,
            &[
                ("session.id", "s3"),
                ("user.email", "m@x"),
                ("team.id", "old"),
            ],
            &[],
        ),
        request(
            DAY0 + 86_400 + 60,
            8.0,
            &[("session.id", "s3"), ("user.email", "m@x")],
            &[],
        ),
    ];
    let roster = "member,member_type,role,aliases,team\nm@x,user,developer,,home\n";
    let (daily, monthly) = run(&lines, roster);
    assert_eq!(
        rows(&daily),
        [
            (0, "old".into(), 1, 2, 5.0),
            (1, "home".into(), 1, 1, 8.0),
            (1, "new".into(), 1, 1, 2.0),
        ]
    );
    // The month: the member under all three values; s3 counts once under each of two.
    let m: Vec<(String, i64, i64)> = {
        let v = strs(&monthly, c::VALUE).unwrap();
        let u = ints(&monthly, c::ACTIVE_USERS).unwrap();
        let s = ints(&monthly, c::SESSIONS).unwrap();
        (0..monthly.height())
            .map(|r| (v[r].unwrap().to_string(), u[r], s[r]))
            .collect()
    };
    assert_eq!(
        m,
        [
            ("home".into(), 1, 1),
            ("new".into(), 1, 1),
            ("old".into(), 1, 2)
        ]
    );
}

#[test]
fn records_without_a_session_form_one_group_per_member_and_day() {
    let lines = [
        request(
            DAY0 + H,
            1.0,
            &[("user.email", "m@x"), ("team.id", "b")],
            &[],
        ),
        request(
            DAY0 + 2 * H,
            2.0,
            &[("user.email", "m@x"), ("team.id", "a")],
            &[],
        ),
        request(
            DAY0 + 3 * H,
            4.0,
            &[("user.email", "n@x"), ("team.id", "c")],
            &[],
        ),
    ];
    let (daily, _) = run(&lines, "");
    // m's two records are one group (value a, spend 3); no sessions are counted.
    assert_eq!(
        rows(&daily),
        [(0, "a".into(), 1, 0, 3.0), (0, "c".into(), 1, 0, 4.0)]
    );
}

#[test]
fn without_dimensions_the_tables_are_empty_with_their_columns() {
    let (daily, monthly) = by_dimension(
        &DataFrame::new_infer_height(
            vec![
                date_column(fcol::DATE, Vec::<i32>::new()).unwrap(),
                Column::new(fcol::MEMBER.into(), Vec::<&str>::new()),
                Column::new(fcol::MEMBER_TYPE.into(), Vec::<&str>::new()),
                Column::new(fcol::SESSION.into(), Vec::<&str>::new()),
                Column::new(fcol::AGENTS.into(), Vec::<bool>::new()),
            ]
            .into_iter()
            .chain(
                DAILY_SUMS
                    .iter()
                    .map(|m| Column::new((*m).into(), Vec::<i64>::new())),
            )
            .collect(),
        )
        .unwrap(),
        &Roster::default(),
        &Dimensions::default(),
    )
    .unwrap();
    assert_eq!(daily.height(), 0);
    let names: Vec<&str> = daily
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names[..3], ["date", "dimension", "value"]);
    assert_eq!(names.len(), 14);
    assert_eq!(monthly.width(), 10);
}

/// Per (date, member, type): the first role in the rows' order, spend summed exactly, the
/// smallest organisation id and terminal type given; a missing member is `""`; sorted by the
/// key. Expectations worked out by hand from the rows.
#[test]
fn member_days_fold_each_member_and_day() {
    let none: Option<&str> = None;
    let sessions = DataFrame::new_infer_height(vec![
        date_column(fcol::DATE, vec![20, 19, 20, 20, 19, 20]).unwrap(),
        Column::new(
            fcol::MEMBER.into(),
            [
                Some("b@x"),
                Some("b@x"),
                Some("a@x"),
                Some("b@x"),
                None,
                Some(""),
            ],
        ),
        Column::new(
            fcol::MEMBER_TYPE.into(),
            ["user", "user", "user", "user", "", ""],
        ),
        Column::new(
            fcol::ROLE.into(),
            [
                Some("ops"),
                Some("dev"),
                Some("admin"),
                Some("lead"),
                none,
                Some("x"),
            ],
        ),
        Column::new(fcol::SPEND_PICO.into(), [i64::MAX, 5, 7, 1, 2, 3]),
        Column::new(
            fcol::ORGANIZATION_ID.into(),
            [Some("o2"), none, none, Some("o1"), none, none],
        ),
        Column::new(
            fcol::TERMINAL_TYPE.into(),
            [Some("zed"), Some("cli"), none, Some("vscode"), none, none],
        ),
    ])
    .unwrap();
    // b@x on day 20 sums past i64: refused, not wrapped.
    assert!(member_days(&sessions).is_err());
    let mut sessions = sessions;
    sessions
        .with_column(Column::new(fcol::SPEND_PICO.into(), [4i64; 6]))
        .unwrap();
    let got = member_days(&sessions).unwrap();
    let s = |name: &str| -> Vec<Option<String>> {
        got.column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    };
    let o = |v: &[Option<&str>]| -> Vec<Option<String>> {
        v.iter().map(|v| v.map(String::from)).collect()
    };
    assert_eq!(days(&got).unwrap(), vec![19, 19, 20, 20, 20]);
    assert_eq!(
        s(c::MEMBER),
        o(&[Some(""), Some("b@x"), Some(""), Some("a@x"), Some("b@x")])
    );
    assert_eq!(
        s(c::ROLE),
        o(&[None, Some("dev"), Some("x"), Some("admin"), Some("ops")])
    );
    assert_eq!(ints(&got, fcol::SPEND_PICO).unwrap(), vec![4, 4, 4, 4, 8]);
    assert_eq!(
        s(fcol::ORGANIZATION_ID),
        o(&[None, None, None, None, Some("o1")])
    );
    assert_eq!(
        s(fcol::TERMINAL_TYPE),
        o(&[None, Some("cli"), None, None, Some("vscode")])
    );
}
