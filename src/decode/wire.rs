//! The OTLP-JSON wire shapes as borrowed serde structs (no JSON tree), the attributes this job
//! picks out of them, and the fixed-key hashes of attribute lists (dedup keys, series).

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use serde::Deserialize;

use super::values::{AnyValue, Num};

#[derive(Debug, Deserialize)]
pub(super) struct KeyValue<'a> {
    #[serde(borrow)]
    pub(super) key: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) value: AnyValue<'a>,
}

#[derive(Deserialize, Default)]
pub(super) struct Resource<'a> {
    #[serde(borrow, default)]
    pub(super) attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize, Default)]
pub(super) struct Scope<'a> {
    #[serde(borrow, default)]
    pub(super) name: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(super) struct Doc<'a> {
    #[serde(rename = "resourceLogs", borrow, default)]
    pub(super) resource_logs: Option<Vec<ResourceLogs<'a>>>,
    #[serde(rename = "resourceMetrics", borrow, default)]
    pub(super) resource_metrics: Option<Vec<ResourceMetrics<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct ResourceLogs<'a> {
    #[serde(borrow, default)]
    pub(super) resource: Resource<'a>,
    #[serde(rename = "scopeLogs", borrow, default)]
    pub(super) scope_logs: Vec<ScopeLogs<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ScopeLogs<'a> {
    #[serde(borrow, default)]
    pub(super) scope: Scope<'a>,
    #[serde(rename = "logRecords", borrow, default)]
    pub(super) log_records: Vec<LogRecord<'a>>,
}

#[derive(Deserialize)]
pub(super) struct LogRecord<'a> {
    #[serde(rename = "timeUnixNano", borrow, default)]
    pub(super) time_unix_nano: Option<Num<'a>>,
    #[serde(rename = "observedTimeUnixNano", borrow, default)]
    pub(super) observed_time_unix_nano: Option<Num<'a>>,
    #[serde(borrow, default)]
    pub(super) body: Option<AnyValue<'a>>,
    #[serde(borrow, default)]
    pub(super) attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ResourceMetrics<'a> {
    #[serde(borrow, default)]
    pub(super) resource: Resource<'a>,
    #[serde(rename = "scopeMetrics", borrow, default)]
    pub(super) scope_metrics: Vec<ScopeMetrics<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ScopeMetrics<'a> {
    #[serde(borrow, default)]
    pub(super) metrics: Vec<Metric<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Metric<'a> {
    #[serde(borrow, default)]
    pub(super) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) sum: Option<Points<'a>>,
    #[serde(borrow, default)]
    pub(super) gauge: Option<Points<'a>>,
    #[serde(borrow, default)]
    pub(super) histogram: Option<Points<'a>>,
    #[serde(rename = "exponentialHistogram", borrow, default)]
    pub(super) exponential_histogram: Option<Points<'a>>,
    #[serde(borrow, default)]
    pub(super) summary: Option<Points<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Points<'a> {
    #[serde(rename = "dataPoints", borrow, default)]
    pub(super) data_points: Vec<DataPoint<'a>>,
    #[serde(rename = "aggregationTemporality", borrow, default)]
    pub(super) aggregation_temporality: Option<Num<'a>>,
}

#[derive(Deserialize)]
pub(super) struct DataPoint<'a> {
    #[serde(borrow, default)]
    pub(super) attributes: Vec<KeyValue<'a>>,
    #[serde(rename = "startTimeUnixNano", borrow, default)]
    pub(super) start_time_unix_nano: Option<Num<'a>>,
    #[serde(rename = "timeUnixNano", borrow, default)]
    pub(super) time_unix_nano: Option<Num<'a>>,
    #[serde(rename = "asDouble", borrow, default)]
    pub(super) as_double: Option<Num<'a>>,
    #[serde(rename = "asInt", borrow, default)]
    pub(super) as_int: Option<Num<'a>>,
}

/// The attributes this job reads, picked out of a record's (or resource's) attribute list.
#[derive(Default)]
pub(super) struct Picked<'v, 'a> {
    pub(super) session: Option<&'v AnyValue<'a>>,
    pub(super) email: Option<&'v AnyValue<'a>>,
    pub(super) api_key: Option<&'v AnyValue<'a>>,
    pub(super) account: Option<&'v AnyValue<'a>>,
    pub(super) user_id: Option<&'v AnyValue<'a>>,
    pub(super) event_name: Option<&'v AnyValue<'a>>,
    pub(super) event_timestamp: Option<&'v AnyValue<'a>>,
    pub(super) event_sequence: Option<&'v AnyValue<'a>>,
    pub(super) model: Option<&'v AnyValue<'a>>,
    pub(super) cost_usd: Option<&'v AnyValue<'a>>,
    pub(super) cost_usd_micros: Option<&'v AnyValue<'a>>,
    pub(super) input_tokens: Option<&'v AnyValue<'a>>,
    pub(super) output_tokens: Option<&'v AnyValue<'a>>,
    pub(super) cache_read_tokens: Option<&'v AnyValue<'a>>,
    pub(super) cache_creation_tokens: Option<&'v AnyValue<'a>>,
    pub(super) tool_name: Option<&'v AnyValue<'a>>,
    pub(super) tool: Option<&'v AnyValue<'a>>,
    pub(super) decision: Option<&'v AnyValue<'a>>,
    pub(super) typ: Option<&'v AnyValue<'a>>,
    pub(super) start_type: Option<&'v AnyValue<'a>>,
}

impl<'v, 'a> Picked<'v, 'a> {
    /// Record attributes first; resource attributes fill what the record lacks.
    pub(super) fn from(record: &'v [KeyValue<'a>], resource: &'v [KeyValue<'a>]) -> Self {
        let mut p = Picked::default();
        for kv in resource.iter().chain(record.iter()).rev() {
            let slot = match kv.key.as_ref() {
                "session.id" => &mut p.session,
                "user.email" => &mut p.email,
                "api_key.name" => &mut p.api_key,
                "user.account_uuid" => &mut p.account,
                "user.id" => &mut p.user_id,
                "event.name" => &mut p.event_name,
                "event.timestamp" => &mut p.event_timestamp,
                "event.sequence" => &mut p.event_sequence,
                "model" => &mut p.model,
                "cost_usd" => &mut p.cost_usd,
                "cost_usd_micros" => &mut p.cost_usd_micros,
                "input_tokens" => &mut p.input_tokens,
                "output_tokens" => &mut p.output_tokens,
                "cache_read_tokens" => &mut p.cache_read_tokens,
                "cache_creation_tokens" => &mut p.cache_creation_tokens,
                "tool_name" => &mut p.tool_name,
                "tool" => &mut p.tool,
                "decision" => &mut p.decision,
                "type" => &mut p.typ,
                "start_type" => &mut p.start_type,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(&kv.value);
            }
        }
        p
    }
}

/// A fast, high-quality hasher with fixed keys: the same hashes in every run and on every machine.
pub(super) fn hasher() -> ahash::AHasher {
    use std::hash::BuildHasher;
    ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
    .build_hasher()
}

pub(super) fn hash_attrs(attrs: &[KeyValue<'_>]) -> u64 {
    // Order-insensitive: the sum of per-attribute hashes.
    attrs.iter().fold(0u64, |acc, kv| {
        let mut h = hasher();
        kv.key.hash(&mut h);
        kv.value.hash_into(&mut h);
        acc.wrapping_add(h.finish())
    })
}

pub(super) fn mix(parts: &[u64]) -> u64 {
    let mut h = hasher();
    parts.hash(&mut h);
    h.finish()
}
