//! Late arrivals and shrinking input (contract 4.4), and each stored date's status.
//!
//! Every date a run recomputes gets a status in its commit record (see `pipeline::store`): when and by
//! which run it was recomputed, the last arrival day read for it (`arrival_through`) and how
//! many records it used. A record is late when its object's arrival day is more than
//! `max_arrival_delay_days` after its event date; one that arrived after `arrival_through` is
//! not in the date's facts yet. A run that meets such records for a date it does not recompute
//! records their number in that date's status (`late_since`, `late_seen_by`), warns, and, with
//! healing on, recomputes the date.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::facts::{date_of_days, days_since_epoch, fcol};

/// The status of one stored date.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct DateStatus {
    /// The run that last recomputed the date, and when.
    pub recomputed_by: Option<String>,
    pub recomputed_at: Option<String>,
    /// The last arrival day whose partitions that run read for the date.
    pub arrival_through: Option<NaiveDate>,
    /// Records its facts use.
    pub records_used: u64,
    /// Late records found for the date since (arrived after `arrival_through`), as counted by
    /// the latest run that met them without recomputing the date.
    pub late_since: u64,
    pub late_seen_by: Option<String>,
}

/// Records used per date in a frame of session facts.
pub fn records_by_date(sessions: &DataFrame) -> Result<BTreeMap<NaiveDate, u64>> {
    let days = sessions.column(fcol::DATE)?.cast(&DataType::Int32)?;
    let records = sessions.column(fcol::RECORDS)?.i64()?.clone();
    let mut out = BTreeMap::new();
    for (d, r) in days.i32()?.iter().zip(records.iter()) {
        if let (Some(d), Some(r)) = (d, r) {
            *out.entry(date_of_days(d)).or_default() += r as u64;
        }
    }
    Ok(out)
}

/// Late records not yet in their date's facts: those whose arrival day lies after the date's
/// `arrival_through`, by date. `late` is keyed by (event date, arrival day) in days.
pub fn not_yet_counted(
    late: &BTreeMap<(i32, i32), u64>,
    status: &BTreeMap<NaiveDate, DateStatus>,
) -> BTreeMap<NaiveDate, u64> {
    let mut out = BTreeMap::new();
    for (&(d, a), &n) in late {
        let date = date_of_days(d);
        let through = status
            .get(&date)
            .and_then(|s| s.arrival_through)
            .map(days_since_epoch);
        if through.is_none_or(|t| a > t) {
            *out.entry(date).or_default() += n;
        }
    }
    out
}

/// The shrink guard: dates the run replaces (those of `new`) whose new facts use fewer than
/// half the records of the stored ones, as "D: N stored, M now". A date without new facts is
/// not replaced, so it cannot shrink.
pub fn shrunk(stored: &BTreeMap<NaiveDate, u64>, new: &BTreeMap<NaiveDate, u64>) -> Vec<String> {
    new.iter()
        .filter_map(|(d, &now)| {
            let old = stored.get(d).copied()?;
            (now * 2 < old).then(|| format!("{d}: {old} records stored, {now} now"))
        })
        .collect()
}

/// Dates as contiguous blocks, "A … B" or "A".
pub fn blocks(dates: &[NaiveDate]) -> Vec<String> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &d in dates {
        match out.last_mut() {
            Some((_, end)) if end.succ_opt() == Some(d) => *end = d,
            _ => out.push((d, d)),
        }
    }
    out.into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a} … {b}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn late_records_count_until_a_recompute_has_read_them() {
        let e = days_since_epoch(d("2026-10-10"));
        let late = BTreeMap::from([((e, e + 5), 2), ((e, e + 8), 1), ((e + 1, e + 6), 4)]);
        // No status: all of them.
        let none = not_yet_counted(&late, &BTreeMap::new());
        assert_eq!(
            none,
            BTreeMap::from([(d("2026-10-10"), 3), (d("2026-10-11"), 4)])
        );
        // 10-10 was recomputed reading arrivals through 10-15: only the one of 10-18 is new.
        let status = BTreeMap::from([(
            d("2026-10-10"),
            DateStatus {
                arrival_through: Some(d("2026-10-15")),
                ..Default::default()
            },
        )]);
        let some = not_yet_counted(&late, &status);
        assert_eq!(
            some,
            BTreeMap::from([(d("2026-10-10"), 1), (d("2026-10-11"), 4)])
        );
    }

    #[test]
    fn shrink_is_fewer_than_half() {
        let stored = BTreeMap::from([
            (d("2026-10-01"), 100),
            (d("2026-10-02"), 100),
            (d("2026-10-03"), 9),
        ]);
        let new = BTreeMap::from([
            (d("2026-10-01"), 50),
            (d("2026-10-02"), 49),
            (d("2026-10-04"), 1),
        ]);
        assert_eq!(
            shrunk(&stored, &new),
            vec!["2026-10-02: 100 records stored, 49 now"]
        );
    }

    #[test]
    fn dates_in_blocks() {
        let ds = [
            d("2026-10-01"),
            d("2026-10-02"),
            d("2026-10-03"),
            d("2026-10-07"),
        ];
        assert_eq!(blocks(&ds), vec!["2026-10-01 … 2026-10-03", "2026-10-07"]);
    }
}
