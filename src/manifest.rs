//! The run manifest (contract 5.4), written under `_runs/<run_id>.json`.

use std::collections::BTreeMap;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::ingest::Task;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub lines_read: u64,
    pub lines_parsed: u64,
    pub lines_quarantined: u64,
    pub records_parsed: u64,
    pub records_used: u64,
    pub records_duplicate: u64,
    pub records_outside_range: u64,
    pub records_ignored: u64,
    pub records_rejected: u64,
    /// Lines holding at least one rejected record (they count as parsed).
    pub lines_with_rejected_records: u64,
    pub quarantined_by_reason: BTreeMap<String, u64>,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Rejected records by event date (where their time was known).
    pub rejected_by_date: BTreeMap<String, u64>,
    /// Bad lines (quarantined or holding rejected records) by input prefix and by the arrival
    /// day of their object (`(none)` outside arrival partitions).
    pub bad_lines_by_input: BTreeMap<String, u64>,
    pub bad_lines_by_arrival_day: BTreeMap<String, u64>,
    /// Late records (contract 4.4): their object's arrival day is more than
    /// `max_arrival_delay_days` after their event date. A subset of the records parsed.
    pub records_late: u64,
    pub late_by_date: BTreeMap<String, u64>,
}

impl Counts {
    /// Share of bad lines that `--max-bad-ratio` compares (contract 3.7).
    pub fn bad_ratio(&self) -> f64 {
        if self.lines_read == 0 {
            0.0
        } else {
            (self.lines_quarantined + self.lines_with_rejected_records) as f64
                / self.lines_read as f64
        }
    }
}

/// One input object as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct InputObject<'a> {
    pub key: String,
    pub size: u64,
    pub etag: Option<&'a str>,
    pub last_modified: String,
}

/// The objects a run read, written one by one from the listing itself: a run can read hundreds
/// of thousands, and a second copy of their names would cost hundreds of megabytes.
#[derive(Clone, Default)]
pub struct InputObjects(pub Arc<Vec<Task>>);

impl fmt::Debug for InputObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} input objects", self.0.len())
    }
}

impl InputObject<'_> {
    pub fn of(t: &Task) -> InputObject<'_> {
        let key = t.meta.location.as_ref();
        let rel = key
            .strip_prefix(t.location.prefix.as_ref())
            .unwrap_or(key)
            .trim_start_matches('/');
        InputObject {
            key: format!("{}/{rel}", t.location.url.trim_end_matches('/')),
            size: t.meta.size,
            etag: t.meta.e_tag.as_deref(),
            last_modified: t.meta.last_modified.to_rfc3339(),
        }
    }
}

impl Serialize for InputObjects {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(InputObject::of))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The late records of one event date, as a run met them.
#[derive(Debug, Clone, Serialize)]
pub struct LateDate {
    pub records_late: u64,
    /// Of them, those not in the date's tables after this run (they arrived after the date was
    /// last recomputed, and this run did not recompute it).
    pub not_in_tables: u64,
    pub recomputed: bool,
    pub healed: bool,
    /// When the date was last recomputed before this run (its stored status), if known.
    pub last_recomputed_at: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ObjectCounts {
    pub listed: u64,
    pub not_telemetry: u64,
    /// Listed objects whose arrival day lies outside the window.
    pub skipped_by_arrival_partition: u64,
    /// `year=`/`month=`/`day=` directories outside the window, not listed at all.
    pub partitions_skipped: u64,
    /// Symbolic links in local inputs back to a directory already listed (a loop), not followed.
    pub links_skipped: u64,
    pub read: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub run_id: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
    pub command_line: Vec<String>,
    pub timezone: String,
    pub inputs: Vec<String>,
    pub output: String,
    /// The root of the internal state, when apart from the output root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub dates_recomputed: Vec<String>,
    /// Dates recomputed beside the requested ones because late records arrived for them.
    pub dates_healed: Vec<String>,
    /// Per event date with late records read by this run (contract 4.4).
    pub late_dates: BTreeMap<String, LateDate>,
    pub roles: Vec<String>,
    pub objects: ObjectCounts,
    pub counts: Counts,
    pub input_objects: InputObjects,
    pub outputs: Vec<OutputFile>,
    pub error: Option<String>,
}
