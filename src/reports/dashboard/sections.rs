//! The page's sections, one function each, in the order they appear: each built from one of the
//! role's tables, or said to be not available when the role may not see it.

use std::fmt::Write as _;

use polars::prelude::*;

use super::charts::Series;
use super::*;

/// Lines of code accepted per day, from `daily_lines`.
pub(super) fn lines_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(tables, table::DAILY_LINES, &[c::DATE, c::LINES_ACCEPTED]) {
            Some(df) => {
                let days = dates(df, c::DATE)?;
                let v: Vec<f64> = values(df, c::LINES_ACCEPTED)?;
                let total: f64 = v.iter().sum();
                let chart = chart(
                    "lines",
                    "Lines of code accepted per day",
                    "Bar chart: lines of code written by Claude Code and accepted, per day.",
                    &days,
                    Series {
                        label: "Lines accepted",
                        unit: "lines",
                        values: v,
                        color: BLUE,
                    },
                    None,
                    true,
                );
                section(
                    "Lines of code accepted",
                    &format!(
                        r#"<p class="kpi"><span id="lines-total">{}</span> lines accepted in the period</p>{chart}"#,
                        fmt_num(total)
                    ),
                )
            }
            None => section("Lines of code accepted", &unavailable("Lines of code")),
        },
    )
}

/// The suggestion accept rate, overall and per edit tool, from `daily_accept_rate`.
pub(super) fn rate_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::DAILY_ACCEPT_RATE,
            &[c::TOOL, c::ACCEPTED, c::REJECTED],
        ) {
            Some(df) => {
                let tools = strs(df, c::TOOL)?;
                let acc = f64s(df, c::ACCEPTED)?;
                let rej = f64s(df, c::REJECTED)?;
                let mut sums = std::collections::BTreeMap::<String, (f64, f64)>::new();
                for i in 0..tools.len() {
                    let e = sums.entry(tools[i].clone()).or_default();
                    e.0 += acc[i].unwrap_or(0.0);
                    e.1 += rej[i].unwrap_or(0.0);
                }
                let rate = |t: &str| {
                    sums.get(t)
                        .filter(|(a, r)| a + r > 0.0)
                        .map(|(a, r)| a / (a + r))
                };
                let mut rows = String::new();
                for t in std::iter::once("all").chain(EDIT_TOOLS) {
                    let (a, r) = sums.get(t).copied().unwrap_or_default();
                    let name = if t == "all" {
                        "All code-editing tools"
                    } else {
                        t
                    };
                    let (pct, width) = match rate(t) {
                        Some(x) => (format!("{:.1}%", x * 100.0), x * 100.0),
                        None => ("no decisions".into(), 0.0),
                    };
                    let _ = write!(
                        rows,
                        r#"<tr data-tool="{t}"><th scope="row">{name}</th><td>{}</td><td>{}</td><td><span class="rate-bar" style="width:{width:.0}%"></span> {pct}</td></tr>"#,
                        fmt_num(a),
                        fmt_num(r)
                    );
                }
                section(
                    "Suggestion accept rate",
                    &format!(
                        r#"<p class="kpi"><span id="rate-all">{}</span> of code-editing suggestions accepted</p><table class="rates"><caption>Accepted and rejected suggestions per tool, whole period</caption><thead><tr><th scope="col">Tool</th><th scope="col">Accepted</th><th scope="col">Rejected</th><th scope="col">Accept rate</th></tr></thead><tbody>{rows}</tbody></table>"#,
                        rate("all")
                            .map(|x| format!("{:.1}%", x * 100.0))
                            .unwrap_or_else(|| "—".into())
                    ),
                )
            }
            None => section("Suggestion accept rate", &unavailable("The accept rate")),
        },
    )
}

/// Active users (left axis) and sessions (right) per day, from `daily_activity`.
pub(super) fn activity_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::DAILY_ACTIVITY,
            &[c::DATE, c::ACTIVE_USERS, c::SESSIONS],
        ) {
            Some(df) => {
                let days = dates(df, c::DATE)?;
                let users = values(df, c::ACTIVE_USERS)?;
                let sessions = values(df, c::SESSIONS)?;
                section(
                "Activity",
                &chart(
                    "activity",
                    "Active users and sessions per day",
                    "Line chart: active users per day on the left axis, sessions per day on the right axis.",
                    &days,
                    Series { label: "Active users", unit: "users", values: users, color: BLUE },
                    Some(Series { label: "Sessions", unit: "sessions", values: sessions, color: ORANGE }),
                    false,
                ),
            )
            }
            None => section("Activity", &unavailable("Activity")),
        },
    )
}

/// Active users (left axis) and spend (right) per day, from `daily_spend`.
pub(super) fn spend_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::DAILY_SPEND,
            &[c::DATE, c::ACTIVE_USERS, c::SPEND_USD],
        ) {
            Some(df) => {
                let days = dates(df, c::DATE)?;
                let users = values(df, c::ACTIVE_USERS)?;
                let spend: Vec<f64> = values(df, c::SPEND_USD)?;
                let total: f64 = spend.iter().sum();
                section(
                "Spend",
                &format!(
                    r#"<p class="kpi">$<span id="spend-total">{}</span> estimated spend in the period</p>{}"#,
                    fmt_num(total),
                    chart(
                        "spend",
                        "Active users and spend per day",
                        "Line chart: active users per day on the left axis, estimated spend in US dollars per day on the right axis.",
                        &days,
                        Series { label: "Active users", unit: "users", values: users, color: BLUE },
                        Some(Series { label: "Spend", unit: "USD", values: spend, color: ORANGE }),
                        false,
                    )
                ),
            )
            }
            None => section("Spend", &unavailable("Spend")),
        },
    )
}

/// Team insights: every member with spend and lines per month, from `member_monthly`.
pub(super) fn team_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::MEMBER_MONTHLY,
            &[
                c::MONTH,
                c::MEMBER,
                c::MEMBER_TYPE,
                c::SPEND_USD,
                c::LINES_ACCEPTED,
            ],
        ) {
            Some(df) => {
                let months = dates(df, c::MONTH)?;
                let members = strs(df, c::MEMBER)?;
                let types = strs(df, c::MEMBER_TYPE)?;
                let spend = f64s(df, c::SPEND_USD)?;
                let lines = f64s(df, c::LINES_ACCEPTED)?;
                let mut uniq = months.clone();
                uniq.sort();
                uniq.dedup();
                let latest = uniq.last().cloned().unwrap_or_default();
                let mut opts = String::new();
                for m in uniq.iter().rev() {
                    let sel = if *m == latest { " selected" } else { "" };
                    let _ = write!(opts, r#"<option value="{m}"{sel}>{}</option>"#, &m[..7]);
                }
                let mut rows = String::new();
                // Highest spend first, as the header's sort mark says.
                let mut order: Vec<usize> = (0..members.len()).collect();
                order.sort_by(|&a, &b| {
                    months[a]
                        .cmp(&months[b])
                        .then(spend[b].unwrap_or(0.0).total_cmp(&spend[a].unwrap_or(0.0)))
                        .then(members[a].cmp(&members[b]))
                });
                for i in order {
                    let hidden = if months[i] == latest { "" } else { " hidden" };
                    let kind = match types[i].as_str() {
                        "api_key" => "API key",
                        "user" => "User",
                        "install" => "Install",
                        _ => "Unattributed",
                    };
                    let s = spend[i].unwrap_or(0.0);
                    let l = lines[i].unwrap_or(0.0);
                    let _ = write!(
                        rows,
                        r#"<tr data-month="{}"{hidden}><th scope="row">{}</th><td>{kind}</td><td data-v="{s}">${:.2}</td><td data-v="{l}">{}</td></tr>"#,
                        months[i],
                        esc(&members[i]),
                        s,
                        fmt_num(l)
                    );
                }
                section(
                    "Team insights",
                    &format!(
                        r#"<p><label for="month">Month</label> <select id="month">{opts}</select></p><table id="team" class="sortable"><caption>Members: spend and lines accepted this month. API keys are shown by key name, users by email{}.</caption><thead><tr><th scope="col"><button data-col="0">Member</button></th><th scope="col"><button data-col="1">Type</button></th><th scope="col" aria-sort="descending"><button data-col="2">Spend this month (USD)</button></th><th scope="col"><button data-col="3">Lines this month</button></th></tr></thead><tbody>{rows}</tbody></table>"#,
                        if members.iter().any(|m| m.starts_with("m_")) {
                            " or pseudonym"
                        } else {
                            ""
                        }
                    ),
                )
            }
            None => section("Team insights", &unavailable("Team insights")),
        },
    )
}

/// Spend, lines and accept rate per value of the `team` dimension (else the first one), summed
/// over the period, from `daily_by_dimension`.
pub(super) fn dimension_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    const TITLE: &str = "By team";
    let Some(df) = find(
        tables,
        table::DAILY_BY_DIMENSION,
        &[
            c::DIMENSION,
            c::VALUE,
            c::SPEND_USD,
            c::LINES_ACCEPTED,
            c::ACCEPTED,
            c::REJECTED,
        ],
    ) else {
        return Ok(section(TITLE, &unavailable("The team breakdown")));
    };
    let dims = strs(df, c::DIMENSION)?;
    let Some(dim) = dims
        .iter()
        .find(|d| *d == "team")
        .or_else(|| dims.iter().min())
        .cloned()
    else {
        return Ok(section(
            TITLE,
            r#"<p class="na">No dimension is configured (see <code>[dimensions]</code> in the pipeline file).</p>"#,
        ));
    };
    let values = strs(df, c::VALUE)?;
    let (spend, lines) = (f64s(df, c::SPEND_USD)?, f64s(df, c::LINES_ACCEPTED)?);
    let (acc, rej) = (f64s(df, c::ACCEPTED)?, f64s(df, c::REJECTED)?);
    let mut sums = std::collections::BTreeMap::<&str, [f64; 4]>::new();
    for i in (0..dims.len()).filter(|&i| dims[i] == dim) {
        let e = sums.entry(values[i].as_str()).or_default();
        for (k, v) in [spend[i], lines[i], acc[i], rej[i]].into_iter().enumerate() {
            e[k] += v.unwrap_or(0.0);
        }
    }
    let mut order: Vec<(&str, [f64; 4])> = sums.into_iter().collect();
    order.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]).then(a.0.cmp(b.0)));
    let top = order.first().map_or(0.0, |o| o.1[0]).max(f64::MIN_POSITIVE);
    let mut rows = String::new();
    for (value, [s, l, a, r]) in &order {
        let rate = if a + r > 0.0 {
            format!("{:.1}%", a / (a + r) * 100.0)
        } else {
            "no decisions".into()
        };
        let _ = write!(
            rows,
            r#"<tr data-value="{v}"><th scope="row">{v}</th><td data-v="{s}"><span class="rate-bar" style="width:{w:.0}%"></span> ${s:.2}</td><td data-v="{l}">{}</td><td>{rate}</td></tr>"#,
            fmt_num(*l),
            v = esc(value),
            w = s / top * 100.0
        );
    }
    Ok(section(
        &format!("By {}", dim.replace('_', " ")),
        &format!(
            r#"<table id="by-dimension" class="rates"><caption>Spend, lines accepted and accept rate per {d} value, whole period; usage counts under the value it had when it happened</caption><thead><tr><th scope="col">{d}</th><th scope="col">Spend (USD)</th><th scope="col">Lines accepted</th><th scope="col">Accept rate</th></tr></thead><tbody>{rows}</tbody></table>"#,
            d = esc(&dim)
        ),
    ))
}

/// Daily, 7-day and 28-day active users and the roster's seats, from `daily_adoption`.
pub(super) fn adoption_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    const TITLE: &str = "Adoption";
    let Some(df) = find(
        tables,
        table::DAILY_ADOPTION,
        &[
            c::DATE,
            c::ACTIVE_USERS,
            c::ACTIVE_USERS_7D,
            c::ACTIVE_USERS_28D,
        ],
    ) else {
        return Ok(section(TITLE, &unavailable("Adoption")));
    };
    let days = dates(df, c::DATE)?;
    let mut series = vec![
        Series {
            label: "Active users",
            unit: "users",
            values: values(df, c::ACTIVE_USERS)?,
            color: BLUE,
        },
        Series {
            label: "Active in 7 days",
            unit: "users",
            values: values(df, c::ACTIVE_USERS_7D)?,
            color: ORANGE,
        },
        Series {
            label: "Active in 28 days",
            unit: "users",
            values: values(df, c::ACTIVE_USERS_28D)?,
            color: GREEN,
        },
    ];
    let seats = df
        .column(c::ROSTER_MEMBERS)
        .ok()
        .and_then(|_| f64s(df, c::ROSTER_MEMBERS).ok())
        .filter(|v| v.iter().any(Option::is_some));
    let mut kpi = String::new();
    if let Some(seats) = seats {
        let seats: Vec<f64> = seats.into_iter().map(|v| v.unwrap_or(0.0)).collect();
        let last = seats.last().copied().unwrap_or(0.0);
        if let Ok(active) = f64s(df, c::ROSTER_ACTIVE_28D) {
            let a = active.last().copied().flatten().unwrap_or(0.0);
            let _ = write!(
                kpi,
                r#"<p class="kpi"><span id="seats-used">{}</span> of {} roster seats active in the last 28 days</p>"#,
                fmt_num(a),
                fmt_num(last)
            );
        }
        series.push(Series {
            label: "Roster seats",
            unit: "users",
            values: seats,
            color: GREY,
        });
    }
    Ok(section(
        TITLE,
        &format!(
            "{kpi}{}",
            lines_chart(
                "adoption",
                "Active users per day, in the last 7 and 28 days, and roster seats",
                "Line chart: distinct members active on the day, in the 7 days and in the 28 days ending on it, and the roster's members.",
                &days,
                series,
            )
        ),
    ))
}

/// Roster members with no activity in the 28 days ending on the last stored date, from `members`.
pub(super) fn quiet_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    const TITLE: &str = "Gone quiet";
    let Some(df) = find(
        tables,
        table::MEMBERS,
        &[c::MEMBER, c::MEMBER_TYPE, c::LAST_ACTIVE, c::IN_ROSTER],
    ) else {
        return Ok(section(TITLE, &unavailable("The list of quiet members")));
    };
    let members = strs(df, c::MEMBER)?;
    let types = strs(df, c::MEMBER_TYPE)?;
    let last: Vec<Option<i32>> = df
        .column(c::LAST_ACTIVE)?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .collect();
    let in_roster: Vec<bool> = df
        .column(c::IN_ROSTER)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let Some(newest) = last.iter().flatten().max().copied() else {
        return Ok(section(
            TITLE,
            r#"<p class="na">No activity stored yet.</p>"#,
        ));
    };
    let mut rows = String::new();
    let mut n = 0;
    for i in 0..members.len() {
        if !in_roster[i] || last[i].is_some_and(|l| l > newest - 28) {
            continue;
        }
        n += 1;
        let when = last[i].map_or_else(
            || "never".to_string(),
            |d| crate::facts::date_of_days(d).to_string(),
        );
        let _ = write!(
            rows,
            r#"<tr><th scope="row">{}</th><td>{}</td><td>{when}</td></tr>"#,
            esc(&members[i]),
            esc(&types[i])
        );
    }
    let through = crate::facts::date_of_days(newest);
    Ok(section(
        TITLE,
        &if n == 0 {
            format!(
                r#"<p id="quiet-none">Every roster member was active in the 28 days to {through}.</p>"#
            )
        } else {
            format!(
                r#"<p class="kpi"><span id="quiet-count">{n}</span> roster members not active in the 28 days to {through}</p><table id="quiet"><thead><tr><th scope="col">Member</th><th scope="col">Type</th><th scope="col">Last active</th></tr></thead><tbody>{rows}</tbody></table>"#
            )
        },
    ))
}
