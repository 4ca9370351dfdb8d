//! Reading telemetry objects in parallel: fetch, decompress, split lines, decode, merge.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;

use crate::decode::otlp::{DecodeContext, ObjectDecoder, Reason};
pub use crate::decode::quarantine::BadLine;
use crate::error::{Error, Result};
use crate::facts::{days_since_epoch, Accumulator};
use crate::manifest::Counts;
use crate::source::{arrival_day, Decompressor, Location};

/// Compressed bytes decoded per blocking task.
const BATCH_BYTES: u64 = 1 << 20;
/// Objects listed without a size (size 0) per batch: every listing gives sizes now, so this
/// only bounds batches of empty objects.
const UNSIZED_PER_BATCH: usize = 32;
/// Object-store requests in flight at once across the run, by default
/// (`CC_ANALYTICS_MAX_REQUESTS` changes it): enough to hide latency, few enough to stay clear
/// of throttling (503 SlowDown) and file-descriptor limits.
const MAX_REQUESTS: usize = 64;

fn max_requests() -> usize {
    std::env::var("CC_ANALYTICS_MAX_REQUESTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(MAX_REQUESTS)
}

/// Longest line the decoder accepts; longer ones are quarantined unread.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// An object to read: its store, key and size. A window holds one per object it reads
/// (millions, for a backfill of small objects), so it is kept small: the key's directory is
/// shared with the other objects of that directory, and what else the listing told of the
/// object (etag, time) went to the objects file as it was listed.
#[derive(Clone, Debug)]
pub struct Task {
    pub location: Arc<Location>,
    dir: Arc<str>,
    name: Box<str>,
    pub size: u64,
}

impl Task {
    /// The task of object `key` (a path in `location`'s store) in directory `dir` (the key up
    /// to its last `/`, shared between tasks).
    pub fn new(location: Arc<Location>, dir: Arc<str>, key: &str, size: u64) -> Task {
        let name = key
            .strip_prefix(&*dir)
            .unwrap_or(key)
            .trim_start_matches('/');
        Task {
            location,
            dir,
            name: name.into(),
            size,
        }
    }

    /// The object's key.
    pub fn key(&self) -> String {
        if self.dir.is_empty() {
            self.name.to_string()
        } else {
            format!("{}/{}", self.dir, self.name)
        }
    }

    /// Orders tasks by key (without building the keys).
    pub fn key_order(a: &Task, b: &Task) -> std::cmp::Ordering {
        fn bytes(t: &Task) -> impl Iterator<Item = &u8> {
            let sep: &[u8] = if t.dir.is_empty() { b"" } else { b"/" };
            t.dir.as_bytes().iter().chain(sep).chain(t.name.as_bytes())
        }
        bytes(a).cmp(bytes(b))
    }

    /// The object's path in its store.
    pub fn path(&self) -> object_store::path::Path {
        object_store::path::Path::parse(self.key()).expect("a key the store listed")
    }
}

/// Everything decoded from the inputs: the records folded into `acc`, the line accounting.
pub struct Ingested {
    pub acc: Accumulator,
    pub counts: Counts,
    /// Why the run stopped reading before the end: too much bad input already.
    pub stopped_early: Option<String>,
    /// Late records by (event date, arrival day), days since 1970-01-01.
    pub late: BTreeMap<(i32, i32), u64>,
}

/// What a batch of objects decoded into: one decoder (columns and dictionary) for all of them,
/// so that many small objects do not each hold a dictionary and half-empty column buffers.
struct ObjectOutput {
    decoder: ObjectDecoder,
    decompressor: Decompressor,
    lines_read: u64,
    lines_parsed: u64,
    bad_lines: Vec<BadLine>,
    /// Bad lines (quarantined, or holding rejected records) by input prefix and by arrival day.
    bad_by_input: BTreeMap<String, u64>,
    bad_by_arrival_day: BTreeMap<String, u64>,
    ctx: DecodeContext,
    /// The object being decoded: its input prefix, arrival day, and its lines and bad lines so
    /// far (for the bad-input watch; carried over when a part is handed on mid-object).
    input: String,
    arrival: Option<chrono::NaiveDate>,
    object_lines: u64,
    object_bad: u64,
}

/// Decoded records handed on to the merger at a time: a large object is merged in parts as it
/// is decoded, so that its records are never all held. `CC_ANALYTICS_PART_RECORDS` changes it
/// (tests of objects merged in many parts).
fn part_records() -> usize {
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
    fn new(ctx: DecodeContext) -> Self {
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
    fn next_part(&self) -> ObjectOutput {
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
    fn decode_task(&mut self, task: &Task, bytes: &[u8], hand_on: &mut dyn FnMut(&mut Self)) {
        self.input = task.location.url.clone();
        self.object_lines = 0;
        self.object_bad = 0;
        decode_into(self, &task.key(), bytes, hand_on);
    }

    /// The same for a large object read as a stream.
    fn decode_task_stream(
        &mut self,
        task: &Task,
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

/// The bad lines of the whole run as objects are decoded (on any thread, in any order), to stop
/// as soon as the run cannot stay within its ratio.
struct BadWatch {
    lines: std::sync::atomic::AtomicU64,
    bad: std::sync::atomic::AtomicU64,
    objects: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
    why: std::sync::Mutex<Option<String>>,
    total_objects: u64,
    /// Total compressed bytes when every object's size is known (0 when one is listed empty).
    total_bytes: u64,
    max_ratio: f64,
}

impl BadWatch {
    /// Notes one decoded object; true when the run is to stop.
    fn object(&self, lines: u64, bad: u64, size: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let l = self.lines.fetch_add(lines, Relaxed) + lines;
        let b = self.bad.fetch_add(bad, Relaxed) + bad;
        let o = self.objects.fetch_add(1, Relaxed) + 1;
        let by = self.bytes.fetch_add(size, Relaxed) + size;
        let done = if self.total_bytes > 0 {
            by as f64 / self.total_bytes as f64
        } else {
            o as f64 / self.total_objects.max(1) as f64
        };
        if let Some(why) = hopeless(l, b, done, self.max_ratio) {
            let mut w = self.why.lock().expect("not poisoned");
            w.get_or_insert(format!(
                "{why}; stopped after {o} of {} objects",
                self.total_objects
            ));
            self.stop.store(true, Relaxed);
        }
        self.stop.load(Relaxed)
    }
}

/// Reads and decodes every task, `concurrency` batches at a time, and folds the records into
/// `acc` in task order (so that the first of two duplicates is always the same one).
/// With `progress`, a progress bar on stderr (a terminal); otherwise a log line per tenth.
pub async fn ingest(
    tasks: Arc<Vec<Task>>,
    ctx: DecodeContext,
    concurrency: usize,
    progress: bool,
    mut acc: Accumulator,
    quarantine: &mut crate::decode::quarantine::Writer,
    max_bad_ratio: f64,
) -> Result<Ingested> {
    let total = tasks.len();
    let bar = if progress {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} reading objects {bar:40} {pos}/{len} ({elapsed}, {eta} left)",
            )
            .expect("valid template"),
        );
        Some(b)
    } else {
        None
    };
    let watch = Arc::new(BadWatch {
        lines: Default::default(),
        bad: Default::default(),
        objects: Default::default(),
        bytes: Default::default(),
        stop: Default::default(),
        why: Default::default(),
        total_objects: total as u64,
        total_bytes: if tasks.iter().all(|t| t.size > 0) {
            tasks.iter().map(|t| t.size).sum()
        } else {
            0
        },
        max_ratio: max_bad_ratio,
    });
    // Objects go to the CPU in batches of about BATCH_BYTES: fetched concurrently, decoded in
    // one blocking task, so that many small objects do not cost a thread hand-off each.
    let mut batches: Vec<std::ops::Range<usize>> = Vec::new();
    let mut size = 0u64;
    for (i, t) in tasks.iter().enumerate() {
        match batches.last_mut() {
            Some(b) if size < BATCH_BYTES && (t.size > 0 || b.len() < UNSIZED_PER_BATCH) => {
                b.end = i + 1
            }
            _ => {
                batches.push(i..i + 1);
                size = 0;
            }
        }
        size += t.size;
    }
    let requests = Arc::new(tokio::sync::Semaphore::new(max_requests()));
    // Each batch decodes on a blocking thread and hands its decoded parts on through a channel
    // of its own (at most two waiting), so that a large object's records are merged as they
    // are decoded; batches are taken in task order.
    type Part = Result<ObjectOutput>;
    let mut outputs = futures::stream::iter(batches)
        .map(|batch| {
            let tasks = tasks.clone();
            let watch = watch.clone();
            let requests = requests.clone();
            async move {
                if watch.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(None);
                }
                let n_objects = batch.len();
                // Local files are read by the decoding thread itself; other stores through
                // their API, concurrently.
                let fetched = if tasks[batch.start].location.local.is_some() {
                    None
                } else {
                    Some(
                        futures::future::try_join_all(tasks[batch.clone()].iter().map(|task| {
                            let requests = requests.clone();
                            async move {
                                if task.size > crate::source::stream_object_bytes() {
                                    // Read as a stream when it is decoded.
                                    return Ok(None);
                                }
                                let _slot = requests.acquire().await.expect("never closed");
                                task.location.get(&task.path()).await.map(Some)
                            }
                        }))
                        .await?,
                    )
                };
                let (part_tx, part_rx) = tokio::sync::mpsc::channel::<Part>(2);
                let decoding = tokio::task::spawn_blocking(move || {
                    let send = |part: Part| part_tx.blocking_send(part).is_ok();
                    let mut out = ObjectOutput::new(ctx);
                    let mut hand_on = |out: &mut ObjectOutput| {
                        let next = out.next_part();
                        let mut full = std::mem::replace(out, next);
                        out.decompressor = std::mem::take(&mut full.decompressor);
                        send(Ok(full));
                    };
                    for (k, task) in tasks[batch].iter().enumerate() {
                        if watch.stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let path = &task.path();
                        let large = match &fetched {
                            Some(f) => f[k].is_none(),
                            None => task.size > crate::source::stream_object_bytes(),
                        };
                        if large {
                            match task.location.open_stream(path) {
                                Ok(reader) => out.decode_task_stream(task, reader, &mut hand_on),
                                Err(e) => {
                                    send(Err(e));
                                    return;
                                }
                            }
                        } else {
                            match &fetched {
                                Some(f) => out.decode_task(
                                    task,
                                    f[k].as_ref().expect("fetched"),
                                    &mut hand_on,
                                ),
                                None => match task.location.read_local(path) {
                                    Ok(bytes) => out.decode_task(task, &bytes, &mut hand_on),
                                    Err(e) => {
                                        send(Err(e));
                                        return;
                                    }
                                },
                            }
                        }
                        watch.object(out.object_lines, out.object_bad, task.size);
                        if out.decoder.records.len() >= part_records() {
                            hand_on(&mut out);
                        }
                    }
                    send(Ok(out));
                });
                // Waiting for the first part keeps this future pending while the batch decodes,
                // so that the stream polls (and starts) the next batches meanwhile.
                let mut part_rx = part_rx;
                let first = part_rx.recv().await;
                Ok::<_, Error>(Some((first, part_rx, decoding, n_objects)))
            }
        })
        .buffered(concurrency);

    // Parts are folded in task order on a thread of their own, while the next ones are read
    // and decoded; at most two wait for it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ObjectDecoder>(2);
    let merger = std::thread::spawn(move || {
        while let Some(d) = rx.blocking_recv() {
            acc.add(&d.records, &d.dict);
        }
        acc
    });
    let mut counts = Counts::default();
    let mut late = BTreeMap::new();
    let mut done = 0usize;
    'batches: while let Some(batch) = outputs.next().await {
        let Some((first, mut parts, decoding, n_objects)) = batch? else {
            break;
        };
        let mut next = first;
        while let Some(part) = next.take() {
            let mut o = part?;
            add_counts(&mut counts, &mut late, &mut o);
            quarantine.add(std::mem::take(&mut o.bad_lines)).await?;
            if watch.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break 'batches;
            }
            if tx.send(o.decoder).await.is_err() {
                break 'batches; // the merger is gone: its panic is reported below
            }
            next = parts.recv().await;
        }
        decoding
            .await
            .map_err(|e| Error::Other(format!("decoding failed: {e}")))?;
        let before = done;
        done += n_objects;
        let step = (total / 10).max(1);
        match &bar {
            Some(b) => b.inc(n_objects as u64),
            None if done == total || before / step != done / step => {
                tracing::info!("read {done}/{total} objects")
            }
            None => {}
        }
    }
    let stopped_early = watch.why.lock().expect("not poisoned").take();
    drop(outputs);
    drop(tx);
    let acc = tokio::task::spawn_blocking(move || merger.join())
        .await
        .map_err(|e| Error::Other(format!("merging failed: {e}")))?
        .map_err(|_| Error::Other("merging failed: the merge thread panicked".into()))?;
    counts.records_duplicate = acc.duplicates();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(Ingested {
        acc,
        counts,
        stopped_early,
        late,
    })
}

/// Adds a decoded part's line and record counts to the run's.
fn add_counts(counts: &mut Counts, late: &mut BTreeMap<(i32, i32), u64>, o: &mut ObjectOutput) {
    counts.lines_read += o.lines_read;
    counts.lines_parsed += o.lines_parsed;
    counts.records_parsed += o.decoder.counts.records_parsed;
    counts.records_ignored += o.decoder.counts.records_ignored;
    counts.records_rejected += o.decoder.counts.records_rejected;
    for (_, reason) in &o.decoder.rejected {
        *counts
            .rejected_by_reason
            .entry(reason.to_string())
            .or_default() += 1;
    }
    let day = |d: &i32| crate::facts::date_of_days(*d).to_string();
    for (d, n) in &o.decoder.rejected_dates {
        *counts.rejected_by_date.entry(day(d)).or_default() += n;
    }
    for ((d, a), n) in &o.decoder.late {
        counts.records_late += n;
        *counts.late_by_date.entry(day(d)).or_default() += n;
        *late.entry((*d, *a)).or_default() += n;
    }
    for (k, n) in std::mem::take(&mut o.bad_by_input) {
        *counts.bad_lines_by_input.entry(k).or_default() += n;
    }
    for (k, n) in std::mem::take(&mut o.bad_by_arrival_day) {
        *counts.bad_lines_by_arrival_day.entry(k).or_default() += n;
    }
    for b in &o.bad_lines {
        if b.reasons.iter().all(Reason::is_line_level) {
            counts.lines_quarantined += 1;
            *counts
                .quarantined_by_reason
                .entry(b.reasons[0].to_string())
                .or_default() += 1;
        } else {
            counts.lines_with_rejected_records += 1;
        }
    }
}

/// Whether the run can no longer stay within `max_ratio`, with `done` (0..=1) of its input read:
/// its `bad` lines already exceed the ratio of the lines it `read` plus twice the lines the rest
/// would hold at the rate seen so far (an estimate with room to spare: objects differ).
fn hopeless(read: u64, bad: u64, done: f64, max_ratio: f64) -> Option<String> {
    let (read, bad) = (read as f64, bad as f64);
    if bad == 0.0 || done <= 0.0 || done >= 1.0 {
        return None;
    }
    let rest = read * (1.0 - done) / done;
    (bad > max_ratio * (read + 2.0 * rest)).then(|| {
        format!(
            "{bad} bad lines of {read} read: more than --max-bad-ratio {max_ratio} of all the lines the input can hold (about {:.0})",
            read + rest
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ctx() -> DecodeContext {
        DecodeContext::new(chrono_tz::UTC, i64::MAX)
    }

    const GOOD: &str = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"claude_code.commit.count","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s"}}],"timeUnixNano":"1791447318000000000","asInt":"1"}],"aggregationTemporality":1}}]}]}]}"#;

    #[test]
    fn every_line_is_accounted_for() {
        let bad_cost = GOOD.replace(r#""asInt":"1""#, r#""asInt":"x""#);
        let text = format!("{GOOD}\n\n{{broken\n{bad_cost}\r\n{GOOD}\n");
        let o = decode_object("k", text.as_bytes(), ctx());
        assert_eq!(o.lines_read, 4);
        assert_eq!(o.lines_parsed, 3);
        assert_eq!(o.decoder.records.len(), 2);
        assert_eq!(o.bad_lines.len(), 2);
        assert_eq!(o.bad_lines[0].line_no, 3);
        assert_eq!(o.bad_lines[0].text, b"{broken");
        assert_eq!(o.bad_lines[1].reasons, vec![Reason::BadNumber]);
        assert_eq!(o.bad_lines[1].text, bad_cost.as_bytes());
    }

    #[test]
    fn truncated_gzip_uses_complete_lines_and_quarantines_the_rest() {
        let text = format!("{GOOD}\n").repeat(200);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let o = decode_object("k", &gz[..gz.len() * 2 / 3], ctx());
        let used = o.decoder.records.len() as u64;
        assert!(used > 0 && used < 200, "{used}");
        assert_eq!(o.lines_parsed, used);
        assert_eq!(o.lines_read, used + 1);
        assert_eq!(o.bad_lines.last().unwrap().reasons, vec![Reason::Truncated]);
    }

    #[test]
    fn an_object_past_the_size_limit_uses_its_lines_within_it_and_quarantines_the_cut_one() {
        let line = format!("{GOOD}\n");
        let text = line.repeat(200);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut o = ObjectOutput::new(ctx());
        o.decompressor = Decompressor::with_limit(line.len() * 100 + line.len() / 2);
        decode_into(&mut o, "k", &gz, &mut |_| {});
        assert_eq!(o.lines_parsed, 100);
        assert_eq!(o.lines_read, 101);
        let cut = o.bad_lines.last().unwrap();
        assert_eq!(cut.reasons, vec![Reason::TooLarge]);
        assert_eq!(cut.line_no, 101);
        assert_eq!(cut.text, &line.as_bytes()[..line.len() / 2]);
        assert!(
            cut.detail.contains("CC_ANALYTICS_MAX_OBJECT_BYTES"),
            "{}",
            cut.detail
        );
    }
}

#[cfg(test)]
mod streaming {
    use super::*;
    use std::io::Write;

    const LINE: &str = r#"{"resourceLogs":[{"scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events"},"logRecords":[{"timeUnixNano":"1791421200000000000","body":{"stringValue":"claude_code.user_prompt"},"attributes":[{"key":"session.id","value":{"stringValue":"s"}}]}]}]}]}"#;

    /// Lines cut anywhere by chunk boundaries decode as when the object is one chunk.
    #[test]
    fn lines_across_chunks_decode_as_whole_ones() {
        let mut text = String::new();
        for i in 0..50 {
            text += LINE;
            text += if i % 7 == 0 { "\r\n" } else { "\n" };
            if i % 11 == 0 {
                text += "{broken\n\n";
            }
        }
        text += LINE; // no final newline
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let whole = {
            let mut o = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
            decode_into(&mut o, "k", &gz, &mut |_| {});
            o
        };
        assert_eq!(whole.lines_parsed, 51);
        assert_eq!(whole.bad_lines.len(), 5);
        let zst = zstd::encode_all(text.as_bytes(), 3).unwrap();
        // Two gzip members in a row, as a compacted object can be.
        let half = text.len() / 2 + text[text.len() / 2..].find('\n').unwrap() + 1;
        let mut two = Vec::new();
        for part in [&text[..half], &text[half..]] {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            g.write_all(part.as_bytes()).unwrap();
            two.extend(g.finish().unwrap());
        }
        for chunk in [1, 2, 3, 7, 64, 250, 251, 4096] {
            for (bytes, streamed) in [
                (&gz[..], false),
                (&zst[..], false),
                (text.as_bytes(), false),
                (&gz[..], true),
                (&zst[..], true),
                (text.as_bytes(), true),
                (&two[..], true),
            ] {
                let mut o = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
                o.decompressor = Decompressor::with_limit(usize::MAX).with_chunk(chunk);
                if streamed {
                    // The path of objects too large to fetch whole: read and inflated as a
                    // stream on a thread of their own.
                    let reader = Box::new(std::io::Cursor::new(bytes.to_vec()));
                    decode_stream(&mut o, "k", reader, &mut |_| {});
                } else {
                    decode_into(&mut o, "k", bytes, &mut |_| {});
                }
                assert_eq!(o.lines_read, whole.lines_read, "chunk {chunk}");
                assert_eq!(o.lines_parsed, whole.lines_parsed, "chunk {chunk}");
                assert_eq!(o.decoder.records.len(), whole.decoder.records.len());
                let lines = |o: &ObjectOutput| -> Vec<(usize, Vec<u8>)> {
                    o.bad_lines
                        .iter()
                        .map(|b| (b.line_no, b.text.clone()))
                        .collect()
                };
                assert_eq!(lines(&o), lines(&whole), "chunk {chunk}");
            }
        }
        // A cut stream read as a stream: the lines before the cut decoded, the cut quarantined.
        let cut = &gz[..gz.len() * 2 / 3];
        let mut o = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
        decode_stream(
            &mut o,
            "k",
            Box::new(std::io::Cursor::new(cut.to_vec())),
            &mut |_| {},
        );
        let last = o.bad_lines.last().unwrap();
        assert_eq!(last.reasons, vec![Reason::Truncated], "{}", last.detail);
        let mut fetched = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
        decode_into(&mut fetched, "k", cut, &mut |_| {});
        assert_eq!(
            o.lines_parsed, fetched.lines_parsed,
            "the same lines as when fetched whole"
        );
    }
}

#[cfg(test)]
mod limits {
    use super::*;

    #[test]
    fn an_overlong_line_is_quarantined_unread() {
        let ctx = DecodeContext::new(chrono_tz::UTC, i64::MAX);
        let mut text = vec![b'{'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(b"{\"resourceLogs\":[]}\n");
        let o = decode_object("big", &text, ctx);
        assert_eq!(o.lines_read, 2);
        assert_eq!(o.lines_parsed, 1);
        assert_eq!(o.bad_lines[0].reasons, vec![Reason::LineTooLong]);
    }
}
