//! Decoding: OTLP-JSON lines into record columns ([`otlp`]: a line scanned by `scan`, or parsed
//! by serde into the wire shapes of `wire` when the scanner is not sure, into the one `flat`
//! document both make; their values in `values`, the nesting check in `depth`; [`model`]), objects read and decoded in
//! parallel and merged in order ([`ingest`]), rejected input written as it is found ([`quarantine`]).

mod depth;
mod flat;
pub mod ingest;
pub mod model;
mod object;
pub mod otlp;
pub mod quarantine;
mod scan;
mod tasks;
mod values;
mod wire;
