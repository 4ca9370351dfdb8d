//! Object storage: turning `--input`/`--output` URLs into stores, listing telemetry objects,
//! reading and decompressing them.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{Error, Result};

mod decompress;
pub use decompress::*;

/// A store and a prefix inside it, from a URL such as `s3://bucket/prefix` or a local path.
#[derive(Clone)]
pub struct Location {
    pub url: String,
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The same store when it is a local directory: its files can be read without a thread
    /// hand-off per object.
    pub local: Option<Arc<object_store::local::LocalFileSystem>>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.url)
    }
}

/// Retries for transient failures (5xx, throttling, connection resets, timeouts): exponential
/// backoff from 100 ms up to 15 s between tries, at most 10 retries and 3 minutes per request.
/// `CC_ANALYTICS_RETRY_MAX` and `CC_ANALYTICS_RETRY_TIMEOUT_SECS` override the two bounds.
pub fn retry_config() -> RetryConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: env("CC_ANALYTICS_RETRY_MAX").unwrap_or(10) as usize,
        retry_timeout: Duration::from_secs(env("CC_ANALYTICS_RETRY_TIMEOUT_SECS").unwrap_or(180)),
    }
}

impl Location {
    /// Parses a URL. Local paths must exist unless `create` is set (outputs), when they are made.
    pub fn parse(url: &str, create: bool) -> Result<Location> {
        // Credentials come from the environment: a URL's user info or query string (a presigned
        // signature, a SAS token) is not used, and never kept where it could be recorded.
        let clean = crate::policy::redact::url(url);
        if clean != url {
            tracing::warn!("{clean}: the URL's user info and query string are ignored (credentials come from the environment)");
        }
        let url = clean.as_str();
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (s, r),
            None => ("file", url),
        };
        let bucket_and_prefix = |r: &str| -> Result<(String, Path)> {
            let (bucket, prefix) = r.split_once('/').unwrap_or((r, ""));
            if bucket.is_empty() {
                return Err(Error::usage(format!("no bucket in URL {url:?}")));
            }
            let prefix = Path::parse(prefix.trim_end_matches('/'))
                .map_err(|e| Error::usage(format!("bad path in URL {url:?}: {e}")))?;
            Ok((bucket.to_string(), prefix))
        };
        let bad = |e: object_store::Error| Error::usage(format!("cannot open {url:?}: {e}"));
        let mut local = None;
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match scheme {
            "s3" | "s3a" => {
                let (bucket, prefix) = bucket_and_prefix(rest)?;
                let s = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry_config())
                    .build()
                    .map_err(bad)?;
                (Arc::new(s), prefix)
            }
            "gs" => {
                let (bucket, prefix) = bucket_and_prefix(rest)?;
                let s = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry_config())
                    .build()
                    .map_err(bad)?;
                (Arc::new(s), prefix)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let (container, prefix) = bucket_and_prefix(rest)?;
                let s = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(retry_config())
                    .build()
                    .map_err(bad)?;
                (Arc::new(s), prefix)
            }
            "file" => {
                let path = std::path::Path::new(rest);
                if create {
                    std::fs::create_dir_all(path).map_err(|e| {
                        Error::usage(format!("cannot create output directory {url:?}: {e}"))
                    })?;
                } else if !path.is_dir() {
                    return Err(Error::usage(format!(
                        "input {url:?} does not exist or is not a directory"
                    )));
                }
                let abs = std::fs::canonicalize(path)
                    .map_err(|e| Error::usage(format!("cannot open {url:?}: {e}")))?;
                let s = Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&abs).map_err(bad)?,
                );
                local = Some(s.clone());
                (s, Path::default())
            }
            other => {
                return Err(Error::usage(format!(
                    "unsupported URL scheme {other:?} in {url:?} (use a path, file://, s3://, gs:// or az://)"
                )))
            }
        };
        Ok(Location {
            url: url.to_string(),
            store,
            prefix,
            local,
        })
    }

    /// A path below the prefix.
    pub fn child(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

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
        let mut skipped = 0u64;
        let mut links_skipped = 0u64;
        let mut whole: Vec<Path> = Vec::new();
        // (directory, year and month of the partitions above it)
        let root = (!self.prefix.as_ref().is_empty()).then(|| self.prefix.clone());
        let mut walk: Vec<(Option<Path>, Option<i32>, Option<u32>)> = vec![(root, None, None)];
        while let Some((dir, year, month)) = walk.pop() {
            let r = match &self.local {
                // object_store's local listing gives up on the whole walk at a link loop.
                Some(fs) => {
                    let (fs, d) = (fs.clone(), dir.clone().unwrap_or_default());
                    let (r, links) = tokio::task::spawn_blocking(move || list_local_level(&fs, &d))
                        .await
                        .map_err(|e| Error::Other(format!("listing failed: {e}")))??;
                    links_skipped += links;
                    r
                }
                None => self
                    .store
                    .list_with_delimiter(dir.as_ref())
                    .await
                    .map_err(|e| classify(&self.url, e))?,
            };
            for m in r.objects {
                sink(m)?;
            }
            for sub in r.common_prefixes {
                let name = sub.filename().unwrap_or_default().to_string();
                let value = |k: &str| name.strip_prefix(k).and_then(|v| v.parse::<u32>().ok());
                // The first and last day a partition directory can hold, when it is one.
                let span = match (year, month) {
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
                };
                match span {
                    Some((first, last, _)) if last < lo || first > hi => skipped += 1,
                    Some((first, last, (y, m))) if first != last => walk.push((Some(sub), y, m)),
                    _ => whole.push(sub),
                }
            }
        }
        // Each partition's objects are handed on as its listing completes: a listing of
        // millions of objects is never held whole.
        let mut lists = futures::stream::iter(whole)
            .map(|dir| async move {
                match &self.local {
                    Some(fs) => {
                        let fs = fs.clone();
                        tokio::task::spawn_blocking(move || list_local(&fs, &dir))
                            .await
                            .map_err(|e| Error::Other(format!("listing failed: {e}")))?
                    }
                    None => self
                        .store
                        .list(Some(&dir))
                        .try_collect::<Vec<_>>()
                        .await
                        .map(|v| (v, 0))
                        .map_err(|e| classify(&self.url, e)),
                }
            })
            .buffer_unordered(8);
        while let Some(r) = lists.next().await {
            let (list, links) = r?;
            links_skipped += links;
            for m in list {
                sink(m)?;
            }
        }
        Ok(Listing {
            partitions_skipped: skipped,
            links_skipped,
        })
    }

    pub async fn get(&self, path: &Path) -> Result<bytes::Bytes> {
        let r = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::store(path.as_ref(), e))?;
        r.bytes().await.map_err(|e| Error::store(path.as_ref(), e))
    }

    /// A reader over an object's stored bytes, fetched a part at a time: the file itself on a
    /// local disk, else the store's GET as a stream. To be called from a blocking thread of the
    /// runtime (it waits for each part of the stream there).
    pub fn open_stream(&self, path: &Path) -> Result<Box<dyn std::io::Read + Send>> {
        if self.local.is_some() {
            return Ok(Box::new(self.open_local(path)?));
        }
        let handle = tokio::runtime::Handle::current();
        let r = handle
            .block_on(self.store.get(path))
            .map_err(|e| Error::store(path.as_ref(), e))?;
        Ok(Box::new(StreamRead {
            handle,
            stream: r.into_stream(),
            part: bytes::Bytes::new(),
        }))
    }

    /// Reads an object of a local directory on the calling thread (see `local`).
    pub fn read_local(&self, path: &Path) -> Result<Vec<u8>> {
        use std::io::Read;
        let mut f = self.open_local(path)?;
        let len = f.metadata().map_err(|e| local_io(path, e))?.len();
        let mut data = Vec::with_capacity(len as usize + 1);
        f.read_to_end(&mut data).map_err(|e| local_io(path, e))?;
        Ok(data)
    }

    /// Opens an object of a local directory.
    fn open_local(&self, path: &Path) -> Result<std::fs::File> {
        let fs = self
            .local
            .as_ref()
            .ok_or_else(|| Error::Other(format!("{} is not a local directory", self.url)))?;
        let file = fs
            .path_to_filesystem(path)
            .map_err(|e| Error::store(path.as_ref(), e))?;
        std::fs::File::open(&file).map_err(|e| local_io(path, e))
    }

    /// Every object below `prefix`.
    pub async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store(prefix.as_ref(), e))
    }

    /// Deletes an object; one that is gone already is no error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(path.as_ref(), e)),
        }
    }

    pub async fn put(&self, path: &Path, data: Vec<u8>) -> Result<()> {
        self.store
            .put(path, data.into())
            .await
            .map_err(|e| Error::store(path.as_ref(), e))?;
        Ok(())
    }

    /// Creates `path` only if it does not exist (`If-None-Match: *` on S3, a hard link on local
    /// disks): true if this call created it, false if it was there. Every commit and lease
    /// record is made this way, so that of two writers exactly one wins.
    pub async fn create(&self, path: &Path, data: Vec<u8>) -> Result<bool> {
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(path, data.into(), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            // S3 answers 409 ConditionalRequestConflict to one of two racing creates; object_store
            // reports it as a precondition failure: the other writer won.
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(Error::store(path.as_ref(), e)),
        }
    }
}

/// Completes an upload written through `object_store`'s buffered writer (`what` names it in
/// the error).
pub async fn finish_upload(w: &mut object_store::buffered::BufWriter, what: &str) -> Result<()> {
    std::future::poll_fn(|cx| tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut *w), cx))
        .await
        .map_err(|e| Error::Other(format!("writing {what}: {e}")))
}

/// Turns listing failures that mean "wrong configuration" (missing bucket or prefix, refused
/// credentials) into one-line usage errors; other failures stay store errors.
pub fn classify(url: &str, e: object_store::Error) -> Error {
    let text = e.to_string();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    match &e {
        object_store::Error::NotFound { .. } => Error::usage(format!("input {url} does not exist")),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            Error::usage(format!("access to {url} denied: check the credentials"))
        }
        _ if has(&["NoSuchBucket", "404 Not Found"]) => {
            Error::usage(format!("input {url}: the bucket does not exist"))
        }
        _ if has(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "403 Forbidden",
        ]) =>
        {
            Error::usage(format!("access to {url} denied: check the credentials"))
        }
        _ => Error::store(url, e),
    }
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
) -> Result<(Vec<ObjectMeta>, u64)> {
    let io = |p: &std::path::Path, e: std::io::Error| {
        Error::Other(format!("cannot list {}: {e}", p.display()))
    };
    let root = fs
        .path_to_filesystem(dir)
        .map_err(|e| Error::store(dir.as_ref(), e))?;
    let mut out = Vec::new();
    // A link back to a directory above this one inside the location is a loop too.
    let mut seen = ancestor_ids(&root, dir, false);
    if !seen.insert(dir_id(&root).map_err(|e| io(&root, e))?) {
        tracing::warn!(
            "not following {}: a symbolic link to a directory already listed (a loop)",
            root.display()
        );
        return Ok((Vec::new(), 1));
    }
    let mut links_skipped = 0u64;
    let mut stack = vec![(root, dir.clone())];
    while let Some((fs_dir, dir)) = stack.pop() {
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
    }
    Ok((out, links_skipped))
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

/// What a listing left out (the objects themselves went to its sink, in no particular order).
pub struct Listing {
    /// `year=`/`month=`/`day=` directories outside the window, not listed.
    pub partitions_skipped: u64,
    /// Symbolic links to directories already listed, not followed.
    pub links_skipped: u64,
}

/// A comparable form of a location: `scheme://bucket/prefix` for object stores, the absolute
/// path (its existing part with symbolic links resolved) for local ones.
fn root_key(url: &str) -> String {
    let url = crate::policy::redact::url(url);
    match url.split_once("://") {
        Some((scheme, rest)) if scheme != "file" => {
            let scheme = match scheme {
                "s3a" => "s3",
                "azure" | "abfs" | "abfss" => "az",
                s => s,
            };
            format!("{scheme}://{}", rest.trim_matches('/'))
        }
        _ => {
            let path = std::path::Path::new(url.strip_prefix("file://").unwrap_or(&url));
            let abs = std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf());
            let mut existing = abs.as_path();
            let mut rest = Vec::new();
            while !existing.exists() {
                match (existing.file_name(), existing.parent()) {
                    (Some(n), Some(p)) => {
                        rest.push(n);
                        existing = p;
                    }
                    _ => break,
                }
            }
            let mut key = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.into());
            for part in rest.into_iter().rev() {
                key.push(part);
            }
            key.to_string_lossy().trim_end_matches('/').to_string()
        }
    }
}

/// Whether the location `inner` lies inside (or is) the location `outer`.
pub fn contains(outer: &str, inner: &str) -> bool {
    let (o, i) = (root_key(outer), root_key(inner));
    i == o || i.starts_with(&format!("{o}/"))
}

/// A local disk's I/O error as the store error of `path`.
fn local_io(path: &Path, e: std::io::Error) -> Error {
    Error::store(
        path.as_ref(),
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
    )
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

/// An object's GET as a blocking reader: each part of the body stream is awaited on the
/// runtime from the (blocking) thread that reads.
struct StreamRead {
    handle: tokio::runtime::Handle,
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    part: bytes::Bytes,
}

impl std::io::Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures::StreamExt;
        while self.part.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(b)) => self.part = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.part.len());
        buf[..n].copy_from_slice(&self.part[..n]);
        self.part = self.part.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::io::Write;

    #[test]
    fn telemetry_keys() {
        for k in ["a/b.json", "x.jsonl.gz", "x.ndjson.zst", "logs_1.json.gz"] {
            assert!(is_telemetry_key(k), "{k}");
        }
        for k in ["roster.csv", "a.json.bz2", "a.gz", "x.jsonx"] {
            assert!(!is_telemetry_key(k), "{k}");
        }
    }

    #[test]
    fn arrival_partition_is_parsed() {
        assert_eq!(
            arrival_day("raw/year=2026/month=08/day=22/hour=15/minute=04/logs_1.json.gz"),
            NaiveDate::from_ymd_opt(2026, 8, 22)
        );
        assert_eq!(arrival_day("raw/2026/08/22/logs.json"), None);
    }

    /// flate2's own multi-member reader: the reference the reusing decompressor must agree with.
    fn reference(bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let ok = flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .is_ok();
        (out, ok)
    }

    #[test]
    fn gunzip_agrees_with_flate2_on_members_headers_and_cuts() {
        let mut one = Decompressor::default();
        for seed in 0..40u64 {
            let text: Vec<u8> = (0..(seed * 997 % 20_000))
                .map(|i| b"abcdefghij{}\"\n"[((i * 7 + seed) % 14) as usize])
                .collect();
            let mut b = flate2::GzBuilder::new();
            if seed % 2 == 0 {
                b = b.filename("logs.json").comment("c");
            }
            if seed % 3 == 0 {
                b = b.extra(vec![1, 2, 3]);
            }
            let mut w = b.write(Vec::new(), flate2::Compression::new((seed % 9) as u32));
            w.write_all(&text).unwrap();
            let mut gz = w.finish().unwrap();
            if seed % 4 == 0 {
                // A second member.
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(&text[..text.len() / 2]).unwrap();
                gz.extend(w.finish().unwrap());
            }
            let d = one.decompress(&gz);
            assert_eq!(
                (d.data.clone(), d.truncated.is_none()),
                reference(&gz),
                "seed {seed}"
            );
            // (Cuts from 2 bytes on: one byte is not recognised as gzip at all.)
            for cut in [
                2,
                9,
                10,
                gz.len() / 3,
                gz.len() / 2,
                gz.len() - 9,
                gz.len() - 1,
            ] {
                let part = &gz[..cut.min(gz.len())];
                let d = one.decompress(part);
                let (want, ok) = reference(part);
                assert_eq!(d.truncated.is_none(), ok, "seed {seed} cut {cut}");
                // The complete part: what flate2 had inflated before the cut, at least.
                assert!(
                    d.data.starts_with(&want) || want.starts_with(&d.data),
                    "seed {seed} cut {cut}"
                );
                assert!(text
                    .repeat(2)
                    .starts_with(&d.data[..d.data.len().min(text.len())]));
            }
            let mut bad = gz.clone();
            let n = bad.len();
            bad[n - 6] ^= 0xff; // the CRC
            assert!(one.decompress(&bad).truncated.is_some(), "seed {seed}");
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        // 64 MiB of zeros: 64 KB of gzip, a few KB of zstd.
        let zeros = vec![0u8; 64 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        let z = zstd::encode_all(&zeros[..], 3).unwrap();
        let limit = 1 << 20;
        for bytes in [&gz, &z] {
            let d = Decompressor::with_limit(limit).decompress(bytes);
            assert!(d.too_large);
            assert_eq!(d.data.len(), limit);
            assert!(
                d.data.capacity() <= 2 * limit + (64 << 10),
                "{}",
                d.data.capacity()
            );
            assert!(d.truncated.unwrap().contains("more than 1048576 bytes"));
        }
        // Exactly the limit is allowed.
        let text = b"0123456789\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let z = zstd::encode_all(&text[..], 3).unwrap();
        for bytes in [&gz, &z] {
            let d = Decompressor::with_limit(text.len()).decompress(bytes);
            assert!(!d.too_large && d.truncated.is_none());
            assert_eq!(d.data, text);
            assert!(
                Decompressor::with_limit(text.len() - 1)
                    .decompress(bytes)
                    .too_large
            );
        }
    }

    #[test]
    fn decompresses_by_magic_and_keeps_complete_part_of_truncated_gzip() {
        let text = b"line one\nline two\nline three\n".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let d = decompress(&gz);
        assert_eq!(d.data, text);
        assert!(d.truncated.is_none());
        let z = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(decompress(&z).data, text);
        assert_eq!(decompress(&text).data, text);
        let cut = decompress(&gz[..gz.len() / 2]);
        assert!(cut.truncated.is_some());
        assert!(text.starts_with(&cut.data));
    }
}
