//! One object's lines decoded: decompressed as a stream, split at line boundaries (a line that
//! spans chunks gathered up to the per-line limit), each line decoded or quarantined, and the
//! decoded records handed on in parts so that a large object is never held whole.

use std::collections::BTreeMap;

use crate::decode::otlp::{DecodeContext, ObjectDecoder, Reason};
use crate::decode::quarantine::BadLine;
use crate::facts::days_since_epoch;
use crate::source::{arrival_day, Decompressor};

use super::tasks::Task;

/// Longest line the decoder accepts; longer ones are quarantined unread.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// What a batch of objects decoded into: one decoder (columns and dictionary) for all of them,
/// so that many small objects do not each hold a dictionary and half-empty column buffers.
pub(super) struct ObjectOutput {
    pub(super) decoder: ObjectDecoder,
    pub(super) decompressor: Decompressor,
    pub(super) lines_read: u64,
    pub(super) lines_parsed: u64,
    pub(super) bad_lines: Vec<BadLine>,
    /// Bad lines (quarantined, or holding rejected records) by input prefix and by arrival day.
    pub(super) bad_by_input: BTreeMap<String, u64>,
    pub(super) bad_by_arrival_day: BTreeMap<String, u64>,
    ctx: DecodeContext,
    /// The object being decoded: its input prefix, arrival day, and its lines and bad lines so
    /// far (for the bad-input watch; carried over when a part is handed on mid-object).
    input: String,
    arrival: Option<chrono::NaiveDate>,
    pub(super) object_lines: u64,
    pub(super) object_bad: u64,
}

/// Decoded records handed on to the merger at a time: a large object is merged in parts as it
/// is decoded, so that its records are never all held. `CC_ANALYTICS_PART_RECORDS` changes it
/// (tests of objects merged in many parts).
pub(super) fn part_records() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("CC_ANALYTICS_PART_RECORDS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(200_000)
    })
}

impl ObjectOutput {
    pub(super) fn new(ctx: DecodeContext) -> Self {
        ObjectOutput {
            decoder: ObjectDecoder::new(ctx),
            decompressor: Decompressor::default(),
            lines_read: 0,
            lines_parsed: 0,
            bad_lines: Vec::new(),
            bad_by_input: BTreeMap::new(),
            bad_by_arrival_day: BTreeMap::new(),
            ctx,
            input: String::new(),
            arrival: None,
            object_lines: 0,
            object_bad: 0,
        }
    }

    /// A new part for the rest of the same object.
    pub(super) fn next_part(&self) -> ObjectOutput {
        let mut next = ObjectOutput::new(self.ctx);
        next.decoder
            .set_arrival_day(self.arrival.map(days_since_epoch));
        next.input = self.input.clone();
        next.arrival = self.arrival;
        next.object_lines = self.object_lines;
        next.object_bad = self.object_bad;
        next
    }

    /// Quarantines a line, counted by input prefix and arrival day.
    fn push_bad(&mut self, b: BadLine) {
        self.bad_lines.push(b);
        self.object_bad += 1;
        *self.bad_by_input.entry(self.input.clone()).or_default() += 1;
        let day = self
            .arrival
            .map_or_else(|| "(none)".to_string(), |d| d.to_string());
        *self.bad_by_arrival_day.entry(day).or_default() += 1;
    }

    /// Decodes one task's object; `hand_on` takes the parts that grow past `part_records()`.
    pub(super) fn decode_task(
        &mut self,
        task: &Task<'_>,
        bytes: &[u8],
        hand_on: &mut dyn FnMut(&mut Self),
    ) {
        self.input = task.location.url.clone();
        self.object_lines = 0;
        self.object_bad = 0;
        decode_into(self, &task.key(), bytes, hand_on);
    }

    /// The same for a large object read as a stream.
    pub(super) fn decode_task_stream(
        &mut self,
        task: &Task<'_>,
        reader: Box<dyn std::io::Read + Send>,
        hand_on: &mut dyn FnMut(&mut Self),
    ) {
        self.input = task.location.url.clone();
        self.object_lines = 0;
        self.object_bad = 0;
        decode_stream(self, &task.key(), reader, hand_on);
    }
}

#[cfg(test)]
fn decode_object(key: &str, bytes: &[u8], ctx: DecodeContext) -> ObjectOutput {
    let mut out = ObjectOutput::new(ctx);
    decode_into(&mut out, key, bytes, &mut |_| {});
    out
}

/// Splits a stream of decompressed chunks into lines. A line is handed on whole when it fits
/// in a chunk; one that spans chunks is gathered, up to one byte past `MAX_LINE_BYTES` (beyond
/// that only its length is counted), so memory stays bounded whatever the object holds.
#[derive(Default)]
struct Lines {
    tail: Vec<u8>,
    /// Full length of the line gathered in `tail` (more than `tail` holds when it is too long).
    tail_len: usize,
    /// Lines ended so far.
    count: usize,
}

impl Lines {
    fn feed(&mut self, chunk: &[u8], line: &mut dyn FnMut(usize, &[u8], usize)) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[start..nl];
            if self.tail_len == 0 {
                line(self.count, piece, piece.len());
            } else {
                self.gather(piece);
                line(self.count, &self.tail, self.tail_len);
                self.tail.clear();
                self.tail_len = 0;
            }
            self.count += 1;
            start = nl + 1;
        }
        self.gather(&chunk[start..]);
    }

    fn gather(&mut self, piece: &[u8]) {
        let room = (MAX_LINE_BYTES + 1).saturating_sub(self.tail.len());
        self.tail.extend_from_slice(&piece[..piece.len().min(room)]);
        self.tail_len += piece.len();
    }
}

/// Decodes one object's lines into `out`, in order, as it is decompressed: an object of any
/// size is read in bounded memory.
fn decode_into(
    out: &mut ObjectOutput,
    key: &str,
    bytes: &[u8],
    hand_on: &mut dyn FnMut(&mut ObjectOutput),
) {
    start_object(out, key);
    let mut decompressor = std::mem::take(&mut out.decompressor);
    let mut lines = Lines::default();
    let end = decompressor.stream(bytes, &mut |chunk| {
        feed_chunk(out, key, &mut lines, chunk, hand_on)
    });
    out.decompressor = decompressor;
    end_object(out, key, &lines, end);
}

/// The same for an object too large to fetch whole: its stored bytes are read as a stream and
/// decompressed on a thread of its own, two chunks ahead, while this thread decodes the lines.
fn decode_stream(
    out: &mut ObjectOutput,
    key: &str,
    reader: Box<dyn std::io::Read + Send>,
    hand_on: &mut dyn FnMut(&mut ObjectOutput),
) {
    start_object(out, key);
    let mut decompressor = std::mem::take(&mut out.decompressor);
    let mut lines = Lines::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let end = std::thread::scope(|scope| {
        let d = &mut decompressor;
        let inflating = scope.spawn(move || {
            d.stream_read(reader, &mut |c| {
                let _ = tx.send(c.to_vec());
            })
        });
        for chunk in rx {
            feed_chunk(out, key, &mut lines, &chunk, hand_on);
        }
        inflating
            .join()
            .expect("the decompressing thread does not panic")
    });
    out.decompressor = decompressor;
    end_object(out, key, &lines, end);
}

fn start_object(out: &mut ObjectOutput, key: &str) {
    out.arrival = arrival_day(key);
    out.decoder
        .set_arrival_day(out.arrival.map(days_since_epoch));
}

/// Decodes the lines a decompressed chunk completes, handing on a part when it is full.
fn feed_chunk(
    out: &mut ObjectOutput,
    key: &str,
    lines: &mut Lines,
    chunk: &[u8],
    hand_on: &mut dyn FnMut(&mut ObjectOutput),
) {
    lines.feed(chunk, &mut |i, text, len| {
        decode_one(out, key, i, text, len)
    });
    if out.decoder.records.len() >= part_records() {
        hand_on(out);
    }
}

/// The end of an object: a cut stream's last line quarantined, or the last line decoded when
/// the object does not end with a newline.
fn end_object(out: &mut ObjectOutput, key: &str, lines: &Lines, end: crate::source::StreamEnd) {
    match end.truncated {
        // A cut stream's last line is incomplete (maybe empty): only lines ended by a newline
        // are used, and the cut is quarantined.
        Some(err) => {
            out.lines_read += 1;
            out.object_lines += 1;
            let (reason, detail) = if end.too_large {
                // The cut line of a bomb can be as long as the limit: its start is enough.
                (Reason::TooLarge, err)
            } else {
                (
                    Reason::Truncated,
                    format!("compressed stream ends early: {err}"),
                )
            };
            let text = &lines.tail[..lines.tail.len().min(MAX_LINE_BYTES)];
            out.push_bad(BadLine {
                object: key.to_string(),
                line_no: lines.count + 1,
                reasons: vec![reason],
                detail,
                text: text.to_vec(),
                records: Vec::new(),
            });
        }
        // The last line, when the object does not end with a newline.
        None if lines.tail_len > 0 => {
            let (i, len) = (lines.count, lines.tail_len);
            decode_one(out, key, i, &lines.tail, len);
        }
        None => {}
    }
}

/// Decodes line `i` (0-based) of an object: `raw` holds it, or its first bytes when it is longer
/// than `MAX_LINE_BYTES` (`len` is its full length).
fn decode_one(out: &mut ObjectOutput, key: &str, i: usize, raw: &[u8], len: usize) {
    let (line, len) = match raw.strip_suffix(b"\r") {
        Some(l) if len == raw.len() => (l, len - 1),
        _ => (raw, len),
    };
    if len <= MAX_LINE_BYTES && line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    out.lines_read += 1;
    out.object_lines += 1;
    let rejected_before = out.decoder.rejected.len();
    let result = if len > MAX_LINE_BYTES {
        Err((Reason::LineTooLong, format!("{len} bytes")))
    } else {
        match std::str::from_utf8(line) {
            Ok(s) => out.decoder.decode_line(i, s),
            Err(e) => Err((Reason::InvalidJson, format!("not UTF-8: {e}"))),
        }
    };
    let text = &line[..line.len().min(MAX_LINE_BYTES)];
    match result {
        Ok(()) => {
            out.lines_parsed += 1;
            let rejected = &out.decoder.rejected[rejected_before..];
            if !rejected.is_empty() {
                let b = BadLine {
                    object: key.to_string(),
                    line_no: i + 1,
                    reasons: rejected.iter().map(|r| r.1).collect(),
                    detail: format!("{} record(s) rejected", rejected.len()),
                    text: text.to_vec(),
                    records: out.decoder.rejected_positions[rejected_before..].to_vec(),
                };
                out.push_bad(b);
            }
        }
        Err((reason, detail)) => out.push_bad(BadLine {
            object: key.to_string(),
            line_no: i + 1,
            reasons: vec![reason],
            detail,
            text: text.to_vec(),
            records: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests;
