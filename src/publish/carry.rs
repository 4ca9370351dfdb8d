//! The streamed tables' files (`months::STREAMED`), written month by month, and the months a run
//! does not change carried into them early. A nightly run changes one month of tables that hold
//! a year or more, and writing the other months' kept bytes into the new all-dates files is most
//! of its writing (gigabytes for a large organisation): [`Carry`] copies them while the run
//! decodes and builds, when the disk is idle. What it copied is used only if the months are
//! still the ones the run publishes (each month named by its kept key, which names the month's
//! fingerprint); else it is discarded and the files are written as if nothing was carried.

use std::collections::VecDeque;
use std::io::Read;

use chrono::{Datelike, NaiveDate};
use polars::prelude::DataFrame;

use super::folders::{encode_month, forms_of, streamed_rels, Form};
use super::{reuse, StagedFile};
use crate::config::dimensions::Dimensions;
use crate::config::roster::Roster;
use crate::error::Result;
use crate::policy::Policy;
use crate::reports::months::{self, Encoded, Month, MonthRows};
use crate::sink::{csv_part, ParquetParts};
use crate::source::Location;

/// A kept CSV month is decompressed into its file this many bytes at a time (a month of a large
/// organisation's per-member rows is hundreds of MB).
const COPY_PART: usize = 8 << 20;

/// A streamed table's Parquet and CSV files in one form, written month by month.
pub(super) struct FormFiles {
    pub(super) parquet: StagedFile,
    pub(super) csv: StagedFile,
    pq: ParquetParts,
    pub(super) rows: u64,
    /// The kept key of each month written, in order.
    pub(super) keys: Vec<String>,
    /// The CSV file's layout so far: its header, and where each month written ends.
    layout: reuse::Layout,
    /// A reused CSV file's months after those written (key hash, end): already in the file.
    ahead: VecDeque<(u64, u64)>,
    /// Where the months written end in the CSV file (before `ahead`).
    csv_at: u64,
}

impl FormFiles {
    /// Starts the files of table `name` in `form` (`columns_of`: the table's columns), to be
    /// published at `rels` (Parquet, CSV), for the months of kept keys `plan` first: the CSV
    /// header written, or on a local disk a replaced CSV file that begins with the most of
    /// those months reused (`reuse`).
    pub(super) async fn open(
        (state, run_id): (&Location, &str),
        name: &str,
        (form, columns_of, policy): (&Form, &DataFrame, &Policy),
        rels: [String; 2],
        plan: &[String],
    ) -> Result<FormFiles> {
        let mut header = form.apply(&columns_of.clear(), policy)?;
        let parquet = StagedFile::new(state, run_id, &rels[0]);
        let head = csv_part(&mut header, true)?;
        let layout = reuse::Layout {
            header: (reuse::key_hash_bytes(&head), head.len() as u64),
            months: Vec::new(),
        };
        let reused = StagedFile::local_path(state, run_id, &rels[1]).and_then(|to| {
            let ahead = reuse::take(state, run_id, name, layout.header, plan, &to)?;
            Some((to, ahead))
        });
        let (csv, ahead) = match reused {
            Some((to, ahead)) => {
                let len = ahead.back().map_or(layout.header.1, |m| m.1);
                tracing::debug!(
                    "{}: reusing {} months ({len} bytes) of a replaced file",
                    rels[1],
                    ahead.len()
                );
                (StagedFile::reuse(to, &rels[1], len)?, ahead)
            }
            None => {
                let mut csv = StagedFile::new(state, run_id, &rels[1]);
                csv.write(head).await?;
                (csv, VecDeque::new())
            }
        };
        let pq = ParquetParts::new(&header, name, Some(run_id))?;
        Ok(FormFiles {
            parquet,
            csv,
            pq,
            rows: 0,
            keys: Vec::new(),
            csv_at: layout.header.1,
            layout,
            ahead,
        })
    }

    /// Whether the next month, of kept key `key`, is the next of the reused file's months.
    fn reused_next(&self, key: &str) -> bool {
        self.ahead.front().map(|m| m.0) == Some(reuse::key_hash(key))
    }

    /// Starts the CSV rows of the month of kept key `key`: true when they are in the file
    /// already (the next reused month, taken as it is); else the reused months left are cut
    /// off, and the rows are to be written.
    fn csv_month(&mut self, key: &str) -> Result<bool> {
        if self.reused_next(key) {
            let (_, end) = self.ahead.pop_front().expect("a next month");
            self.csv_at = end;
            return Ok(true);
        }
        if !self.ahead.is_empty() {
            self.csv.cut(self.csv_at)?;
            self.ahead.clear();
        }
        Ok(false)
    }

    /// Ends the month of kept key `key` (its rows written or reused).
    fn month_done(&mut self, key: &str, rows: u64) {
        if self.ahead.is_empty() {
            self.csv_at = self.csv.bytes();
        }
        self.layout.months.push((reuse::key_hash(key), self.csv_at));
        self.rows += rows;
        self.keys.push(key.to_string());
    }

    /// Appends the month's kept encodings (`months::kept`): its Parquet pages and its CSV rows,
    /// decompressed a part at a time (none when the reused file holds them). False, with
    /// nothing written, when they are not both there or were kept with other columns than this
    /// file's (not made by this version).
    pub(super) async fn copy_kept(
        &mut self,
        state: &Location,
        month: Month,
        key: &str,
    ) -> Result<bool> {
        let csv = if self.reused_next(key) {
            None
        } else {
            match months::kept(state, month, key, Encoded::Csv).await {
                Some(csv) => Some(csv),
                None => return Ok(false),
            }
        };
        let Some(pq_alone) = months::kept(state, month, key, Encoded::Parquet).await else {
            return Ok(false);
        };
        let Some((pq_bytes, rows)) = self.pq.copy(pq_alone)? else {
            return Ok(false);
        };
        self.parquet.write(pq_bytes).await?;
        let in_file = self.csv_month(key)?;
        if let (false, Some(csv)) = (in_file, csv) {
            let mut parts = decompress_aside(csv);
            while let Some(part) = parts.recv().await {
                let part = part.map_err(|e| {
                    crate::Error::Other(format!("the kept CSV rows of {month:?} ({key}): {e}"))
                })?;
                self.csv.write(part).await?;
            }
        }
        self.month_done(key, rows);
        Ok(true)
    }

    /// Appends the month encoded now from its stored rows, and keeps its encodings for the
    /// next runs.
    pub(super) async fn append_encoded(
        &mut self,
        (name, month, key): (&'static str, &MonthRows, &str),
        (form, policy): (&Form, &Policy),
        state: &Location,
    ) -> Result<()> {
        let (p, c, kept_csv) = encode_month(name, month, form, state, policy).await?;
        months::keep(state, month.month, key, Encoded::Parquet, p.clone()).await?;
        months::keep(state, month.month, key, Encoded::Csv, kept_csv).await?;
        // The month's rows and encoders' buffers, freed, go back before the next month is
        // encoded (a first run encodes every month).
        crate::memory::release();
        crate::memory::keep_freed();
        let (pq_bytes, rows) = match self.pq.copy(p)? {
            Some(copied) => copied,
            // The month's rows have other columns than the table's first month: encoded into
            // the file as they are.
            None => {
                let part = months::part(state, month.month, name).await?;
                let mut df = form.apply(&part, policy)?;
                (self.pq.write(&mut df)?, df.height() as u64)
            }
        };
        self.parquet.write(pq_bytes).await?;
        if !self.csv_month(key)? {
            self.csv.write(c).await?;
        }
        self.month_done(key, rows);
        Ok(())
    }

    /// Ends both files (a reused CSV file cut after the months written, its layout recorded
    /// for the runs after); returns their sizes (Parquet, CSV) and the rows.
    pub(super) async fn finish(mut self) -> Result<(u64, u64, u64)> {
        if !self.ahead.is_empty() {
            self.csv.cut(self.csv_at)?;
        }
        self.parquet.write(self.pq.finish()?).await?;
        let csv_path = self.csv.path().map(std::path::Path::to_path_buf);
        let sizes = (self.parquet.finish().await?, self.csv.finish().await?);
        if let Some(p) = csv_path {
            reuse::record(&p, &self.layout);
        }
        Ok((sizes.0, sizes.1, self.rows))
    }

    /// Discards both files.
    pub(super) async fn abort(self) {
        self.parquet.abort().await;
        self.csv.abort().await;
    }
}

/// The CSV rows of a kept encoding, decompressed a part at a time on a thread of its own at the
/// lowest CPU priority: a carry runs while the run decodes on every core, and must take only
/// what the decoding leaves (its copying waits for the disk more than for the CPU).
fn decompress_aside(kept: bytes::Bytes) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    std::thread::spawn(move || {
        // On Linux a thread's own nice value (`who` 0 is the calling thread).
        // SAFETY: setpriority only reads its arguments.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        let mut rows = match zstd::stream::read::Decoder::new(&kept[..]) {
            Ok(d) => d,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut part = Vec::with_capacity(COPY_PART);
            match (&mut rows).take(COPY_PART as u64).read_to_end(&mut part) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.blocking_send(Ok(part)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// A streamed table's files in one form, with the months carried into them.
pub(super) struct Carried {
    pub(super) name: &'static str,
    pub(super) form: Form,
    pub(super) files: FormFiles,
}

/// The months carried early into a run's streamed table files, being copied in the background.
pub struct Carry(Option<tokio::task::JoinHandle<Vec<Carried>>>);

/// What a carry needs to know of the run: what the publishing will need, and the first date the
/// run recomputes, if any (its month and those after it are left for the publishing).
pub struct CarryPlan<'a> {
    pub state: &'a Location,
    pub run_id: &'a str,
    pub policy: &'a Policy,
    pub roles: &'a [String],
    pub roster: &'a Roster,
    pub dims: &'a Dimensions,
    pub first_date: Option<NaiveDate>,
}

impl Carry {
    /// Nothing carried: the publishing writes every month.
    pub fn none() -> Carry {
        Carry(None)
    }

    /// Starts copying, in the background, the stored months before the first month of the
    /// run's dates into the new files of every form of every streamed table, as far as their
    /// encodings are kept.
    pub fn start(plan: CarryPlan<'_>) -> Carry {
        let owned = Owned {
            state: plan.state.clone(),
            run_id: plan.run_id.to_string(),
            policy: plan.policy.clone(),
            roles: plan.roles.to_vec(),
            roster: plan.roster.clone(),
            dims: plan.dims.clone(),
            first_changed: plan
                .first_date
                .map_or((i32::MAX, 12), |d| (d.year(), d.month())),
        };
        Carry(Some(tokio::spawn(owned.carry())))
    }

    /// What was carried, once the copying is done.
    pub(super) async fn take(mut self) -> Vec<Carried> {
        match self.0.take() {
            None => Vec::new(),
            Some(task) => task.await.unwrap_or_else(|e| {
                tracing::warn!("copying the unchanged months early failed ({e}): they are copied when the tables are written");
                Vec::new()
            }),
        }
    }

    /// Discards what was carried (a run that publishes nothing).
    pub async fn discard(self) {
        for c in self.take().await {
            c.files.abort().await;
        }
    }
}

/// A run that fails before it publishes stops the copying at once: it must not go on writing
/// into the staging once the run has let the lease go.
impl Drop for Carry {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// A carry's own copy of what it needs (it runs beside the run).
struct Owned {
    state: Location,
    run_id: String,
    policy: Policy,
    roles: Vec<String>,
    roster: Roster,
    dims: Dimensions,
    first_changed: Month,
}

impl Owned {
    async fn carry(self) -> Vec<Carried> {
        let t = std::time::Instant::now();
        let stored = match months::stored(&self.state).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("nothing copied early: {e}");
                return Vec::new();
            }
        };
        let list: Vec<MonthRows> = stored
            .iter()
            .map(|(m, dates)| MonthRows {
                month: *m,
                fingerprint: months::fingerprint_of(dates, &self.roster, &self.dims),
            })
            .collect();
        let unchanged: Vec<&MonthRows> = list
            .iter()
            .take_while(|m| m.month < self.first_changed)
            .collect();
        let Some(first) = list.first().filter(|_| !unchanged.is_empty()) else {
            return Vec::new();
        };
        let access: Vec<_> = self
            .roles
            .iter()
            .map(|r| {
                self.policy
                    .access(r)
                    .expect("selected roles may see something")
            })
            .collect();
        let mut out = Vec::new();
        for name in months::STREAMED {
            let columns_of = match months::columns(&self.state, first.month, name).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("{name}: nothing copied early: {e}");
                    continue;
                }
            };
            for (form, who) in forms_of(name, &columns_of, &access) {
                let rels = streamed_rels(&self.roles[who[0]], name);
                match self
                    .carry_form(name, (&form, &columns_of), rels, &unchanged)
                    .await
                {
                    Ok(Some(files)) => out.push(Carried { name, form, files }),
                    Ok(None) => {}
                    Err(e) => tracing::debug!("{name}: nothing copied early: {e}"),
                }
            }
        }
        tracing::debug!(
            "copied early: {} months of {} files in {:.2}s",
            out.iter().map(|c| c.files.keys.len()).sum::<usize>(),
            out.len(),
            t.elapsed().as_secs_f64()
        );
        out
    }

    /// One form's files with the kept months of `unchanged` copied in, as far as they are
    /// kept; `None` (nothing left staged) when not even the first is.
    async fn carry_form(
        &self,
        name: &'static str,
        (form, columns_of): (&Form, &DataFrame),
        rels: [String; 2],
        unchanged: &[&MonthRows],
    ) -> Result<Option<FormFiles>> {
        let state = &self.state;
        let shape = (form, columns_of, &self.policy);
        let keys: Vec<String> = unchanged
            .iter()
            .map(|m| form.kept_key(name, m, &self.policy))
            .collect();
        let to = (state, &self.run_id[..]);
        let mut files = FormFiles::open(to, name, shape, rels, &keys).await?;
        for (month, key) in unchanged.iter().zip(&keys) {
            match files.copy_kept(state, month.month, key).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    files.abort().await;
                    return Err(e);
                }
            }
        }
        if files.keys.is_empty() {
            files.abort().await;
            return Ok(None);
        }
        Ok(Some(files))
    }
}

/// The files of `name` in `form` carried early, if their months are the first of `keys` (the
/// months the run publishes) and they go to `rels`; those that are not are discarded.
pub(super) async fn resume(
    carried: &mut Vec<Carried>,
    name: &str,
    form: &Form,
    keys: &[String],
    rels: &[String; 2],
) -> Option<FormFiles> {
    let i = carried
        .iter()
        .position(|c| c.name == name && c.form == *form)?;
    let c = carried.swap_remove(i);
    let fits = keys.starts_with(&c.files.keys)
        && c.files.parquet.rel() == rels[0]
        && c.files.csv.rel() == rels[1];
    if fits {
        return Some(c.files);
    }
    tracing::debug!("{name}: the months copied early changed since; written again");
    c.files.abort().await;
    None
}
