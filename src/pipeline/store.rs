//! The stored daily facts under the state root: one folder per event date (three Parquet
//! frames and a status), and `_meta.json`, the time zone and layout they were computed with.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use polars::prelude::*;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::facts::FactSet;
use crate::source::Location;

pub const FACTS_DIR: &str = "_facts";
pub const FACTS_META: &str = "_facts/_meta.json";

pub fn facts_path(d: NaiveDate, frame: &str) -> String {
    format!("{FACTS_DIR}/date={d}/{frame}.parquet")
}

/// Version of the stored facts' layout: facts of another layout are refused, not misread.
const FACTS_LAYOUT: u32 = 2;

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

/// The dates with stored facts (a date folder may hold only a status: late records seen),
/// with the metadata of their fact files (sizes and etags tell when they change).
pub async fn stored_dates(
    out: &Location,
) -> Result<std::collections::BTreeMap<NaiveDate, Vec<object_store::ObjectMeta>>> {
    let metas = out.list_all(&out.child(FACTS_DIR)).await?;
    let date_of = |m: &object_store::ObjectMeta| {
        m.location
            .as_ref()
            .split('/')
            .find_map(|p| p.strip_prefix("date="))
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let with_facts: BTreeSet<NaiveDate> = metas
        .iter()
        .filter(|m| m.location.as_ref().ends_with("/sessions.parquet"))
        .filter_map(date_of)
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for m in metas {
        if !m.location.as_ref().ends_with(".parquet") {
            continue;
        }
        if let Some(d) = date_of(&m).filter(|d| with_facts.contains(d)) {
            out.entry(d).or_insert_with(Vec::new).push(m);
        }
    }
    Ok(out)
}

/// The stored facts of `dates`, fetched a few dates at a time (object stores answer faster in
/// parallel), in date order.
pub async fn read_facts(out: &Location, dates: &[NaiveDate]) -> Result<Vec<FactSet>> {
    futures::stream::iter(dates.iter().copied())
        .map(|d| async move {
            let mut frames = Vec::new();
            for name in FactSet::NAMES {
                let bytes = out.get(&out.child(&facts_path(d, name))).await?;
                frames.push(ParquetReader::new(std::io::Cursor::new(bytes)).finish()?);
            }
            Ok::<_, Error>(FactSet::from_frames(frames))
        })
        .buffered(8)
        .try_collect()
        .await
}
