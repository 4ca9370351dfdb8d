//! Streaming decoder of OTLP-JSON lines (as the OpenTelemetry Collector writes them) into
//! record columns. Borrowed serde structs, no JSON tree; strings are interned per object.

use std::fmt;

use chrono::TimeZone;
use chrono_tz::Tz;
use std::collections::BTreeMap;

use super::depth::{too_deep, MAX_DEPTH};
use super::flat::{Flat, FlatLog, FlatPoint};
use super::scan::scan;
use super::values::AnyValue;
use super::wire::{hash_attrs, mix, Doc, KeyValue, Picked};
use crate::decode::model::{sym, Dict, Records, DELTA, EVENT, METRIC};
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
    /// Per string column of `push_columns`, its last value and id: records of one session
    /// repeat their identity, model and kind, and a repeat needs no hash.
    last_text: [(String, u32); TEXT_COLUMNS],
}

/// The string columns `push_columns` interns.
const TEXT_COLUMNS: usize = 10;

/// A metric point with what its metric says about it.
struct Point<'v, 'a> {
    name: &'v str,
    dp: &'v FlatPoint<'a>,
    attrs: &'v [KeyValue<'a>],
    temporality: u8,
    value_points: bool,
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
            last_text: std::array::from_fn(|_| (String::new(), sym::NONE)),
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
        let flat = match scan(line) {
            Some(flat) => flat,
            None => parse_with_serde(line)?,
        };
        self.line_first_record = self.counts.records_parsed;
        if !flat.has_logs && !flat.has_metrics {
            return Err((
                Reason::NotOtlp,
                "neither resourceLogs nor resourceMetrics".into(),
            ));
        }
        for res in &flat.log_resources {
            let resource = flat.attrs(res.attrs);
            let res_hash = hash_attrs(resource);
            self.resource_tags(resource);
            for sl in &flat.scopes[res.children.range()] {
                let cc_scope = sl.name.starts_with(otel::SCOPE_PREFIX);
                for lr in &flat.logs[sl.records.range()] {
                    self.counts.records_parsed += 1;
                    self.pending_date = None;
                    let attrs = flat.attrs(lr.attrs);
                    if let Err(reason) = self.log_record(lr, attrs, resource, res_hash, cc_scope) {
                        self.reject(line_no, reason);
                    }
                }
            }
        }
        for res in &flat.metric_resources {
            let resource = flat.attrs(res.attrs);
            let res_hash = hash_attrs(resource);
            self.resource_tags(resource);
            for m in &flat.metrics[res.children.range()] {
                let cc = m.name.starts_with(otel::PREFIX);
                // Other point types count as activity only; their values are not read.
                let Some(chosen) = m.chosen else { continue };
                for dp in &flat.points[chosen.points.range()] {
                    self.counts.records_parsed += 1;
                    self.pending_date = None;
                    if !cc {
                        self.counts.records_ignored += 1;
                        continue;
                    }
                    let point = Point {
                        name: &m.name,
                        dp,
                        attrs: flat.attrs(dp.attrs),
                        temporality: chosen.temporality,
                        value_points: chosen.value_points,
                    };
                    if let Err(reason) = self.data_point(point, resource, res_hash) {
                        self.reject(line_no, reason);
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
        lr: &FlatLog<'_>,
        attrs: &[KeyValue<'_>],
        resource: &[KeyValue<'_>],
        res_hash: u64,
        cc_scope: bool,
    ) -> Result<(), Reason> {
        let p = Picked::from(attrs, resource);
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
            None => mix(&[2, hash_attrs(attrs), res_hash]),
        };
        let name = self.dict.intern(name);
        self.push(Row {
            kind: EVENT,
            name,
            time_ns,
            picked: p,
            attrs,
            dkey,
            series: 0,
            start_ns: 0,
            temporality: DELTA,
            value: 0.0,
        })
    }

    fn data_point(
        &mut self,
        point: Point<'_, '_>,
        resource: &[KeyValue<'_>],
        res_hash: u64,
    ) -> Result<(), Reason> {
        let Point {
            name,
            dp,
            attrs,
            temporality,
            value_points,
        } = point;
        let p = Picked::from(attrs, resource);
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
        let series = mix(&[hash_attrs(attrs), res_hash]);
        let dkey = mix(&[3, series, start_ns as u64, value.to_bits()]);
        let name = self.dict.intern(name);
        self.push(Row {
            kind: METRIC,
            name,
            time_ns,
            picked: p,
            attrs,
            dkey,
            series,
            start_ns,
            temporality,
            value,
        })
    }

    fn push(&mut self, row: Row<'_, '_>) -> Result<(), Reason> {
        let (cost, tokens) = request_measures(&row, self.ctx.limits)?;
        let date = local_day(&self.ctx.tz, row.time_ns);
        if let Some(a) = self.arrival_day {
            if a - date > self.ctx.late_after_days {
                *self.late.entry((date, a)).or_default() += 1;
            }
        }
        self.push_columns(&row, date, cost, tokens);
        self.push_tags(row.attrs);
        Ok(())
    }

    /// The record's columns but the tags, its strings interned.
    #[inline]
    fn push_columns(&mut self, row: &Row<'_, '_>, date: i32, cost: Option<f64>, tokens: Tokens) {
        let p = &row.picked;
        let d = &mut self.dict;
        let last = &mut self.last_text;
        let mut slot = 0;
        let mut id = |v: Option<&AnyValue<'_>>| {
            let (text, id) = &mut last[slot];
            slot += 1;
            match v.and_then(AnyValue::to_text) {
                Some(s) if !s.is_empty() => {
                    if text.as_str() != s.as_ref() || *id == sym::NONE {
                        *id = d.intern(&s);
                        text.clear();
                        text.push_str(&s);
                    }
                    *id
                }
                _ => sym::NONE,
            }
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
        debug_assert_eq!(slot, TEXT_COLUMNS, "one slot per interned column");
    }

    /// Each tag's record value, then its resource value (5.5.1: record before resource).
    #[inline]
    fn push_tags(&mut self, attrs: &[KeyValue<'_>]) {
        for (k, key) in self.ctx.tags.iter().enumerate() {
            let v = attrs.iter().find(|kv| kv.key.as_ref() == *key);
            let own = match v.and_then(|kv| kv.value.to_text()) {
                Some(t) if !t.is_empty() => match &self.last_tag[k] {
                    // Records of one session repeat their values: no hash for a repeat.
                    Some((last, id)) if last.as_str() == t.as_ref() => *id,
                    _ => {
                        let id = self.dict.intern(&t);
                        self.last_tag[k] = Some((t.into_owned(), id));
                        id
                    }
                },
                _ => sym::NONE,
            };
            self.records.tags.push(own);
            self.records.tags.push(self.res_tags[k]);
        }
    }
}

/// A line the scanner left to serde: refused if it nests too deep or is not JSON of the wire
/// shapes, else flattened.
fn parse_with_serde(line: &str) -> Result<Flat<'_>, (Reason, String)> {
    if too_deep(line.as_bytes()) {
        return Err((Reason::TooDeep, format!("nested deeper than {MAX_DEPTH}")));
    }
    let doc: Doc = serde_json::from_str(line).map_err(|e| (Reason::InvalidJson, e.to_string()))?;
    Ok(Flat::from_doc(doc))
}

/// Input, output, cache-read and cache-creation tokens.
type Tokens = [Option<i64>; 4];

/// An API request's cost (USD, else micro-USD) and tokens; nothing for other records. Negative,
/// unreadable or implausible values reject the record.
#[inline]
fn request_measures(row: &Row<'_, '_>, lim: Limits) -> Result<(Option<f64>, Tokens), Reason> {
    if !(row.kind == EVENT && row.name == sym::API_REQUEST) {
        return Ok((None, [None; 4]));
    }
    let p = &row.picked;
    let cost = match nonneg_f64(p.cost_usd)? {
        Some(c) => Some(c),
        None => nonneg_i64(p.cost_usd_micros)?.map(|m| m as f64 / 1e6),
    };
    let tokens = [
        nonneg_i64(p.input_tokens)?,
        nonneg_i64(p.output_tokens)?,
        nonneg_i64(p.cache_read_tokens)?,
        nonneg_i64(p.cache_creation_tokens)?,
    ];
    if cost.is_some_and(|c| c > lim.max_cost_usd)
        || tokens.iter().flatten().any(|&t| t as f64 > lim.max_count)
    {
        return Err(Reason::ImplausibleValue);
    }
    Ok((cost, tokens))
}

fn nonneg_i64(v: Option<&AnyValue<'_>>) -> Result<Option<i64>, Reason> {
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
}

fn nonneg_f64(v: Option<&AnyValue<'_>>) -> Result<Option<f64>, Reason> {
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
mod tests;
