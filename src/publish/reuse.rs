//! On a local disk, the per-member tables' CSV files (`months::STREAMED`, gigabytes for a large
//! organisation, all dates in each) are not written whole every night: a run takes the file the
//! run before last published, now replaced and about to be deleted, keeps its bytes up to the
//! first month that changed since, and appends the rest. A nightly run so writes one month of
//! CSV rows instead of every month's.
//!
//! Which bytes of a file are which month is recorded on the file itself, in an extended
//! attribute (`LAYOUT_ATTR`; hard links share it): the CSV header's hash and length, and each
//! month's kept key (`Form::kept_key`, which names the month's rows in that form) with the
//! offset where its rows end, next to the file's size and modification time when it was
//! recorded. A file whose size or time differ since, or a file system without user attributes,
//! is never reused: the run writes the file as if there were none.
//!
//! A file is taken only from a complete commit's backups (`_staging/<run>/_previous/`), never
//! while it is published (its inode is compared with every published CSV file's), and moved
//! into the run's own staging (`_staging/<run>/_reuse/`) before the earlier staging is removed.
//! A reader that opened a file before the run before last replaced it, and still reads it now,
//! would see it change: removing the file (what the run did otherwise) would have left it whole.

use std::collections::{HashSet, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{REPORTS_DIR, STAGING};
use crate::reports::months;
use crate::source::Location;

/// The extended attribute that holds a streamed CSV file's months.
const LAYOUT_ATTR: &str = "user.cc_analytics.csv_months";
/// The attribute's format.
const MAGIC: &[u8; 4] = b"ccm1";
/// At most this many months are recorded (16 bytes each: a file system gives one file's
/// attributes about 4 KB); a longer history's files are written whole.
const MAX_MONTHS: usize = 200;
/// Where a run keeps the files it took, until its tables take them.
const REUSE_DIR: &str = "_reuse";

/// A month's kept key, as recorded (its first 8 bytes of SHA-256).
pub(super) fn key_hash(key: &str) -> u64 {
    key_hash_bytes(key.as_bytes())
}

/// A CSV header's hash, as recorded.
pub(super) fn key_hash_bytes(b: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(b);
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// What a file holds: its CSV header (hash, length) and each month's key hash and the offset
/// where its rows end.
#[derive(Debug, PartialEq, Eq, Clone)]
pub(super) struct Layout {
    pub(super) header: (u64, u64),
    pub(super) months: Vec<(u64, u64)>,
}

impl Layout {
    fn encode(&self, size: u64, mtime_ns: i128) -> Vec<u8> {
        let mut v = Vec::with_capacity(48 + 16 * self.months.len());
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&mtime_ns.to_le_bytes());
        v.extend_from_slice(&self.header.0.to_le_bytes());
        v.extend_from_slice(&self.header.1.to_le_bytes());
        v.extend_from_slice(&(self.months.len() as u32).to_le_bytes());
        for (k, end) in &self.months {
            v.extend_from_slice(&k.to_le_bytes());
            v.extend_from_slice(&end.to_le_bytes());
        }
        v
    }

    /// The layout recorded in `v`, if it was recorded for a file of `size` bytes modified at
    /// `mtime_ns`, and its offsets are in order within the file.
    fn decode(v: &[u8], size: u64, mtime_ns: i128) -> Option<Layout> {
        let rest = v.strip_prefix(MAGIC)?;
        let u64_at = |i: usize| Some(u64::from_le_bytes(rest.get(i..i + 8)?.try_into().ok()?));
        let at_size = u64_at(0)?;
        let at_time = i128::from_le_bytes(rest.get(8..24)?.try_into().ok()?);
        if at_size != size || at_time != mtime_ns {
            return None;
        }
        let header = (u64_at(24)?, u64_at(32)?);
        let n = u32::from_le_bytes(rest.get(40..44)?.try_into().ok()?) as usize;
        if rest.len() != 44 + 16 * n {
            return None;
        }
        let months: Vec<(u64, u64)> = (0..n)
            .map(|i| Some((u64_at(44 + 16 * i)?, u64_at(52 + 16 * i)?)))
            .collect::<Option<_>>()?;
        let mut at = header.1;
        for &(_, end) in &months {
            if end < at {
                return None;
            }
            at = end;
        }
        (at <= size).then_some(Layout { header, months })
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

fn c_path(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

/// Records `layout` on the file at `path`, as it is now. A file system without user attributes
/// (or a history too long to record) leaves the file without one: it is just never reused.
pub(super) fn record(path: &Path, layout: &Layout) {
    let (Some(p), Ok(meta)) = (c_path(path), std::fs::metadata(path)) else {
        return;
    };
    let name = CString::new(LAYOUT_ATTR).expect("no NUL");
    if layout.months.len() > MAX_MONTHS {
        // A reused file may carry an older record: its size and time no longer match, but it
        // goes, so that nothing trusts it.
        // SAFETY: both arguments are NUL-terminated strings that outlive the call.
        unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) };
        return;
    }
    let v = layout.encode(meta.len(), mtime_ns(&meta));
    // SAFETY: the path and name are NUL-terminated, the value is `v.len()` readable bytes.
    let r = unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r != 0 {
        tracing::debug!(
            "{}: its months not recorded ({}): the file is not reused",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

/// The layout recorded on the file at `path`, if it still describes the file.
pub(super) fn read(path: &Path) -> Option<Layout> {
    let p = c_path(path)?;
    let meta = std::fs::metadata(path).ok()?;
    let name = CString::new(LAYOUT_ATTR).expect("no NUL");
    let mut v = vec![0u8; 48 + 16 * MAX_MONTHS];
    // SAFETY: the path and name are NUL-terminated, the buffer is `v.len()` writable bytes.
    let n = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    if n <= 0 {
        return None;
    }
    v.truncate(n as usize);
    Layout::decode(&v, meta.len(), mtime_ns(&meta))
}

/// The directory of `rel` under a local root.
fn local_dir(loc: &Location, rel: &str) -> Option<PathBuf> {
    loc.local.as_ref()?.path_to_filesystem(&loc.child(rel)).ok()
}

/// Where run `run_id` keeps the files it took.
fn reuse_dir(state: &Location, run_id: &str) -> Option<PathBuf> {
    local_dir(state, &format!("{STAGING}/{run_id}/{REUSE_DIR}"))
}

/// The streamed CSV files in each role folder under `dir` (`reports/<role>/<name>.csv`).
fn streamed_csvs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let Ok(roles) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for role in roles.flatten() {
        for name in months::STREAMED {
            let p = role.path().join(format!("{name}.csv"));
            if p.is_file() {
                out.push((name, p));
            }
        }
    }
    out
}

/// Before the earlier runs' staging is removed (under the lease): moves the streamed CSV files
/// that the complete commits of `done` replaced, with a layout recorded and not published
/// (compared by inode), into run `run_id`'s staging, one per file. Returns how many.
pub(super) fn claim(state: &Location, run_id: &str, done: &[String]) -> usize {
    // (The store names no directory by an empty path: the root is the staging's parent.)
    let root = local_dir(state, STAGING).and_then(|s| s.parent().map(Path::to_path_buf));
    let (Some(root), Some(to)) = (root, reuse_dir(state, run_id)) else {
        return 0;
    };
    let published: HashSet<(u64, u64)> = streamed_csvs(&root.join(REPORTS_DIR))
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let mut seen = HashSet::new();
    let mut claimed = 0;
    for run in done {
        let previous = root
            .join(STAGING)
            .join(run)
            .join("_previous")
            .join(REPORTS_DIR);
        for (name, p) in streamed_csvs(&previous) {
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if published.contains(&id) || !seen.insert(id) || read(&p).is_none() {
                continue;
            }
            let at = to.join(format!("{name}.{claimed}.csv"));
            let moved = std::fs::create_dir_all(&to).and_then(|()| std::fs::rename(&p, &at));
            match moved {
                Ok(()) => claimed += 1,
                Err(e) => tracing::debug!("{}: not taken for reuse: {e}", p.display()),
            }
        }
    }
    if claimed > 0 {
        tracing::debug!("took {claimed} replaced CSV files to reuse");
    }
    claimed
}

/// The file of table `name` taken by run `run_id` whose header is `header` and whose months
/// begin with the most of `keys` (at least one), moved to `to`; with those months (key hash,
/// end offset). `None` when no taken file begins with the first of `keys`.
pub(super) fn take(
    state: &Location,
    run_id: &str,
    name: &str,
    header: (u64, u64),
    keys: &[String],
    to: &Path,
) -> Option<VecDeque<(u64, u64)>> {
    let dir = reuse_dir(state, run_id)?;
    let wanted: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
    let prefix = format!("{name}.");
    let mut best: Option<(usize, PathBuf, Layout)> = None;
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        // `<name>.<n>.csv`: not a longer table name that begins with this one.
        if !rest
            .trim_end_matches(".csv")
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Some(layout) = read(&entry.path()).filter(|l| l.header == header) else {
            continue;
        };
        let same = layout
            .months
            .iter()
            .zip(&wanted)
            .take_while(|((k, _), w)| k == *w)
            .count();
        if same > 0 && best.as_ref().is_none_or(|(n, _, _)| same > *n) {
            best = Some((same, entry.path(), layout));
        }
    }
    let (same, from, layout) = best?;
    if let Err(e) = to
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::rename(&from, to))
    {
        tracing::debug!("{}: not reused: {e}", from.display());
        return None;
    }
    Some(layout.months[..same].iter().copied().collect())
}

/// Removes what run `run_id` took and did not reuse (a file of gigabytes is not kept a run
/// longer than it would have been).
pub(super) fn discard_left(state: &Location, run_id: &str) {
    if let Some(dir) = reuse_dir(state, run_id) {
        match std::fs::remove_dir_all(&dir) {
            // The run's staging, if that was all it held.
            Ok(()) => _ = dir.parent().map(std::fs::remove_dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!("{}: {e}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            header: (7, 20),
            months: vec![(key_hash("a"), 120), (key_hash("b"), 300)],
        }
    }

    #[test]
    fn a_layout_holds_only_for_the_file_it_was_recorded_for() {
        let l = layout();
        let v = l.encode(300, 1_700_000_000_123_456_789);
        assert_eq!(
            Layout::decode(&v, 300, 1_700_000_000_123_456_789),
            Some(l.clone())
        );
        // Written to since (another size or time), or cut short: not trusted.
        assert_eq!(Layout::decode(&v, 301, 1_700_000_000_123_456_789), None);
        assert_eq!(Layout::decode(&v, 300, 1_700_000_000_123_456_790), None);
        assert_eq!(
            Layout::decode(&v[..v.len() - 1], 300, 1_700_000_000_123_456_789),
            None
        );
        assert_eq!(Layout::decode(b"xxxx", 300, 0), None);
        // Offsets out of order, or past the end of the file.
        let bad = Layout {
            header: (7, 20),
            months: vec![(1, 120), (2, 100)],
        };
        assert_eq!(Layout::decode(&bad.encode(300, 5), 300, 5), None);
        let past = Layout {
            header: (7, 20),
            months: vec![(1, 400)],
        };
        assert_eq!(Layout::decode(&past.encode(300, 5), 300, 5), None);
    }

    /// Needs a file system with user attributes (ext4, xfs, btrfs, tmpfs ≥ 6.6); elsewhere
    /// nothing is recorded, which `read` shows as no layout.
    #[test]
    fn a_replaced_file_is_taken_once_and_reused_for_the_longest_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let state = Location::parse(dir.path().to_str().unwrap(), true).unwrap();
        let prev = dir.path().join("_staging/r1/_previous/reports");
        for role in ["admin", "billing"] {
            std::fs::create_dir_all(prev.join(role)).unwrap();
        }
        let a = prev.join("admin/member_daily.csv");
        std::fs::write(&a, vec![b'x'; 300]).unwrap();
        record(&a, &layout());
        if read(&a).is_none() {
            eprintln!("no user attributes on this file system: nothing to test");
            return;
        }
        // The same file in a second role folder (a hard link): taken once.
        std::fs::hard_link(&a, prev.join("billing/member_daily.csv")).unwrap();
        // A published file is never taken, even as a backup of a run that did not replace it.
        let published = dir.path().join("reports/admin/member_daily_by_tool.csv");
        std::fs::create_dir_all(published.parent().unwrap()).unwrap();
        std::fs::write(&published, vec![b'y'; 300]).unwrap();
        record(&published, &layout());
        std::fs::hard_link(&published, prev.join("admin/member_daily_by_tool.csv")).unwrap();
        assert_eq!(claim(&state, "r2", &["r1".to_string()]), 1);
        assert!(!a.exists() && published.exists());

        let to = dir
            .path()
            .join("_staging/r2/reports/admin/member_daily.csv");
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        // Another header, or a first month that differs: not this file.
        assert!(take(&state, "r2", "member_daily", (8, 20), &keys(&["a"]), &to).is_none());
        assert!(take(&state, "r2", "member_daily", (7, 20), &keys(&["b"]), &to).is_none());
        assert!(take(&state, "r2", "member_daily_by", (7, 20), &keys(&["a"]), &to).is_none());
        let months = take(
            &state,
            "r2",
            "member_daily",
            (7, 20),
            &keys(&["a", "c"]),
            &to,
        );
        assert_eq!(months, Some(VecDeque::from([(key_hash("a"), 120)])));
        assert!(to.exists());
        // Taken: not there a second time.
        assert!(take(&state, "r2", "member_daily", (7, 20), &keys(&["a"]), &to).is_none());
        discard_left(&state, "r2");
        assert!(!dir.path().join("_staging/r2/_reuse").exists());
    }

    #[test]
    fn a_changed_file_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.csv");
        std::fs::write(&f, vec![b'x'; 300]).unwrap();
        record(&f, &layout());
        if read(&f).is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, vec![b'z'; 300]).unwrap();
        assert_eq!(read(&f), None, "written to after its months were recorded");
    }
}
