//! cc-analytics: rebuilds an organisation's Claude Code analytics tables from raw
//! OpenTelemetry telemetry (OTLP JSON) in object storage.
//!
//! Data flows one way, one folder per stage: [`config`] (flags, pipeline file, dimensions,
//! roster) → [`source`] (object stores: list, read, decompress) → [`decode`] (OTLP JSON into
//! record columns, in parallel; rejected input quarantined) → [`facts`] (dedup, increments,
//! identity, per-session rules; the per-date store and its commits) → [`reports`] (every table
//! from the stored facts, a month at a time; adoption, the API-shaped export, the dashboard) →
//! [`publish`] (the lease, role folders, two-phase publishing), filtered by [`policy`]. The
//! [`pipeline`] runs them: one window, a backfill of windows, a shard, the reduce.
//! [`sink`] encodes Parquet and CSV for the stages that write; [`manifest`] is the run's record.

pub mod config;
pub mod decode;
pub mod error;
pub mod facts;
pub mod generate;
pub mod manifest;
pub mod memory;
pub mod pipeline;
pub mod policy;
pub mod publish;
pub mod reports;
pub mod schema;
pub mod sink;
pub mod source;

pub use error::{Error, Result};
