//! The output lease: one run at a time publishes reports to an output.
//!
//! The lease is a sequence of records under the state root, each created only if absent
//! (`If-None-Match: *` on S3, a hard link on local disks), so that of two writers of one
//! sequence number exactly one wins. The newest record tells who holds the lease and until
//! when. The holder renews it by creating the next record (a heartbeat, every third of the
//! lease's length) while it runs; a run takes the lease over only when the newest record has
//! expired or was released; release is one more record, made by the holder, marked released.
//! No host name or process id is trusted: pods repeat both.
//!
//! ```text
//! _lease/<sequence number>.json   holder run id, host (for people), acquired, expires, released
//! ```
//!
//! At start a run probes that the store refuses a second conditional create, and refuses to
//! run on one that does not (it could not keep two writers apart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::Location;

const LEASE_DIR: &str = "_lease";
const PROBE_DIR: &str = "_probe";
/// The lease's length unless `CC_ANALYTICS_LEASE_SECONDS` says otherwise (tests shorten it).
const DEFAULT_SECONDS: i64 = 60;

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub run_id: String,
    /// For people reading the record; never used to judge whether the holder lives.
    pub host: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub released: bool,
}

fn lease_seconds() -> i64 {
    std::env::var("CC_ANALYTICS_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s: &i64| s > 0)
        .unwrap_or(DEFAULT_SECONDS)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn record_path(state: &Location, seq: u64) -> object_store::path::Path {
    state.child(&format!("{LEASE_DIR}/{seq:012}.json"))
}

/// The newest lease record, if any.
pub async fn newest(state: &Location) -> Result<Option<Record>> {
    let metas = state.list_all(&state.child(LEASE_DIR)).await?;
    let seq = metas
        .iter()
        .filter_map(|m| {
            m.location
                .filename()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max();
    let Some(seq) = seq else { return Ok(None) };
    match state.get(&record_path(state, seq)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Other(format!("bad lease record {seq}: {e}"))),
        // Renewed and tidied between the listing and the read: look again.
        Err(Error::Store {
            source: object_store::Error::NotFound { .. },
            ..
        }) => Box::pin(newest(state)).await,
        Err(e) => Err(e),
    }
}

/// Checks that the store refuses a second conditional create of one key: without that, two
/// writers could both commit one date or both take the lease.
pub async fn probe(state: &Location, run_id: &str) -> Result<()> {
    let path = state.child(&format!("{PROBE_DIR}/{run_id}"));
    let first = state.create(&path, b"probe".to_vec()).await;
    let second = state.create(&path, b"probe".to_vec()).await;
    let _ = state.store.delete(&path).await;
    match (first, second) {
        (Ok(true), Ok(false)) => Ok(()),
        (Err(e), _) | (_, Err(e)) => Err(Error::usage(format!(
            "{} does not support conditional writes ({e}); cc-analytics needs a store that refuses a second create of one key (S3, GCS, Azure, local disk)",
            crate::policy::redact::url(&state.url)
        ))),
        _ => Err(Error::usage(format!(
            "{} accepted a second conditional create of one key (If-None-Match: * ignored): two writers could not be kept apart on it; use a store that honours conditional writes",
            crate::policy::redact::url(&state.url)
        ))),
    }
}

/// A held lease, renewed in the background until released.
pub struct Lease {
    state: Location,
    run_id: String,
    seq: Arc<tokio::sync::Mutex<u64>>,
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the lease, or refuses naming the live holder.
    pub async fn acquire(state: &Location, run_id: &str) -> Result<Lease> {
        probe(state, run_id).await?;
        let secs = lease_seconds();
        for _ in 0..5 {
            let mut top = newest(state).await?;
            if let Some(h) = top
                .clone()
                .filter(|h| !h.released && h.expires_at > Utc::now())
            {
                // Held: wait (at most one lease length) to see whether the holder renews it.
                // A run killed a moment ago thus leaves the output to the next run within a
                // lease length; a live holder is refused.
                let left = (h.expires_at - Utc::now()).min(Duration::seconds(secs + 1));
                let wait =
                    left.to_std().unwrap_or_default() + std::time::Duration::from_millis(200);
                tracing::info!(
                    "the lease is held by run {} (on {}) until {}: waiting {:.1} s to see whether it is renewed",
                    h.run_id,
                    h.host,
                    h.expires_at.to_rfc3339(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                let again = newest(state).await?;
                let renewed = again.as_ref().is_some_and(|a| a.seq != h.seq);
                if renewed && again.as_ref().is_some_and(|a| a.released) {
                    continue;
                }
                if renewed || h.expires_at > Utc::now() {
                    let h = again.unwrap_or(h);
                    return Err(Error::Locked(format!(
                        "another run ({} on {}) holds the lease of {} until {} and renews it while it runs; wait for it to finish (a dead run's lease expires within its length, {secs} s by default here)",
                        h.run_id,
                        h.host,
                        crate::policy::redact::url(&state.url),
                        h.expires_at.to_rfc3339()
                    )));
                }
                top = again;
            }
            if let Some(h) = top.as_ref().filter(|h| !h.released) {
                tracing::warn!(
                    "taking over the lease of run {} (on {}), which expired at {} without being released",
                    h.run_id,
                    h.host,
                    h.expires_at.to_rfc3339()
                );
            }
            let now = Utc::now();
            let seq = top.map_or(1, |h| h.seq + 1);
            let rec = Record {
                seq,
                run_id: run_id.to_string(),
                host: hostname(),
                acquired_at: now,
                expires_at: now + Duration::seconds(secs),
                released: false,
            };
            let body = serde_json::to_vec_pretty(&rec).expect("lease serialises");
            if state.create(&record_path(state, seq), body).await? {
                return Ok(Lease::start(state, run_id, rec, secs));
            }
            // Another run took this number first: look again.
        }
        Err(Error::Locked(format!(
            "could not take the lease of {}: other runs keep taking it",
            crate::policy::redact::url(&state.url)
        )))
    }

    fn start(state: &Location, run_id: &str, rec: Record, secs: i64) -> Lease {
        let seq = Arc::new(tokio::sync::Mutex::new(rec.seq));
        let lost = Arc::new(AtomicBool::new(false));
        let (st, s, l, acquired) = (state.clone(), seq.clone(), lost.clone(), rec.acquired_at);
        let run = run_id.to_string();
        let heartbeat = tokio::spawn(async move {
            let every = std::time::Duration::from_millis((secs * 1000 / 3).max(100) as u64);
            loop {
                tokio::time::sleep(every).await;
                let mut cur = s.lock().await;
                let now = Utc::now();
                let next = Record {
                    seq: *cur + 1,
                    run_id: run.clone(),
                    host: hostname(),
                    acquired_at: acquired,
                    expires_at: now + Duration::seconds(secs),
                    released: false,
                };
                let body = serde_json::to_vec_pretty(&next).expect("lease serialises");
                match st.create(&record_path(&st, next.seq), body).await {
                    Ok(true) => {
                        // The one before stays: a reader may have just listed it.
                        if *cur > 1 {
                            let _ = st.store.delete(&record_path(&st, *cur - 1)).await;
                        }
                        *cur = next.seq;
                    }
                    Ok(false) => {
                        tracing::error!(
                            "the lease was taken over by another run: this run publishes nothing"
                        );
                        l.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!("renewing the lease failed ({e}); retrying"),
                }
            }
        });
        Lease {
            state: state.clone(),
            run_id: run_id.to_string(),
            seq,
            lost,
            heartbeat,
        }
    }

    /// Fails if the lease was lost (another run took it over): checked before publishing, from
    /// the store itself (a heartbeat kept from running by a long step would not know yet).
    pub async fn check(&self) -> Result<()> {
        // Held while reading: no renewal moves the number in between.
        let guard = self.seq.lock().await;
        let top = newest(&self.state).await?;
        let ours = top
            .as_ref()
            .is_some_and(|t| t.seq == *guard && t.run_id == self.run_id && !t.released);
        drop(guard);
        if !ours {
            self.lost.store(true, Ordering::SeqCst);
        }
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Locked(format!(
                "run {} lost the lease of {} to another run (it could not renew it in time): nothing published",
                self.run_id,
                crate::policy::redact::url(&self.state.url)
            )));
        }
        Ok(())
    }

    /// Releases the lease: one more record, marked released.
    pub async fn release(self) -> Result<()> {
        // Holding the number stops the heartbeat between renewals, never in the middle of one.
        let guard = self.seq.lock().await;
        self.heartbeat.abort();
        let cur = *guard;
        drop(guard);
        if self.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        let now = Utc::now();
        let rec = Record {
            seq: cur + 1,
            run_id: self.run_id.clone(),
            host: hostname(),
            acquired_at: now,
            expires_at: now,
            released: true,
        };
        let body = serde_json::to_vec_pretty(&rec).expect("lease serialises");
        if self
            .state
            .create(&record_path(&self.state, rec.seq), body)
            .await?
        {
            for old in [cur.saturating_sub(1), cur] {
                let _ = self
                    .state
                    .store
                    .delete(&record_path(&self.state, old))
                    .await;
            }
        } else {
            tracing::warn!("the lease had been taken over before this run released it");
        }
        Ok(())
    }
}
