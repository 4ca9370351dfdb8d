//! The run manifest (contract 5.4), written under `_runs/<run_id>.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::source::Location;
use object_store::ObjectMeta;

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

fn add_map(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *to.entry(k.clone()).or_default() += v;
    }
}

impl Counts {
    /// Adds another window's counts.
    pub fn add(&mut self, o: &Counts) {
        self.lines_read += o.lines_read;
        self.lines_parsed += o.lines_parsed;
        self.lines_quarantined += o.lines_quarantined;
        self.records_parsed += o.records_parsed;
        self.records_used += o.records_used;
        self.records_duplicate += o.records_duplicate;
        self.records_outside_range += o.records_outside_range;
        self.records_ignored += o.records_ignored;
        self.records_rejected += o.records_rejected;
        self.lines_with_rejected_records += o.lines_with_rejected_records;
        self.records_late += o.records_late;
        for (to, from) in [
            (&mut self.quarantined_by_reason, &o.quarantined_by_reason),
            (&mut self.rejected_by_reason, &o.rejected_by_reason),
            (&mut self.rejected_by_date, &o.rejected_by_date),
            (&mut self.bad_lines_by_input, &o.bad_lines_by_input),
            (
                &mut self.bad_lines_by_arrival_day,
                &o.bad_lines_by_arrival_day,
            ),
            (&mut self.late_by_date, &o.late_by_date),
        ] {
            add_map(to, from);
        }
    }

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

impl InputObject<'_> {
    pub fn of<'a>(loc: &Location, meta: &'a ObjectMeta) -> InputObject<'a> {
        let key = meta.location.as_ref();
        let rel = key
            .strip_prefix(loc.prefix.as_ref())
            .unwrap_or(key)
            .trim_start_matches('/');
        InputObject {
            key: format!("{}/{rel}", loc.url.trim_end_matches('/')),
            size: meta.size,
            etag: meta.e_tag.as_deref(),
            last_modified: meta.last_modified.to_rfc3339(),
        }
    }
}

/// Objects file lines for the objects of one listing, compressed as they are added (one gzip
/// member of the objects file) into a temporary file (`TMPDIR`, removed when done): a window of
/// millions of small objects holds none of their lines in memory.
pub struct Entries(flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>);

/// A finished gzip member of the objects file, in its temporary file (none: nothing listed).
#[derive(Default)]
pub struct Member(Option<std::fs::File>);

fn temp_io(e: std::io::Error) -> Error {
    Error::Other(format!(
        "objects file: cannot write its temporary part (TMPDIR): {e}"
    ))
}

impl Entries {
    pub fn new() -> Result<Entries> {
        let file = tempfile::tempfile().map_err(temp_io)?;
        Ok(Entries(flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 16, file),
            flate2::Compression::fast(),
        )))
    }

    /// Appends the line of one listed object.
    pub fn add(&mut self, loc: &Location, meta: &ObjectMeta) -> Result<()> {
        use std::io::Write;
        serde_json::to_writer(&mut self.0, &InputObject::of(loc, meta))
            .map_err(|e| Error::Other(e.to_string()))?;
        self.0.write_all(b"\n").map_err(temp_io)
    }

    /// The gzip member.
    pub fn finish(self) -> Result<Member> {
        use std::io::Seek;
        let mut file = self
            .0
            .finish()
            .map_err(temp_io)?
            .into_inner()
            .map_err(|e| temp_io(e.into_error()))?;
        file.rewind().map_err(temp_io)?;
        Ok(Member(Some(file)))
    }
}

/// The objects a run read, streamed to `_runs/<run_id>.objects.jsonl.gz` (contract 5.4,
/// `input_objects_file`) as each window is read: a backfill reads millions of objects, and
/// neither the manifest nor the run's memory should hold them all. Gzip output is taken from the
/// encoder as it is produced and uploaded in parts.
pub struct ObjectsFile {
    writer: object_store::buffered::BufWriter,
    written: bool,
    pub path: String,
}

impl ObjectsFile {
    pub fn new(state: &Location, run_id: &str) -> ObjectsFile {
        let path = format!("_runs/{run_id}.objects.jsonl.gz");
        ObjectsFile {
            writer: object_store::buffered::BufWriter::new(state.store.clone(), state.child(&path)),
            written: false,
            path,
        }
    }

    /// Appends the lines of one window's objects (a gzip member: the file is their
    /// concatenation, which gzip readers read as one stream).
    pub async fn add(&mut self, member: Member) -> Result<()> {
        use std::io::Read;
        let Some(mut file) = member.0 else {
            return Ok(());
        };
        self.written = true;
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            let n = file.read(&mut chunk).map_err(temp_io)?;
            if n == 0 {
                return Ok(());
            }
            chunk.truncate(n);
            self.put(chunk).await?;
        }
    }

    async fn put(&mut self, bytes: Vec<u8>) -> Result<()> {
        let path = self.path.clone();
        self.writer
            .put(bytes.into())
            .await
            .map_err(|e| Error::store(path, e))
    }

    /// Writes the end of the file (an empty gzip member if no window listed anything).
    pub async fn finish(mut self) -> Result<()> {
        if !self.written {
            let empty = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
                .finish()
                .map_err(|e| Error::Other(e.to_string()))?;
            self.put(empty).await?;
        }
        crate::source::finish_upload(&mut self.writer, &self.path).await
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TableMonths {
    pub rebuilt: usize,
    pub reused: usize,
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

impl ObjectCounts {
    /// Adds another window's counts.
    pub fn add(&mut self, o: &ObjectCounts) {
        self.listed += o.listed;
        self.not_telemetry += o.not_telemetry;
        self.skipped_by_arrival_partition += o.skipped_by_arrival_partition;
        self.partitions_skipped += o.partitions_skipped;
        self.links_skipped += o.links_skipped;
        self.read += o.read;
    }
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
    /// Windows of this backfill that an earlier run of it committed (not redone).
    pub windows_skipped: Vec<String>,
    /// Months of the tables rebuilt from their facts, and reused as stored.
    pub table_months: TableMonths,
    /// Per event date with late records read by this run (contract 4.4).
    pub late_dates: BTreeMap<String, LateDate>,
    pub roles: Vec<String>,
    pub objects: ObjectCounts,
    pub counts: Counts,
    /// The objects read, one JSON line each (key, size, etag, last_modified), gzip; relative to
    /// the state root.
    pub input_objects_file: String,
    pub outputs: Vec<OutputFile>,
    pub error: Option<String>,
}
