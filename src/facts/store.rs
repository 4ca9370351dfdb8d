//! The stored daily facts under the state root, and `_meta.json`, the time zone and layout they
//! were computed with. Each event date's folder holds whole versions of its facts (three Parquet
//! frames each, never changed once written) and commit records, created only if absent, the
//! newest of which names the current version and carries the date's status:
//!
//! ```text
//! _facts/date=D/v=<run id>/{sessions,models,tools}.parquet
//! _facts/date=D/_commits/<sequence number>.json
//! ```
//!
//! Readers read only a committed version, so two writers of one date (a retried shard beside
//! its first attempt, a nightly run beside a backfill) never leave a mix.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use polars::prelude::*;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::facts::late::DateStatus;
use crate::facts::FactSet;
use crate::source::Location;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

pub const FACTS_DIR: &str = "_facts";
pub const FACTS_META: &str = "_facts/_meta.json";

/// A frame of one version of a date's facts. Versions are written whole and never changed;
/// a date's commit records say which one is current.
pub fn facts_path(d: NaiveDate, version: &str, frame: &str) -> String {
    format!("{FACTS_DIR}/date={d}/v={version}/{frame}.parquet")
}

fn commit_path(d: NaiveDate, seq: u64) -> String {
    format!("{FACTS_DIR}/date={d}/_commits/{seq:012}.json")
}

/// One commit of a date (`_facts/date=D/_commits/<seq>.json`, created only if absent, so
/// that of two writers of one sequence number exactly one wins): the version of its facts
/// (none when the date only has a status: late records seen) and its status. The highest
/// sequence number is the date's current state.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Commit {
    pub seq: u64,
    pub version: Option<String>,
    pub run_id: String,
    pub status: DateStatus,
}

/// A date's current commit and the files of its version.
#[derive(Debug, Clone)]
pub struct Stored {
    pub commit: Commit,
    pub files: Vec<object_store::ObjectMeta>,
}

/// The date, sequence number (for commit records) and version (for fact files) of a path under
/// `_facts/`.
fn parse_key(key: &str) -> Option<(NaiveDate, Key<'_>)> {
    let rest = &key[key.find(&format!("{FACTS_DIR}/date="))? + FACTS_DIR.len() + 6..];
    let (day, rest) = rest.split_once('/')?;
    let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    if let Some(c) = rest.strip_prefix("_commits/") {
        let seq = c.strip_suffix(".json")?.parse().ok()?;
        return Some((d, Key::Commit(seq)));
    }
    let (v, file) = rest.strip_prefix("v=")?.split_once('/')?;
    file.ends_with(".parquet").then_some((d, Key::File(v)))
}

enum Key<'a> {
    Commit(u64),
    File(&'a str),
}

/// The current state of every date under `prefix` (all of `_facts/`, or one date's folder),
/// from one listing and a read of each date's newest commit record.
async fn current(state: &Location, prefix: &str) -> Result<BTreeMap<NaiveDate, Stored>> {
    let metas = state.list_all(&state.child(prefix)).await?;
    let mut newest: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for m in &metas {
        if let Some((d, Key::Commit(seq))) = parse_key(m.location.as_ref()) {
            let e = newest.entry(d).or_insert(seq);
            *e = (*e).max(seq);
        }
    }
    let commits: Vec<(NaiveDate, Commit)> = futures::stream::iter(newest)
        .map(|(d, seq)| async move {
            let path = state.child(&commit_path(d, seq));
            let bytes = state.get(&path).await?;
            let c: Commit = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Other(format!("bad commit record {path}: {e}")))?;
            Ok::<_, Error>((d, c))
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut out: BTreeMap<NaiveDate, Stored> = commits
        .into_iter()
        .map(|(d, commit)| {
            (
                d,
                Stored {
                    commit,
                    files: Vec::new(),
                },
            )
        })
        .collect();
    for m in metas {
        if let Some((d, Key::File(v))) = parse_key(m.location.as_ref()) {
            if let Some(st) = out.get_mut(&d) {
                if st.commit.version.as_deref() == Some(v) {
                    st.files.push(m);
                }
            }
        }
    }
    Ok(out)
}

/// The current state of one date, if it has any commit.
pub async fn current_of(state: &Location, d: NaiveDate) -> Result<Option<Stored>> {
    Ok(current(state, &format!("{FACTS_DIR}/date={d}/"))
        .await?
        .remove(&d))
}

/// Commits a date: its facts (a new version, `None` to keep the current one: a status only)
/// and its status. The version's files are written first; the commit record is created at the
/// next sequence number, and if another writer took that number first, at the one after: each
/// date always shows one whole version. Superseded versions are removed afterwards.
pub async fn commit_date(
    state: &Location,
    d: NaiveDate,
    version: &str,
    run_id: &str,
    facts: Option<&FactSet>,
    status: impl Fn(Option<&Commit>) -> DateStatus,
) -> Result<()> {
    if let Some(f) = facts {
        for (name, df) in f.named() {
            let bytes =
                crate::sink::parquet_bytes(&mut df.clone(), &format!("facts_{name}"), None)?;
            state
                .put(&state.child(&facts_path(d, version, name)), bytes)
                .await?;
        }
    }
    // Test hook: `CC_ANALYTICS_ABORT_BEFORE_COMMIT=D` aborts the process (as kill -9 would)
    // once D's new files are written and before its commit record: the moment a writer is
    // most in the middle of a commit.
    if std::env::var("CC_ANALYTICS_ABORT_BEFORE_COMMIT").ok() == Some(d.to_string()) {
        std::process::abort();
    }
    for _ in 0..100 {
        let now = current_of(state, d).await?;
        let prev = now.as_ref().map(|s| &s.commit);
        let seq = prev.map_or(1, |c| c.seq + 1);
        let commit = Commit {
            seq,
            version: match facts {
                Some(_) => Some(version.to_string()),
                None => prev.and_then(|c| c.version.clone()),
            },
            run_id: run_id.to_string(),
            status: status(prev),
        };
        let body = serde_json::to_vec_pretty(&commit).expect("commit serialises");
        if state
            .create(&state.child(&commit_path(d, seq)), body)
            .await?
        {
            tidy(state, d, &commit).await?;
            return Ok(());
        }
        tracing::debug!("{d}: commit {seq} was taken by another writer; retrying at the next");
    }
    Err(Error::Other(format!(
        "{d}: could not commit its facts after 100 attempts: too many writers of one date"
    )))
}

/// Removes what commit `c` superseded: commit records and versions older than the one before
/// it (kept for readers that listed just before `c`). A version no commit names is removed only
/// once it is an hour old: it may be another writer's, about to be committed.
async fn tidy(state: &Location, d: NaiveDate, c: &Commit) -> Result<()> {
    let metas = state
        .list_all(&state.child(&format!("{FACTS_DIR}/date={d}/")))
        .await?;
    let mut keep: BTreeSet<String> = c.version.iter().cloned().collect();
    let mut named: BTreeSet<String> = BTreeSet::new();
    for m in &metas {
        if let Some((_, Key::Commit(seq))) = parse_key(m.location.as_ref()) {
            if seq + 1 >= c.seq {
                if let Ok(b) = state.get(&m.location).await {
                    if let Ok(old) = serde_json::from_slice::<Commit>(&b) {
                        keep.extend(old.version);
                    }
                }
            }
        }
    }
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    for m in &metas {
        let gone = match parse_key(m.location.as_ref()) {
            Some((_, Key::Commit(seq))) => seq + 1 < c.seq,
            Some((_, Key::File(v))) => {
                named.insert(v.to_string());
                !keep.contains(v) && m.last_modified < hour_ago
            }
            None => false,
        };
        if gone {
            match state.store.delete(&m.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(m.location.as_ref(), e)),
            }
        }
    }
    Ok(())
}

/// Version of the stored facts' layout: facts of another layout are refused, not misread.
const FACTS_LAYOUT: u32 = 4;

#[derive(serde::Serialize, serde::Deserialize)]
struct FactsMeta {
    timezone: String,
    #[serde(default)]
    layout: u32,
}

/// `_meta.json` for facts computed in `tz`.
pub fn meta_bytes(cfg: &RunConfig) -> Vec<u8> {
    serde_json::to_vec(&FactsMeta {
        timezone: cfg.tz.name().to_string(),
        layout: FACTS_LAYOUT,
    })
    .expect("meta serialises")
}

/// Stored facts of another layout or time zone are refused, not misread.
pub async fn check_meta(state: &Location, cfg: &RunConfig) -> Result<()> {
    let Ok(bytes) = state.get(&state.child(FACTS_META)).await else {
        return Ok(());
    };
    let meta: FactsMeta = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Other(format!("bad {FACTS_META}: {e}")))?;
    if meta.layout != FACTS_LAYOUT {
        return Err(Error::usage(format!(
            "{} holds daily facts in an older layout, from an earlier version of cc-analytics; write to a new output, or remove its {FACTS_DIR}/ and backfill the dates again",
            state.url
        )));
    }
    if meta.timezone != cfg.tz.name() {
        return Err(Error::usage(format!(
            "{} holds facts computed in time zone {}; run with --timezone {} or use another output",
            state.url, meta.timezone, meta.timezone
        )));
    }
    Ok(())
}

/// The dates with stored facts (a date may have only a status: late records seen), with the
/// metadata of their current version's files (sizes and etags tell when they change).
pub async fn stored_dates(
    out: &Location,
) -> Result<BTreeMap<NaiveDate, Vec<object_store::ObjectMeta>>> {
    Ok(current(out, FACTS_DIR)
        .await?
        .into_iter()
        .filter(|(_, st)| st.commit.version.is_some() && !st.files.is_empty())
        .map(|(d, st)| (d, st.files))
        .collect())
}

/// One frame (`FactSet::NAMES`) of the stored facts of each date, from its version's files,
/// fetched a few dates at a time (object stores answer faster in parallel), in date order.
pub async fn read_frame(
    out: &Location,
    dates: &[(NaiveDate, Vec<object_store::ObjectMeta>)],
    name: &str,
) -> Result<Vec<DataFrame>> {
    futures::stream::iter(dates.iter())
        .map(|(d, files)| async move {
            let file = files
                .iter()
                .find(|m| m.location.as_ref().ends_with(&format!("/{name}.parquet")))
                .ok_or_else(|| {
                    Error::Other(format!("{d}: the stored facts lack their {name} frame"))
                })?;
            let bytes = out.get(&file.location).await?;
            Ok::<_, Error>(ParquetReader::new(std::io::Cursor::new(bytes)).finish()?)
        })
        .buffered(8)
        .try_collect()
        .await
}
