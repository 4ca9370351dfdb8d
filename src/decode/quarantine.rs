//! The quarantine (`_quarantine/<run_id>/` under the state root): every rejected input line with
//! its reason, and its expiry after `quarantine_retention_days`.
//!
//! A line that is bad as a whole is kept unchanged. A line that parsed but holds rejected
//! records is kept as an OTLP document holding only those records (with their resource, scope
//! and metric envelopes): the Collector batches many users' records into one line, and the
//! others' records, identities included, have no business in the quarantine.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::decode::otlp::Reason;
use crate::error::{Error, Result};
use crate::manifest::OutputFile;
use crate::source::Location;

pub const DIR: &str = "_quarantine";

/// One quarantined line: where it was, why, and its bytes unchanged.
#[derive(Debug, Clone)]
pub struct BadLine {
    pub object: String,
    /// 1-based line number in the decompressed object.
    pub line_no: usize,
    pub reasons: Vec<Reason>,
    pub detail: String,
    pub text: Vec<u8>,
    /// For a parsed line: the positions of its rejected records (see
    /// `ObjectDecoder::rejected_positions`); empty when the whole line is bad.
    pub records: Vec<u32>,
}

/// Puts in flight at once.
const CONCURRENT_PUTS: usize = 8;

/// Writes the quarantine as bad lines are found: `_quarantine/<run_id>/<n>.lines` holds the bad
/// lines of one object, put while the run goes on (a few at a time), so that a run over much
/// broken input neither holds it all in memory nor waits for it at the end; `index.csv` (one
/// row per line) says where each came from and why.
pub struct Writer {
    state: Location,
    /// `_quarantine/<run_id>` (or a window's folder below it, see [`dir`]).
    dir: String,
    index: csv::Writer<Vec<u8>>,
    lines: u64,
    files: u64,
    puts: tokio::task::JoinSet<Result<OutputFile>>,
    outputs: Vec<OutputFile>,
}

impl Writer {
    pub fn new(state: &Location, dir: &str) -> Writer {
        let mut index = csv::Writer::from_writer(Vec::new());
        index
            .write_record([
                "object_key",
                "line_number",
                "reasons",
                "detail",
                "quarantine_file",
            ])
            .expect("writing to memory");
        Writer {
            state: state.clone(),
            dir: dir.to_string(),
            index,
            lines: 0,
            files: 0,
            puts: tokio::task::JoinSet::new(),
            outputs: Vec::new(),
        }
    }

    /// Quarantines `bad` (the bad lines of one batch of objects, in order).
    pub async fn add(&mut self, bad: Vec<BadLine>) -> Result<()> {
        let mut start = 0;
        while start < bad.len() {
            let object = &bad[start].object;
            let end = start
                + bad[start..]
                    .iter()
                    .take_while(|b| &b.object == object)
                    .count();
            self.put_object(&bad[start..end]).await?;
            start = end;
        }
        Ok(())
    }

    async fn put_object(&mut self, lines: &[BadLine]) -> Result<()> {
        let file = format!("{}/{:06}.lines", self.dir, self.files);
        self.files += 1;
        let mut body = Vec::new();
        for b in lines {
            let mut detail = b.detail.clone();
            match rejected_only(&b.text, &b.records) {
                Some(kept) => body.extend_from_slice(&kept),
                None => {
                    if !b.records.is_empty() {
                        detail += "; whole line kept (its records could not be separated)";
                    }
                    body.extend_from_slice(&b.text)
                }
            }
            body.push(b'\n');
            let reasons: Vec<&str> = b.reasons.iter().map(|r| r.as_str()).collect();
            self.index
                .write_record([
                    b.object.as_str(),
                    &b.line_no.to_string(),
                    &reasons.join(";"),
                    &detail,
                    &file,
                ])
                .map_err(|e| Error::Other(e.to_string()))?;
        }
        self.lines += lines.len() as u64;
        while self.puts.len() >= CONCURRENT_PUTS {
            self.collect_one().await?;
        }
        let state = self.state.clone();
        let rows = lines.len() as u64;
        self.puts.spawn(async move {
            let bytes = body.len() as u64;
            state.put(&state.child(&file), body).await?;
            Ok(OutputFile {
                path: file,
                rows,
                bytes,
            })
        });
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<()> {
        if let Some(done) = self.puts.join_next().await {
            let file =
                done.map_err(|e| Error::Other(format!("quarantine write failed: {e}")))??;
            self.outputs.push(file);
        }
        Ok(())
    }

    /// Waits for every put, writes `index.csv`, and lists the files written (none when no
    /// line was bad).
    pub async fn finish(mut self) -> Result<Vec<OutputFile>> {
        while !self.puts.is_empty() {
            self.collect_one().await?;
        }
        if self.lines == 0 {
            return Ok(Vec::new());
        }
        let index = self
            .index
            .into_inner()
            .map_err(|e| Error::Other(e.to_string()))?;
        let path = format!("{}/index.csv", self.dir);
        self.outputs.push(OutputFile {
            path: path.clone(),
            rows: self.lines,
            bytes: index.len() as u64,
        });
        self.state.put(&self.state.child(&path), index).await?;
        self.outputs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self.outputs)
    }
}

/// The line as an OTLP document holding only the records at `positions` (log records first,
/// then metric points, in document order: the decoder's order). `None` when the line is to be
/// kept whole: no positions (the line is bad as a whole), or the document cannot be walked.
fn rejected_only(line: &[u8], positions: &[u32]) -> Option<Vec<u8>> {
    if positions.is_empty() {
        return None;
    }
    let mut doc: Value = serde_json::from_slice(line).ok()?;
    let mut next = 0u32;
    let mut found = 0usize;
    let mut keep = |n: &mut u32| {
        let k = positions.contains(n);
        *n += 1;
        found += k as usize;
        k
    };
    let obj = doc.as_object_mut()?;
    if let Some(rls) = obj.get_mut("resourceLogs").and_then(Value::as_array_mut) {
        for rl in rls.iter_mut() {
            for sl in each(rl, "scopeLogs") {
                retain(sl, "logRecords", |_| keep(&mut next));
            }
            retain(rl, "scopeLogs", |sl| !empty(sl, "logRecords"));
        }
        rls.retain(|rl| !empty(rl, "scopeLogs"));
    }
    if let Some(rms) = obj.get_mut("resourceMetrics").and_then(Value::as_array_mut) {
        for rm in rms.iter_mut() {
            for sm in each(rm, "scopeMetrics") {
                for m in each(sm, "metrics") {
                    // The same point kind the decoder reads: sum, else gauge, else the others.
                    let kind = [
                        "sum",
                        "gauge",
                        "histogram",
                        "exponentialHistogram",
                        "summary",
                    ]
                    .into_iter()
                    .find(|k| m.get(*k).is_some_and(|v| !v.is_null()));
                    let Some(kind) = kind else { continue };
                    if let Some(points) = m.get_mut(kind) {
                        retain(points, "dataPoints", |_| keep(&mut next));
                    }
                }
                retain(sm, "metrics", |m| {
                    [
                        "sum",
                        "gauge",
                        "histogram",
                        "exponentialHistogram",
                        "summary",
                    ]
                    .iter()
                    .any(|k| m.get(*k).is_some_and(|p| !empty(p, "dataPoints")))
                });
            }
            retain(rm, "scopeMetrics", |sm| !empty(sm, "metrics"));
        }
        rms.retain(|rm| !empty(rm, "scopeMetrics"));
    }
    // Every rejected record must have been found, or the walk did not follow the decoder.
    (found == positions.len()).then(|| serde_json::to_vec(&doc).expect("a JSON value serialises"))
}

/// The elements of the array at `v[key]` (none when absent).
fn each<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Keeps the elements of the array at `v[key]` for which `f` holds.
fn retain(v: &mut Value, key: &str, f: impl FnMut(&Value) -> bool) {
    if let Some(a) = v.get_mut(key).and_then(Value::as_array_mut) {
        a.retain(f);
    }
}

fn empty(v: &Value, key: &str) -> bool {
    v.get(key)
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

/// The quarantine folder of a run's window: `_quarantine/<run_id>` for the first (a run of one
/// window), `_quarantine/<run_id>/window-<k>` for the others.
pub fn dir(run_id: &str, window: usize) -> String {
    if window == 0 {
        format!("{DIR}/{run_id}")
    } else {
        format!("{DIR}/{run_id}/window-{window:04}")
    }
}

/// Removes the files a window wrote to its quarantine folder (`dir`) so far: a window that
/// reads its input again (healing). Other windows' folders below it are kept.
pub async fn remove_run(state: &Location, dir: &str) -> Result<()> {
    let prefix = state.child(dir);
    for m in state.list_all(&prefix).await? {
        let rel = m
            .location
            .as_ref()
            .get(prefix.as_ref().len() + 1..)
            .unwrap_or("");
        if rel.contains('/') {
            continue; // another window's folder
        }
        state.delete(&m.location).await?;
    }
    Ok(())
}

/// When the run `run_id` started, from its id (`YYYYMMDDTHHMMSSmmmZ-<pid>`).
fn started(run_id: &str) -> Option<DateTime<Utc>> {
    let stamp = run_id.split('-').next()?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%3fZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Deletes the quarantine folders of runs that started more than `days` days before `now`.
/// Returns how many folders went. Folders whose name is not a run id are left alone.
pub async fn expire(state: &Location, days: u32, now: DateTime<Utc>) -> Result<usize> {
    let prefix = state.child(DIR);
    let metas = state.list_all(&prefix).await?;
    let cutoff = now - chrono::Duration::days(days as i64);
    let base = prefix.as_ref().len() + 1;
    let mut runs = std::collections::BTreeSet::new();
    for m in metas {
        let key = m.location.as_ref();
        let Some(run) = key.get(base..).and_then(|r| r.split('/').next()) else {
            continue;
        };
        if started(run).is_some_and(|t| t < cutoff) {
            runs.insert(run.to_string());
            state.delete(&m.location).await?;
        }
    }
    if let Some(dir) = crate::publish::local_root(state) {
        for run in &runs {
            let _ = std::fs::remove_dir_all(dir.join(DIR).join(run));
        }
    }
    Ok(runs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(email: &str, cost: &str) -> String {
        format!(
            r#"{{"timeUnixNano":"1","attributes":[{{"key":"user.email","value":{{"stringValue":"{email}"}}}},{{"key":"cost_usd","value":{{"stringValue":"{cost}"}}}}]}}"#
        )
    }

    #[test]
    fn only_the_rejected_records_are_kept() {
        let line = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[]}},"scopeLogs":[{{"scope":{{"name":"s"}},"logRecords":[{},{}]}}]}},{{"scopeLogs":[{{"logRecords":[{}]}}]}}],"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"a","sum":{{"dataPoints":[{{"asInt":"1"}},{{"asInt":"2"}}]}}}},{{"name":"h","histogram":{{"dataPoints":[{{"count":"3"}}]}}}}]}}]}}]}}"#,
            log("other@x.com", "1"),
            log("bad@x.com", "abc"),
            log("third@x.com", "2")
        );
        let kept = rejected_only(line.as_bytes(), &[1]).unwrap();
        let s = String::from_utf8(kept).unwrap();
        assert!(s.contains("bad@x.com"), "{s}");
        assert!(
            !s.contains("other@x.com") && !s.contains("third@x.com"),
            "{s}"
        );
        assert!(!s.contains("resourceMetrics\":[{"), "{s}");
        // Position 4 is the second sum point (3 log records, then points in order).
        let s = String::from_utf8(rejected_only(line.as_bytes(), &[4]).unwrap()).unwrap();
        assert!(
            s.contains(r#""asInt":"2""#) && !s.contains(r#""asInt":"1""#),
            "{s}"
        );
        assert!(!s.contains("histogram") && !s.contains("logRecords"), "{s}");
        // The histogram point is position 5; a position past the end keeps the line whole.
        let s = String::from_utf8(rejected_only(line.as_bytes(), &[5]).unwrap()).unwrap();
        assert!(s.contains("histogram") && !s.contains("\"sum\""), "{s}");
        assert_eq!(rejected_only(line.as_bytes(), &[6]), None);
        assert_eq!(rejected_only(line.as_bytes(), &[]), None);
        assert_eq!(rejected_only(b"{broken", &[0]), None);
    }

    #[test]
    fn run_ids_give_their_start() {
        let t = started("20261001T020304005Z-00042").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-01T02:03:04.005+00:00");
        assert_eq!(started("notes"), None);
    }
}
