//! Listing telemetry objects: the Collector's `year=/month=/day=` partitions walked so that
//! those wholly outside a window are never listed, the rest listed concurrently and handed on
//! as each completes; local directories listed from their entries, links back into a listed
//! directory reported, not walked.

use chrono::NaiveDate;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ListResult, ObjectMeta};
use tokio::sync::mpsc;

use super::location::{classify, Location};
use crate::error::{Error, Result};

impl Location {
    /// Lists the objects under the location, sorted by key, walking the Collector's
    /// `year=/month=/day=` partitions: those wholly outside `window` (days of arrival) are not
    /// listed at all, and the day partitions are listed concurrently (one listing per day
    /// rather than one long paginated listing). Directories of any other name are listed whole.
    /// Returns the objects and how many partition directories were left out.
    pub async fn list_window(
        &self,
        window: Option<(NaiveDate, NaiveDate)>,
        sink: &mut dyn FnMut(ObjectMeta) -> Result<()>,
    ) -> Result<Listing> {
        let (lo, hi) = window.unwrap_or((NaiveDate::MIN, NaiveDate::MAX));
        let mut listing = Listing {
            partitions_skipped: 0,
            links_skipped: 0,
        };
        let mut whole: Vec<Path> = Vec::new();
        let root = (!self.prefix.as_ref().is_empty()).then(|| self.prefix.clone());
        // (directory, year and month of the partitions above it)
        let mut walk: Vec<(Option<Path>, Option<i32>, Option<u32>)> = vec![(root, None, None)];
        while let Some((dir, year, month)) = walk.pop() {
            let (r, links) = self.list_level(dir).await?;
            listing.links_skipped += links;
            for m in r.objects {
                sink(m)?;
            }
            for sub in r.common_prefixes {
                let name = sub.filename().unwrap_or_default().to_string();
                match partition_span(&name, year, month) {
                    Some((first, last, _)) if last < lo || first > hi => {
                        listing.partitions_skipped += 1
                    }
                    Some((first, last, (y, m))) if first != last => walk.push((Some(sub), y, m)),
                    _ => whole.push(sub),
                }
            }
        }
        listing.links_skipped += self.list_whole(whole, sink).await?;
        Ok(listing)
    }

    /// One level of the walk: the objects and subdirectories of `dir`, and the links left out.
    async fn list_level(&self, dir: Option<Path>) -> Result<(ListResult, u64)> {
        match &self.local {
            // object_store's local listing gives up on the whole walk at a link loop.
            Some(fs) => {
                let (fs, d) = (fs.clone(), dir.unwrap_or_default());
                tokio::task::spawn_blocking(move || list_local_level(&fs, &d))
                    .await
                    .map_err(|e| Error::Other(format!("listing failed: {e}")))?
            }
            None => self
                .store
                .list_with_delimiter(dir.as_ref())
                .await
                .map(|r| (r, 0))
                .map_err(|e| classify(&self.url, e)),
        }
    }

    /// Lists directories whole, eight at a time. Their objects are handed on in pieces as
    /// they are listed (at most 16 pieces waiting): a listing of millions of objects is never
    /// held whole. Returns the links left out.
    async fn list_whole(
        &self,
        whole: Vec<Path>,
        sink: &mut dyn FnMut(ObjectMeta) -> Result<()>,
    ) -> Result<u64> {
        let (tx, mut rx) = mpsc::channel::<Vec<ObjectMeta>>(16);
        let listing = async move {
            let mut lists = futures::stream::iter(whole)
                .map(|dir| self.list_dir(dir, tx.clone()))
                .buffer_unordered(8);
            let mut links = 0;
            while let Some(r) = lists.next().await {
                links += r?;
            }
            Ok::<u64, Error>(links)
        };
        let taking = async move {
            while let Some(piece) = rx.recv().await {
                for m in piece {
                    // An error drops the receiver, which stops the listings.
                    sink(m)?;
                }
            }
            Ok::<(), Error>(())
        };
        let (links, taken) = futures::join!(listing, taking);
        taken?;
        links
    }

    /// Lists `dir` and everything below it into `tx`, a piece at a time (a local directory's
    /// files per directory, a store's objects per page of 1,000); returns the links left out.
    async fn list_dir(&self, dir: Path, tx: mpsc::Sender<Vec<ObjectMeta>>) -> Result<u64> {
        if let Some(fs) = &self.local {
            let fs = fs.clone();
            return tokio::task::spawn_blocking(move || {
                list_local(&fs, &dir, &mut |piece| tx.blocking_send(piece).is_ok())
            })
            .await
            .map_err(|e| Error::Other(format!("listing failed: {e}")))?;
        }
        let mut objects = self.store.list(Some(&dir));
        let mut piece = Vec::with_capacity(PIECE);
        while let Some(m) = objects.next().await {
            piece.push(m.map_err(|e| classify(&self.url, e))?);
            if piece.len() == PIECE && tx.send(std::mem::take(&mut piece)).await.is_err() {
                return Ok(0);
            }
        }
        if !piece.is_empty() {
            let _ = tx.send(piece).await;
        }
        Ok(0)
    }
}

/// Objects handed on at a time from a store's listing.
const PIECE: usize = 1000;

/// A partition's first and last day, and the year and month it sets.
type Span = (NaiveDate, NaiveDate, (Option<i32>, Option<u32>));

/// The first and last day a partition directory named `name` can hold, when it is one below
/// the partitions `year` and `month` (when known), with the year and month it sets.
fn partition_span(name: &str, year: Option<i32>, month: Option<u32>) -> Option<Span> {
    let value = |k: &str| name.strip_prefix(k).and_then(|v| v.parse::<u32>().ok());
    match (year, month) {
        (None, None) => value("year=").and_then(|y| {
            let y = y as i32;
            Some((
                NaiveDate::from_ymd_opt(y, 1, 1)?,
                NaiveDate::from_ymd_opt(y, 12, 31)?,
                (Some(y), None),
            ))
        }),
        (Some(y), None) => value("month=").and_then(|m| {
            let first = NaiveDate::from_ymd_opt(y, m, 1)?;
            let next = first.checked_add_months(chrono::Months::new(1))?;
            Some((first, next.pred_opt()?, (Some(y), Some(m))))
        }),
        (Some(y), Some(m)) => value("day=").and_then(|d| {
            let day = NaiveDate::from_ymd_opt(y, m, d)?;
            Some((day, day, (Some(y), Some(m))))
        }),
        (None, Some(_)) => None,
    }
}

/// What a listing left out (the objects themselves went to its sink, in no particular order).
pub struct Listing {
    /// `year=`/`month=`/`day=` directories outside the window, not listed.
    pub partitions_skipped: u64,
    /// Symbolic links to directories already listed, not followed.
    pub links_skipped: u64,
}

/// Whether an object's key names telemetry: `.json`, `.jsonl` or `.ndjson`, optionally `.gz`/`.zst`.
pub fn is_telemetry_key(key: &str) -> bool {
    let k = key
        .strip_suffix(".gz")
        .or_else(|| key.strip_suffix(".zst"))
        .unwrap_or(key);
    k.ends_with(".json") || k.ends_with(".jsonl") || k.ends_with(".ndjson")
}

/// The arrival day of a key laid out as `…/year=YYYY/month=MM/day=DD/…`, if it is.
pub fn arrival_day(key: &str) -> Option<NaiveDate> {
    let (mut y, mut m, mut d) = (None, None, None);
    for part in key.split('/') {
        if let Some((k, v)) = part.split_once('=') {
            match k {
                "year" => y = v.parse::<i32>().ok(),
                "month" => m = v.parse::<u32>().ok(),
                "day" => d = v.parse::<u32>().ok(),
                _ => {}
            }
        }
    }
    NaiveDate::from_ymd_opt(y?, m?, d?)
}

/// Lists a local directory and everything below it from the directory entries, with one `stat`
/// per file for its size, time and etag (the objects file records them as the object is listed,
/// and batches are cut by size).
///
/// Symbolic links are followed, but never back into a directory already listed: such a link
/// (a loop, or a second way to the same files) is reported and counted, not walked.
fn list_local(
    fs: &object_store::local::LocalFileSystem,
    dir: &Path,
    send: &mut dyn FnMut(Vec<ObjectMeta>) -> bool,
) -> Result<u64> {
    let io = |p: &std::path::Path, e: std::io::Error| {
        Error::Other(format!("cannot list {}: {e}", p.display()))
    };
    let root = fs
        .path_to_filesystem(dir)
        .map_err(|e| Error::store(dir.as_ref(), e))?;
    // A link back to a directory above this one inside the location is a loop too.
    let mut seen = ancestor_ids(&root, dir, false);
    if !seen.insert(dir_id(&root).map_err(|e| io(&root, e))?) {
        tracing::warn!(
            "not following {}: a symbolic link to a directory already listed (a loop)",
            root.display()
        );
        return Ok(1);
    }
    let mut links_skipped = 0u64;
    let mut stack = vec![(root, dir.clone())];
    while let Some((fs_dir, dir)) = stack.pop() {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&fs_dir).map_err(|e| io(&fs_dir, e))? {
            let e = e.map_err(|e| io(&fs_dir, e))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                tracing::warn!("skipping {}: not a UTF-8 name", e.path().display());
                continue;
            };
            let t = e.file_type().map_err(|err| io(&e.path(), err))?;
            let t = if t.is_symlink() {
                std::fs::metadata(e.path())
                    .map_err(|err| io(&e.path(), err))?
                    .file_type()
            } else {
                t
            };
            if t.is_dir() {
                if !seen.insert(dir_id(&e.path()).map_err(|err| io(&e.path(), err))?) {
                    tracing::warn!(
                        "not following {}: a symbolic link to a directory already listed (a loop)",
                        e.path().display()
                    );
                    links_skipped += 1;
                    continue;
                }
                stack.push((e.path(), dir.clone().join(name.as_str())));
            } else if t.is_file() {
                let m = std::fs::metadata(e.path()).map_err(|err| io(&e.path(), err))?;
                out.push(local_meta(&dir.clone().join(name.as_str()), &m));
            }
        }
        // A directory's files are handed on together; a receiver gone ends the listing.
        if !out.is_empty() && !send(out) {
            break;
        }
    }
    Ok(links_skipped)
}

/// The local path of `dir` (the store's own directory for the empty path, which
/// `path_to_filesystem` does not take).
fn fs_path(fs: &object_store::local::LocalFileSystem, dir: &Path) -> Result<std::path::PathBuf> {
    if dir.as_ref().is_empty() {
        let child = fs
            .path_to_filesystem(&Path::from("x"))
            .map_err(|e| Error::store("", e))?;
        return Ok(child.parent().unwrap_or(&child).to_path_buf());
    }
    fs.path_to_filesystem(dir)
        .map_err(|e| Error::store(dir.as_ref(), e))
}

/// Identity of a directory (symbolic links followed).
fn dir_id(p: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| (m.dev(), m.ino()))
}

/// The directories above `root` up to the location's own directory (`dir` has as many parts
/// as `root` lies below it), and `root` itself when `with_root`: a link back to any of them is
/// a loop.
fn ancestor_ids(
    root: &std::path::Path,
    dir: &Path,
    with_root: bool,
) -> std::collections::HashSet<(u64, u64)> {
    let top = root.ancestors().nth(dir.parts().count()).unwrap_or(root);
    root.ancestors()
        .skip(usize::from(!with_root))
        .take_while(|a| a.starts_with(top))
        .filter_map(|a| dir_id(a).ok())
        .collect()
}

/// One level of a local directory, as `list_with_delimiter` gives it, from directory entries
/// alone; a subdirectory that is a link back to a directory above is reported and left out.
fn list_local_level(
    fs: &object_store::local::LocalFileSystem,
    dir: &Path,
) -> Result<(object_store::ListResult, u64)> {
    let io = |p: &std::path::Path, e: std::io::Error| {
        Error::Other(format!("cannot list {}: {e}", p.display()))
    };
    let root = fs_path(fs, dir)?;
    let above = ancestor_ids(&root, dir, true);
    let mut r = object_store::ListResult {
        common_prefixes: Vec::new(),
        objects: Vec::new(),
    };
    let mut links = 0;
    for e in std::fs::read_dir(&root).map_err(|e| io(&root, e))? {
        let e = e.map_err(|e| io(&root, e))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            tracing::warn!("skipping {}: not a UTF-8 name", e.path().display());
            continue;
        };
        let mut t = e.file_type().map_err(|err| io(&e.path(), err))?;
        if t.is_symlink() {
            t = std::fs::metadata(e.path())
                .map_err(|err| io(&e.path(), err))?
                .file_type();
        }
        if t.is_dir() {
            if above.contains(&dir_id(&e.path()).map_err(|err| io(&e.path(), err))?) {
                tracing::warn!(
                    "not following {}: a symbolic link to a directory already listed (a loop)",
                    e.path().display()
                );
                links += 1;
                continue;
            }
            r.common_prefixes.push(dir.clone().join(name.as_str()));
        } else if t.is_file() {
            let m = std::fs::metadata(e.path()).map_err(|err| io(&e.path(), err))?;
            r.objects
                .push(local_meta(&dir.clone().join(name.as_str()), &m));
        }
    }
    Ok((r, links))
}

/// A local file's metadata, with the same etag as object_store's local store (inode,
/// modification time, size).
fn local_meta(path: &Path, m: &std::fs::Metadata) -> ObjectMeta {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    ObjectMeta {
        location: path.clone(),
        last_modified: chrono::DateTime::<chrono::Utc>::from(std::time::UNIX_EPOCH + mtime),
        size: m.len(),
        e_tag: Some(format!(
            "{:x}-{:x}-{:x}",
            std::os::unix::fs::MetadataExt::ino(m),
            mtime.as_micros(),
            m.len()
        )),
        version: None,
    }
}
