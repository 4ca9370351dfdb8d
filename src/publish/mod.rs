//! Safe publishing under the output root (under the lease, see `lease`): a two-phase
//! publish (stage every file, back up what it replaces, then commit from a journal) so that a
//! run's outputs are published only if it completes: a run that fails while publishing restores
//! the previous files itself, and one killed while publishing has them restored by the next run
//! before it does anything else. Each file is replaced atomically, so readers never see a
//! partial file.
//!
//! Files go to two roots ([`Roots`]): `reports/…` to the output root that analysts read, the
//! rest (facts) to the state root; both are one and the same unless `state` is set. Staging,
//! backups and journal always live in the state root, so that nothing but the published
//! report files ever appears under the output root.
//!
//! ```text
//! _staging/<run_id>/<path>       new files of a run, before commit
//! _staging/<run_id>/_previous/   the files the commit replaces, to roll back to
//! _staging/<run_id>/_commit.json the journal: present once every file is staged and backed up
//! _staging/<run_id>/_done        the commit is complete: what is left is the next run's to remove
//! ```
//!
//! A complete commit leaves its backups (the files it replaced) and staged names to the next
//! run, which removes them in the background while it works ([`Cleanup`]): deleting the
//! previous version of gigabytes of tables waits for the disk (on a disk mounted with
//! `discard`, about a second per GB), and nothing is left for a run to overlap it with.

mod carry;
pub mod folders;
pub mod lease;
mod reuse;

pub use carry::{Carry, CarryPlan};

use std::collections::BTreeSet;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::Location;

const STAGING: &str = "_staging";
const JOURNAL: &str = "_commit.json";
const DONE: &str = "_done";

/// Test hook: `CC_ANALYTICS_FAIL_AFTER_COMMITS=N` fails the commit after N files, to prove
/// that a failure while publishing leaves consistent outputs.
const FAIL_HOOK: &str = "CC_ANALYTICS_FAIL_AFTER_COMMITS";
/// Test hook: `CC_ANALYTICS_ABORT_WITH_CLEANUP_LEFT=N` aborts the process (as kill -9 would)
/// while a run's staging is removed, when N deletes are left, to prove that a run stopped there
/// leaves outputs the next run can recover from.
const ABORT_HOOK: &str = "CC_ANALYTICS_ABORT_WITH_CLEANUP_LEFT";
/// Test hook: `CC_ANALYTICS_ABORT_WITH_EARLIER_LEFT=N` aborts the process while it removes what
/// an earlier run left in the staging (in the background), when N deletes are left.
const EARLIER_HOOK: &str = "CC_ANALYTICS_ABORT_WITH_EARLIER_LEFT";

/// Where published files go: report files to `reports`, everything else (and the staging) to
/// `state`.
#[derive(Clone, Debug)]
pub struct Roots {
    pub state: Location,
    pub reports: Location,
}

/// The folder of the output root that analysts read; every other path belongs to the state.
pub const REPORTS_DIR: &str = "reports";

impl Roots {
    /// One root for both (no `state` configured).
    pub fn one(out: Location) -> Roots {
        Roots {
            state: out.clone(),
            reports: out,
        }
    }

    fn split(&self) -> bool {
        self.state.url != self.reports.url
    }

    /// The store and path a published file `rel` goes to.
    fn place(&self, rel: &str) -> (&Location, Path) {
        let loc = if rel.starts_with(&format!("{REPORTS_DIR}/")) {
            &self.reports
        } else {
            &self.state
        };
        (loc, loc.child(rel))
    }

    /// Puts the state object `from` in place as `rel`: a server-side copy within one store, a
    /// read and a put across two (each put is atomic: readers see the old or the new file).
    async fn install(&self, from: &Path, rel: &str) -> Result<()> {
        let (loc, to) = self.place(rel);
        if !self.split() || std::ptr::eq(loc, &self.state) {
            return loc
                .store
                .copy(from, &to)
                .await
                .map_err(|e| Error::store(to.as_ref(), e));
        }
        let r = self
            .state
            .store
            .get(from)
            .await
            .map_err(|e| Error::store(from.as_ref(), e))?;
        write_stream(r, loc, &to).await
    }
}

impl Roots {
    /// Keeps the published file `rel` (if there is one) under the run's `_previous/`, to roll
    /// back to; false when there is none. Within one store a server-side copy (a hard link on
    /// local disks: no bytes move, and installing the new file replaces the name, not the
    /// backup's data); across two stores the bytes are streamed.
    async fn back_up(&self, run: &str, rel: &str) -> Result<bool> {
        let (loc, at) = self.place(rel);
        let to = backup(&self.state, run, rel);
        let done = if !self.split() || std::ptr::eq(loc, &self.state) {
            loc.store.copy(&at, &to).await.map(drop)
        } else {
            match loc.store.get(&at).await {
                Ok(r) => return write_stream(r, &self.state, &to).await.map(|()| true),
                Err(e) => Err(e),
            }
        };
        match done {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    /// Whether the published file `rel` is still its backup `from` (never replaced): the same
    /// entity tag. Installing it again would then be a rename between two links of one file on
    /// local disks, which does nothing and leaves the temporary name behind.
    async fn unchanged(&self, from: &Path, rel: &str) -> bool {
        let (loc, at) = self.place(rel);
        let (a, b) = (self.state.store.head(from).await, loc.store.head(&at).await);
        matches!((a, b), (Ok(a), Ok(b)) if a.e_tag.is_some() && a.e_tag == b.e_tag && a.size == b.size)
    }
}

/// Writes the object being read in `r` to `to`, a part at a time (a multipart upload; a put
/// at the end on local disks): a report file of gigabytes is never held in memory.
async fn write_stream(r: object_store::GetResult, loc: &Location, to: &Path) -> Result<()> {
    use futures::StreamExt;
    let mut w = object_store::buffered::BufWriter::new(loc.store.clone(), to.clone());
    let mut stream = r.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::store(to.as_ref(), e))?;
        w.put(chunk)
            .await
            .map_err(|e| Error::store(to.as_ref(), e))?;
    }
    crate::source::finish_upload(&mut w, to.as_ref()).await
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct Journal {
    run_id: String,
    /// Paths (relative to the output root) to copy from staging to their place.
    files: Vec<String>,
    /// Paths that existed before the commit, copied under `_previous/` to roll back to.
    backups: Vec<String>,
}

/// Collects a run's files in staging, then commits them all or none.
pub struct Publisher {
    roots: Roots,
    run_id: String,
    journal: Journal,
}

fn staged(out: &Location, run_id: &str, rel: &str) -> Path {
    out.child(&format!("{STAGING}/{run_id}/{rel}"))
}

fn backup(out: &Location, run_id: &str, rel: &str) -> Path {
    out.child(&format!("{STAGING}/{run_id}/_previous/{rel}"))
}

impl Publisher {
    /// The run whose files these are.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn new(roots: &Roots, run_id: &str) -> Publisher {
        Publisher {
            roots: roots.clone(),
            run_id: run_id.into(),
            journal: Journal {
                run_id: run_id.into(),
                ..Default::default()
            },
        }
    }

    /// Stages a file to be published at `rel`.
    pub async fn stage(&mut self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let state = &self.roots.state;
        state.put(&staged(state, &self.run_id, rel), bytes).await?;
        self.journal.files.push(rel.to_string());
        Ok(())
    }

    /// Takes on a file a run started staging before it had a publisher (`StagedFile::new`).
    pub fn adopt(&mut self, file: &StagedFile) {
        self.journal.files.push(file.rel.clone());
    }

    /// Stages at `to` a copy of the file staged at `from`.
    pub async fn stage_copy(&mut self, from: &str, to: &str) -> Result<()> {
        let state = &self.roots.state;
        let (a, b) = (
            staged(state, &self.run_id, from),
            staged(state, &self.run_id, to),
        );
        state
            .store
            .copy(&a, &b)
            .await
            .map_err(|e| Error::store(b.as_ref(), e))?;
        self.journal.files.push(to.to_string());
        Ok(())
    }

    /// Backs up what the commit replaces, writes the journal (the commit point), then moves
    /// every file into place. On failure the previous files are restored.
    pub async fn commit(mut self) -> Result<()> {
        let started = std::time::Instant::now();
        let (roots, run) = (&self.roots, &self.run_id);
        let out = &roots.state;
        for rel in &self.journal.files {
            if roots.back_up(run, rel).await? {
                self.journal.backups.push(rel.clone());
            }
        }
        // Each role folder's record of what was published: backed up too (not in `files`: it
        // is written after every file is in place, not staged).
        for dir in role_dirs(&self.journal.files) {
            let rel = format!("{dir}/{PUBLISHED}");
            if roots.back_up(run, &rel).await? {
                self.journal.backups.push(rel);
            }
        }
        let body = serde_json::to_vec_pretty(&self.journal).expect("journal serialises");
        out.put(&staged(out, run, JOURNAL), body).await?;
        let fail_after: Option<usize> = std::env::var(FAIL_HOOK).ok().and_then(|v| v.parse().ok());
        let backed_up = started.elapsed().as_secs_f64();
        match apply(roots, run, &self.journal, fail_after).await {
            Ok(()) => {
                let installed = started.elapsed().as_secs_f64();
                let files: Vec<&String> = self.journal.files.iter().collect();
                roots
                    .record_published(run, &Utc::now().to_rfc3339(), &files)
                    .await?;
                // The commit is complete: the journal goes, then the mark that what is left is
                // the next run's to remove (a stop in between only makes that run warn).
                out.delete(&staged(out, run, JOURNAL)).await?;
                out.put(&staged(out, run, DONE), Vec::new()).await?;
                tracing::info!(
                    "published {} files in {:.2}s (backed up by {backed_up:.2}s, in place by \
                     {installed:.2}s); the {} files they replaced are removed by the next run",
                    files.len(),
                    started.elapsed().as_secs_f64(),
                    self.journal.backups.len()
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!("publishing failed ({e}); restoring the previous outputs");
                rollback(roots, run, &self.journal).await?;
                Err(e)
            }
        }
    }
}

/// A staged file being written in parts: uploaded through the store, or (a reused file on a
/// local disk, see `reuse`) appended to in place.
pub struct StagedFile {
    to: Sink,
    rel: String,
    bytes: u64,
    /// Where it is, when the staging is on a local disk.
    local: Option<std::path::PathBuf>,
}

enum Sink {
    // Boxed: the writer is ten times the size of a file handle.
    Store(Box<object_store::buffered::BufWriter>),
    /// Taken out while a write runs on the blocking pool.
    File(Option<std::fs::File>),
}

/// The local file of `path` under `state`, when `state` is a local disk.
fn on_disk(state: &Location, path: &object_store::path::Path) -> Option<std::path::PathBuf> {
    state.local.as_ref()?.path_to_filesystem(path).ok()
}

fn io_error(rel: &str, e: std::io::Error) -> Error {
    Error::Other(format!("writing the staged {rel}: {e}"))
}

impl StagedFile {
    /// A file of run `run_id` to be published at `rel`, staged under `state`; published only
    /// once a `Publisher` of the run adopts it.
    pub fn new(state: &Location, run_id: &str, rel: &str) -> StagedFile {
        let path = staged(state, run_id, rel);
        StagedFile {
            local: on_disk(state, &path),
            to: Sink::Store(Box::new(object_store::buffered::BufWriter::new(
                state.store.clone(),
                path,
            ))),
            rel: rel.to_string(),
            bytes: 0,
        }
    }

    /// Where run `run_id` stages `rel` on a local disk (none on an object store).
    pub(super) fn local_path(
        state: &Location,
        run_id: &str,
        rel: &str,
    ) -> Option<std::path::PathBuf> {
        on_disk(state, &staged(state, run_id, rel))
    }

    /// The file already at `path` (a local staging), cut to its first `len` bytes, appended to.
    pub(super) fn reuse(path: std::path::PathBuf, rel: &str, len: u64) -> Result<StagedFile> {
        use std::io::{Seek, SeekFrom};
        let open = || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(len)?;
            f.seek(SeekFrom::End(0))?;
            Ok::<_, std::io::Error>(f)
        };
        let f = open().map_err(|e| io_error(rel, e))?;
        Ok(StagedFile {
            to: Sink::File(Some(f)),
            rel: rel.to_string(),
            bytes: len,
            local: Some(path),
        })
    }

    /// Where it is to be published.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Its bytes so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Where it is staged, on a local disk.
    pub(super) fn path(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// Discards what was written.
    pub async fn abort(mut self) {
        match &mut self.to {
            Sink::Store(w) => {
                if let Err(e) = w.abort().await {
                    tracing::debug!("discarding the staged {}: {e}", self.rel);
                }
            }
            Sink::File(f) => {
                drop(f.take());
                if let Some(p) = &self.local {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    pub async fn write(&mut self, bytes: impl Into<bytes::Bytes>) -> Result<()> {
        let bytes: bytes::Bytes = bytes.into();
        self.bytes += bytes.len() as u64;
        match &mut self.to {
            Sink::Store(w) => w
                .put(bytes)
                .await
                .map_err(|e| Error::store(self.rel.as_str(), e)),
            Sink::File(slot) => {
                use std::io::Write;
                let mut f = slot.take().expect("one write at a time");
                let (f, done) = tokio::task::spawn_blocking(move || {
                    let done = f.write_all(&bytes);
                    (f, done)
                })
                .await
                .map_err(|e| Error::Other(format!("writing the staged {}: {e}", self.rel)))?;
                *slot = Some(f);
                done.map_err(|e| io_error(&self.rel, e))
            }
        }
    }

    /// Cuts a reused file back to its first `len` bytes (what follows is written anew).
    pub(super) fn cut(&mut self, len: u64) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let Sink::File(Some(f)) = &mut self.to else {
            return Err(Error::Other(format!(
                "{}: only a reused file is cut",
                self.rel
            )));
        };
        f.set_len(len)
            .and_then(|()| f.seek(SeekFrom::Start(len)))
            .map_err(|e| io_error(&self.rel, e))?;
        self.bytes = len;
        Ok(())
    }

    /// Completes the upload; returns the file's size.
    pub async fn finish(mut self) -> Result<u64> {
        if let Sink::Store(w) = &mut self.to {
            crate::source::finish_upload(w, &self.rel).await?;
        }
        Ok(self.bytes)
    }
}

async fn apply(roots: &Roots, run_id: &str, j: &Journal, fail_after: Option<usize>) -> Result<()> {
    // Test hook: `CC_ANALYTICS_ABORT_AFTER_COMMITS=N` aborts the process (as kill -9 would) after
    // N files are in place: a publish stopped half-way, journal and all.
    let abort_after: Option<usize> = std::env::var("CC_ANALYTICS_ABORT_AFTER_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (i, rel) in j.files.iter().enumerate() {
        if fail_after == Some(i) {
            return Err(Error::Other(format!(
                "injected failure after {i} committed files ({FAIL_HOOK})"
            )));
        }
        if abort_after == Some(i) {
            std::process::abort();
        }
        // Copy is atomic per object (S3 server-side copy; write-then-rename on local disks),
        // so readers always see a whole file, old or new.
        roots
            .install(&staged(&roots.state, run_id, rel), rel)
            .await?;
    }
    Ok(())
}

/// Puts back every file as it was before the commit, then discards the run's staging.
async fn rollback(roots: &Roots, run_id: &str, j: &Journal) -> Result<()> {
    let out = &roots.state;
    for rel in &j.files {
        if j.backups.contains(rel) {
            let from = backup(out, run_id, rel);
            if !roots.unchanged(&from, rel).await {
                roots.install(&from, rel).await?;
            }
        } else {
            let (loc, to) = roots.place(rel);
            match loc.store.delete(&to).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(to.as_ref(), e)),
            }
        }
    }
    // The role folders' records: the previous one again (with the entity tags of the files as
    // restored), or none if there was none.
    for dir in role_dirs(&j.files) {
        let rel = format!("{dir}/{PUBLISHED}");
        let (loc, to) = roots.place(&rel);
        if j.backups.contains(&rel) {
            let old = out.get(&backup(out, run_id, &rel)).await?;
            if let Ok(old) = serde_json::from_slice::<Published>(&old) {
                let files: Vec<String> = old
                    .files
                    .iter()
                    .map(|f| format!("{dir}/{}", f.name))
                    .collect();
                let files: Vec<&String> = files.iter().collect();
                roots
                    .record_published(&old.run_id, &old.published_at, &files)
                    .await?;
            }
        } else {
            match loc.store.delete(&to).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(to.as_ref(), e)),
            }
        }
    }
    remove_prefix(out, &format!("{STAGING}/{run_id}"), ABORT_HOOK).await
}

/// The record written last in each role folder: which run published it, when, and every file
/// with its size and entity tag, so that a reader or loader can check that what it read is one
/// run's tables (every Parquet file also carries the run id in its metadata).
pub const PUBLISHED: &str = "_published.json";

#[derive(Serialize, Deserialize, Debug)]
pub struct Published {
    pub run_id: String,
    pub published_at: String,
    pub files: Vec<PublishedFile>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PublishedFile {
    pub name: String,
    pub bytes: u64,
    pub e_tag: Option<String>,
}

/// The role folders (`reports/<role>`) that files go to, in order.
fn role_dirs(files: &[String]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| {
            let rest = f.strip_prefix(&format!("{REPORTS_DIR}/"))?;
            let (role, _) = rest.split_once('/')?;
            Some(format!("{REPORTS_DIR}/{role}"))
        })
        .collect()
}

impl Roots {
    /// Writes each role folder's `_published.json` for `files` as they now are in place.
    async fn record_published(&self, run_id: &str, at: &str, files: &[&String]) -> Result<()> {
        for dir in role_dirs(&files.iter().map(|f| f.to_string()).collect::<Vec<_>>()) {
            let mut entries = Vec::new();
            for f in files.iter().filter(|f| f.starts_with(&format!("{dir}/"))) {
                let (loc, at_path) = self.place(f);
                let m = loc
                    .store
                    .head(&at_path)
                    .await
                    .map_err(|e| Error::store(at_path.as_ref(), e))?;
                entries.push(PublishedFile {
                    name: f[dir.len() + 1..].to_string(),
                    bytes: m.size,
                    e_tag: m.e_tag,
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            let rec = Published {
                run_id: run_id.to_string(),
                published_at: at.to_string(),
                files: entries,
            };
            let rel = format!("{dir}/{PUBLISHED}");
            let (loc, to) = self.place(&rel);
            loc.put(&to, serde_json::to_vec_pretty(&rec).expect("serialises"))
                .await?;
        }
        Ok(())
    }
}

/// Every object below `prefix`.
async fn list_paths(out: &Location, prefix: &Path) -> Result<Vec<Path>> {
    out.store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix.as_ref(), e))
}

/// Deletes every object below `rel` (`hook`: the test hook that may stop it, see `ABORT_HOOK`).
async fn remove_prefix(out: &Location, rel: &str, hook: &str) -> Result<()> {
    let paths = list_paths(out, &out.child(rel)).await?;
    // The journal goes first. Both callers come here once every file is in its final place
    // (all new after a commit, all old after a rollback), so the journal is no longer needed;
    // deleting it last would let a run stopped half-way through this cleanup leave a journal
    // whose backups are already gone, which the next run could not roll back.
    // The mark of a complete commit goes last: a run stopped half-way through removing what a
    // complete commit left is still known for one.
    let (journal, files): (Vec<Path>, Vec<Path>) = paths
        .into_iter()
        .partition(|p| p.as_ref().ends_with(JOURNAL));
    let (done, files): (Vec<Path>, Vec<Path>) = files
        .into_iter()
        .partition(|p| p.as_ref().ends_with(&format!("/{DONE}")));
    let abort_left: Option<usize> = std::env::var(hook).ok().and_then(|v| v.parse().ok());
    let total = journal.len() + files.len() + done.len();
    for (i, p) in journal.into_iter().chain(files).chain(done).enumerate() {
        if abort_left == Some(total - i) {
            std::process::abort();
        }
        match out.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(p.as_ref(), e)),
        }
    }
    if let Some(dir) = local_root(out) {
        // Local disks keep empty directories; tidy this run's (another run may be staging).
        let _ = remove_empty_dirs(&dir.join(rel));
        let _ = std::fs::remove_dir(dir.join(STAGING));
    }
    Ok(())
}

/// The removal, in the background, of what earlier runs left in the staging: a complete
/// commit's backups, or the staged files of a run that never reached its commit point.
pub struct Cleanup(Option<tokio::task::JoinHandle<Result<()>>>);

impl Cleanup {
    pub fn none() -> Cleanup {
        Cleanup(None)
    }

    fn start(out: &Location, runs: Vec<String>) -> Cleanup {
        if runs.is_empty() {
            return Cleanup(None);
        }
        let out = out.clone();
        Cleanup(Some(tokio::spawn(async move {
            let t = std::time::Instant::now();
            for run in &runs {
                remove_prefix(&out, &format!("{STAGING}/{run}"), EARLIER_HOOK).await?;
            }
            tracing::debug!(
                "removed what {} earlier runs left in the staging in {:.2}s",
                runs.len(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        })))
    }

    /// Waits for the removal (under the lease: before the run lets it go). A removal that
    /// failed is left to the next run, with a warning.
    pub async fn finish(self) {
        let Some(task) = self.0 else { return };
        let done = match task.await {
            Ok(removed) => removed.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = done {
            tracing::warn!(
                "removing what earlier runs left in the staging failed ({e}): the next run tries again"
            );
        }
    }
}

/// Removes the replaced files run `run_id` took to reuse and did not (`reuse`).
pub fn discard_unused(roots: &Roots, run_id: &str) {
    reuse::discard_left(&roots.state, run_id);
}

/// The output root's directory when it is on a local disk.
pub fn local_root(out: &Location) -> Option<std::path::PathBuf> {
    out.url
        .strip_prefix("file://")
        .or((!out.url.contains("://")).then_some(&out.url[..]))
        .map(std::path::PathBuf::from)
}

/// Whether a file name is one of object_store's temporary names on local disks
/// (`<name>#<digits>`: a put or copy in flight, renamed into place when it completes).
fn is_temporary(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes the temporary files a run killed in the middle of a put or copy left on a local disk.
/// object_store never lists them, so without this they would stay forever, next to the outputs.
fn sweep_temporary(root: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path, recurse: bool, removed: &mut usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if recurse {
                    walk(&e.path(), true, removed);
                }
            } else if is_temporary(&e.file_name().to_string_lossy())
                && std::fs::remove_file(e.path()).is_ok()
            {
                *removed += 1;
            }
        }
    }
    let mut removed = 0;
    // Only the files directly in the root and the folders the job writes: the root itself may
    // hold other things.
    walk(root, false, &mut removed);
    for d in ["reports", "_facts", "_runs", "_quarantine", STAGING] {
        walk(&root.join(d), true, &mut removed);
    }
    removed
}

fn remove_empty_dirs(p: &std::path::Path) -> std::io::Result<()> {
    if p.is_dir() {
        for e in std::fs::read_dir(p)? {
            remove_empty_dirs(&e?.path())?;
        }
        let _ = std::fs::remove_dir(p);
    }
    Ok(())
}

/// Whether a run was stopped while moving its files into place: a journal in the staging.
/// A shard (which takes no lease) then takes the lease to recover before it goes on.
pub async fn interrupted(roots: &Roots) -> Result<bool> {
    let out = &roots.state;
    let paths = list_paths(out, &out.child(STAGING)).await?;
    Ok(paths.iter().any(|p| p.as_ref().ends_with(JOURNAL)))
}

/// Before a run (under the lease): deletes partial files a killed run left on a local disk, rolls
/// back commits whose journal was written (the run was killed while moving files into place),
/// and starts removing, in the background, what complete commits left and the staging of runs
/// that never reached their commit point. A run that writes the tables (`reuse_for`: its id)
/// first takes, on one local root, the replaced CSV files it may reuse (`reuse`).
pub async fn recover(roots: &Roots, reuse_for: Option<&str>) -> Result<Cleanup> {
    for root in [&roots.state, &roots.reports] {
        if let Some(root) = local_root(root) {
            let removed = sweep_temporary(&root);
            if removed > 0 {
                tracing::warn!("removed {removed} partial files left by a run that was stopped");
            }
        }
        if !roots.split() {
            break;
        }
    }
    let out = &roots.state;
    let prefix = out.child(STAGING);
    let paths = list_paths(out, &prefix).await?;
    let base = prefix.as_ref().len() + 1;
    let runs: BTreeSet<String> = paths
        .iter()
        .filter_map(|p| p.as_ref().get(base..)?.split('/').next().map(String::from))
        .collect();
    let (mut left, mut complete) = (Vec::new(), Vec::new());
    for run in runs {
        let journal = out.child(&format!("{STAGING}/{run}/{JOURNAL}"));
        match out.get(&journal).await {
            Ok(bytes) => {
                let j: Journal = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Other(format!("bad journal {journal}: {e}")))?;
                tracing::warn!(
                    "run {run} was stopped while publishing: restoring the outputs it replaced"
                );
                rollback(roots, &run, &j).await?;
            }
            Err(_) => {
                let done = out.child(&format!("{STAGING}/{run}/{DONE}"));
                if out.get(&done).await.is_err() {
                    tracing::warn!(
                        "discarding the staged files of run {run}, which did not finish"
                    );
                } else {
                    complete.push(run.clone());
                }
                left.push(run);
            }
        }
    }
    if let Some(run_id) = reuse_for.filter(|_| !roots.split()) {
        reuse::claim(out, run_id, &complete);
    }
    Ok(Cleanup::start(out, left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_object_stores_own() {
        assert!(is_temporary("daily_activity.parquet#0"));
        assert!(is_temporary("_lock#12"));
        assert!(!is_temporary("daily_activity.parquet"));
        assert!(!is_temporary("notes#draft"));
        assert!(!is_temporary("trailing#"));
    }

    #[test]
    fn the_sweep_removes_partial_files_only_where_the_job_writes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = [
            ("reports/admin/daily_activity.parquet", false),
            ("reports/admin/daily_activity.parquet#0", true),
            ("_facts/date=2026-10-10/sessions.parquet#1", true),
            ("_staging/r1/_previous/reports/x.csv#3", true),
            ("_lock#1", true),
            ("_lock", false),
            ("mine/notes#1", false),
            ("reports/admin/notes#draft", false),
        ];
        for (f, _) in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        assert_eq!(sweep_temporary(root), 4);
        for (f, removed) in files {
            assert_eq!(!root.join(f).exists(), removed, "{f}");
        }
    }
}
