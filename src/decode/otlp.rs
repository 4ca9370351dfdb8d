//! Streaming decoder of OTLP-JSON lines (as the OpenTelemetry Collector writes them) into
//! record columns. Borrowed serde structs, no JSON tree; strings are interned per object.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::TimeZone;
use chrono_tz::Tz;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::depth::{too_deep, MAX_DEPTH};
use super::values::{AnyValue, Num};
use crate::decode::model::{sym, Dict, Records, CUMULATIVE, DELTA, EVENT, METRIC};
use crate::schema::otel;

/// Earliest plausible event time: 2020-01-01T00:00:00Z.
pub const MIN_TIME_NS: i64 = 1_577_836_800_000_000_000;
const NS_PER_DAY: i64 = 86_400_000_000_000;

/// Why a record (or a whole line) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The line is not JSON.
    InvalidJson,
    /// JSON, but neither `resourceLogs` nor `resourceMetrics`.
    NotOtlp,
    /// The object's compressed stream ends early; the incomplete rest is quarantined.
    Truncated,
    /// An object that decompresses to more than the limit (a decompression bomb): its complete
    /// lines within the limit are used; the line cut there is quarantined, the rest not read.
    TooLarge,
    /// A line longer than the decoder accepts.
    LineTooLong,
    /// JSON nested deeper than any OTLP document.
    TooDeep,
    /// A cost, token count or metric value that is not a number.
    BadNumber,
    /// A cost, token count or counter value below zero.
    NegativeValue,
    /// No usable time, or one that cannot be parsed.
    BadTime,
    /// Before 2020 or more than a day after the run.
    TimeOutOfRange,
    /// A cost or count above its plausible bound (`Limits`), or one that would overflow a sum.
    ImplausibleValue,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotOtlp => "not_otlp",
            Reason::Truncated => "truncated_object",
            Reason::TooLarge => "object_too_large",
            Reason::LineTooLong => "line_too_long",
            Reason::TooDeep => "too_deep",
            Reason::BadNumber => "bad_number",
            Reason::NegativeValue => "negative_value",
            Reason::BadTime => "bad_time",
            Reason::TimeOutOfRange => "time_out_of_range",
            Reason::ImplausibleValue => "implausible_value",
        }
    }
    /// Whether the reason applies to a whole line (else to one record inside a parsed line).
    pub fn is_line_level(&self) -> bool {
        matches!(
            self,
            Reason::InvalidJson
                | Reason::NotOtlp
                | Reason::Truncated
                | Reason::TooLarge
                | Reason::LineTooLong
                | Reason::TooDeep
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds above which a value is implausible (rejected as `implausible_value`): with them, the
/// sums of many records fit 64-bit integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest cost of one request event or one cost metric increment, in USD.
    pub max_cost_usd: f64,
    /// Largest token count of a request, or any other metric increment.
    pub max_count: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cost_usd: 1000.0,
            max_count: 1e9,
        }
    }
}

/// What the decoder needs to know about the run.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext {
    pub tz: Tz,
    /// Records later than this are rejected (run start + 1 day).
    pub max_time_ns: i64,
    pub limits: Limits,
    /// A record is late when its object's arrival day is more than this many days after its
    /// event date (contract 4.4: `max_arrival_delay_days`).
    pub late_after_days: i32,
    /// Attribute keys whose values records carry as they are (record and resource value
    /// apart): `organization.id`, `terminal.type`, then the dimensions' keys
    /// ([`crate::config::dimensions::Dimensions::keys`]).
    pub tags: &'static [&'static str],
}

impl DecodeContext {
    /// The default limits and arrival delay (3 days), and the tags every run reads.
    pub fn new(tz: Tz, max_time_ns: i64) -> Self {
        DecodeContext {
            tz,
            max_time_ns,
            limits: Limits::default(),
            late_after_days: 3,
            tags: &crate::config::dimensions::BASE_TAGS,
        }
    }
}

/// Per-line outcome counts, added up per object.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineCounts {
    pub records_parsed: u64,
    pub records_ignored: u64,
    pub records_rejected: u64,
}

#[derive(Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    value: AnyValue<'a>,
}

#[derive(Deserialize, Default)]
struct Resource<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize, Default)]
struct Scope<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(rename = "resourceLogs", borrow, default)]
    resource_logs: Option<Vec<ResourceLogs<'a>>>,
    #[serde(rename = "resourceMetrics", borrow, default)]
    resource_metrics: Option<Vec<ResourceMetrics<'a>>>,
}

#[derive(Deserialize)]
struct ResourceLogs<'a> {
    #[serde(borrow, default)]
    resource: Resource<'a>,
    #[serde(rename = "scopeLogs", borrow, default)]
    scope_logs: Vec<ScopeLogs<'a>>,
}

#[derive(Deserialize)]
struct ScopeLogs<'a> {
    #[serde(borrow, default)]
    scope: Scope<'a>,
    #[serde(rename = "logRecords", borrow, default)]
    log_records: Vec<LogRecord<'a>>,
}

#[derive(Deserialize)]
struct LogRecord<'a> {
    #[serde(rename = "timeUnixNano", borrow, default)]
    time_unix_nano: Option<Num<'a>>,
    #[serde(rename = "observedTimeUnixNano", borrow, default)]
    observed_time_unix_nano: Option<Num<'a>>,
    #[serde(borrow, default)]
    body: Option<AnyValue<'a>>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct ResourceMetrics<'a> {
    #[serde(borrow, default)]
    resource: Resource<'a>,
    #[serde(rename = "scopeMetrics", borrow, default)]
    scope_metrics: Vec<ScopeMetrics<'a>>,
}

#[derive(Deserialize)]
struct ScopeMetrics<'a> {
    #[serde(borrow, default)]
    metrics: Vec<Metric<'a>>,
}

#[derive(Deserialize)]
struct Metric<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    sum: Option<Points<'a>>,
    #[serde(borrow, default)]
    gauge: Option<Points<'a>>,
    #[serde(borrow, default)]
    histogram: Option<Points<'a>>,
    #[serde(rename = "exponentialHistogram", borrow, default)]
    exponential_histogram: Option<Points<'a>>,
    #[serde(borrow, default)]
    summary: Option<Points<'a>>,
}

#[derive(Deserialize)]
struct Points<'a> {
    #[serde(rename = "dataPoints", borrow, default)]
    data_points: Vec<DataPoint<'a>>,
    #[serde(rename = "aggregationTemporality", borrow, default)]
    aggregation_temporality: Option<Num<'a>>,
}

#[derive(Deserialize)]
struct DataPoint<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(rename = "startTimeUnixNano", borrow, default)]
    start_time_unix_nano: Option<Num<'a>>,
    #[serde(rename = "timeUnixNano", borrow, default)]
    time_unix_nano: Option<Num<'a>>,
    #[serde(rename = "asDouble", borrow, default)]
    as_double: Option<Num<'a>>,
    #[serde(rename = "asInt", borrow, default)]
    as_int: Option<Num<'a>>,
}

/// The attributes this job reads, picked out of a record's (or resource's) attribute list.
#[derive(Default)]
struct Picked<'v, 'a> {
    session: Option<&'v AnyValue<'a>>,
    email: Option<&'v AnyValue<'a>>,
    api_key: Option<&'v AnyValue<'a>>,
    account: Option<&'v AnyValue<'a>>,
    user_id: Option<&'v AnyValue<'a>>,
    event_name: Option<&'v AnyValue<'a>>,
    event_timestamp: Option<&'v AnyValue<'a>>,
    event_sequence: Option<&'v AnyValue<'a>>,
    model: Option<&'v AnyValue<'a>>,
    cost_usd: Option<&'v AnyValue<'a>>,
    cost_usd_micros: Option<&'v AnyValue<'a>>,
    input_tokens: Option<&'v AnyValue<'a>>,
    output_tokens: Option<&'v AnyValue<'a>>,
    cache_read_tokens: Option<&'v AnyValue<'a>>,
    cache_creation_tokens: Option<&'v AnyValue<'a>>,
    tool_name: Option<&'v AnyValue<'a>>,
    tool: Option<&'v AnyValue<'a>>,
    decision: Option<&'v AnyValue<'a>>,
    typ: Option<&'v AnyValue<'a>>,
    start_type: Option<&'v AnyValue<'a>>,
}

impl<'v, 'a> Picked<'v, 'a> {
    /// Record attributes first; resource attributes fill what the record lacks.
    fn from(record: &'v [KeyValue<'a>], resource: &'v [KeyValue<'a>]) -> Self {
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
fn hasher() -> ahash::AHasher {
    use std::hash::BuildHasher;
    ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
    .build_hasher()
}

fn hash_attrs(attrs: &[KeyValue<'_>]) -> u64 {
    // Order-insensitive: the sum of per-attribute hashes.
    attrs.iter().fold(0u64, |acc, kv| {
        let mut h = hasher();
        kv.key.hash(&mut h);
        kv.value.hash_into(&mut h);
        acc.wrapping_add(h.finish())
    })
}

fn mix(parts: &[u64]) -> u64 {
    let mut h = hasher();
    parts.hash(&mut h);
    h.finish()
}

/// Decodes the lines of one object into records, with a dictionary of its own.
pub struct ObjectDecoder {
    ctx: DecodeContext,
    pub dict: Dict,
    pub records: Records,
    pub counts: LineCounts,
    /// Rejected records: (line index within the object, reason).
    pub rejected: Vec<(usize, Reason)>,
    /// Beside each entry of `rejected`: the record's position in its line (log records, then
    /// metric points, in document order), so that the quarantine can keep that record alone.
    pub rejected_positions: Vec<u32>,
    /// `counts.records_parsed` when the current line began.
    line_first_record: u64,
    /// Arrival day (days since 1970-01-01) of the object being decoded, from its key.
    arrival_day: Option<i32>,
    /// Late records (contract 4.4) by (event date, arrival day), days since 1970-01-01.
    pub late: BTreeMap<(i32, i32), u64>,
    /// Event dates of the rejected records whose time was known.
    pub rejected_dates: BTreeMap<i32, u64>,
    /// Event date of the record being decoded, once its time is known.
    pending_date: Option<i32>,
    /// Tag values of the resource whose records are being decoded.
    res_tags: Vec<u32>,
    /// Per tag, the last record value and its id.
    last_tag: Vec<Option<(String, u32)>>,
}

struct Row<'v, 'a> {
    kind: u8,
    name: u32,
    time_ns: i64,
    picked: Picked<'v, 'a>,
    /// The record's attributes, for the tags (its resource's are in `res_tags`).
    attrs: &'v [KeyValue<'a>],
    dkey: u64,
    series: u64,
    start_ns: i64,
    temporality: u8,
    value: f64,
}

impl ObjectDecoder {
    pub fn new(ctx: DecodeContext) -> Self {
        ObjectDecoder {
            ctx,
            dict: Dict::default(),
            records: Records {
                tag_count: ctx.tags.len(),
                ..Default::default()
            },
            counts: LineCounts::default(),
            rejected: Vec::new(),
            rejected_positions: Vec::new(),
            line_first_record: 0,
            arrival_day: None,
            late: BTreeMap::new(),
            rejected_dates: BTreeMap::new(),
            pending_date: None,
            res_tags: Vec::new(),
            last_tag: vec![None; ctx.tags.len()],
        }
    }

    /// The arrival day of the object whose lines come next (`None` outside arrival partitions).
    pub fn set_arrival_day(&mut self, day: Option<i32>) {
        self.arrival_day = day;
    }

    /// The tag values of a resource's attributes, for its records.
    fn resource_tags(&mut self, resource: &[KeyValue<'_>]) {
        self.res_tags.clear();
        for key in self.ctx.tags {
            let v = resource
                .iter()
                .find(|kv| kv.key.as_ref() == *key)
                .and_then(|kv| kv.value.to_text());
            self.res_tags.push(match v {
                Some(t) if !t.is_empty() => self.dict.intern(&t),
                _ => sym::NONE,
            });
        }
    }

    /// Decodes one line. `Err` means the line is quarantined whole (nothing of it is used).
    pub fn decode_line(&mut self, line_no: usize, line: &str) -> Result<(), (Reason, String)> {
        if too_deep(line.as_bytes()) {
            return Err((Reason::TooDeep, format!("nested deeper than {MAX_DEPTH}")));
        }
        let doc: Doc =
            serde_json::from_str(line).map_err(|e| (Reason::InvalidJson, e.to_string()))?;
        self.line_first_record = self.counts.records_parsed;
        if doc.resource_logs.is_none() && doc.resource_metrics.is_none() {
            return Err((
                Reason::NotOtlp,
                "neither resourceLogs nor resourceMetrics".into(),
            ));
        }
        for rl in doc.resource_logs.iter().flatten() {
            let res_hash = hash_attrs(&rl.resource.attributes);
            self.resource_tags(&rl.resource.attributes);
            for sl in &rl.scope_logs {
                let cc_scope = sl.scope.name.starts_with(otel::SCOPE_PREFIX);
                for lr in &sl.log_records {
                    self.counts.records_parsed += 1;
                    self.pending_date = None;
                    if let Err(reason) =
                        self.log_record(lr, &rl.resource.attributes, res_hash, cc_scope)
                    {
                        self.reject(line_no, reason);
                    }
                }
            }
        }
        for rm in doc.resource_metrics.iter().flatten() {
            let res_hash = hash_attrs(&rm.resource.attributes);
            self.resource_tags(&rm.resource.attributes);
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let cc = m.name.starts_with(otel::PREFIX);
                    let (points, temporality) = match (&m.sum, &m.gauge) {
                        (Some(s), _) => (
                            s,
                            match s.aggregation_temporality.as_ref().and_then(Num::as_i64) {
                                Some(2) => CUMULATIVE,
                                _ => DELTA,
                            },
                        ),
                        (None, Some(g)) => (g, DELTA),
                        _ => match m
                            .histogram
                            .as_ref()
                            .or(m.exponential_histogram.as_ref())
                            .or(m.summary.as_ref())
                        {
                            // Other point types count as activity only; their values are not read.
                            Some(p) => (p, DELTA),
                            None => continue,
                        },
                    };
                    let value_points = m.sum.is_some() || m.gauge.is_some();
                    for dp in &points.data_points {
                        self.counts.records_parsed += 1;
                        self.pending_date = None;
                        if !cc {
                            self.counts.records_ignored += 1;
                            continue;
                        }
                        let r = self.data_point(
                            &m.name,
                            dp,
                            &rm.resource.attributes,
                            res_hash,
                            temporality,
                            value_points,
                        );
                        if let Err(reason) = r {
                            self.reject(line_no, reason);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn reject(&mut self, line_no: usize, reason: Reason) {
        self.counts.records_rejected += 1;
        self.rejected.push((line_no, reason));
        // The record just counted as parsed is the one rejected.
        let position = self.counts.records_parsed - self.line_first_record - 1;
        self.rejected_positions.push(position as u32);
        if let Some(d) = self.pending_date {
            *self.rejected_dates.entry(d).or_default() += 1;
        }
    }

    fn check_time(&self, t: i64) -> Result<i64, Reason> {
        if t < MIN_TIME_NS || t > self.ctx.max_time_ns {
            Err(Reason::TimeOutOfRange)
        } else {
            Ok(t)
        }
    }

    fn log_record(
        &mut self,
        lr: &LogRecord<'_>,
        resource: &[KeyValue<'_>],
        res_hash: u64,
        cc_scope: bool,
    ) -> Result<(), Reason> {
        let p = Picked::from(&lr.attributes, resource);
        let body = lr.body.as_ref().and_then(AnyValue::as_str);
        let body_name = body.and_then(|b| b.strip_prefix(otel::PREFIX));
        if body_name.is_none() && !cc_scope {
            self.counts.records_ignored += 1;
            return Ok(());
        }
        let Some(name) = p
            .event_name
            .and_then(AnyValue::as_str)
            .filter(|s| !s.is_empty())
            .or(body_name)
        else {
            self.counts.records_ignored += 1;
            return Ok(());
        };
        let time_ns = match lr.time_unix_nano.as_ref().map(|n| n.as_i64()) {
            Some(Some(t)) if t != 0 => t,
            Some(None) => return Err(Reason::BadTime),
            _ => match p.event_timestamp.and_then(AnyValue::as_str) {
                Some(ts) => chrono::DateTime::parse_from_rfc3339(ts)
                    .ok()
                    .and_then(|d| d.timestamp_nanos_opt())
                    .ok_or(Reason::BadTime)?,
                None => match lr.observed_time_unix_nano.as_ref().map(|n| n.as_i64()) {
                    Some(Some(t)) if t != 0 => t,
                    _ => return Err(Reason::BadTime),
                },
            },
        };
        let time_ns = self.check_time(time_ns)?;
        self.pending_date = Some(local_day(&self.ctx.tz, time_ns));
        let seq = match p.event_sequence.and_then(AnyValue::num) {
            Some(n) => Some(n.as_i64().ok_or(Reason::BadNumber)?),
            None => None,
        };
        let dkey = match seq {
            Some(s) => mix(&[1, s as u64]),
            None => mix(&[2, hash_attrs(&lr.attributes), res_hash]),
        };
        let name = self.dict.intern(name);
        self.push(Row {
            kind: EVENT,
            name,
            time_ns,
            picked: p,
            attrs: &lr.attributes,
            dkey,
            series: 0,
            start_ns: 0,
            temporality: DELTA,
            value: 0.0,
        })
    }

    fn data_point(
        &mut self,
        name: &str,
        dp: &DataPoint<'_>,
        resource: &[KeyValue<'_>],
        res_hash: u64,
        temporality: u8,
        value_points: bool,
    ) -> Result<(), Reason> {
        let p = Picked::from(&dp.attributes, resource);
        let time_ns = match dp.time_unix_nano.as_ref().map(|n| n.as_i64()) {
            Some(Some(t)) if t != 0 => t,
            _ => return Err(Reason::BadTime),
        };
        let time_ns = self.check_time(time_ns)?;
        self.pending_date = Some(local_day(&self.ctx.tz, time_ns));
        let start_ns = match dp.start_time_unix_nano.as_ref().map(|n| n.as_i64()) {
            None => 0,
            Some(Some(t)) => t,
            Some(None) => return Err(Reason::BadTime),
        };
        let value = if value_points {
            let v = dp
                .as_double
                .as_ref()
                .or(dp.as_int.as_ref())
                .map(|n| n.as_f64().ok_or(Reason::BadNumber))
                .transpose()?
                .unwrap_or(0.0);
            if v < 0.0 {
                return Err(Reason::NegativeValue);
            }
            // A delta point is an increment: bounded here. A cumulative point's increment is
            // known only once its series is sorted, and is bounded then (facts).
            let bound = if name == otel::M_COST {
                self.ctx.limits.max_cost_usd
            } else {
                self.ctx.limits.max_count
            };
            if temporality == DELTA && v > bound {
                return Err(Reason::ImplausibleValue);
            }
            v
        } else {
            0.0
        };
        let series = mix(&[hash_attrs(&dp.attributes), res_hash]);
        let dkey = mix(&[3, series, start_ns as u64, value.to_bits()]);
        let name = self.dict.intern(name);
        self.push(Row {
            kind: METRIC,
            name,
            time_ns,
            picked: p,
            attrs: &dp.attributes,
            dkey,
            series,
            start_ns,
            temporality,
            value,
        })
    }

    fn push(&mut self, row: Row<'_, '_>) -> Result<(), Reason> {
        let p = &row.picked;
        let nonneg_i64 = |v: Option<&AnyValue<'_>>| -> Result<Option<i64>, Reason> {
            match v.and_then(AnyValue::num) {
                None => Ok(None),
                Some(n) => {
                    let i = n.as_i64().ok_or(Reason::BadNumber)?;
                    if i < 0 {
                        Err(Reason::NegativeValue)
                    } else {
                        Ok(Some(i))
                    }
                }
            }
        };
        let nonneg_f64 = |v: Option<&AnyValue<'_>>| -> Result<Option<f64>, Reason> {
            match v.and_then(AnyValue::num) {
                None => Ok(None),
                Some(n) => {
                    let f = n.as_f64().ok_or(Reason::BadNumber)?;
                    if f < 0.0 {
                        Err(Reason::NegativeValue)
                    } else {
                        Ok(Some(f))
                    }
                }
            }
        };
        let is_request = row.kind == EVENT && row.name == sym::API_REQUEST;
        let (cost, tokens) = if is_request {
            let cost = match nonneg_f64(p.cost_usd)? {
                Some(c) => Some(c),
                None => nonneg_i64(p.cost_usd_micros)?.map(|m| m as f64 / 1e6),
            };
            (
                cost,
                [
                    nonneg_i64(p.input_tokens)?,
                    nonneg_i64(p.output_tokens)?,
                    nonneg_i64(p.cache_read_tokens)?,
                    nonneg_i64(p.cache_creation_tokens)?,
                ],
            )
        } else {
            (None, [None; 4])
        };
        let lim = self.ctx.limits;
        if cost.is_some_and(|c| c > lim.max_cost_usd)
            || tokens.iter().flatten().any(|&t| t as f64 > lim.max_count)
        {
            return Err(Reason::ImplausibleValue);
        }
        let date = local_day(&self.ctx.tz, row.time_ns);
        if let Some(a) = self.arrival_day {
            if a - date > self.ctx.late_after_days {
                *self.late.entry((date, a)).or_default() += 1;
            }
        }
        let d = &mut self.dict;
        let mut id = |v: Option<&AnyValue<'_>>| match v.and_then(AnyValue::to_text) {
            Some(s) if !s.is_empty() => d.intern(&s),
            _ => sym::NONE,
        };
        let r = &mut self.records;
        r.kind.push(row.kind);
        r.name.push(row.name);
        r.time_ns.push(row.time_ns);
        r.date.push(date);
        r.session.push(id(p.session));
        r.email.push(id(p.email));
        r.api_key.push(id(p.api_key));
        r.account.push(id(p.account));
        r.user_id.push(id(p.user_id));
        r.dkey.push(row.dkey);
        r.series.push(row.series);
        r.start_ns.push(row.start_ns);
        r.temporality.push(row.temporality);
        r.value.push(row.value);
        r.model.push(id(p.model));
        r.cost.push(cost);
        r.input_tokens.push(tokens[0]);
        r.output_tokens.push(tokens[1]);
        r.cache_read_tokens.push(tokens[2]);
        r.cache_creation_tokens.push(tokens[3]);
        r.tool.push(id(p.tool_name.or(p.tool)));
        r.decision.push(id(p.decision));
        r.typ.push(id(p.typ));
        r.start_type.push(id(p.start_type));
        // Each tag's record value, then its resource value (5.5.1: record before resource).
        for (k, key) in self.ctx.tags.iter().enumerate() {
            let v = row.attrs.iter().find(|kv| kv.key.as_ref() == *key);
            let own = match v.and_then(|kv| kv.value.to_text()) {
                Some(t) if !t.is_empty() => match &self.last_tag[k] {
                    // Records of one session repeat their values: no hash for a repeat.
                    Some((last, id)) if last.as_str() == t.as_ref() => *id,
                    _ => {
                        let id = d.intern(&t);
                        self.last_tag[k] = Some((t.into_owned(), id));
                        id
                    }
                },
                _ => sym::NONE,
            };
            r.tags.push(own);
            r.tags.push(self.res_tags[k]);
        }
        Ok(())
    }
}

/// The calendar day of a UTC nanosecond time in `tz`, as days since 1970-01-01.
pub fn local_day(tz: &Tz, time_ns: i64) -> i32 {
    let utc = chrono::Utc.timestamp_nanos(time_ns);
    let local = utc.with_timezone(tz).date_naive();
    (local - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Upper bound on event times for a run started at `now_ns`.
pub fn max_time_for(now_ns: i64) -> i64 {
    now_ns.saturating_add(NS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DecodeContext {
        DecodeContext::new(chrono_tz::UTC, max_time_for(1_800_000_000_000_000_000))
    }

    const LOG: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}},{"key":"user.email","value":{"stringValue":"res@example.com"}}]},"scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events"},"logRecords":[{"timeUnixNano":"1791447318137000000","observedTimeUnixNano":"1791447318137000000","body":{"stringValue":"claude_code.api_request"},"attributes":[{"key":"session.id","value":{"stringValue":"s1"}},{"key":"user.email","value":{"stringValue":"dev@example.com"}},{"key":"event.name","value":{"stringValue":"api_request"}},{"key":"event.sequence","value":{"intValue":"15"}},{"key":"model","value":{"stringValue":"claude-haiku-5-5"}},{"key":"input_tokens","value":{"intValue":2}},{"key":"output_tokens","value":{"stringValue":"4"}},{"key":"cache_read_tokens","value":{"doubleValue":9179}},{"key":"cost_usd","value":{"doubleValue":0.00276519}},{"key":"cost_usd_micros","value":{"intValue":"2765"}}]}]}]}]}"#;

    #[test]
    fn int64_strings_are_read_exactly_or_refused() {
        let n = |s: &'static str| Num::Str(Cow::Borrowed(s)).as_i64();
        assert_eq!(n("1793526301000000000"), Some(1_793_526_301_000_000_000));
        assert_eq!(n("9223372036854775807"), Some(i64::MAX));
        assert_eq!(n("9223372036854775808"), None);
        assert_eq!(n("99999999999999999999"), None);
        assert_eq!(n("007"), Some(7));
        assert_eq!(n(" 12 "), Some(12));
        assert_eq!(n("-5"), Some(-5));
        assert_eq!(n("1e3"), Some(1000));
        assert_eq!(n("1.5"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn decodes_api_request_with_mixed_number_encodings() {
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, LOG).unwrap();
        let r = &d.records;
        assert_eq!(r.len(), 1);
        assert_eq!(r.kind[0], EVENT);
        assert_eq!(r.name[0], sym::API_REQUEST);
        assert_eq!(r.time_ns[0], 1_791_447_318_137_000_000);
        // Record attribute wins over the resource attribute.
        assert_eq!(d.dict.resolve(r.email[0]), "dev@example.com");
        assert_eq!(d.dict.resolve(r.session[0]), "s1");
        assert_eq!(r.input_tokens[0], Some(2));
        assert_eq!(r.output_tokens[0], Some(4));
        assert_eq!(r.cache_read_tokens[0], Some(9179));
        assert_eq!(r.cache_creation_tokens[0], None);
        assert_eq!(r.cost[0], Some(0.00276519));
        assert_eq!(d.counts.records_parsed, 1);
    }

    #[test]
    fn cost_falls_back_to_micros() {
        let line = LOG.replace(
            r#"{"key":"cost_usd","value":{"doubleValue":0.00276519}},"#,
            "",
        );
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.cost[0], Some(0.002765));
    }

    #[test]
    fn event_time_falls_back_to_event_timestamp_then_observed() {
        let line = LOG
            .replace(r#""timeUnixNano":"1791447318137000000","#, r#""timeUnixNano":"0","#)
            .replace(
                r#"{"key":"event.name""#,
                r#"{"key":"event.timestamp","value":{"stringValue":"2026-10-08T08:15:00.000Z"}},{"key":"event.name""#,
            );
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.time_ns[0], 1_791_447_300_000_000_000);
        let line = LOG.replace(r#""timeUnixNano":"1791447318137000000","#, "");
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.time_ns[0], 1_791_447_318_137_000_000);
    }

    #[test]
    fn rejects_bad_cost_and_old_time_but_keeps_line() {
        let line = LOG.replace(r#"{"doubleValue":0.00276519}"#, r#"{"stringValue":"lots"}"#);
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(3, &line).unwrap();
        assert_eq!(d.records.len(), 0);
        assert_eq!(d.rejected, vec![(3, Reason::BadNumber)]);
        let line = LOG.replace(r#"{"doubleValue":0.00276519}"#, r#"{"doubleValue":-1.5}"#);
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.rejected, vec![(0, Reason::NegativeValue)]);
        let line = LOG.replace("1791447318137000000", "1000000000000000000");
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.rejected, vec![(0, Reason::TimeOutOfRange)]);
    }

    #[test]
    fn non_json_and_non_otlp_lines_are_errors() {
        let mut d = ObjectDecoder::new(ctx());
        assert_eq!(
            d.decode_line(0, "{not json").unwrap_err().0,
            Reason::InvalidJson
        );
        assert_eq!(
            d.decode_line(0, r#"{"a":1}"#).unwrap_err().0,
            Reason::NotOtlp
        );
        assert_eq!(
            d.decode_line(0, "[1,2]").unwrap_err().0,
            Reason::InvalidJson
        );
    }

    #[test]
    fn records_of_other_services_are_ignored() {
        let line = LOG
            .replace("claude_code.api_request", "other.thing")
            .replace("com.anthropic.claude_code.events", "io.other");
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.len(), 0);
        assert_eq!(d.counts.records_ignored, 1);
        let m = r#"{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"metrics":[{"name":"http.server.duration","sum":{"dataPoints":[{"timeUnixNano":"1791447318000000000","asInt":"1"}],"aggregationTemporality":1}},{"name":"claude_code.commit.count","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s"}}],"startTimeUnixNano":1791447258000000000,"timeUnixNano":1791447318000000000,"asInt":"2"}],"aggregationTemporality":2}}]}]}]}"#;
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, m).unwrap();
        assert_eq!(d.counts.records_parsed, 2);
        assert_eq!(d.counts.records_ignored, 1);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.records.name[0], sym::M_COMMIT);
        assert_eq!(d.records.temporality[0], CUMULATIVE);
        assert_eq!(d.records.value[0], 2.0);
        assert_eq!(d.records.start_ns[0], 1_791_447_258_000_000_000);
    }

    #[test]
    fn legacy_tool_attribute_and_attribute_order_do_not_matter() {
        let a = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"claude_code.code_edit_tool.decision","sum":{"dataPoints":[{"attributes":[{"key":"tool","value":{"stringValue":"MultiEdit"}},{"key":"decision","value":{"stringValue":"accept"}}],"timeUnixNano":"1791447318000000000","asDouble":3}],"aggregationTemporality":1}}]}]}]}"#;
        let b = a.replace(
            r#"{"key":"tool","value":{"stringValue":"MultiEdit"}},{"key":"decision","value":{"stringValue":"accept"}}"#,
            r#"{"key":"decision","value":{"stringValue":"accept"}},{"key":"tool","value":{"stringValue":"MultiEdit"}}"#,
        );
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, a).unwrap();
        d.decode_line(1, &b).unwrap();
        assert_eq!(d.records.tool[0], sym::MULTI_EDIT);
        assert_eq!(d.records.decision[0], sym::ACCEPT);
        assert_eq!(d.records.dkey[0], d.records.dkey[1]);
        assert_eq!(d.records.series[0], d.records.series[1]);
    }

    #[test]
    fn local_day_follows_dst_in_los_angeles() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        // 2026-03-08 is the spring-forward day (UTC-8 before 02:00, UTC-7 after).
        // 2026-03-09T07:30Z = 2026-03-09T00:30-07:00 → March 9 (a fixed -8 would say March 8).
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-09T07:30:00Z").unwrap();
        let day = local_day(&la, t.timestamp_nanos_opt().unwrap());
        let mar8 = (chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32;
        assert_eq!(day, mar8 + 1);
        // 2026-03-08T07:30Z = 2026-03-07T23:30-08:00 → March 7 (PST still in force).
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-08T07:30:00Z").unwrap();
        assert_eq!(local_day(&la, t.timestamp_nanos_opt().unwrap()), mar8 - 1);
    }
}

#[cfg(test)]
mod hostile {
    use super::super::depth::{too_deep_from, Scan};
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> DecodeContext {
        DecodeContext::new(chrono_tz::UTC, i64::MAX)
    }

    const SAMPLE: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"user.email","value":{"stringValue":"a@b"}}]},"scopeMetrics":[{"metrics":[{"name":"claude_code.cost.usage","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s"}},{"key":"model","value":{"intValue":"7"}}],"startTimeUnixNano":"1791447258000000000","timeUnixNano":"1791447318000000000","asDouble":0.5}],"aggregationTemporality":2}}]}]}],"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1791447318137000000","body":{"stringValue":"claude_code.api_request"},"attributes":[{"key":"event.sequence","value":{"intValue":"1"}},{"key":"cost_usd","value":{"doubleValue":1e308}},{"key":"input_tokens","value":{"stringValue":"-3"}}]}]}]}]}"#;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let mut d = ObjectDecoder::new(ctx());
            let _ = d.decode_line(0, &s);
        }

        /// Mutations of a valid line (bytes replaced, cut, duplicated) never panic it, and
        /// every record it reads is accounted for.
        #[test]
        fn mutated_otlp_never_panics(pos in 0usize..SAMPLE.len(), len in 0usize..40, with in "[\\[\\]{}\":,0-9a-zA-Z.\\-]{0,12}") {
            let mut s = SAMPLE.as_bytes().to_vec();
            let end = (pos + len).min(s.len());
            s.splice(pos..end, with.bytes());
            if let Ok(line) = std::str::from_utf8(&s) {
                let mut d = ObjectDecoder::new(ctx());
                if d.decode_line(0, line).is_ok() {
                    prop_assert_eq!(
                        d.counts.records_parsed,
                        d.records.len() as u64 + d.counts.records_ignored + d.counts.records_rejected
                    );
                }
            }
        }
    }

    /// The byte-by-byte scan `too_deep` replaced: the reference it must agree with.
    fn too_deep_reference(b: &[u8]) -> bool {
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        for &c in b {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(3000))]
        #[test]
        fn depth_scan_agrees_with_the_byte_by_byte_reference(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("[".to_string()),
                    proptest::strategy::Just("{".to_string()),
                    proptest::strategy::Just("]".to_string()),
                    proptest::strategy::Just("}".to_string()),
                    "[a-z:,]{0,3}",
                    // A string: backslashes, escaped quotes and brackets inside.
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            proptest::strategy::Just("\\\\".to_string()),
                            proptest::strategy::Just("\\\"".to_string()),
                            proptest::strategy::Just("\\[".to_string()),
                            proptest::strategy::Just("[".to_string()),
                            proptest::strategy::Just("}".to_string()),
                            "[a-z]{0,40}",
                        ],
                        0..8,
                    )
                    .prop_map(|p| format!("\"{}\"", p.concat())),
                ],
                0..200,
            ),
            open in 0usize..80,
        ) {
            let text = format!("{}{}", "[".repeat(open), parts.concat());
            let want = too_deep_reference(text.as_bytes());
            proptest::prop_assert_eq!(too_deep(text.as_bytes()), want, "{}", text);
            proptest::prop_assert_eq!(too_deep_from(text.as_bytes(), Scan::default()), want, "{}", text);
        }
    }

    #[test]
    fn depth_scan_counts_exactly_to_the_limit_across_blocks() {
        for pad in 0..130 {
            for n in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2] {
                for (open, close) in [("[", "]"), ("{", "}")] {
                    let text = format!("{}{}{}", " ".repeat(pad), open.repeat(n), close.repeat(n));
                    assert_eq!(too_deep(text.as_bytes()), n > MAX_DEPTH, "{pad} {n}");
                }
            }
        }
    }

    #[test]
    fn depth_scan_handles_escapes_on_block_boundaries() {
        // Escapes and quotes at every offset around the 32-byte blocks of the vector scan.
        for pad in 0..100 {
            for tail in [r"\\", r#"\""#, r#"\\\""#, r"\\\\", r"\"] {
                let text = format!(
                    r#"{}{{"x":"{}{tail}{}"}}{}"#,
                    "[".repeat(60),
                    "a".repeat(pad),
                    "[".repeat(10),
                    "[".repeat(5)
                );
                let b = text.as_bytes();
                assert_eq!(too_deep(b), too_deep_reference(b), "{text}");
            }
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        let (open, close) = ("[".repeat(100_000), "]".repeat(100_000));
        for line in [
            format!("{open}{close}"),
            format!(r#"{{"resourceLogs":[],"unknown":{open}{close}}}"#),
            format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"kvlistValue":{open}{close}}}}}]}}]}}]}}"#
            ),
        ] {
            let mut d = ObjectDecoder::new(ctx());
            assert_eq!(d.decode_line(0, &line).unwrap_err().0, Reason::TooDeep);
        }
        // Brackets inside strings do not count.
        let mut d = ObjectDecoder::new(ctx());
        let s = format!(r#"{{"resourceLogs":[],"x":"{open}\"{open}"}}"#);
        assert!(d.decode_line(0, &s).is_ok());
    }

    #[test]
    fn sample_with_unusable_values_rejects_the_bad_record_only() {
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, SAMPLE).unwrap();
        assert_eq!(d.counts.records_parsed, 2);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.rejected, vec![(0, Reason::NegativeValue)]);
    }
}
