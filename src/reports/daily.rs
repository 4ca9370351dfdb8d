//! Facts → the seven output tables of contract 5.2, with their exact names, order and types.

use polars::prelude::*;

use crate::config::roster::Roster;
use crate::error::Result;
use crate::facts::{date_column, fcol, PICO_PER_USD};
use crate::reports::breakdowns;
use crate::schema::{col as c, table, ALL_TOOLS};

fn i64c(name: &str) -> Expr {
    col(name).cast(DataType::Int64).alias(name)
}

/// Spend stays in integer 1e-12 USD through the query; `to_usd` converts after collecting, in
/// scalar code, so that the same sum always gives the same bits (polars may evaluate a division
/// by a literal differently from one run to the next, for instance as a multiplication).
fn spend_usd() -> Expr {
    col(fcol::SPEND_PICO)
        .cast(DataType::Int64)
        .alias(c::SPEND_USD)
}

/// The `spend_usd` column of a collected table, from 1e-12 USD to USD.
pub(super) fn to_usd(mut df: DataFrame) -> Result<DataFrame> {
    if let Ok(pico) = df.column(c::SPEND_USD) {
        let usd: Vec<Option<f64>> = pico
            .i64()?
            .iter()
            .map(|v| v.map(|p| p as f64 / PICO_PER_USD))
            .collect();
        df.with_column(Column::new(c::SPEND_USD.into(), usd))?;
    }
    Ok(df)
}

/// The spend measures, in the contract's column order (fact and output names are the same,
/// but spend, which facts hold in 1e-12 USD): those of the per-model facts.
const SPEND_MEASURES: [&str; 6] = fcol::MODEL_MEASURES;
/// `member_daily`'s measures after `sessions`, in the contract's column order: the edits, then
/// the spend measures.
const MEMBER_MEASURES: [&str; 12] = crate::schema::join(fcol::EDIT_MEASURES, SPEND_MEASURES);

/// Sums of fact measures, for an `agg`.
fn sums(measures: &[&str]) -> Vec<Expr> {
    measures.iter().map(|m| col(*m).sum()).collect()
}

/// Summed measures as output columns: spend in USD (Float64), the others Int64.
fn outputs(measures: &[&str]) -> Vec<Expr> {
    measures
        .iter()
        .map(|m| {
            if *m == fcol::SPEND_PICO {
                spend_usd()
            } else {
                i64c(m)
            }
        })
        .collect()
}

fn counted_session() -> Expr {
    col(fcol::SESSION)
        .is_not_null()
        .and(col(fcol::AGENTS).not())
}

fn sorted(lf: LazyFrame, by: &[&str]) -> LazyFrame {
    lf.sort(
        by.to_vec(),
        SortMultipleOptions::default().with_maintain_order(true),
    )
}

/// A month's rows of every table of `table::MONTHLY`, in that order, then the internal
/// `table::MEMBER_DAYS`, from a whole set of facts: the rebuild's three steps
/// (`pipeline::rebuild` reads and drops each kind of fact between them), for the unit tests.
#[cfg(test)]
pub fn build(
    facts: &crate::facts::FactSet,
    roster: &Roster,
    dims: &crate::config::dimensions::Dimensions,
) -> Result<Vec<(&'static str, DataFrame)>> {
    let (mut tables, edits) = session_tables(&facts.sessions, roster, dims)?;
    tables.extend(model_tables(&facts.models)?);
    tables.extend(tool_tables(&facts.tools, edits)?);
    Ok(in_table_order(tables))
}

/// The edit decisions of each date over all tools (from the session facts), for the `all` rows
/// of `daily_accept_rate`.
pub struct DateEdits(DataFrame);

/// The tables of a month's session facts, and its edit decisions per date. Each kind of fact is
/// read and folded on its own, so that a month's three frames are never in memory at once.
pub fn session_tables(
    sessions: &DataFrame,
    roster: &Roster,
    dims: &crate::config::dimensions::Dimensions,
) -> Result<(Vec<(&'static str, DataFrame)>, DateEdits)> {
    let t = std::time::Instant::now();
    // First, while nothing else of the month is held: a large organisation's nightly peak.
    let member_days = breakdowns::member_days(sessions)?;
    tracing::debug!("per-member-day rows in {:.2}s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let members = MemberKeys::of(sessions, roster)?;
    let (per_member_day, month_sessions) = per_member_day(sessions, &members)?;
    let per_member_day = per_member_day.lazy();
    tracing::debug!("per member and day in {:.2}s", t.elapsed().as_secs_f64());
    let per_date = per_date(&per_member_day);
    let edits = DateEdits(
        per_date
            .clone()
            .select([
                col(fcol::DATE),
                col(fcol::ACCEPTED).alias(c::ACCEPTED),
                col(fcol::REJECTED).alias(c::REJECTED),
            ])
            .collect()?,
    );
    let tables = [
        (
            table::DAILY_ACTIVITY,
            of_dates(&per_date, [i64c(c::ACTIVE_USERS), i64c(c::SESSIONS)]),
        ),
        (
            table::DAILY_SPEND,
            of_dates(&per_date, [i64c(c::ACTIVE_USERS), spend_usd()]),
        ),
        (
            table::DAILY_LINES,
            of_dates(&per_date, [i64c(c::LINES_ACCEPTED), i64c(c::LINES_REMOVED)]),
        ),
        (table::MEMBER_DAILY, member_daily(&per_member_day)),
        (
            table::MEMBER_MONTHLY,
            monthly(month_sessions, per_member_day, roster, &members.sorted)?,
        ),
    ];
    let mut out = collected(tables)?;
    let t = std::time::Instant::now();
    let (by_dim_daily, by_dim_monthly) = breakdowns::by_dimension(sessions, roster, dims)?;
    out.push((table::DAILY_BY_DIMENSION, by_dim_daily));
    out.push((table::MONTHLY_BY_DIMENSION, by_dim_monthly));
    out.push((table::MEMBER_DAYS, member_days));
    tracing::debug!("dimension tables in {:.2}s", t.elapsed().as_secs_f64());
    Ok((out, edits))
}

/// The tables of a month's per-model facts.
pub fn model_tables(models: &DataFrame) -> Result<Vec<(&'static str, DataFrame)>> {
    let mut out = collected([(table::DAILY_SPEND_BY_MODEL, spend_by_model(models))])?;
    out.push((
        table::MEMBER_DAILY_BY_MODEL,
        breakdowns::member_by_model(models)?,
    ));
    Ok(out)
}

/// The tables of a month's per-tool facts; `edits` gives the `all` rows of the accept rate.
pub fn tool_tables(tools: &DataFrame, edits: DateEdits) -> Result<Vec<(&'static str, DataFrame)>> {
    let mut out = collected([(table::DAILY_ACCEPT_RATE, accept_rate(tools, edits)?)])?;
    out.push((
        table::MEMBER_DAILY_BY_TOOL,
        breakdowns::member_by_tool(tools)?,
    ));
    Ok(out)
}

/// Each query collected, spend converted to USD.
fn collected<const N: usize>(
    tables: [(&'static str, LazyFrame); N],
) -> Result<Vec<(&'static str, DataFrame)>> {
    let mut out = Vec::with_capacity(N);
    for (name, lf) in tables {
        let t = std::time::Instant::now();
        out.push((name, to_usd(lf.collect()?)?));
        tracing::debug!("table {name} in {:.2}s", t.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// A month's tables in `table::MONTHLY` order, then `table::MEMBER_DAYS`.
pub fn in_table_order(
    mut tables: Vec<(&'static str, DataFrame)>,
) -> Vec<(&'static str, DataFrame)> {
    let rank = |name: &str| {
        table::MONTHLY
            .iter()
            .position(|n| *n == name)
            .unwrap_or(table::MONTHLY.len())
    };
    tables.sort_by_key(|(name, _)| rank(name));
    debug_assert!(tables
        .iter()
        .map(|t| t.0)
        .eq(table::MONTHLY.iter().copied().chain([table::MEMBER_DAYS])));
    tables
}

/// Per date: active users (one row per member), sessions and the sums the daily tables show.
fn per_date(per_member_day: &LazyFrame) -> LazyFrame {
    per_member_day
        .clone()
        .group_by([col(fcol::DATE)])
        .agg([
            len().alias(c::ACTIVE_USERS),
            col(c::SESSIONS).sum(),
            col(fcol::SPEND_PICO).sum(),
            col(fcol::LINES_ACCEPTED).sum(),
            col(fcol::LINES_REMOVED).sum(),
            col(fcol::ACCEPTED).sum(),
            col(fcol::REJECTED).sum(),
        ])
        .cache()
}

/// A daily table: the date and `columns` of the per-date sums, by date.
fn of_dates<const N: usize>(per_date: &LazyFrame, columns: [Expr; N]) -> LazyFrame {
    let mut select = vec![col(fcol::DATE)];
    select.extend(columns);
    sorted(per_date.clone().select(select), &[c::DATE])
}

/// `daily_spend_by_model`: the model facts summed per (date, model).
fn spend_by_model(models: &DataFrame) -> LazyFrame {
    sorted(
        models
            .clone()
            .lazy()
            .group_by([col(fcol::DATE), col(fcol::MODEL)])
            .agg(sums(&SPEND_MEASURES))
            .select(
                [
                    vec![col(fcol::DATE), col(fcol::MODEL).alias(c::MODEL)],
                    outputs(&SPEND_MEASURES),
                ]
                .concat(),
            ),
        &[c::DATE, c::MODEL],
    )
}

/// `daily_accept_rate`: a row per (date, edit tool) with a decision, and `all` on every date.
fn accept_rate(tools: &DataFrame, edits: DateEdits) -> Result<LazyFrame> {
    let rate_cols = || {
        let total = col(c::ACCEPTED) + col(c::REJECTED);
        [
            col(fcol::DATE),
            col(c::TOOL),
            i64c(c::ACCEPTED),
            i64c(c::REJECTED),
            when(total.clone().gt(lit(0)))
                .then(col(c::ACCEPTED).cast(DataType::Float64) / total.cast(DataType::Float64))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(c::ACCEPT_RATE),
        ]
    };
    let tool_rows = tools
        .clone()
        .lazy()
        .group_by([col(fcol::DATE), col(fcol::TOOL).alias(c::TOOL)])
        .agg([col(fcol::ACCEPTED).sum(), col(fcol::REJECTED).sum()])
        .filter((col(c::ACCEPTED) + col(c::REJECTED)).gt(lit(0)))
        .select(rate_cols());
    let all_rows = edits
        .0
        .lazy()
        .with_column(lit(ALL_TOOLS).alias(c::TOOL))
        .select(rate_cols());
    Ok(sorted(
        concat([tool_rows, all_rows], UnionArgs::default())?,
        &[c::DATE, c::TOOL],
    ))
}

/// `member_daily`: the per-(date, member) sums as written.
fn member_daily(per_member_day: &LazyFrame) -> LazyFrame {
    per_member_day.clone().select(
        [
            vec![
                col(fcol::DATE),
                col(fcol::MEMBER).alias(c::MEMBER),
                col(fcol::MEMBER_TYPE).alias(c::MEMBER_TYPE),
                col(fcol::ROLE).alias(c::ROLE),
                i64c(c::SESSIONS),
            ],
            outputs(&MEMBER_MEASURES),
        ]
        .concat(),
    )
}

/// An integer for each (member, member_type), in the strings' byte order: grouping and sorting
/// on it is much faster than on two string columns, and sorting by it sorts by the strings.
const MEMBER_KEY: &str = "_member_key";

struct MemberKeys {
    /// The key of each row.
    keys: Vec<u32>,
    /// The (member, member_type) of each key, in key order.
    sorted: Vec<(String, String)>,
}

impl MemberKeys {
    /// Keys for the rows of `facts`, and for every roster member.
    fn of(facts: &DataFrame, roster: &Roster) -> Result<MemberKeys> {
        let member = facts.column(fcol::MEMBER)?.str()?;
        let typ = facts.column(fcol::MEMBER_TYPE)?.str()?;
        let mut ids: std::collections::HashMap<(&str, &str), u32, ahash::RandomState> =
            Default::default();
        let mut first: Vec<u32> = Vec::with_capacity(facts.height());
        fn intern<'a>(
            ids: &mut std::collections::HashMap<(&'a str, &'a str), u32, ahash::RandomState>,
            k: (&'a str, &'a str),
        ) -> u32 {
            let n = ids.len() as u32;
            *ids.entry(k).or_insert(n)
        }
        for (m, t) in member.iter().zip(typ.iter()) {
            first.push(intern(&mut ids, (m.unwrap_or(""), t.unwrap_or(""))));
        }
        for r in &roster.members {
            intern(&mut ids, (r.member.as_str(), r.member_type.as_str()));
        }
        let mut pairs: Vec<((&str, &str), u32)> = ids.into_iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut rank = vec![0u32; pairs.len()];
        for (r, (_, id)) in pairs.iter().enumerate() {
            rank[*id as usize] = r as u32;
        }
        Ok(MemberKeys {
            keys: first.iter().map(|id| rank[*id as usize]).collect(),
            sorted: pairs
                .into_iter()
                .map(|((m, t), _)| (m.to_string(), t.to_string()))
                .collect(),
        })
    }
}

fn overflow(measure: &str, day: i32) -> crate::Error {
    crate::Error::Other(format!(
        "the {measure} of {} sum past what a 64-bit integer holds: implausible input (check the stored facts of that date)",
        crate::facts::date_of_days(day)
    ))
}

/// The tables sum per-(date, member) values per date and per (month, member): every such total
/// is checked here, exactly (measures are never negative), so that no sum in the queries after
/// it can wrap.
fn check_totals(groups: &[(i32, u32, usize)], columns: &[Vec<i64>]) -> Result<()> {
    use chrono::Datelike;
    let mut per_date: std::collections::HashMap<i32, Vec<i128>> = Default::default();
    let mut per_month: std::collections::HashMap<(i32, u32), Vec<i128>> = Default::default();
    for (g, &(day, key, _)) in groups.iter().enumerate() {
        let d = crate::facts::date_of_days(day);
        let month = d.year() * 12 + d.month0() as i32;
        for totals in [
            per_date
                .entry(day)
                .or_insert_with(|| vec![0; columns.len()]),
            per_month
                .entry((month, key))
                .or_insert_with(|| vec![0; columns.len()]),
        ] {
            for (t, col) in totals.iter_mut().zip(columns) {
                *t += col[g] as i128;
                if *t > i64::MAX as i128 {
                    return Err(overflow("measures", day));
                }
            }
        }
    }
    Ok(())
}

/// Per (date, member), sorted by date and member: the sum of each measure, the role, and the
/// sessions, counted as rows (a session has one member, and one row per date in the facts), for
/// every table but two. A single pass over the facts: a year of a large organisation's facts is
/// millions of rows, and a group-by on a date and an integer key is all it needs.
fn per_member_day(facts: &DataFrame, members: &MemberKeys) -> Result<(DataFrame, DataFrame)> {
    let dates = facts.column(fcol::DATE)?.cast(&DataType::Int32)?;
    let dates: Vec<i32> = dates.i32()?.into_no_null_iter().collect();
    let (groups, gid) = group_rows(&dates, &members.keys);
    let counted = facts
        .clone()
        .lazy()
        .select([counted_session().alias("c")])
        .collect()?;
    let counted: Vec<bool> = counted
        .column("c")?
        .bool()?
        .iter()
        .map(|c| c.unwrap_or(false))
        .collect();
    let sums = group_sums(facts, &groups, &gid, &counted, &dates)?;
    check_totals(&groups, &sums)?;
    let per_member_day = per_member_day_frame(facts, members, &groups, sums)?;
    let month_sessions = month_sessions(facts, members, &counted, &dates)?;
    Ok((per_member_day, month_sessions))
}

/// The (date, member) group of every row, numbered in (date, member key) order, and each
/// group's date, member key and first row (for the role). Rows of one group mostly sit
/// together: the runs of equal groups in row order are sorted (far fewer than rows).
fn group_rows(dates: &[i32], keys: &[u32]) -> (Vec<(i32, u32, usize)>, Vec<u32>) {
    let group_of = |r: usize| (dates[r] as i64) << 32 | keys[r] as i64;
    let mut runs: Vec<(i64, usize)> = Vec::new(); // (group, first row)
    let mut run_of_row: Vec<u32> = Vec::with_capacity(dates.len());
    for r in 0..dates.len() {
        if r == 0 || group_of(r) != group_of(r - 1) {
            runs.push((group_of(r), r));
        }
        run_of_row.push((runs.len() - 1) as u32);
    }
    let mut by_group: Vec<u32> = (0..runs.len() as u32).collect();
    by_group.sort_unstable_by_key(|&i| runs[i as usize]);
    let mut group_of_run = vec![0u32; runs.len()];
    let mut groups: Vec<(i32, u32, usize)> = Vec::new();
    for (k, &i) in by_group.iter().enumerate() {
        let (g, row) = runs[i as usize];
        if k == 0 || runs[by_group[k - 1] as usize].0 != g {
            groups.push((dates[row], keys[row], row));
        }
        group_of_run[i as usize] = (groups.len() - 1) as u32;
    }
    let gid = run_of_row
        .iter()
        .map(|&run| group_of_run[run as usize])
        .collect();
    (groups, gid)
}

/// Per group: the counted sessions (a session has one member and one row per date), then each
/// of `MEMBER_MEASURES`, every sum checked.
fn group_sums(
    facts: &DataFrame,
    groups: &[(i32, u32, usize)],
    gid: &[u32],
    counted: &[bool],
    dates: &[i32],
) -> Result<Vec<Vec<i64>>> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    let mut sessions_count = vec![0i64; groups.len()];
    for (r, c) in counted.iter().enumerate() {
        sessions_count[gid[r] as usize] += *c as i64;
    }
    out.push(sessions_count);
    for m in MEMBER_MEASURES {
        // Measures are never null: the values of each chunk, as they lie.
        let mut sums = vec![0i64; groups.len()];
        let mut r = 0;
        for arr in facts.column(m)?.i64()?.downcast_iter() {
            for &v in arr.values().iter() {
                let a = &mut sums[gid[r] as usize];
                *a = a.checked_add(v).ok_or_else(|| overflow(m, dates[r]))?;
                r += 1;
            }
        }
        out.push(sums);
    }
    Ok(out)
}

/// The per-(date, member) frame: names and roles gathered by index (no string is copied), then
/// the sessions and the sums.
fn per_member_day_frame(
    facts: &DataFrame,
    members: &MemberKeys,
    groups: &[(i32, u32, usize)],
    sums: Vec<Vec<i64>>,
) -> Result<DataFrame> {
    let column = |name: &str, pick: fn(&(String, String)) -> &str| {
        Column::new(
            name.into(),
            members.sorted.iter().map(pick).collect::<Vec<_>>(),
        )
    };
    let names = DataFrame::new_infer_height(vec![
        column(fcol::MEMBER, |p| p.0.as_str()),
        column(fcol::MEMBER_TYPE, |p| p.1.as_str()),
    ])?;
    let key_idx = IdxCa::from_vec("k".into(), groups.iter().map(|g| g.1 as IdxSize).collect());
    let first_idx = IdxCa::from_vec("r".into(), groups.iter().map(|g| g.2 as IdxSize).collect());
    let names = names.take(&key_idx)?;
    let mut columns = vec![
        date_column(fcol::DATE, groups.iter().map(|g| g.0).collect())?,
        Column::new(
            MEMBER_KEY.into(),
            groups.iter().map(|g| g.1).collect::<Vec<u32>>(),
        ),
        names.column(fcol::MEMBER)?.clone(),
        names.column(fcol::MEMBER_TYPE)?.clone(),
        facts.column(fcol::ROLE)?.take(&first_idx)?,
    ];
    for (name, values) in std::iter::once(c::SESSIONS)
        .chain(MEMBER_MEASURES)
        .zip(sums)
    {
        columns.push(Column::new(name.into(), values));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// Distinct counted session ids per (month, member): sorted by their hash, equal hashes
/// compared as strings, so that the count is exact.
fn month_sessions(
    facts: &DataFrame,
    members: &MemberKeys,
    counted: &[bool],
    dates: &[i32],
) -> Result<DataFrame> {
    let sessions = facts.column(fcol::SESSION)?.str()?;
    let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let flat: Vec<&str> = sessions.iter().map(|s| s.unwrap_or("")).collect();
    let mut month_sessions: Vec<(i32, u32, u64, u32)> = (0..counted.len())
        .filter(|&r| counted[r])
        .map(|r| {
            (
                crate::facts::month_start(dates[r]),
                members.keys[r],
                hasher.hash_one(flat[r]),
                r as u32,
            )
        })
        .collect();
    month_sessions.sort_unstable();
    let (mut month, mut key, mut count) = (Vec::new(), Vec::new(), Vec::new());
    for (i, s) in month_sessions.iter().enumerate() {
        let same_group = i > 0 && month_sessions[i - 1].0 == s.0 && month_sessions[i - 1].1 == s.1;
        if !same_group {
            month.push(s.0);
            key.push(s.1);
            count.push(0i64);
        }
        // New unless an earlier row of the group has the same hash and the same string.
        let text = |r: u32| flat[r as usize];
        let seen = month_sessions[..i]
            .iter()
            .rev()
            .take_while(|p| (p.0, p.1, p.2) == (s.0, s.1, s.2))
            .any(|p| text(p.3) == text(s.3));
        if !seen {
            *count.last_mut().expect("a group") += 1;
        }
    }
    Ok(DataFrame::new_infer_height(vec![
        date_column(c::MONTH, month)?,
        Column::new(MEMBER_KEY.into(), key),
        Column::new(c::SESSIONS.into(), count),
    ])?)
}

/// `member_monthly`: every (month, member) with activity, plus each roster member with zeros
/// in every month that has any data. Active days are the member's (date, member) rows; sessions
/// are distinct session ids of the month (a session across midnight counts once).
fn monthly(
    month_sessions: DataFrame,
    per_member_day: LazyFrame,
    roster: &Roster,
    members: &[(String, String)],
) -> Result<LazyFrame> {
    let month = || col(fcol::DATE).dt().truncate(lit("1mo")).alias(c::MONTH);
    let keys = || [col(c::MONTH), col(MEMBER_KEY)];
    let active = per_member_day.with_column(month()).select([
        col(c::MONTH),
        col(MEMBER_KEY),
        col(fcol::MEMBER),
        col(fcol::MEMBER_TYPE),
        col(fcol::ROLE),
        col(fcol::SPEND_PICO),
        col(fcol::LINES_ACCEPTED),
        lit(1i64).cast(DataType::Int64).alias(c::ACTIVE_DAYS),
    ]);
    let months: Vec<Option<i32>> = active
        .clone()
        .select([col(c::MONTH).cast(DataType::Int32)])
        .unique_stable(None, UniqueKeepStrategy::Any)
        .collect()?
        .column(c::MONTH)?
        .as_materialized_series()
        .i32()?
        .iter()
        .collect();
    let zeros = roster_zero_rows(&months, roster, members)?;
    let all = concat([active, zeros.lazy()], UnionArgs::default())?;
    let grouped = all
        .group_by(keys())
        .agg([
            col(fcol::MEMBER).first(),
            col(fcol::MEMBER_TYPE).first(),
            col(fcol::ROLE).drop_nulls().first(),
            col(fcol::SPEND_PICO).sum(),
            col(fcol::LINES_ACCEPTED).sum(),
            col(c::ACTIVE_DAYS).sum(),
        ])
        .join(
            month_sessions.lazy(),
            keys(),
            keys(),
            JoinArgs::new(JoinType::Left),
        );
    Ok(sorted(grouped, &[c::MONTH, MEMBER_KEY]).select([
        col(c::MONTH),
        col(fcol::MEMBER).alias(c::MEMBER),
        col(fcol::MEMBER_TYPE).alias(c::MEMBER_TYPE),
        col(fcol::ROLE).alias(c::ROLE),
        spend_usd(),
        i64c(c::LINES_ACCEPTED),
        col(c::SESSIONS).fill_null(lit(0i64)).alias(c::SESSIONS),
        i64c(c::ACTIVE_DAYS),
    ]))
}

/// A zero row per roster member and month, so that members without activity in a month still
/// have their `member_monthly` row.
fn roster_zero_rows(
    months: &[Option<i32>],
    roster: &Roster,
    members: &[(String, String)],
) -> Result<DataFrame> {
    let n = months.len() * roster.members.len();
    let mut zero_month = Vec::with_capacity(n);
    let (mut key, mut name, mut typ, mut role) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in months {
        for r in &roster.members {
            zero_month.push(*m);
            let pair = (r.member.clone(), r.member_type.clone());
            key.push(
                members
                    .binary_search(&pair)
                    .expect("roster members have keys") as u32,
            );
            name.push(pair.0);
            typ.push(pair.1);
            role.push(Some(r.role.clone()));
        }
    }
    Ok(DataFrame::new_infer_height(vec![
        date_column(c::MONTH, zero_month)?,
        Column::new(MEMBER_KEY.into(), key),
        Column::new(fcol::MEMBER.into(), name),
        Column::new(fcol::MEMBER_TYPE.into(), typ),
        Column::new(fcol::ROLE.into(), role),
        Column::new(fcol::SPEND_PICO.into(), vec![0i64; n]),
        Column::new(fcol::LINES_ACCEPTED.into(), vec![0i64; n]),
        Column::new(c::ACTIVE_DAYS.into(), vec![0i64; n]),
    ])?)
}
