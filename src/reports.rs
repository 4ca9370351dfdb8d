//! Facts → the seven output tables of contract 5.2, with their exact names, order and types.

use polars::prelude::*;

use crate::error::Result;
use crate::facts::{fcol, FactSet, PICO_PER_USD};
use crate::roster::Roster;
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

fn to_usd(mut df: DataFrame) -> Result<DataFrame> {
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
/// but spend, which facts hold in 1e-12 USD).
const SPEND_MEASURES: [&str; 6] = [
    fcol::REQUESTS,
    fcol::SPEND_PICO,
    fcol::INPUT_TOKENS,
    fcol::OUTPUT_TOKENS,
    fcol::CACHE_READ_TOKENS,
    fcol::CACHE_CREATION_TOKENS,
];
/// `member_daily`'s measures after `sessions`, in the contract's column order.
const MEMBER_MEASURES: [&str; 12] = [
    fcol::LINES_ACCEPTED,
    fcol::LINES_REMOVED,
    fcol::ACCEPTED,
    fcol::REJECTED,
    fcol::COMMITS,
    fcol::PULL_REQUESTS,
    fcol::REQUESTS,
    fcol::SPEND_PICO,
    fcol::INPUT_TOKENS,
    fcol::OUTPUT_TOKENS,
    fcol::CACHE_READ_TOKENS,
    fcol::CACHE_CREATION_TOKENS,
];

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

/// All seven tables, in `table::ALL` order.
pub fn build(facts: &FactSet, roster: &Roster) -> Result<Vec<(&'static str, DataFrame)>> {
    let f = facts.sessions.clone().lazy();
    let date = || col(fcol::DATE);

    // Per (date, member): a session has one member, and one row per date in the facts, so
    // counting rows counts distinct sessions; and each (date, member) row is one active user.
    let per_member_day = f
        .clone()
        .group_by([date(), col(fcol::MEMBER), col(fcol::MEMBER_TYPE)])
        .agg(
            [
                col(fcol::ROLE).first(),
                counted_session()
                    .cast(DataType::Int64)
                    .sum()
                    .alias(c::SESSIONS),
            ]
            .into_iter()
            .chain(sums(&MEMBER_MEASURES))
            .collect::<Vec<_>>(),
        )
        // Computed once: every table but two derives from it.
        .collect()?
        .lazy();
    let per_date = per_member_day
        .clone()
        .group_by([date()])
        .agg([
            len().alias(c::ACTIVE_USERS),
            col(c::SESSIONS).sum(),
            col(fcol::SPEND_PICO).sum(),
            col(fcol::LINES_ACCEPTED).sum(),
            col(fcol::LINES_REMOVED).sum(),
            col(fcol::ACCEPTED).sum(),
            col(fcol::REJECTED).sum(),
        ])
        .cache();

    let daily_activity = sorted(
        per_date
            .clone()
            .select([date(), i64c(c::ACTIVE_USERS), i64c(c::SESSIONS)]),
        &[c::DATE],
    );
    let daily_spend = sorted(
        per_date
            .clone()
            .select([date(), i64c(c::ACTIVE_USERS), spend_usd()]),
        &[c::DATE],
    );
    let daily_lines = sorted(
        per_date
            .clone()
            .select([date(), i64c(c::LINES_ACCEPTED), i64c(c::LINES_REMOVED)]),
        &[c::DATE],
    );

    let daily_spend_by_model = sorted(
        facts
            .models
            .clone()
            .lazy()
            .group_by([date(), col(fcol::MODEL)])
            .agg(sums(&SPEND_MEASURES))
            .select(
                [
                    vec![date(), col(fcol::MODEL).alias(c::MODEL)],
                    outputs(&SPEND_MEASURES),
                ]
                .concat(),
            ),
        &[c::DATE, c::MODEL],
    );

    let rate_cols = || {
        let total = col(c::ACCEPTED) + col(c::REJECTED);
        [
            date(),
            col(c::TOOL),
            i64c(c::ACCEPTED),
            i64c(c::REJECTED),
            when(total.clone().gt(lit(0)))
                .then(col(c::ACCEPTED).cast(DataType::Float64) / total.cast(DataType::Float64))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(c::ACCEPT_RATE),
        ]
    };
    let tool_rows = facts
        .tools
        .clone()
        .lazy()
        .group_by([date(), col(fcol::TOOL).alias(c::TOOL)])
        .agg([col(fcol::ACCEPTED).sum(), col(fcol::REJECTED).sum()])
        .filter((col(c::ACCEPTED) + col(c::REJECTED)).gt(lit(0)))
        .select(rate_cols());
    let all_rows = per_date
        .clone()
        .with_column(lit(ALL_TOOLS).alias(c::TOOL))
        .select(rate_cols());
    let daily_accept_rate = sorted(
        concat([tool_rows, all_rows], UnionArgs::default())?,
        &[c::DATE, c::TOOL],
    );

    let member_daily = sorted(
        per_member_day.clone().select(
            [
                vec![
                    date(),
                    col(fcol::MEMBER).alias(c::MEMBER),
                    col(fcol::MEMBER_TYPE).alias(c::MEMBER_TYPE),
                    col(fcol::ROLE).alias(c::ROLE),
                    i64c(c::SESSIONS),
                ],
                outputs(&MEMBER_MEASURES),
            ]
            .concat(),
        ),
        &[c::DATE, c::MEMBER, c::MEMBER_TYPE],
    );

    let member_monthly = sorted(
        monthly(&facts.sessions, per_member_day, roster)?,
        &[c::MONTH, c::MEMBER, c::MEMBER_TYPE],
    );

    let tables = [
        (table::DAILY_ACTIVITY, daily_activity),
        (table::DAILY_SPEND, daily_spend),
        (table::DAILY_SPEND_BY_MODEL, daily_spend_by_model),
        (table::DAILY_ACCEPT_RATE, daily_accept_rate),
        (table::DAILY_LINES, daily_lines),
        (table::MEMBER_DAILY, member_daily),
        (table::MEMBER_MONTHLY, member_monthly),
    ];
    let mut out = Vec::with_capacity(tables.len());
    for (name, lf) in tables {
        let t = std::time::Instant::now();
        out.push((name, to_usd(lf.collect()?)?));
        tracing::debug!("table {name} in {:.2}s", t.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// `member_monthly`: every (month, member) with activity, plus each roster member with zeros
/// in every month that has any data. Active days are the member's (date, member) rows; sessions
/// are distinct session ids of the month (a session across midnight counts once).
fn monthly(sessions: &DataFrame, per_member_day: LazyFrame, roster: &Roster) -> Result<LazyFrame> {
    let month = || col(fcol::DATE).dt().truncate(lit("1mo")).alias(c::MONTH);
    let keys = || [col(c::MONTH), col(fcol::MEMBER), col(fcol::MEMBER_TYPE)];
    let active = per_member_day.with_column(month()).select([
        col(c::MONTH),
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
    let n = months.len() * roster.members.len();
    let mut zero_month = Vec::with_capacity(n);
    let (mut name, mut typ, mut role) = (Vec::new(), Vec::new(), Vec::new());
    for m in &months {
        for r in &roster.members {
            zero_month.push(*m);
            name.push(r.member.clone());
            typ.push(r.member_type.clone());
            role.push(Some(r.role.clone()));
        }
    }
    let zeros = DataFrame::new_infer_height(vec![
        Column::new(c::MONTH.into(), zero_month).cast(&DataType::Date)?,
        Column::new(fcol::MEMBER.into(), name),
        Column::new(fcol::MEMBER_TYPE.into(), typ),
        Column::new(fcol::ROLE.into(), role),
        Column::new(fcol::SPEND_PICO.into(), vec![0i64; n]),
        Column::new(fcol::LINES_ACCEPTED.into(), vec![0i64; n]),
        Column::new(c::ACTIVE_DAYS.into(), vec![0i64; n]),
    ])?;
    let month_sessions = sessions
        .clone()
        .lazy()
        .filter(counted_session())
        .select([
            month(),
            col(fcol::MEMBER),
            col(fcol::MEMBER_TYPE),
            col(fcol::SESSION),
        ])
        .unique(None, UniqueKeepStrategy::Any)
        .group_by(keys())
        .agg([len().cast(DataType::Int64).alias(c::SESSIONS)]);
    let all = concat([active, zeros.lazy()], UnionArgs::default())?;
    Ok(all
        .group_by(keys())
        .agg([
            col(fcol::ROLE).drop_nulls().first(),
            col(fcol::SPEND_PICO).sum(),
            col(fcol::LINES_ACCEPTED).sum(),
            col(c::ACTIVE_DAYS).sum(),
        ])
        .join(
            month_sessions,
            keys(),
            keys(),
            JoinArgs::new(JoinType::Left),
        )
        .select([
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
