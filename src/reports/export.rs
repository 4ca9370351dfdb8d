//! The per-day export shaped like a page of the Claude Code Analytics Admin API (contract 5.6):
//! `reports/<role>/claude_code_usage/<date>.json`, one element per member active that day, from
//! the month's stored `member_daily`, per-tool, per-model and per-member-day rows.

use std::collections::BTreeMap;

use chrono::{NaiveDate, SecondsFormat, TimeZone};
use chrono_tz::Tz;
use polars::prelude::*;
use serde_json::{json, Value};

use crate::error::Result;
use crate::facts::{date_of_days, fcol};
use crate::schema::{col as c, member_type, table, EDIT_TOOLS};

/// The API's key of each edit tool, in `EDIT_TOOLS` order.
const TOOL_KEYS: [&str; 4] = [
    "edit_tool",
    "multi_edit_tool",
    "write_tool",
    "notebook_edit_tool",
];

/// A day's entries, keyed by (member, member type).
pub type DayEntries = BTreeMap<(String, String), Entry>;

/// One member's numbers of one day.
#[derive(Debug, Default, Clone)]
pub struct Entry {
    pub member: String,
    pub member_type: String,
    sessions: i64,
    lines_added: i64,
    lines_removed: i64,
    commits: i64,
    pull_requests: i64,
    /// (accepted, rejected) per edit tool, in `EDIT_TOOLS` order.
    tools: [(i64, i64); 4],
    /// (model, input, output, cache read, cache creation, spend in USD), sorted by model.
    models: Vec<(String, [i64; 4], f64)>,
    organization_id: Option<String>,
    terminal_type: Option<String>,
}

fn days(df: &DataFrame) -> Result<Vec<i32>> {
    let d = df.column(c::DATE)?.cast(&DataType::Int32)?;
    Ok(d.i32()?.into_no_null_iter().collect())
}

fn text(df: &DataFrame, name: &str, r: usize) -> Result<Option<String>> {
    Ok(df.column(name)?.str()?.get(r).map(String::from))
}

fn int(df: &DataFrame, name: &str, r: usize) -> Result<i64> {
    Ok(df.column(name)?.i64()?.get(r).unwrap_or(0))
}

/// The entries of each of `dates` found in one month's stored rows (`member_daily`,
/// `member_daily_by_tool`, `member_daily_by_model`, `_member_days`), keyed by (member, type).
pub fn entries(
    month: &[(&str, DataFrame)],
    dates: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, DayEntries>> {
    let frame = |name: &str| {
        month
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, df)| df)
            .expect("the month's rows")
    };
    let wanted = |day: i32| {
        let d = date_of_days(day);
        dates.binary_search(&d).is_ok().then_some(d)
    };
    let mut out: BTreeMap<NaiveDate, DayEntries> = BTreeMap::new();
    let mut each = |name: &str, f: &mut dyn FnMut(&DataFrame, usize, &mut Entry) -> Result<()>| {
        let df = frame(name);
        for (r, day) in days(df)?.into_iter().enumerate() {
            let Some(d) = wanted(day) else { continue };
            let key = (
                text(df, c::MEMBER, r)?.unwrap_or_default(),
                text(df, c::MEMBER_TYPE, r)?.unwrap_or_default(),
            );
            let e = out.entry(d).or_default().entry(key.clone()).or_default();
            (e.member, e.member_type) = key;
            f(df, r, e)?;
        }
        Ok::<(), crate::Error>(())
    };
    each(table::MEMBER_DAILY, &mut |df, r, e| {
        e.sessions = int(df, c::SESSIONS, r)?;
        e.lines_added = int(df, c::LINES_ACCEPTED, r)?;
        e.lines_removed = int(df, c::LINES_REMOVED, r)?;
        e.commits = int(df, c::COMMITS, r)?;
        e.pull_requests = int(df, c::PULL_REQUESTS, r)?;
        Ok(())
    })?;
    each(table::MEMBER_DAILY_BY_TOOL, &mut |df, r, e| {
        let tool = text(df, c::TOOL, r)?.unwrap_or_default();
        if let Some(i) = EDIT_TOOLS.iter().position(|t| *t == tool) {
            e.tools[i] = (int(df, c::ACCEPTED, r)?, int(df, c::REJECTED, r)?);
        }
        Ok(())
    })?;
    each(table::MEMBER_DAILY_BY_MODEL, &mut |df, r, e| {
        e.models.push((
            text(df, c::MODEL, r)?.unwrap_or_default(),
            [
                int(df, c::INPUT_TOKENS, r)?,
                int(df, c::OUTPUT_TOKENS, r)?,
                int(df, c::CACHE_READ_TOKENS, r)?,
                int(df, c::CACHE_CREATION_TOKENS, r)?,
            ],
            df.column(c::SPEND_USD)?.f64()?.get(r).unwrap_or(0.0),
        ));
        Ok(())
    })?;
    each(table::MEMBER_DAYS, &mut |df, r, e| {
        e.organization_id = text(df, fcol::ORGANIZATION_ID, r)?;
        e.terminal_type = text(df, fcol::TERMINAL_TYPE, r)?;
        Ok(())
    })?;
    Ok(out)
}

/// Local midnight of `d` in `tz`, RFC 3339 (`Z` in UTC, else the offset). Where midnight does
/// not exist (a daylight-saving change at midnight), the first instant of the day.
pub fn local_midnight(d: NaiveDate, tz: Tz) -> String {
    let naive = d.and_hms_opt(0, 0, 0).expect("midnight");
    let t = tz
        .from_local_datetime(&naive)
        .earliest()
        .unwrap_or_else(|| {
            (1..=180)
                .find_map(|m| {
                    tz.from_local_datetime(&(naive + chrono::Duration::minutes(m)))
                        .earliest()
                })
                .expect("a day has a first instant")
        });
    t.to_rfc3339_opts(SecondsFormat::Secs, tz == chrono_tz::UTC)
}

/// How a role sees the export: the name written for a member, and the `member_daily` columns it
/// may not see (their fields are null).
pub struct View<'a> {
    pub name: &'a (dyn Fn(&str) -> String + Sync),
    pub dropped: &'a [&'static str],
}

impl View<'_> {
    fn num(&self, column: &str, v: i64) -> Value {
        if self.dropped.contains(&column) {
            Value::Null
        } else {
            json!(v)
        }
    }
}

/// How many days' pages are built at once: one per core (a page is a thousand or more
/// elements of JSON, as many as the members active that day; only these are held at once).
pub fn pages_at_once() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The pages of some days (`page` of each, in order), each built on a thread of its own.
pub fn pages(
    days: &[(&NaiveDate, &DayEntries)],
    tz: Tz,
    view: &View,
) -> Vec<(NaiveDate, usize, Vec<u8>)> {
    std::thread::scope(|scope| {
        let built: Vec<_> = days
            .iter()
            .map(|&(d, entries)| {
                scope.spawn(move || (*d, entries.len(), page(*d, tz, entries, view)))
            })
            .collect();
        built
            .into_iter()
            .map(|b| b.join().expect("building a page does not panic"))
            .collect()
    })
}

/// One day's page, its elements sorted by the member as written.
pub fn page(d: NaiveDate, tz: Tz, entries: &DayEntries, view: &View) -> Vec<u8> {
    let date = local_midnight(d, tz);
    let mut data: Vec<(String, Value)> = entries
        .values()
        .map(|e| {
            let name = (view.name)(&e.member);
            let actor = match e.member_type.as_str() {
                member_type::USER => json!({"type": "user_actor", "email_address": name}),
                member_type::API_KEY => json!({"type": "api_actor", "api_key_name": name}),
                member_type::INSTALL => json!({"type": "install_actor", "install_id": name}),
                _ => json!({"type": "unattributed_actor"}),
            };
            let tools: serde_json::Map<String, Value> = TOOL_KEYS
                .iter()
                .zip(e.tools)
                .map(|(k, (a, r))| {
                    (
                        k.to_string(),
                        json!({"accepted": view.num(c::ACCEPTED, a), "rejected": view.num(c::REJECTED, r)}),
                    )
                })
                .collect();
            let models: Vec<Value> = e
                .models
                .iter()
                .map(|(model, t, usd)| {
                    json!({
                        "model": model,
                        "tokens": {
                            "input": view.num(c::INPUT_TOKENS, t[0]),
                            "output": view.num(c::OUTPUT_TOKENS, t[1]),
                            "cache_read": view.num(c::CACHE_READ_TOKENS, t[2]),
                            "cache_creation": view.num(c::CACHE_CREATION_TOKENS, t[3]),
                        },
                        "estimated_cost": {
                            "currency": "USD",
                            "amount": if view.dropped.contains(&c::SPEND_USD) { Value::Null } else { json!(usd * 100.0) },
                        },
                    })
                })
                .collect();
            let element = json!({
                "date": date,
                "actor": actor,
                "organization_id": e.organization_id,
                "customer_type": Value::Null,
                "terminal_type": e.terminal_type,
                "core_metrics": {
                    "num_sessions": view.num(c::SESSIONS, e.sessions),
                    "lines_of_code": {
                        "added": view.num(c::LINES_ACCEPTED, e.lines_added),
                        "removed": view.num(c::LINES_REMOVED, e.lines_removed),
                    },
                    "commits_by_claude_code": view.num(c::COMMITS, e.commits),
                    "pull_requests_by_claude_code": view.num(c::PULL_REQUESTS, e.pull_requests),
                },
                "tool_actions": tools,
                "model_breakdown": models,
            });
            ((name, e.member_type.clone()), element)
        })
        .map(|((name, typ), v)| (format!("{name}\u{0}{typ}"), v))
        .collect();
    data.sort_by(|a, b| a.0.cmp(&b.0));
    let doc = json!({
        "data": data.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "has_more": false,
        "next_page": Value::Null,
    });
    let mut bytes = serde_json::to_vec(&doc).expect("JSON of plain values");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_is_local_with_its_offset() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 27).unwrap();
        assert_eq!(local_midnight(d, chrono_tz::UTC), "2026-10-27T00:00:00Z");
        assert_eq!(
            local_midnight(d, "Europe/Berlin".parse().unwrap()),
            "2026-10-27T00:00:00+01:00"
        );
        assert_eq!(
            local_midnight(
                NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
                "America/Los_Angeles".parse().unwrap()
            ),
            "2026-07-01T00:00:00-07:00"
        );
        // Santiago skips from 00:00 to 01:00 on 2026-09-06.
        assert_eq!(
            local_midnight(
                NaiveDate::from_ymd_opt(2026, 9, 6).unwrap(),
                "America/Santiago".parse().unwrap()
            ),
            "2026-09-06T01:00:00-03:00"
        );
    }

    #[test]
    fn a_page_has_every_tool_key_actor_kinds_and_cents() {
        let mut es = BTreeMap::new();
        let mut e = Entry {
            member: "dev@x".into(),
            member_type: "user".into(),
            sessions: 3,
            ..Default::default()
        };
        e.tools[2] = (4, 1);
        e.models.push(("m".into(), [1, 2, 3, 4], 1.25));
        es.insert(("dev@x".into(), "user".into()), e);
        es.insert(
            ("k".into(), "api_key".into()),
            Entry {
                member: "k".into(),
                member_type: "api_key".into(),
                ..Default::default()
            },
        );
        let id = |m: &str| m.to_string();
        let view = View {
            name: &id,
            dropped: &[],
        };
        let d = NaiveDate::from_ymd_opt(2026, 10, 27).unwrap();
        let v: Value = serde_json::from_slice(&page(d, chrono_tz::UTC, &es, &view)).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(
            data[0]["actor"],
            json!({"type": "user_actor", "email_address": "dev@x"})
        );
        assert_eq!(
            data[1]["actor"],
            json!({"type": "api_actor", "api_key_name": "k"})
        );
        assert_eq!(
            data[0]["tool_actions"]["write_tool"],
            json!({"accepted": 4, "rejected": 1})
        );
        assert_eq!(
            data[1]["tool_actions"]["notebook_edit_tool"],
            json!({"accepted": 0, "rejected": 0})
        );
        assert_eq!(
            data[0]["model_breakdown"][0]["estimated_cost"]["amount"],
            json!(125.0)
        );
        assert_eq!(v["has_more"], json!(false));
        let dropped = View {
            name: &id,
            dropped: &[c::SPEND_USD],
        };
        let v: Value = serde_json::from_slice(&page(d, chrono_tz::UTC, &es, &dropped)).unwrap();
        assert_eq!(
            v["data"][0]["model_breakdown"][0]["estimated_cost"]["amount"],
            Value::Null
        );
    }
}
