//! Records → daily facts: deduplication (3.3), metric increments (3.4), identity per session (3.5),
//! the events-before-metrics rule per (session, day) (3.6). Relational work runs in polars.
//!
//! A fact row is one (date, member, session, model, tool) with its measures; every report is a
//! group-by over facts, so facts stored by earlier runs rebuild the reports without raw input.

use std::collections::HashMap;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::Result;
use crate::model::{sym, Dict, Records, CUMULATIVE, EVENT, METRIC};

use crate::roster::Roster;
use crate::schema::{member_type, UNATTRIBUTED_MEMBER};

/// Fact columns (internal).
pub mod fcol {
    pub const DATE: &str = "date";
    pub const MEMBER: &str = "member";
    pub const MEMBER_TYPE: &str = "member_type";
    pub const ROLE: &str = "role";
    pub const SESSION: &str = "session";
    pub const AGENTS: &str = "agents_view";
    pub const MODEL: &str = "model";
    pub const TOOL: &str = "tool";
    pub const REQUESTS: &str = "requests";
    /// Spend in 1e-12 USD: integer sums are exact and independent of summation order.
    pub const SPEND_PICO: &str = "spend_pico_usd";
    pub const INPUT_TOKENS: &str = "input_tokens";
    pub const OUTPUT_TOKENS: &str = "output_tokens";
    pub const CACHE_READ_TOKENS: &str = "cache_read_tokens";
    pub const CACHE_CREATION_TOKENS: &str = "cache_creation_tokens";
    pub const ACCEPTED: &str = "accepted";
    pub const REJECTED: &str = "rejected";
    pub const LINES_ACCEPTED: &str = "lines_accepted";
    pub const LINES_REMOVED: &str = "lines_removed";
    pub const COMMITS: &str = "commits";
    pub const PULL_REQUESTS: &str = "pull_requests";
    /// Integer measures, in order.
    pub const MEASURES: [&str; 13] = [
        REQUESTS,
        SPEND_PICO,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        CACHE_READ_TOKENS,
        CACHE_CREATION_TOKENS,
        ACCEPTED,
        REJECTED,
        LINES_ACCEPTED,
        LINES_REMOVED,
        COMMITS,
        PULL_REQUESTS,
        RECORDS,
    ];
    pub const RECORDS: &str = "records";
}

pub const PICO_PER_USD: f64 = 1e12;

/// A resolved member: display identity, type, roster role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub name: String,
    pub member_type: String,
    pub role: Option<String>,
}

/// Facts and the record counts of the transform.
pub struct Facts {
    pub df: DataFrame,
    pub records_used: u64,
    pub records_outside_range: u64,
}

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Per-record identity candidates (3.5 step 2), as `priority << 32 | member index`: the smallest
/// over a session is its member.
fn candidates(rec: &Records, dict: &Dict, roster: &Roster) -> (Vec<u64>, Vec<Member>) {
    let mut members: Vec<Member> = roster
        .members
        .iter()
        .map(|m| Member {
            name: m.member.clone(),
            member_type: m.member_type.clone(),
            role: Some(m.role.clone()),
        })
        .collect();
    let roster_of: Vec<Option<u32>> = dict
        .strings()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i == sym::NONE as usize {
                None
            } else {
                roster.lookup(s).map(|m| m as u32)
            }
        })
        .collect();
    let mut raw: HashMap<(u8, u32), u32> = HashMap::new();
    let mut raw_member = |members: &mut Vec<Member>, kind: u8, id: u32| -> u32 {
        *raw.entry((kind, id)).or_insert_with(|| {
            let (name, t) = match kind {
                4 => (dict.resolve(id).to_string(), member_type::USER),
                5 => (dict.resolve(id).to_string(), member_type::API_KEY),
                6 => (dict.resolve(id).to_string(), member_type::INSTALL),
                _ => (UNATTRIBUTED_MEMBER.to_string(), member_type::UNATTRIBUTED),
            };
            members.push(Member {
                name,
                member_type: t.to_string(),
                role: None,
            });
            (members.len() - 1) as u32
        })
    };
    let mut out = Vec::with_capacity(rec.len());
    for i in 0..rec.len() {
        let ids = [rec.email[i], rec.api_key[i], rec.account[i], rec.user_id[i]];
        let via_roster = ids
            .iter()
            .enumerate()
            .find_map(|(p, &id)| roster_of[id as usize].map(|m| (p as u64, m)));
        let (prio, m) = match via_roster {
            Some(c) => c,
            None => {
                let (kind, id) = if ids[0] != sym::NONE {
                    (4u8, ids[0])
                } else if ids[1] != sym::NONE {
                    (5, ids[1])
                } else if ids[3] != sym::NONE {
                    (6, ids[3])
                } else {
                    (7, sym::NONE)
                };
                (kind as u64, raw_member(&mut members, kind, id))
            }
        };
        out.push(prio << 32 | m as u64);
    }
    (out, members)
}

fn u8_to_i32(v: &[u8]) -> Vec<i32> {
    v.iter().map(|&x| x as i32).collect()
}

/// Per-record results of the passes that need every record of a session or series (done in
/// linear passes here; the grouping and summing that follow run in polars).
struct Resolved {
    /// 3.5: the member of each record (its session's best candidate).
    member: Vec<u32>,
    /// 3.6: the record's session is an agents_view session.
    agents: Vec<bool>,
    /// 3.4: the increment of each metric point (cumulative points differenced).
    inc: Vec<f64>,
    /// 3.6: the record's (date, member, session) group has an api_request / edit decision event.
    has_req: Vec<bool>,
    has_dec: Vec<bool>,
}

#[allow(clippy::needless_range_loop)] // one index walks many parallel columns
fn resolve(rec: &Records, cand: &[u64]) -> Resolved {
    type Map<K, V> = HashMap<K, V, ahash::RandomState>;
    let n = rec.len();
    // 3.5: a session's member is the best candidate over all its records in the run.
    let mut best: Map<u32, u64> = Map::default();
    let mut agents_sessions: Map<u32, ()> = Map::default();
    for i in 0..n {
        let s = rec.session[i];
        if s == sym::NONE {
            continue;
        }
        best.entry(s)
            .and_modify(|c| *c = (*c).min(cand[i]))
            .or_insert(cand[i]);
        if rec.name[i] == sym::M_SESSION && rec.start_type[i] == sym::AGENTS_VIEW {
            agents_sessions.insert(s, ());
        }
    }
    let member: Vec<u32> = (0..n)
        .map(|i| {
            let s = rec.session[i];
            let c = if s == sym::NONE { cand[i] } else { best[&s] };
            (c & 0xffff_ffff) as u32
        })
        .collect();
    let agents = (0..n)
        .map(|i| rec.session[i] != sym::NONE && agents_sessions.contains_key(&rec.session[i]))
        .collect();

    // 3.4: a cumulative point's increment is its value minus the previous point of its series
    // (name, attributes, start time); the first counts whole, and so does a drop (a reset).
    let mut inc = rec.value.clone();
    let mut cumulative: Vec<usize> = (0..n)
        .filter(|&i| rec.kind[i] == METRIC && rec.temporality[i] == CUMULATIVE)
        .collect();
    cumulative.sort_by_key(|&i| {
        (
            rec.name[i],
            rec.series[i],
            rec.start_ns[i],
            rec.time_ns[i],
            i,
        )
    });
    let mut prev: Option<(u32, u64, i64, f64)> = None;
    for &i in &cumulative {
        let key = (rec.name[i], rec.series[i], rec.start_ns[i]);
        let v = rec.value[i];
        if let Some((n0, s0, t0, p)) = prev {
            if (n0, s0, t0) == key && v >= p {
                inc[i] = v - p;
            }
        }
        prev = Some((key.0, key.1, key.2, v));
    }

    // 3.6: which (date, member, session) groups have events that take precedence over metrics.
    let edit_tool = |t: u32| sym::EDIT_TOOLS.contains(&t);
    let mut groups: Map<(i32, u32, u32), (bool, bool)> = Map::default();
    for i in 0..n {
        if rec.kind[i] != EVENT {
            continue;
        }
        let req = rec.name[i] == sym::API_REQUEST;
        let dec = rec.name[i] == sym::TOOL_DECISION && edit_tool(rec.tool[i]);
        if req || dec {
            let g = groups
                .entry((rec.date[i], member[i], rec.session[i]))
                .or_default();
            g.0 |= req;
            g.1 |= dec;
        }
    }
    let flags: Vec<(bool, bool)> = (0..n)
        .map(|i| {
            groups
                .get(&(rec.date[i], member[i], rec.session[i]))
                .copied()
                .unwrap_or_default()
        })
        .collect();
    Resolved {
        member,
        agents,
        inc,
        has_req: flags.iter().map(|f| f.0).collect(),
        has_dec: flags.iter().map(|f| f.1).collect(),
    }
}

/// Moves the record columns the facts need into a frame (buffers handed over, not copied).
fn records_frame(rec: Records, r: Resolved) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        Column::new("kind".into(), u8_to_i32(&rec.kind)),
        Column::new("name".into(), rec.name),
        Column::new("date".into(), rec.date),
        Column::new("session".into(), rec.session),
        Column::new("member".into(), r.member),
        Column::new("agents".into(), r.agents),
        // Spend in whole 1e-12 USD, rounded here in scalar code: the same bits on every run
        // (a vectorised multiply-add could round differently from one run to the next).
        Column::new(
            "inc_pico".into(),
            r.inc.iter().map(|v| to_pico(*v)).collect::<Vec<i64>>(),
        ),
        Column::new(
            "cost_pico".into(),
            rec.cost
                .iter()
                .map(|c| to_pico(c.unwrap_or(0.0)))
                .collect::<Vec<i64>>(),
        ),
        Column::new("inc".into(), r.inc),
        Column::new("has_req".into(), r.has_req),
        Column::new("has_dec".into(), r.has_dec),
        Column::new("model".into(), rec.model),
        Column::new("in_tok".into(), rec.input_tokens),
        Column::new("out_tok".into(), rec.output_tokens),
        Column::new("cr_tok".into(), rec.cache_read_tokens),
        Column::new("cc_tok".into(), rec.cache_creation_tokens),
        Column::new("tool".into(), rec.tool),
        Column::new("decision".into(), rec.decision),
        Column::new("typ".into(), rec.typ),
    ])
}

fn to_pico(usd: f64) -> i64 {
    (usd * PICO_PER_USD).round() as i64
}

fn is(name: &str, id: u32) -> Expr {
    col(name).eq(lit(id))
}

/// Builds the facts of the records whose date lies in `range` (all when `None`).
pub fn build(
    rec: Records,
    dict: &Dict,
    roster: &Roster,
    range: Option<(NaiveDate, NaiveDate)>,
) -> Result<Facts> {
    // Duplicates (3.3) were left out as the objects were merged (`model::Seen`).
    let (cand, members) = candidates(&rec, dict, roster);
    let resolved = resolve(&rec, &cand);
    drop(cand);
    let df = records_frame(rec, resolved)?;
    let n_dedup = df.height() as u64;

    let mut lf = df.lazy();
    if let Some((from, to)) = range {
        lf = lf.filter(
            col("date")
                .gt_eq(lit(days_since_epoch(from)))
                .and(col("date").lt_eq(lit(days_since_epoch(to)))),
        );
    }

    // 3.6: per (session, day) — records without a session form one group per member and day.
    let event = col("kind").eq(lit(EVENT as i32));
    let metric = col("kind").eq(lit(METRIC as i32));
    let edit_tool = sym::EDIT_TOOLS
        .iter()
        .map(|&t| is("tool", t))
        .reduce(|a, b| a.or(b))
        .unwrap();
    let is_req = event.clone().and(is("name", sym::API_REQUEST));
    let is_dec_ev = event
        .and(is("name", sym::TOOL_DECISION))
        .and(edit_tool.clone());
    let has_req = col("has_req");
    let has_dec = col("has_dec");
    let use_cost = metric
        .clone()
        .and(is("name", sym::M_COST))
        .and(has_req.clone().not());
    let use_tok = metric
        .clone()
        .and(is("name", sym::M_TOKEN))
        .and(has_req.not());
    let dec_met = metric
        .clone()
        .and(is("name", sym::M_DECISION))
        .and(edit_tool)
        .and(has_dec.not());
    let f0 = || lit(0.0f64);
    let tokens = |ev_col: &str, typ: u32| {
        when(is_req.clone())
            .then(col(ev_col).cast(DataType::Float64).fill_null(f0()))
            .when(use_tok.clone().and(is("typ", typ)))
            .then(col("inc"))
            .otherwise(f0())
    };
    let decisions = |d: u32| {
        when(is_dec_ev.clone().and(is("decision", d)))
            .then(lit(1.0f64))
            .when(dec_met.clone().and(is("decision", d)))
            .then(col("inc"))
            .otherwise(f0())
    };
    let metric_of = |name: u32| {
        when(metric.clone().and(is("name", name)))
            .then(col("inc"))
            .otherwise(f0())
    };
    let null_u32 = || lit(NULL).cast(DataType::UInt32);
    let contrib = lf.with_columns([
        is_req.clone().cast(DataType::Float64).alias(fcol::REQUESTS),
        when(is_req.clone())
            .then(col("cost_pico"))
            .when(use_cost.clone())
            .then(col("inc_pico"))
            .otherwise(lit(0i64))
            .cast(DataType::Float64)
            .alias(fcol::SPEND_PICO),
        tokens("in_tok", sym::INPUT).alias(fcol::INPUT_TOKENS),
        tokens("out_tok", sym::OUTPUT).alias(fcol::OUTPUT_TOKENS),
        tokens("cr_tok", sym::CACHE_READ).alias(fcol::CACHE_READ_TOKENS),
        tokens("cc_tok", sym::CACHE_CREATION).alias(fcol::CACHE_CREATION_TOKENS),
        decisions(sym::ACCEPT).alias(fcol::ACCEPTED),
        decisions(sym::REJECT).alias(fcol::REJECTED),
        when(
            metric
                .clone()
                .and(is("name", sym::M_LINES))
                .and(is("typ", sym::ADDED)),
        )
        .then(col("inc"))
        .otherwise(f0())
        .alias(fcol::LINES_ACCEPTED),
        when(
            metric
                .clone()
                .and(is("name", sym::M_LINES))
                .and(is("typ", sym::REMOVED)),
        )
        .then(col("inc"))
        .otherwise(f0())
        .alias(fcol::LINES_REMOVED),
        metric_of(sym::M_COMMIT).alias(fcol::COMMITS),
        metric_of(sym::M_PR).alias(fcol::PULL_REQUESTS),
        lit(1.0f64).alias(fcol::RECORDS),
        when(is_req.or(use_cost).or(use_tok))
            .then(
                when(is("model", sym::NONE))
                    .then(lit(sym::UNKNOWN_MODEL))
                    .otherwise(col("model")),
            )
            .otherwise(null_u32())
            .alias("model_key"),
        when(is_dec_ev.or(dec_met))
            .then(col("tool"))
            .otherwise(null_u32())
            .alias("tool_key"),
    ]);
    // Measures are rounded per record to integers (spend to 1e-12 USD), so that sums are exact
    // and do not depend on summation order: the same run twice gives identical tables.
    let contrib = contrib.with_columns(
        fcol::MEASURES
            .iter()
            .map(|m| (col(*m) + lit(0.5)).cast(DataType::Int64).alias(*m))
            .collect::<Vec<_>>(),
    );
    let mut aggs: Vec<Expr> = fcol::MEASURES
        .iter()
        .map(|m| col(*m).sum().alias(*m))
        .collect();
    aggs.push(col("agents").first().alias(fcol::AGENTS));
    let grouped = contrib
        .group_by([
            col("date"),
            col("member"),
            col("session"),
            col("model_key"),
            col("tool_key"),
        ])
        .agg(aggs)
        .sort(
            ["date", "member", "session", "model_key", "tool_key"],
            SortMultipleOptions::default().with_nulls_last(false),
        )
        .collect()?;
    let records_used = grouped
        .column(fcol::RECORDS)?
        .as_materialized_series()
        .i64()?
        .sum()
        .unwrap_or(0) as u64;
    let records_outside_range = n_dedup - records_used;
    let df = resolve_strings(grouped, dict, &members)?;
    Ok(Facts {
        df,
        records_used,
        records_outside_range,
    })
}

/// Replaces integer ids by their strings: the facts' stable, run-independent form.
fn resolve_strings(g: DataFrame, dict: &Dict, members: &[Member]) -> Result<DataFrame> {
    let ids = |name: &str| -> Result<Vec<Option<u32>>> {
        Ok(g.column(name)?
            .as_materialized_series()
            .u32()?
            .iter()
            .collect())
    };
    let text = |v: &[Option<u32>]| -> Vec<Option<String>> {
        v.iter()
            .map(|o| {
                o.filter(|&i| i != sym::NONE)
                    .map(|i| dict.resolve(i).to_string())
            })
            .collect()
    };
    let member_ids = ids("member")?;
    let m = |i: &Option<u32>| &members[i.expect("member is never null") as usize];
    let mut columns = vec![
        g.column("date")?.cast(&DataType::Date)?,
        Column::new(
            fcol::MEMBER.into(),
            member_ids
                .iter()
                .map(|i| m(i).name.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            fcol::MEMBER_TYPE.into(),
            member_ids
                .iter()
                .map(|i| m(i).member_type.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            fcol::ROLE.into(),
            member_ids
                .iter()
                .map(|i| m(i).role.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(fcol::SESSION.into(), text(&ids("session")?)),
        g.column(fcol::AGENTS)?.clone(),
        Column::new(fcol::MODEL.into(), text(&ids("model_key")?)),
        Column::new(fcol::TOOL.into(), text(&ids("tool_key")?)),
    ];
    for m in fcol::MEASURES {
        columns.push(g.column(m)?.clone());
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::otlp::{DecodeContext, ObjectDecoder};

    /// 2026-10-08T00:00:00Z in seconds.
    pub const DAY0: i64 = 1_791_417_600;

    fn kv(attrs: &[(&str, &str)]) -> String {
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
        let ctx = DecodeContext {
            tz: tz.parse().unwrap(),
            max_time_ns: i64::MAX,
        };
        let mut dict = Dict::default();
        let mut rec = Records::default();
        let mut seen = crate::model::Seen::default();
        let mut duplicates = 0;
        for lines in objects {
            let mut d = ObjectDecoder::new(ctx);
            for (i, l) in lines.iter().enumerate() {
                d.decode_line(i, l).unwrap();
            }
            duplicates += rec.append_remapped(&d.records, &d.dict, &mut dict, &mut seen);
        }
        let roster = if roster.is_empty() {
            Roster::default()
        } else {
            Roster::parse(roster, "test").unwrap()
        };
        let facts = build(rec, &dict, &roster, None).unwrap();
        let reports = crate::reports::build(&facts.df, &roster).unwrap();
        (facts, duplicates, reports)
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
    fn roster_aliases_win_and_give_type_and_role() {
        let roster = "member,member_type,role,aliases\nalice@x.com,user,billing,acct-9\nbot,api_key,admin,\n";
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
}
