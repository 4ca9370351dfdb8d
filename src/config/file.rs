//! The pipeline file (TOML): every key, unknown keys refused.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The pipeline file. Unknown keys are errors.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub input: Vec<String>,
    pub output: Option<String>,
    pub state: Option<String>,
    pub roster: Option<String>,
    pub policy: Option<String>,
    pub date: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub lookback_days: Option<u32>,
    pub timezone: Option<String>,
    pub roles: Option<Vec<String>>,
    pub max_bad_ratio: Option<f64>,
    pub max_arrival_delay_days: Option<u32>,
    /// Write `reports/<role>/dashboard.html` (default true).
    pub dashboard: Option<bool>,
    /// Days a run's quarantine folder is kept (default 30).
    pub quarantine_retention_days: Option<u32>,
    /// Recompute the event dates of late records too (default false).
    pub heal_late: Option<bool>,
    /// How far before the first date healing reaches (default 31 days).
    pub heal_max_days: Option<u32>,
    /// Largest cost of one request or metric point, in USD (default 1000).
    pub max_cost_usd: Option<f64>,
    /// Largest token count or other count of one record (default 10^9).
    pub max_count: Option<f64>,
    /// Event dates per window of a run over a range (default 7): memory follows one window.
    pub window_days: Option<u32>,
    /// On a local disk, reuse the per-member CSV files the run before last replaced, keeping
    /// their unchanged months (default true; see the README's "Reused files").
    pub reuse_replaced_files: Option<bool>,
    /// Shards of a backfill (contract 4.3): shard mode, the index from the flag or environment.
    pub shard_count: Option<u32>,
    /// Dimensions (contract 5.5.1), by name.
    #[serde(default)]
    pub dimensions: std::collections::BTreeMap<String, DimensionSpec>,
}

/// `[dimensions.<name>]` of the pipeline file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct DimensionSpec {
    #[serde(default)]
    pub attributes: Vec<String>,
    pub roster: Option<String>,
}

impl FileConfig {
    pub fn parse(text: &str, source: &str) -> Result<FileConfig> {
        toml::from_str(text).map_err(|e| {
            Error::usage(format!(
                "config {source}: {}",
                e.to_string().replace('\n', " ").trim()
            ))
        })
    }
}
