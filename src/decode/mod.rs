//! Decoding: OTLP-JSON lines into record columns ([`otlp`], with the wire shapes in `wire`, their
//! values in `values` and the nesting check in `depth`; [`model`]), objects read and decoded in
//! parallel and merged in order ([`ingest`]), rejected input written as it is found ([`quarantine`]).

mod depth;
pub mod ingest;
pub mod model;
mod object;
pub mod otlp;
pub mod quarantine;
mod tasks;
mod values;
mod wire;
