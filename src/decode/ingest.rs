//! Reading telemetry objects in parallel: batches by bytes, fetched within a bound on requests,
//! decoded on blocking threads (one object's lines: `object`), merged in task order, with the
//! run stopped early once its bad input cannot stay within its ratio.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use super::object::{part_records, ObjectOutput};
pub use super::tasks::{Task, Tasks};
use crate::decode::otlp::{DecodeContext, ObjectDecoder, Reason};
pub use crate::decode::quarantine::BadLine;
use crate::error::{Error, Result};
use crate::facts::Accumulator;
use crate::manifest::Counts;
use crate::source::stream_object_bytes;

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

/// Everything decoded from the inputs: the records folded into `acc`, the line accounting.
pub struct Ingested {
    pub acc: Accumulator,
    pub counts: Counts,
    /// Why the run stopped reading before the end: too much bad input already.
    pub stopped_early: Option<String>,
    /// Late records by (event date, arrival day), days since 1970-01-01.
    pub late: BTreeMap<(i32, i32), u64>,
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
    fn new(tasks: &Tasks, max_ratio: f64) -> Self {
        BadWatch {
            lines: Default::default(),
            bad: Default::default(),
            objects: Default::default(),
            bytes: Default::default(),
            stop: Default::default(),
            why: Default::default(),
            total_objects: tasks.len() as u64,
            total_bytes: if tasks.iter().all(|t| t.size > 0) {
                tasks.iter().map(|t| t.size).sum()
            } else {
                0
            },
            max_ratio,
        }
    }

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
    tasks: Arc<Tasks>,
    ctx: DecodeContext,
    concurrency: usize,
    progress: bool,
    acc: Accumulator,
    quarantine: &mut crate::decode::quarantine::Writer,
    max_bad_ratio: f64,
) -> Result<Ingested> {
    let mut progress = Progress::new(tasks.len(), progress);
    let watch = Arc::new(BadWatch::new(&tasks, max_bad_ratio));
    let requests = Arc::new(Semaphore::new(max_requests()));
    let mut outputs = futures::stream::iter(batches(&tasks))
        .map(|batch| start_batch(tasks.clone(), batch, ctx, watch.clone(), requests.clone()))
        .buffered(concurrency);
    let (tx, merger) = spawn_merger(acc);
    let mut counts = Counts::default();
    let mut late = BTreeMap::new();
    while let Some(batch) = outputs.next().await {
        let Some(batch) = batch? else {
            break;
        };
        let objects = batch.objects;
        if !fold_batch(batch, (&mut counts, &mut late), quarantine, &watch, &tx).await? {
            break;
        }
        progress.add(objects);
    }
    let stopped_early = watch.why.lock().expect("not poisoned").take();
    drop(outputs);
    drop(tx);
    let acc = tokio::task::spawn_blocking(move || merger.join())
        .await
        .map_err(|e| Error::Other(format!("merging failed: {e}")))?
        .map_err(|_| Error::Other("merging failed: the merge thread panicked".into()))?;
    counts.records_duplicate = acc.duplicates();
    progress.finish();
    Ok(Ingested {
        acc,
        counts,
        stopped_early,
        late,
    })
}

/// Objects go to the CPU in batches of about BATCH_BYTES: fetched concurrently, decoded in one
/// blocking task, so that many small objects do not cost a thread hand-off each.
fn batches(tasks: &Tasks) -> Vec<Range<usize>> {
    let mut batches: Vec<Range<usize>> = Vec::new();
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
    batches
}

/// A decoded part of a batch, or why the batch could not be read.
type Part = Result<ObjectOutput>;

/// A batch being decoded: its first part (waited for), the channel of the others and the
/// decoding thread.
struct Started {
    first: Option<Part>,
    parts: mpsc::Receiver<Part>,
    decoding: tokio::task::JoinHandle<()>,
    objects: usize,
}

/// Fetches a batch and starts decoding it on a blocking thread, which hands its decoded parts
/// on through a channel of its own (at most two waiting), so that a large object's records are
/// merged as they are decoded. `None` once the run is to stop.
async fn start_batch(
    tasks: Arc<Tasks>,
    batch: Range<usize>,
    ctx: DecodeContext,
    watch: Arc<BadWatch>,
    requests: Arc<Semaphore>,
) -> Result<Option<Started>> {
    if watch.stop.load(Relaxed) {
        return Ok(None);
    }
    let objects = batch.len();
    let fetched = fetch_batch(&tasks, batch.clone(), &requests).await?;
    let (part_tx, mut parts) = mpsc::channel::<Part>(2);
    let decoding = tokio::task::spawn_blocking(move || {
        decode_batch(&tasks, batch, fetched, ctx, &watch, part_tx)
    });
    // Waiting for the first part keeps this future pending while the batch decodes, so that
    // the stream polls (and starts) the next batches meanwhile.
    let first = parts.recv().await;
    Ok(Some(Started {
        first,
        parts,
        decoding,
        objects,
    }))
}

/// A batch's objects fetched through the store's API, concurrently within the run's bound on
/// requests; `None` for local files, which the decoding thread reads itself, and `None` for
/// each object large enough to be read as a stream when it is decoded.
async fn fetch_batch(
    tasks: &Tasks,
    batch: Range<usize>,
    requests: &Semaphore,
) -> Result<Option<Vec<Option<Bytes>>>> {
    if tasks.get(batch.start).location.local.is_some() {
        return Ok(None);
    }
    let fetched = futures::future::try_join_all(batch.map(|i| async move {
        let task = tasks.get(i);
        if task.size > stream_object_bytes() {
            return Ok(None);
        }
        let _slot = requests.acquire().await.expect("never closed");
        task.location.get(&task.path()).await.map(Some)
    }))
    .await?;
    Ok(Some(fetched))
}

/// Decodes a batch's objects in order into parts, sent as they fill up.
fn decode_batch(
    tasks: &Tasks,
    batch: Range<usize>,
    fetched: Option<Vec<Option<Bytes>>>,
    ctx: DecodeContext,
    watch: &BadWatch,
    part_tx: mpsc::Sender<Part>,
) {
    let send = |part: Part| part_tx.blocking_send(part).is_ok();
    let mut out = ObjectOutput::new(ctx);
    let mut hand_on = |out: &mut ObjectOutput| {
        let next = out.next_part();
        let mut full = std::mem::replace(out, next);
        out.decompressor = std::mem::take(&mut full.decompressor);
        send(Ok(full));
    };
    for (k, i) in batch.enumerate() {
        if watch.stop.load(Relaxed) {
            break;
        }
        let task = tasks.get(i);
        let fetched = fetched.as_ref().map(|f| f[k].as_ref());
        if let Err(e) = decode_task(&mut out, &task, fetched, &mut hand_on) {
            send(Err(e));
            return;
        }
        watch.object(out.object_lines, out.object_bad, task.size);
        if out.decoder.records.len() >= part_records() {
            hand_on(&mut out);
        }
    }
    send(Ok(out));
}

/// Decodes one object: its fetched bytes, a local file read whole, or a stream for an object
/// too large to hold (`fetched`: `None` for a local store, `Some(None)` for a streamed object).
fn decode_task(
    out: &mut ObjectOutput,
    task: &Task<'_>,
    fetched: Option<Option<&Bytes>>,
    hand_on: &mut dyn FnMut(&mut ObjectOutput),
) -> Result<()> {
    let path = &task.path();
    match fetched {
        Some(Some(bytes)) => out.decode_task(task, bytes, hand_on),
        None if task.size <= stream_object_bytes() => {
            out.decode_task(task, &task.location.read_local(path)?, hand_on)
        }
        _ => out.decode_task_stream(task, task.location.open_stream(path)?, hand_on),
    }
    Ok(())
}

/// Folds a batch's parts in order: their counts, their bad lines to the quarantine, their
/// records to the merger. False when the run is to stop (too much bad input, or the merger is
/// gone: its panic is reported when it is joined).
async fn fold_batch(
    batch: Started,
    (counts, late): (&mut Counts, &mut BTreeMap<(i32, i32), u64>),
    quarantine: &mut crate::decode::quarantine::Writer,
    watch: &BadWatch,
    tx: &mpsc::Sender<ObjectDecoder>,
) -> Result<bool> {
    let Started {
        first,
        mut parts,
        decoding,
        ..
    } = batch;
    let mut next = first;
    while let Some(part) = next.take() {
        let mut o = part?;
        add_counts(counts, late, &mut o);
        quarantine.add(std::mem::take(&mut o.bad_lines)).await?;
        if watch.stop.load(Relaxed) || tx.send(o.decoder).await.is_err() {
            return Ok(false);
        }
        next = parts.recv().await;
    }
    decoding
        .await
        .map_err(|e| Error::Other(format!("decoding failed: {e}")))?;
    Ok(true)
}

/// Parts are folded in task order on a thread of their own, while the next ones are read and
/// decoded; at most two wait for it.
fn spawn_merger(
    mut acc: Accumulator,
) -> (
    mpsc::Sender<ObjectDecoder>,
    std::thread::JoinHandle<Accumulator>,
) {
    let (tx, mut rx) = mpsc::channel::<ObjectDecoder>(2);
    let merger = std::thread::spawn(move || {
        while let Some(d) = rx.blocking_recv() {
            acc.add(&d.records, &d.dict);
        }
        acc
    });
    (tx, merger)
}

/// Progress over the objects read: a bar on a terminal, else a log line per tenth.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: usize,
    total: usize,
}

impl Progress {
    fn new(total: usize, bar: bool) -> Self {
        let bar = bar.then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} reading objects {bar:40} {pos}/{len} ({elapsed}, {eta} left)",
                )
                .expect("valid template"),
            );
            b
        });
        Progress {
            bar,
            done: 0,
            total,
        }
    }

    fn add(&mut self, objects: usize) {
        let (before, total) = (self.done, self.total);
        self.done += objects;
        let done = self.done;
        let step = (total / 10).max(1);
        match &self.bar {
            Some(b) => b.inc(objects as u64),
            None if done == total || before / step != done / step => {
                tracing::info!("read {done}/{total} objects")
            }
            None => {}
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
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
