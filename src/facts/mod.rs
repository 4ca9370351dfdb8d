//! Records → daily facts: deduplication (3.3), metric increments (3.4), identity per session (3.5),
//! the events-before-metrics rule per (session, day) (3.6). Records are folded into partial sums
//! as objects are merged, so memory grows with sessions and days, not with records.
//!
//! A fact row is one (date, member, session, model, tool) with its measures; every report is a
//! group-by over facts, so facts stored by earlier runs rebuild the reports without raw input.

mod accumulate;
mod identity;
pub mod late;
pub mod store;
#[cfg(test)]
pub(crate) mod tests;

pub use accumulate::Accumulator;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::Result;

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
    /// The smallest `organization.id` and `terminal.type` of a (session, day)'s records.
    pub const ORGANIZATION_ID: &str = "organization_id";
    pub const TERMINAL_TYPE: &str = "terminal_type";
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
    /// Measures of the per-model facts: requests, spend and the four token counts.
    pub const MODEL_MEASURES: [&str; 6] = crate::schema::first(MEASURES);
    /// The edit measures, in the order of the tables that list them (`member_daily`,
    /// `daily_by_dimension`).
    pub const EDIT_MEASURES: [&str; 6] = [
        LINES_ACCEPTED,
        LINES_REMOVED,
        ACCEPTED,
        REJECTED,
        COMMITS,
        PULL_REQUESTS,
    ];
    /// Measures of the per-tool facts.
    pub const TOOL_MEASURES: [&str; 2] = [ACCEPTED, REJECTED];
}

pub const PICO_PER_USD: f64 = 1e12;

/// A resolved member: display identity, type, roster role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub name: String,
    pub member_type: String,
    pub role: Option<String>,
}

/// Facts at the three grains the reports need, each row with its date:
/// - `sessions`: one row per (date, member, session) with every measure, records without a
///   session as one row per (date, member); every date with records has rows here;
/// - `models`: per (date, model), the spend measures;
/// - `tools`: per (date, edit tool), the decisions.
///
/// Finer rows (per session and model, say) would only be summed away again: a year of a large
/// organisation's facts stays a few million rows.
#[derive(Clone)]
pub struct FactSet {
    pub sessions: DataFrame,
    pub models: DataFrame,
    pub tools: DataFrame,
}

impl FactSet {
    /// The stored names of the frames, in the order of `from_frames`.
    pub const NAMES: [&'static str; 3] = ["sessions", "models", "tools"];

    /// The frames by their stored names.
    pub fn named(&self) -> [(&'static str, &DataFrame); 3] {
        let [a, b, c] = Self::NAMES;
        [(a, &self.sessions), (b, &self.models), (c, &self.tools)]
    }

    /// Builds a set from frames in the order of `named`.
    pub fn from_frames(mut frames: Vec<DataFrame>) -> FactSet {
        let tools = frames.pop().expect("three frames");
        let models = frames.pop().expect("three frames");
        let sessions = frames.pop().expect("three frames");
        FactSet {
            sessions,
            models,
            tools,
        }
    }

    /// Each date's rows, keyed by date. The frames come sorted by date, so each is cut into
    /// slices in one pass (a filter per date reads every frame once per date: a year-long
    /// backfill's 365 dates times millions of rows). A frame that is not sorted is filtered.
    pub fn by_date(&self) -> Result<BTreeMap<NaiveDate, FactSet>> {
        /// Each date's (first row, rows) when the frame is sorted by date without nulls.
        fn runs(df: &DataFrame) -> Result<Option<BTreeMap<i32, (usize, usize)>>> {
            let mut out: Vec<(i32, usize, usize)> = Vec::new();
            let days = df.column(fcol::DATE)?.cast(&DataType::Int32)?;
            for (i, d) in days.i32()?.iter().enumerate() {
                let Some(d) = d else { return Ok(None) };
                match out.last_mut() {
                    Some((last, _, len)) if *last == d => *len += 1,
                    Some((last, _, _)) if *last > d => return Ok(None),
                    _ => out.push((d, i, 1)),
                }
            }
            Ok(Some(
                out.into_iter().map(|(d, at, n)| (d, (at, n))).collect(),
            ))
        }
        let frames = self.named().map(|(_, df)| df);
        let cuts = frames
            .iter()
            .map(|df| runs(df))
            .collect::<Result<Vec<_>>>()?;
        let mut dates = std::collections::BTreeSet::new();
        for (df, cut) in frames.iter().zip(&cuts) {
            match cut {
                Some(c) => dates.extend(c.keys().map(|&d| date_of_days(d))),
                None => dates.extend(FactSet::dates_of(df)?),
            }
        }
        let mut out = BTreeMap::new();
        for date in dates {
            let day = days_since_epoch(date);
            let mut picked = Vec::with_capacity(3);
            for (df, cut) in frames.iter().zip(&cuts) {
                picked.push(match cut {
                    Some(c) => match c.get(&day) {
                        Some(&(at, n)) => df.slice(at as i64, n),
                        None => df.clear(),
                    },
                    None => (*df)
                        .clone()
                        .lazy()
                        .filter(col(fcol::DATE).eq(lit(date)))
                        .collect()?,
                });
            }
            out.insert(date, FactSet::from_frames(picked));
        }
        Ok(out)
    }

    /// The dates a frame has rows for, in order.
    fn dates_of(df: &DataFrame) -> Result<Vec<NaiveDate>> {
        let d = df.column(fcol::DATE)?.unique()?.sort(Default::default())?;
        Ok(d.as_materialized_series()
            .date()?
            .as_date_iter()
            .flatten()
            .collect())
    }

    /// The same frames without rows: the facts of a date with none.
    pub fn empty(&self) -> FactSet {
        FactSet {
            sessions: self.sessions.clear(),
            models: self.models.clear(),
            tools: self.tools.clear(),
        }
    }

    /// The rows of one date, by filtering (what `by_date` must agree with).
    #[cfg(test)]
    pub fn on(&self, d: NaiveDate) -> Result<FactSet> {
        let pick = |df: &DataFrame| {
            df.clone()
                .lazy()
                .filter(col(fcol::DATE).eq(lit(d)))
                .collect()
        };
        Ok(FactSet {
            sessions: pick(&self.sessions)?,
            models: pick(&self.models)?,
            tools: pick(&self.tools)?,
        })
    }

    /// The dates that have rows, in order.
    pub fn dates(&self) -> Result<Vec<NaiveDate>> {
        FactSet::dates_of(&self.sessions)
    }
}

/// A session frame with exactly these dimensions' columns, in the order facts are written: a
/// date stored before a dimension was configured gets none for it (the roster fallback then
/// applies), and is reported by returning true.
pub fn sessions_with_dimensions(
    mut sessions: DataFrame,
    dims: &crate::config::dimensions::Dimensions,
) -> Result<(DataFrame, bool)> {
    let mut missing = false;
    let mut order: Vec<String> = [
        fcol::DATE,
        fcol::MEMBER,
        fcol::MEMBER_TYPE,
        fcol::ROLE,
        fcol::SESSION,
        fcol::AGENTS,
        fcol::ORGANIZATION_ID,
        fcol::TERMINAL_TYPE,
    ]
    .map(String::from)
    .to_vec();
    for d in &dims.dims {
        let name = crate::config::dimensions::fact_column(&d.name);
        if sessions.column(&name).is_err() {
            missing = true;
            let nulls =
                Column::full_null(name.as_str().into(), sessions.height(), &DataType::String);
            sessions.with_column(nulls)?;
        }
        order.push(name);
    }
    order.extend(fcol::MEASURES.map(String::from));
    Ok((sessions.select(order)?, missing))
}

/// Frames of one kind stacked, their chunks appended, not copied (a month of a large
/// organisation's facts is large).
pub fn stack_frames(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let args = UnionArgs {
        rechunk: false,
        ..Default::default()
    };
    Ok(concat(
        frames.into_iter().map(DataFrame::lazy).collect::<Vec<_>>(),
        args,
    )?
    .collect()?)
}

/// Facts and the record counts of the transform.
pub struct Facts {
    pub set: FactSet,
    pub records_used: u64,
    pub records_outside_range: u64,
    /// Records left out as implausible after decoding (counted as rejected).
    pub records_implausible: u64,
}

/// `a + b`, or an error: sums of plausible values never pass 2^63, so one that would is refused
/// rather than wrapped.
fn sum2(a: i64, b: i64) -> Result<i64> {
    a.checked_add(b).ok_or_else(|| {
        crate::Error::Other(
            "a session's sums pass what a 64-bit integer holds: implausible input".into(),
        )
    })
}

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// A Date column from day counts since 1970-01-01 (`i32` or `Option<i32>`).
pub fn date_column<T>(name: &str, days: Vec<T>) -> PolarsResult<Column>
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), days).cast(&DataType::Date)
}

/// The date of a day count since 1970-01-01 (the inverse of `days_since_epoch`).
/// The first day of the month of a day (both as days since 1970-01-01).
pub fn month_start(day: i32) -> i32 {
    use chrono::Datelike;
    days_since_epoch(date_of_days(day).with_day(1).expect("day 1 exists"))
}

pub fn date_of_days(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163).expect("a date within range")
}

fn to_pico(usd: f64) -> i64 {
    (usd * PICO_PER_USD).round() as i64
}
