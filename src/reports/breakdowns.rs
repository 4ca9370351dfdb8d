//! One month's facts → the tables of contract 5.5.1 and 5.5.2: usage per dimension value
//! (daily and monthly), per member and edit tool, per member and model; and the internal
//! per-(date, member) rows that adoption and the API-shaped export read.

use std::collections::{BTreeMap, HashMap, HashSet};

use polars::prelude::*;

use crate::config::dimensions::{fact_column, Dimensions, NONE_VALUE};
use crate::config::roster::Roster;
use crate::error::{Error, Result};
use crate::facts::{date_column, fcol, month_start, PICO_PER_USD};
use crate::schema::col as c;

/// Days since 1970-01-01 of each row of a frame's `date` column.
fn days(df: &DataFrame) -> Result<Vec<i32>> {
    let d = df.column(fcol::DATE)?.cast(&DataType::Int32)?;
    Ok(d.i32()?.into_no_null_iter().collect())
}

fn strs<'a>(df: &'a DataFrame, name: &str) -> Result<Vec<Option<&'a str>>> {
    Ok(df.column(name)?.str()?.iter().collect())
}

fn ints(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    Ok(df.column(name)?.i64()?.into_no_null_iter().collect())
}

/// A sum that must fit the table's Int64 column.
fn fit(v: i128, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        Error::Other(format!(
            "the {what} of a group sum past what a 64-bit integer holds: implausible input"
        ))
    })
}

fn usd(pico: i128) -> f64 {
    pico as f64 / PICO_PER_USD
}

fn rate(accepted: i128, rejected: i128) -> Option<f64> {
    let total = accepted + rejected;
    (total > 0).then(|| accepted as f64 / total as f64)
}

/// The roster member a resolved member is, by name and type.
fn roster_index(roster: &Roster) -> HashMap<(&str, &str), usize> {
    roster
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.member.as_str(), m.member_type.as_str()), i))
        .collect()
}

/// The daily measures of a dimension value, in the table's column order after `sessions`.
const DAILY_SUMS: [&str; 8] =
    crate::schema::join([fcol::SPEND_PICO, fcol::REQUESTS], fcol::EDIT_MEASURES);
/// Positions in `DAILY_SUMS` of the monthly table's measures.
const SPEND: usize = 0;
const LINES_ACCEPTED: usize = 2;
const ACCEPTED: usize = 4;
const REJECTED: usize = 5;

#[derive(Default)]
struct Group<'a> {
    members: HashSet<(&'a str, &'a str)>,
    sessions: HashSet<&'a str>,
    sums: [i128; 8],
}

/// `daily_by_dimension` and `monthly_by_dimension` of a month's session facts (5.5.1): each row's
/// value is its telemetry value, else the member's roster column, else `(none)`.
pub fn by_dimension(
    sessions: &DataFrame,
    roster: &Roster,
    dims: &Dimensions,
) -> Result<(DataFrame, DataFrame)> {
    if dims.dims.is_empty() {
        // No rows, only the columns (a month of a large organisation's facts is millions of
        // rows: not read for nothing).
        let none = BTreeMap::new();
        return Ok((daily_frame(&none, dims)?, monthly_frame(&none, dims)?));
    }
    let day = days(sessions)?;
    let member = strs(sessions, fcol::MEMBER)?;
    let typ = strs(sessions, fcol::MEMBER_TYPE)?;
    let session = strs(sessions, fcol::SESSION)?;
    let agents: Vec<bool> = sessions
        .column(fcol::AGENTS)?
        .bool()?
        .iter()
        .map(|a| a.unwrap_or(false))
        .collect();
    let sums: Vec<Vec<i64>> = DAILY_SUMS
        .iter()
        .map(|m| ints(sessions, m))
        .collect::<Result<_>>()?;
    let in_roster = roster_index(roster);
    let mut daily: BTreeMap<(i32, usize, &str), Group> = BTreeMap::new();
    let mut monthly: BTreeMap<(i32, usize, &str), Group> = BTreeMap::new();
    for (d, dim) in dims.dims.iter().enumerate() {
        // A date stored before the dimension was configured has no telemetry values for it.
        let column = fact_column(&dim.name);
        let told: Vec<Option<&str>> = match sessions.column(&column) {
            Ok(_) => strs(sessions, &column)?,
            Err(_) => vec![None; sessions.height()],
        };
        let roster_col = dim.roster.as_deref().and_then(|r| roster.column(r));
        for r in 0..sessions.height() {
            let (m, t) = (member[r].unwrap_or(""), typ[r].unwrap_or(""));
            let value = told[r]
                .or_else(|| {
                    let col = roster_col?;
                    let i = *in_roster.get(&(m, t))?;
                    Some(roster.members[i].extra[col].as_str()).filter(|v| !v.is_empty())
                })
                .unwrap_or(NONE_VALUE);
            let counted = session[r].filter(|_| !agents[r]);
            for (g, at) in [(&mut daily, day[r]), (&mut monthly, month_start(day[r]))] {
                let g = g.entry((at, d, value)).or_default();
                g.members.insert((m, t));
                if let Some(s) = counted {
                    g.sessions.insert(s);
                }
                for (acc, col) in g.sums.iter_mut().zip(&sums) {
                    *acc += col[r] as i128;
                }
            }
        }
    }
    Ok((daily_frame(&daily, dims)?, monthly_frame(&monthly, dims)?))
}

fn keys_columns(
    groups: &BTreeMap<(i32, usize, &str), Group>,
    dims: &Dimensions,
    date: &str,
) -> Result<Vec<Column>> {
    Ok(vec![
        date_column(date, groups.keys().map(|k| k.0).collect())?,
        Column::new(
            c::DIMENSION.into(),
            groups
                .keys()
                .map(|k| dims.dims[k.1].name.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            c::VALUE.into(),
            groups.keys().map(|k| k.2).collect::<Vec<_>>(),
        ),
        Column::new(
            c::ACTIVE_USERS.into(),
            groups
                .values()
                .map(|g| g.members.len() as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            c::SESSIONS.into(),
            groups
                .values()
                .map(|g| g.sessions.len() as i64)
                .collect::<Vec<_>>(),
        ),
    ])
}

fn sum_column(groups: &BTreeMap<(i32, usize, &str), Group>, at: usize) -> Result<Column> {
    let name = DAILY_SUMS[at];
    if name == fcol::SPEND_PICO {
        return Ok(Column::new(
            c::SPEND_USD.into(),
            groups
                .values()
                .map(|g| usd(g.sums[at]))
                .collect::<Vec<f64>>(),
        ));
    }
    Ok(Column::new(
        name.into(),
        groups
            .values()
            .map(|g| fit(g.sums[at], name))
            .collect::<Result<Vec<i64>>>()?,
    ))
}

fn rate_column(groups: &BTreeMap<(i32, usize, &str), Group>) -> Column {
    Column::new(
        c::ACCEPT_RATE.into(),
        groups
            .values()
            .map(|g| rate(g.sums[ACCEPTED], g.sums[REJECTED]))
            .collect::<Vec<_>>(),
    )
}

fn daily_frame(
    groups: &BTreeMap<(i32, usize, &str), Group>,
    dims: &Dimensions,
) -> Result<DataFrame> {
    let mut columns = keys_columns(groups, dims, c::DATE)?;
    for at in 0..ACCEPTED {
        columns.push(sum_column(groups, at)?);
    }
    columns.push(sum_column(groups, ACCEPTED)?);
    columns.push(sum_column(groups, REJECTED)?);
    columns.push(rate_column(groups));
    columns.push(sum_column(groups, 6)?);
    columns.push(sum_column(groups, 7)?);
    Ok(DataFrame::new_infer_height(columns)?)
}

fn monthly_frame(
    groups: &BTreeMap<(i32, usize, &str), Group>,
    dims: &Dimensions,
) -> Result<DataFrame> {
    let mut columns = keys_columns(groups, dims, c::MONTH)?;
    for at in [SPEND, LINES_ACCEPTED, ACCEPTED, REJECTED] {
        columns.push(sum_column(groups, at)?);
    }
    columns.push(rate_column(groups));
    Ok(DataFrame::new_infer_height(columns)?)
}

/// A per-member fact frame's rows as a table, sorted by (date, member, member type, key) bytes.
/// A date's facts hold one row per (member, key), and a month's frames are its dates' frames,
/// so no row needs merging: the rows are only sorted (polars, in parallel) and renamed.
fn per_member(
    facts: &DataFrame,
    key: &str,
    out_key: &str,
    measures: &[&str],
    keep: Option<Expr>,
) -> Result<DataFrame> {
    let mut lf = facts.clone().lazy();
    if let Some(keep) = keep {
        lf = lf.filter(keep);
    }
    let mut select = vec![
        col(fcol::DATE).alias(c::DATE),
        col(fcol::MEMBER).alias(c::MEMBER),
        col(fcol::MEMBER_TYPE).alias(c::MEMBER_TYPE),
        col(key).alias(out_key),
    ];
    select.extend(measures.iter().map(|m| {
        let out = if *m == fcol::SPEND_PICO {
            c::SPEND_USD
        } else {
            m
        };
        col(*m).cast(DataType::Int64).alias(out)
    }));
    let df = lf
        .select(select)
        .sort(
            [c::DATE, c::MEMBER, c::MEMBER_TYPE, out_key],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    super::daily::to_usd(df)
}

/// `member_daily_by_tool` (5.5.2): rows with a decision.
pub fn member_by_tool(tools: &DataFrame) -> Result<DataFrame> {
    let decided = (col(fcol::ACCEPTED) + col(fcol::REJECTED)).gt(lit(0));
    per_member(
        tools,
        fcol::TOOL,
        c::TOOL,
        &fcol::TOOL_MEASURES,
        Some(decided),
    )
}

/// `member_daily_by_model` (5.5.2): every (date, member, model) that contributed.
pub fn member_by_model(models: &DataFrame) -> Result<DataFrame> {
    per_member(models, fcol::MODEL, c::MODEL, &fcol::MODEL_MEASURES, None)
}

/// The internal per-(date, member) rows: role, spend (1e-12 USD, exact), and the smallest
/// organisation id and terminal type of the member's records that day.
///
/// Its peak sets a large organisation's nightly peak (it runs over a month of session facts):
/// the columns are walked as they are, not copied out, each (date, member) folded into one slot
/// found by hash, and only the slots are sorted.
pub fn member_days(sessions: &DataFrame) -> Result<DataFrame> {
    type Slot<'a> = (Option<&'a str>, i128, Option<&'a str>, Option<&'a str>);
    let day = sessions.column(fcol::DATE)?.cast(&DataType::Int32)?;
    let column = |name: &str| sessions.column(name).and_then(|c| c.str().cloned());
    let [member, typ, role, org, term] = [
        fcol::MEMBER,
        fcol::MEMBER_TYPE,
        fcol::ROLE,
        fcol::ORGANIZATION_ID,
        fcol::TERMINAL_TYPE,
    ]
    .map(column);
    let (member, typ, role, org, term) = (member?, typ?, role?, org?, term?);
    let spend = sessions.column(fcol::SPEND_PICO)?.i64()?;
    let mut keys: Vec<(i32, &str, &str)> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut at: HashMap<(i32, &str, &str), u32, ahash::RandomState> = HashMap::default();
    let rows = day
        .i32()?
        .into_no_null_iter()
        .zip(member.iter().zip(typ.iter()))
        .zip(role.iter().zip(spend.into_no_null_iter()))
        .zip(org.iter().zip(term.iter()));
    for (((d, (m, t)), (r, s)), (o, tt)) in rows {
        let key = (d, m.unwrap_or(""), t.unwrap_or(""));
        let i = *at.entry(key).or_insert_with(|| {
            keys.push(key);
            slots.push((r, 0, None, None));
            (slots.len() - 1) as u32
        }) as usize;
        let e = &mut slots[i];
        // The first role given, in the rows' order.
        e.0 = e.0.or(r);
        e.1 += s as i128;
        for (slot, v) in [(&mut e.2, o), (&mut e.3, tt)] {
            if let Some(v) = v {
                if slot.is_none_or(|s| v < s) {
                    *slot = Some(v);
                }
            }
        }
    }
    drop(at);
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_unstable_by_key(|&i| keys[i as usize]);
    let key = |i: &u32| keys[*i as usize];
    let slot = |i: &u32| &slots[*i as usize];
    let columns = vec![
        date_column(c::DATE, order.iter().map(|i| key(i).0).collect())?,
        Column::new(
            c::MEMBER.into(),
            order.iter().map(|i| key(i).1).collect::<Vec<_>>(),
        ),
        Column::new(
            c::MEMBER_TYPE.into(),
            order.iter().map(|i| key(i).2).collect::<Vec<_>>(),
        ),
        Column::new(
            c::ROLE.into(),
            order.iter().map(|i| slot(i).0).collect::<Vec<_>>(),
        ),
        Column::new(
            fcol::SPEND_PICO.into(),
            order
                .iter()
                .map(|i| fit(slot(i).1, "spend"))
                .collect::<Result<Vec<i64>>>()?,
        ),
        Column::new(
            fcol::ORGANIZATION_ID.into(),
            order.iter().map(|i| slot(i).2).collect::<Vec<_>>(),
        ),
        Column::new(
            fcol::TERMINAL_TYPE.into(),
            order.iter().map(|i| slot(i).3).collect::<Vec<_>>(),
        ),
    ];
    Ok(DataFrame::new_infer_height(columns)?)
}

#[cfg(test)]
mod tests;
