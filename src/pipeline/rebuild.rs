//! Every table from the stored facts, a month at a time: each per-month table's rows of a month
//! depend on that month's facts alone (the daily tables on their date, the monthly ones on their
//! month), so only one month of facts is in memory, and the tables are the months' rows in
//! order. A month whose facts, roster and dimensions have not changed since its rows were last
//! built is not rebuilt ([`months`]). Adoption folds every month's per-member rows in date order.

use std::time::Instant;

use chrono::NaiveDate;
use polars::prelude::DataFrame;

use crate::config::dimensions::Dimensions;
use crate::config::roster::Roster;
use crate::error::Result;
use crate::facts::{store, FactSet};
use crate::reports::adoption::Adoption;
use crate::reports::{self, months};
use crate::schema::table;
use crate::source::Location;

use months::{DateFiles, Month};

/// What the rebuild did, for the log and the manifest.
#[derive(Default)]
struct Stats {
    rows: usize,
    read_secs: f64,
    rebuilt: usize,
    reused: usize,
    /// Whether the warning about dates stored before a dimension was given.
    warned: bool,
}

/// Every table, in `table::ALL` order; the stored dates; the months (rebuilt, reused).
pub(super) async fn build_tables(
    state: &Location,
    roster: &Roster,
    has_roster: bool,
    dims: &Dimensions,
) -> Result<(
    Vec<(&'static str, months::Rows)>,
    Vec<NaiveDate>,
    (usize, usize),
)> {
    let phase = Instant::now();
    let by_month = months::stored(state).await?;
    let stored: Vec<NaiveDate> = by_month
        .values()
        .flat_map(|dates| dates.iter().map(|(d, _)| *d))
        .collect();
    let last_day = stored
        .last()
        .map_or(0, |d| crate::facts::days_since_epoch(*d));
    let mut stats = Stats::default();
    let mut assembly = Assembly::new(Adoption::new(roster, has_roster, last_day));
    let mut month_list = Vec::new();
    for (month, dates) in &by_month {
        let input = MonthInput {
            state,
            month: *month,
            dates,
            roster,
            dims,
        };
        let t = Instant::now();
        let (rows, fingerprint) = month_rows(&input, &mut stats).await?;
        let got = t.elapsed().as_secs_f64();
        assembly.add(rows)?;
        tracing::debug!(
            "month {}-{:02}: rows in {got:.2}s, folded in {:.2}s",
            month.0,
            month.1,
            t.elapsed().as_secs_f64() - got
        );
        month_list.push(months::MonthRows {
            month: *month,
            fingerprint,
        });
    }
    tracing::debug!("adoption folded by {:.2}s", phase.elapsed().as_secs_f64());
    let tables = assembly.finish(month_list)?;
    tracing::info!(
        "built the tables of {} months from {} stored fact rows ({:.2}s reading), reused {} months, in {:.2}s",
        stats.rebuilt,
        stats.rows,
        stats.read_secs,
        stats.reused,
        phase.elapsed().as_secs_f64()
    );
    Ok((tables, stored, (stats.rebuilt, stats.reused)))
}

/// A month to build: where its facts are and what its tables depend on besides them.
struct MonthInput<'a> {
    state: &'a Location,
    month: Month,
    dates: &'a [DateFiles],
    roster: &'a Roster,
    dims: &'a Dimensions,
}

/// A month's rows of every per-month table and its per-member rows: the stored ones when the
/// month's fingerprint is unchanged, else rebuilt from its facts and stored.
async fn month_rows(
    m: &MonthInput<'_>,
    stats: &mut Stats,
) -> Result<(Vec<(&'static str, DataFrame)>, String)> {
    let fp = months::fingerprint_of(m.dates, m.roster, m.dims);
    if let Some(t) = months::load(m.state, m.month, &fp).await? {
        stats.reused += 1;
        return Ok((t, fp));
    }
    let tables = build_month(m, stats).await?;
    months::save(m.state, m.month, &fp, &tables).await?;
    stats.rebuilt += 1;
    Ok((tables, fp))
}

/// A month's tables from its stored facts, one kind of fact at a time: each kind is read,
/// folded into its tables and dropped before the next is read, and the memory it took is handed
/// back to the system (a month of a large organisation's facts is GBs).
async fn build_month(
    m: &MonthInput<'_>,
    stats: &mut Stats,
) -> Result<Vec<(&'static str, DataFrame)>> {
    let [sessions, models, tools] = FactSet::NAMES;
    let (mut tables, edits) = {
        let facts = read_kind(m, sessions, stats).await?;
        stats.rows += facts.height();
        reports::daily::session_tables(&facts, m.roster, m.dims)?
    };
    crate::memory::release();
    let facts = read_kind(m, models, stats).await?;
    tables.extend(reports::daily::model_tables(&facts)?);
    drop(facts);
    crate::memory::release();
    let facts = read_kind(m, tools, stats).await?;
    tables.extend(reports::daily::tool_tables(&facts, edits)?);
    drop(facts);
    crate::memory::release();
    tracing::debug!(
        "peak RSS after the tables of {}-{:02}: {}",
        m.month.0,
        m.month.1,
        crate::memory::peak_rss()
    );
    Ok(reports::daily::in_table_order(tables))
}

/// A month's stored facts of one kind, stacked; session facts with exactly the run's dimension
/// columns.
async fn read_kind(m: &MonthInput<'_>, name: &str, stats: &mut Stats) -> Result<DataFrame> {
    let t = Instant::now();
    let mut frames = store::read_frame(m.state, m.dates, name).await?;
    if name == FactSet::NAMES[0] {
        frames = frames
            .into_iter()
            .map(|f| with_run_dimensions(f, m.month, m.dims, stats))
            .collect::<Result<_>>()?;
    }
    let stacked = crate::facts::stack_frames(frames)?;
    stats.read_secs += t.elapsed().as_secs_f64();
    Ok(stacked)
}

/// A date's session facts with exactly the run's dimension columns; a warning, once, for a date
/// stored before a dimension was configured.
fn with_run_dimensions(
    sessions: DataFrame,
    month: Month,
    dims: &Dimensions,
    stats: &mut Stats,
) -> Result<DataFrame> {
    let (sessions, missing) = crate::facts::sessions_with_dimensions(sessions, dims)?;
    if missing && !stats.warned {
        stats.warned = true;
        tracing::warn!(
            "dates stored before a dimension was configured (the first in {}-{:02}) carry no telemetry values for it: they use the roster's column or (none); recompute them with run --from … --to … to attribute them from telemetry",
            month.0,
            month.1
        );
    }
    Ok(sessions)
}

/// The tables as the months come in: the rows of the tables held whole, adoption folded.
struct Assembly {
    parts: Vec<(&'static str, Vec<DataFrame>)>,
    adoption: Adoption,
}

impl Assembly {
    fn new(adoption: Adoption) -> Assembly {
        Assembly {
            parts: table::MONTHLY.iter().map(|n| (*n, Vec::new())).collect(),
            adoption,
        }
    }

    fn add(&mut self, tables: Vec<(&'static str, DataFrame)>) -> Result<()> {
        for (name, df) in tables {
            if name == table::MEMBER_DAYS {
                self.adoption.add_month(&df)?;
            } else if !months::STREAMED.contains(&name) {
                // Streamed tables are read back month by month when written.
                let p = self
                    .parts
                    .iter_mut()
                    .find(|(n, _)| *n == name)
                    .expect("a monthly table");
                p.1.push(df);
            }
        }
        Ok(())
    }

    /// Every table in `table::ALL` order: the months' rows stacked, streamed tables by their
    /// months, then adoption's two.
    fn finish(
        self,
        month_list: Vec<months::MonthRows>,
    ) -> Result<Vec<(&'static str, months::Rows)>> {
        let mut tables = self
            .parts
            .into_iter()
            .map(|(name, p)| {
                if months::STREAMED.contains(&name) {
                    return Ok((name, months::Rows::Months(month_list.clone())));
                }
                Ok((name, months::Rows::Whole(stack(p)?)))
            })
            .collect::<Result<Vec<_>>>()?;
        let (daily_adoption, members) = self.adoption.finish()?;
        tables.push((table::DAILY_ADOPTION, months::Rows::Whole(daily_adoption)));
        tables.push((table::MEMBERS, months::Rows::Whole(members)));
        debug_assert!(tables.iter().map(|t| t.0).eq(table::ALL));
        Ok(tables)
    }
}

/// The months' rows of one table, one after the other.
fn stack(parts: Vec<DataFrame>) -> Result<DataFrame> {
    let mut it = parts.into_iter();
    let mut df = it.next().expect("a month at least");
    for more in it {
        df.vstack_mut_owned(more)?;
    }
    df.rechunk_mut();
    Ok(df)
}
