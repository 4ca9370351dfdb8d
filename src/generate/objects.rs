//! A day's records → the objects the Collector would upload: batched by arrival, one line per
//! resource and up to 40 records, compressed, sometimes late, sometimes twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{TimeZone, Utc};

use super::{Compression, GenerateSummary, Rec, Rng, DAY_NS, V};
use crate::error::Result;
use crate::source::Location;

/// An object's records by (upload slot, metrics?, resource or `usize::MAX` for a batch of
/// every member).
type Batches = BTreeMap<(i64, bool, usize), Vec<usize>>;

/// Batches a day's records into objects by arrival (logs every 5 minutes, metrics every 10, per
/// member resource) and writes them: compressed, sometimes late, sometimes twice.
pub(super) async fn write_objects(
    recs: &[Rec],
    resources: &[Vec<(&'static str, V)>],
    rng: &mut Rng,
    out: &Location,
    (compression, per_object): (Compression, Option<usize>),
    n: &mut u64,
    summary: &mut GenerateSummary,
) -> Result<()> {
    for ((slot, is_metric, res), idx) in batches(recs, per_object) {
        *n += 1;
        let strings = rng.chance(0.8);
        let text = object_text(recs, resources, &idx, (is_metric, res), strings, rng);
        summary.records += idx.len() as u64;
        let compress = match compression {
            Compression::Gz => "gz",
            Compression::Zst => "zst",
            Compression::None => "",
            Compression::Mixed if n.is_multiple_of(17) => "zst",
            Compression::Mixed if n.is_multiple_of(13) => "",
            Compression::Mixed => "gz",
        };
        let object = Object {
            slot,
            prefix: if is_metric { "metrics" } else { "logs" },
            compress,
            records: idx.len(),
        };
        upload(out, &text, object, rng, summary).await?;
    }
    Ok(())
}

fn batches(recs: &[Rec], per_object: Option<usize>) -> Batches {
    let mut objects = Batches::new();
    match per_object {
        None => {
            for (i, r) in recs.iter().enumerate() {
                let is_metric = r.metric.is_some();
                let every = if is_metric { 600 } else { 300 } * 1_000_000_000i64;
                let slot = (r.time_ns / every + 1) * every;
                objects
                    .entry((slot, is_metric, r.resource))
                    .or_default()
                    .push(i);
            }
        }
        Some(size) => {
            // The Collector's batches: records of every member in arrival order, cut every
            // `size` records; uploaded when the batch is full.
            for is_metric in [false, true] {
                let mut idx: Vec<usize> = (0..recs.len())
                    .filter(|&i| recs[i].metric.is_some() == is_metric)
                    .collect();
                idx.sort_by_key(|&i| recs[i].time_ns);
                for chunk in idx.chunks(size.max(1)) {
                    let last = chunk.iter().map(|&i| recs[i].time_ns).max().unwrap_or(0);
                    objects.insert((last + 1, is_metric, usize::MAX), chunk.to_vec());
                }
            }
        }
    }
    objects
}

/// An object's JSON Lines: one line per resource and up to 40 records, as the OTLP exporter
/// groups them.
fn object_text(
    recs: &[Rec],
    resources: &[Vec<(&'static str, V)>],
    idx: &[usize],
    (is_metric, res): (bool, usize),
    strings: bool,
    rng: &mut Rng,
) -> String {
    let mut text = String::new();
    let mut by_resource: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in idx {
        by_resource
            .entry(if res == usize::MAX {
                recs[i].resource
            } else {
                res
            })
            .or_default()
            .push(i);
    }
    for (res, idx) in &by_resource {
        for chunk in idx.chunks(40) {
            if is_metric {
                metrics_line(
                    recs,
                    chunk,
                    &resources[*res],
                    strings,
                    rng.chance(0.1),
                    &mut text,
                );
            } else {
                logs_line(recs, chunk, &resources[*res], strings, &mut text);
            }
            text.push('\n');
        }
    }
    text
}

/// What an upload needs to know of its object.
struct Object {
    slot: i64,
    prefix: &'static str,
    compress: &'static str,
    records: usize,
}

/// Uploads an object shortly after its slot, sometimes days late (an agent offline), sometimes
/// twice (at-least-once delivery).
async fn upload(
    out: &Location,
    text: &str,
    object: Object,
    rng: &mut Rng,
    summary: &mut GenerateSummary,
) -> Result<()> {
    let mut upload = object.slot + rng.range(1, 120) as i64 * 1_000_000_000;
    if rng.chance(0.03) {
        upload += rng.range(1, 2) as i64 * DAY_NS;
    }
    let bytes = encode(text.as_bytes(), object.compress);
    let copies = if rng.chance(0.03) { 2 } else { 1 };
    for c in 0..copies {
        // A re-upload lands in a later partition.
        let at = upload + c as i64 * rng.range(60, 7200) as i64 * 1_000_000_000;
        let unique = rng.range(100_000_000, 999_999_998);
        let key = object_key(at, object.prefix, unique, object.compress);
        out.put(&out.child(&key), bytes.clone()).await?;
        summary.objects += 1;
        summary.bytes += bytes.len() as u64;
        if c > 0 {
            summary.duplicated_records += object.records as u64;
        }
    }
    Ok(())
}

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes attributes as the Collector (`strings`: int64 as strings) or the JS exporter would.
fn attrs_json(attrs: &[(&str, V)], strings: bool, out: &mut String) {
    out.push('[');
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        esc(k, out);
        out.push_str(",\"value\":{");
        match v {
            V::S(s) => {
                out.push_str("\"stringValue\":");
                esc(s, out);
            }
            V::I(n) if strings => write!(out, "\"intValue\":\"{n}\"").unwrap(),
            V::I(n) => write!(out, "\"intValue\":{n}").unwrap(),
            V::D(d) => write!(out, "\"doubleValue\":{d:?}").unwrap(),
        }
        out.push_str("}}");
    }
    out.push(']');
}

fn int(n: i64, strings: bool) -> String {
    if strings {
        format!("\"{n}\"")
    } else {
        n.to_string()
    }
}

fn encode(data: &[u8], how: &str) -> Vec<u8> {
    match how {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(data, 3).unwrap(),
        _ => data.to_vec(),
    }
}

fn object_key(at_ns: i64, prefix: &str, unique: u64, compress: &str) -> String {
    let t = Utc.timestamp_nanos(at_ns);
    let ext = if compress.is_empty() {
        "json".to_string()
    } else {
        format!("json.{compress}")
    };
    format!(
        "telemetry/{}/{prefix}_{unique}.{ext}",
        t.format("year=%Y/month=%m/day=%d/hour=%H/minute=%M")
    )
}

fn logs_line(recs: &[Rec], idx: &[usize], resource: &[(&str, V)], strings: bool, out: &mut String) {
    out.push_str("{\"resourceLogs\":[{\"resource\":{\"attributes\":");
    attrs_json(resource, strings, out);
    out.push_str("},\"scopeLogs\":[{\"scope\":{\"name\":\"com.anthropic.claude_code.events\",\"version\":\"2.1.294\"},\"logRecords\":[");
    for (n, &i) in idx.iter().enumerate() {
        let r = &recs[i];
        if n > 0 {
            out.push(',');
        }
        let name = r
            .attrs
            .iter()
            .find(|(k, _)| *k == "event.name")
            .map(|(_, v)| match v {
                V::S(s) => s.as_str(),
                _ => "",
            })
            .unwrap_or("");
        write!(
            out,
            "{{\"timeUnixNano\":{t},\"observedTimeUnixNano\":{t},\"body\":{{\"stringValue\":\"claude_code.{name}\"}},\"attributes\":",
            t = int(r.time_ns, strings)
        )
        .unwrap();
        attrs_json(&r.attrs, strings, out);
        out.push_str(",\"droppedAttributesCount\":0,\"traceId\":\"\",\"spanId\":\"\"}");
    }
    out.push_str("]}]}]}");
}

fn metrics_line(
    recs: &[Rec],
    idx: &[usize],
    resource: &[(&str, V)],
    strings: bool,
    foreign: bool,
    out: &mut String,
) {
    out.push_str("{\"resourceMetrics\":[{\"resource\":{\"attributes\":");
    attrs_json(resource, strings, out);
    out.push_str("},\"scopeMetrics\":[{\"scope\":{\"name\":\"com.anthropic.claude_code\",\"version\":\"2.1.294\"},\"metrics\":[");
    for (n, &i) in idx.iter().enumerate() {
        let r = &recs[i];
        let (name, temporality, start, value) = r.metric.unwrap();
        if n > 0 {
            out.push(',');
        }
        write!(
            out,
            "{{\"name\":\"{name}\",\"sum\":{{\"dataPoints\":[{{\"attributes\":"
        )
        .unwrap();
        attrs_json(&r.attrs, strings, out);
        write!(
            out,
            ",\"startTimeUnixNano\":{},\"timeUnixNano\":{},\"asDouble\":{value:?}}}],\"aggregationTemporality\":{temporality},\"isMonotonic\":true}}}}",
            int(start, strings),
            int(r.time_ns, strings)
        )
        .unwrap();
    }
    out.push_str("]}]}");
    if foreign {
        // Another service's metrics share the pipeline: ignored, but counted.
        let t = recs[idx[0]].time_ns;
        write!(
            out,
            ",{{\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"checkout-api\"}}}}]}},\"scopeMetrics\":[{{\"metrics\":[{{\"name\":\"http.server.request.count\",\"sum\":{{\"dataPoints\":[{{\"timeUnixNano\":{},\"asInt\":{}}}],\"aggregationTemporality\":1}}}}]}}]}}",
            int(t, strings),
            int(7, strings)
        )
        .unwrap();
    }
    out.push_str("]}");
}
