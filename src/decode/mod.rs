//! Decoding: OTLP-JSON lines into record columns ([`otlp`], [`model`]), objects read and decoded
//! in parallel and merged in order ([`ingest`]), rejected input written as it is found
//! ([`quarantine`]).

pub mod ingest;
pub mod model;
pub mod otlp;
pub mod quarantine;
