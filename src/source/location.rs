//! Locations: a URL (`s3://`, `gs://`, `az://`, a path) turned into a store and a prefix, and
//! the object operations the job uses on it (get, streamed get, put, create-only put, delete),
//! with retries for transient failures and errors that name the location.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{Error, Result};

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
        let mut local = None;
        let (store, prefix) = match scheme {
            "file" => {
                let s = open_local(rest, create, url)?;
                local = Some(s.clone());
                (s as Arc<dyn ObjectStore>, Path::default())
            }
            _ => open_cloud(scheme, rest, url)?,
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

    pub async fn put(&self, path: &Path, data: impl Into<object_store::PutPayload>) -> Result<()> {
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

/// A local directory as a store: made when `create` (outputs), else it must exist.
fn open_local(
    path: &str,
    create: bool,
    url: &str,
) -> Result<Arc<object_store::local::LocalFileSystem>> {
    let path = std::path::Path::new(path);
    if create {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::usage(format!("cannot create output directory {url:?}: {e}")))?;
    } else if !path.is_dir() {
        return Err(Error::usage(format!(
            "input {url:?} does not exist or is not a directory"
        )));
    }
    let abs = std::fs::canonicalize(path)
        .map_err(|e| Error::usage(format!("cannot open {url:?}: {e}")))?;
    let s = object_store::local::LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| Error::usage(format!("cannot open {url:?}: {e}")))?;
    Ok(Arc::new(s))
}

/// An object store (S3, GCS, Azure) from the environment's credentials, and the prefix in its
/// bucket.
fn open_cloud(scheme: &str, rest: &str, url: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let known = matches!(
        scheme,
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss"
    );
    if !known {
        return Err(Error::usage(format!(
            "unsupported URL scheme {scheme:?} in {url:?} (use a path, file://, s3://, gs:// or az://)"
        )));
    }
    if bucket.is_empty() {
        return Err(Error::usage(format!("no bucket in URL {url:?}")));
    }
    let prefix = Path::parse(prefix.trim_end_matches('/'))
        .map_err(|e| Error::usage(format!("bad path in URL {url:?}: {e}")))?;
    let bad = |e: object_store::Error| Error::usage(format!("cannot open {url:?}: {e}"));
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry_config())
                .build()
                .map_err(bad)?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry_config())
                .build()
                .map_err(bad)?,
        ),
        _ => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry_config())
                .build()
                .map_err(bad)?,
        ),
    };
    Ok((store, prefix))
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
