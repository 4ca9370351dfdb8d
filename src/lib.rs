//! cc-analytics: rebuilds an organisation's Claude Code analytics tables from raw
//! OpenTelemetry telemetry (OTLP JSON) in object storage.
//!
//! Data flows one way: [`config`] → [`source`] (list, read) → [`otlp`] (decode) into the
//! [`model`] records → [`facts`] (dedup, increments, identity, per-session rules) →
//! [`reports`] (the seven tables) → [`sink`] (Parquet, CSV) → published per role by [`pipeline`],
//! filtered by [`policy`].

pub mod adoption;
pub mod breakdowns;
pub mod config;
pub mod dashboard;
pub mod dimensions;
pub mod error;
pub mod export;
pub mod facts;
pub mod generate;
pub mod ingest;
pub mod late;
pub mod lease;
pub mod manifest;
pub mod model;
pub mod otlp;
pub mod pipeline;
pub mod policy;
pub mod publish;
pub mod quarantine;
pub mod redact;
pub mod reports;
pub mod roster;
pub mod schema;
pub mod sink;
pub mod source;

pub use error::{Error, Result};
