//! One window of event dates: list the arrival partitions that can hold its dates, read and
//! decode them, build the facts, check them (bad input, shrinking), and commit them with each
//! date's status. A run works through its range window by window, so that its memory depends
//! on one window's data, not on the range's length.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Days, NaiveDate};

use super::Setup;
use crate::config::RunConfig;
use crate::decode::ingest::{ingest, Ingested, Tasks};
use crate::decode::quarantine;
use crate::error::{Error, Result};
use crate::facts::late::{self, DateStatus};
use crate::facts::store;
use crate::facts::{self, Facts};
use crate::manifest::{Counts, LateDate, ObjectCounts, OutputFile};
use crate::policy::redact;
use crate::source::{arrival_day, is_telemetry_key, Location};

/// The windows of a range: consecutive blocks of `days` dates, in order (one window without a
/// range: every date of the input).
pub fn plan(
    range: Option<(NaiveDate, NaiveDate)>,
    days: u32,
) -> Vec<Option<(NaiveDate, NaiveDate)>> {
    let Some((from, to)) = range else {
        return vec![None];
    };
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = start
            .checked_add_days(Days::new(days.max(1) as u64 - 1))
            .unwrap_or(to)
            .min(to);
        out.push(Some((start, end)));
        match end.succ_opt() {
            Some(next) => start = next,
            None => break,
        }
    }
    out
}

/// The arrival days to read for event dates `from..=to` (4.2), or `None` (every day).
pub fn arrival_window(
    range: Option<(NaiveDate, NaiveDate)>,
    delay_days: u32,
) -> Option<(NaiveDate, NaiveDate)> {
    range.map(|(from, to)| {
        (
            from.checked_sub_days(Days::new(1)).unwrap_or(from),
            to.checked_add_days(Days::new(delay_days as u64))
                .unwrap_or(to),
        )
    })
}

/// A window's listing: the objects to read and the counts, with the objects file's lines for
/// them (one gzip member), written as they were listed so that no etag or time is kept per
/// object.
pub struct Listed {
    pub tasks: Tasks,
    pub objects: ObjectCounts,
    pub entries: crate::manifest::Member,
}

/// Lists every input, keeps telemetry, prunes arrival partitions outside `window` (4.2).
pub async fn list_inputs(
    inputs: &[Arc<Location>],
    window: Option<(NaiveDate, NaiveDate)>,
) -> Result<Listed> {
    let mut objects = ObjectCounts::default();
    let mut tasks = Tasks::default();
    let mut entries = crate::manifest::Entries::new()?;
    for loc in inputs {
        let first = tasks.len();
        let mut keep = |meta: object_store::ObjectMeta| -> Result<()> {
            objects.listed += 1;
            let key = meta.location.as_ref();
            if !is_telemetry_key(key) {
                objects.not_telemetry += 1;
                return Ok(());
            }
            if let (Some((lo, hi)), Some(day)) = (window, arrival_day(key)) {
                if day < lo || day > hi {
                    objects.skipped_by_arrival_partition += 1;
                    return Ok(());
                }
            }
            entries.add(loc, &meta)?;
            tasks.push(loc, key, meta.size)
        };
        let listing = loc.list_window(window, &mut keep).await?;
        objects.partitions_skipped += listing.partitions_skipped;
        objects.links_skipped += listing.links_skipped;
        // Read in key order, whatever order the partitions were listed in.
        tasks.sort_from(first);
    }
    tasks.shrink_to_fit();
    objects.read = tasks.len() as u64;
    tracing::info!(
        "listed {} objects: reading {}, {} not telemetry, {} outside the arrival window ({} partitions outside it not listed)",
        objects.listed,
        objects.read,
        objects.not_telemetry,
        objects.skipped_by_arrival_partition,
        objects.partitions_skipped
    );
    Ok(Listed {
        tasks,
        objects,
        entries: entries.finish()?,
    })
}

/// One read of the input for a window: what was listed, what it decoded into, the quarantine
/// it wrote.
pub struct Pass {
    pub range: Option<(NaiveDate, NaiveDate)>,
    /// The objects file's lines for the objects read (a gzip member).
    pub entries: crate::manifest::Member,
    pub objects: ObjectCounts,
    pub ing: Ingested,
    pub quarantined: Vec<OutputFile>,
    /// The last arrival day read for the recomputed dates.
    pub arrival_through: NaiveDate,
}

/// Lists (unless `listed` is given) and reads the input for `range` and `extra` dates.
pub async fn read(
    s: &Setup<'_>,
    range: Option<(NaiveDate, NaiveDate)>,
    extra: &[NaiveDate],
    listed: Option<Listed>,
    quarantine_dir: &str,
) -> Result<Pass> {
    let cfg = s.cfg;
    // Healed dates widen the window back to the first of them.
    let reach = range.map(|(from, to)| (extra.first().map_or(from, |e| (*e).min(from)), to));
    let window = arrival_window(reach, cfg.max_arrival_delay_days);
    let Listed {
        tasks,
        objects,
        entries,
    } = match listed {
        Some(l) => l,
        None => list_inputs(s.inputs, window).await?,
    };
    let tasks = Arc::new(tasks);
    // Batches in flight: enough to keep every core decoding while the next batch is fetched.
    let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let phase = Instant::now();
    let acc = facts::Accumulator::new(s.roster, range)
        .with_extra_dates(extra)
        .with_limits(cfg.limits)
        .with_dimensions(&cfg.dimensions);
    let mut writer = quarantine::Writer::new(s.state, quarantine_dir);
    let ing = ingest(
        tasks.clone(),
        s.ctx,
        concurrency,
        s.progress,
        acc,
        &mut writer,
        cfg.max_bad_ratio,
    )
    .await?;
    let quarantined = writer.finish().await?;
    tracing::info!(
        "decoded {} records from {} lines in {:.2}s",
        ing.acc.kept(),
        ing.counts.lines_read,
        phase.elapsed().as_secs_f64()
    );
    drop(tasks);
    Ok(Pass {
        range,
        entries,
        objects,
        ing,
        quarantined,
        arrival_through: window.map_or(s.today, |w| w.1),
    })
}

/// Late records (4.4) of dates outside `range`, not yet in their facts: by date, with the
/// stored status of each.
pub async fn late_outside(
    state: &Location,
    range: Option<(NaiveDate, NaiveDate)>,
    late: &BTreeMap<(i32, i32), u64>,
) -> Result<(BTreeMap<NaiveDate, u64>, BTreeMap<NaiveDate, DateStatus>)> {
    let in_range = |d: NaiveDate| range.is_none_or(|(a, b)| a <= d && d <= b);
    let dates: BTreeSet<NaiveDate> = late
        .keys()
        .map(|(d, _)| facts::date_of_days(*d))
        .filter(|d| !in_range(*d))
        .collect();
    let mut status = BTreeMap::new();
    for d in dates {
        let now = store::current_of(state, d).await?;
        status.insert(d, now.map(|s| s.commit.status).unwrap_or_default());
    }
    let mut fresh = late::not_yet_counted(late, &status);
    fresh.retain(|d, _| status.contains_key(d));
    Ok((fresh, status))
}

/// The dates healing recomputes: late ones at most `heal_max_days` before the window's first
/// date.
pub fn heal_dates(
    cfg: &RunConfig,
    range: Option<(NaiveDate, NaiveDate)>,
    fresh: &BTreeMap<NaiveDate, u64>,
) -> Vec<NaiveDate> {
    let Some((from, _)) = range.filter(|_| cfg.heal_late) else {
        return Vec::new();
    };
    let oldest = from
        .checked_sub_days(Days::new(cfg.heal_max_days as u64))
        .unwrap_or(from);
    fresh
        .keys()
        .copied()
        .filter(|d| *d >= oldest && *d < from)
        .collect()
}

/// What a committed window contributes to the run's manifest and summary.
pub struct Done {
    pub counts: Counts,
    pub objects: ObjectCounts,
    pub dates: Vec<NaiveDate>,
    pub healed: Vec<NaiveDate>,
    pub late_dates: BTreeMap<String, LateDate>,
    /// Late records not in the tables after the window, by date.
    pub unhealed: BTreeMap<NaiveDate, u64>,
    pub quarantined: Vec<OutputFile>,
    /// The objects file's lines for the objects read (a gzip member).
    pub entries: crate::manifest::Member,
}

/// A window that cannot be committed: its counts so far, and why.
pub struct Failed {
    pub done: Done,
    pub error: Error,
}

/// Reads window `k` (and heals its late dates), then builds, checks and commits its facts.
pub async fn run(
    s: &Setup<'_>,
    k: usize,
    range: Option<(NaiveDate, NaiveDate)>,
    listed: Option<Listed>,
) -> Result<std::result::Result<Done, Failed>> {
    let qdir = quarantine::dir(s.run_id, k);
    let staging_id = format!("{}-w{k:04}", s.run_id);
    let mut pass = read(s, range, &[], listed, &qdir).await?;
    let (mut fresh, mut status) = late_outside(s.state, range, &pass.ing.late).await?;
    let healed = if pass.ing.stopped_early.is_none() {
        heal_dates(s.cfg, range, &fresh)
    } else {
        Vec::new()
    };
    if !healed.is_empty() {
        tracing::info!(
            "healing {} dates with late records ({}): reading again from {}",
            healed.len(),
            late::blocks(&healed).join(", "),
            healed[0].pred_opt().unwrap_or(healed[0])
        );
        quarantine::remove_run(s.state, &qdir).await?;
        pass = read(s, range, &healed, None, &qdir).await?;
        (fresh, status) = late_outside(s.state, range, &pass.ing.late).await?;
        fresh.retain(|d, _| !healed.contains(d));
    }
    commit(s, pass, healed, fresh, status, &staging_id).await
}

/// The facts of a pass, with the records the decoder or the sums left out counted.
fn build(pass: &mut Pass) -> Result<(Facts, Counts)> {
    let phase = Instant::now();
    let mut counts = pass.ing.counts.clone();
    let acc = std::mem::replace(
        &mut pass.ing.acc,
        facts::Accumulator::new(&Default::default(), None),
    );
    let facts = acc.finish()?;
    counts.records_used = facts.records_used;
    counts.records_outside_range = facts.records_outside_range;
    if facts.records_implausible > 0 {
        counts.records_rejected += facts.records_implausible;
        *counts
            .rejected_by_reason
            .entry(crate::decode::otlp::Reason::ImplausibleValue.to_string())
            .or_default() += facts.records_implausible;
    }
    tracing::info!(
        "built {} fact rows in {:.2}s",
        facts.set.sessions.height(),
        phase.elapsed().as_secs_f64()
    );
    Ok((facts, counts))
}

async fn commit(
    s: &Setup<'_>,
    mut pass: Pass,
    healed: Vec<NaiveDate>,
    fresh: BTreeMap<NaiveDate, u64>,
    status: BTreeMap<NaiveDate, DateStatus>,
    staging_id: &str,
) -> Result<std::result::Result<Done, Failed>> {
    let (facts, counts) = build(&mut pass)?;
    let dates: Vec<NaiveDate> = facts.set.dates()?;
    let late_dates = late_dates(&counts, &status, &fresh, &dates, &healed);
    let done = Done {
        counts,
        objects: pass.objects.clone(),
        dates: dates.clone(),
        healed: healed.clone(),
        late_dates,
        unhealed: fresh.clone(),
        quarantined: std::mem::take(&mut pass.quarantined),
        entries: std::mem::take(&mut pass.entries),
    };
    if let Some(error) = too_much_bad_input(s, &pass, &done) {
        return Ok(Err(Failed { done, error }));
    }
    if done.counts.records_used == 0 {
        return Ok(Ok(done));
    }
    let new_records = late::records_by_date(&facts.set.sessions)?;
    if let Some(error) = shrink_guard(s, &dates, &new_records).await? {
        return Ok(Err(Failed { done, error }));
    }
    commit_dates(s, &pass, &facts, &dates, &new_records, &fresh, staging_id).await?;
    Ok(Ok(done))
}

/// Per event date with late records: how many, and what this run did about them.
fn late_dates(
    counts: &Counts,
    status: &BTreeMap<NaiveDate, DateStatus>,
    fresh: &BTreeMap<NaiveDate, u64>,
    dates: &[NaiveDate],
    healed: &[NaiveDate],
) -> BTreeMap<String, LateDate> {
    counts
        .late_by_date
        .iter()
        .map(|(d, &n)| {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
            let st = day.and_then(|d| status.get(&d));
            (
                d.clone(),
                LateDate {
                    records_late: n,
                    not_in_tables: day.and_then(|d| fresh.get(&d)).copied().unwrap_or(0),
                    recomputed: day.is_some_and(|d| dates.contains(&d)),
                    healed: day.is_some_and(|d| healed.contains(&d)),
                    last_recomputed_at: st.and_then(|s| s.recomputed_at.clone()),
                },
            )
        })
        .collect()
}

/// The window's input stopped early or is worse than `--max-bad-ratio` (exit 3).
fn too_much_bad_input(s: &Setup<'_>, pass: &Pass, done: &Done) -> Option<Error> {
    let where_ = match pass.range {
        Some((a, b)) if a != b => format!(" in {a} … {b}"),
        Some((a, _)) => format!(" on {a}"),
        None => String::new(),
    };
    if let Some(why) = &pass.ing.stopped_early {
        let msg = format!("{why}{where_}; see _quarantine/{}/", s.run_id);
        return Some(Error::TooMuchBadInput(msg));
    }
    let ratio = done.counts.bad_ratio();
    if ratio > s.cfg.max_bad_ratio {
        let msg = format!(
            "{:.4} of the lines{where_} are bad ({} quarantined, {} with rejected records, of {}), above --max-bad-ratio {}; see _quarantine/{}/",
            ratio,
            done.counts.lines_quarantined,
            done.counts.lines_with_rejected_records,
            done.counts.lines_read,
            s.cfg.max_bad_ratio,
            s.run_id
        );
        return Some(Error::TooMuchBadInput(msg));
    }
    None
}

/// The shrink guard (4.4): a date whose new facts use fewer than half the stored records is
/// not replaced, unless `--allow-shrink`.
async fn shrink_guard(
    s: &Setup<'_>,
    dates: &[NaiveDate],
    new_records: &BTreeMap<NaiveDate, u64>,
) -> Result<Option<Error>> {
    let mut stored_records = BTreeMap::new();
    for d in dates {
        if let Some(st) = store::current_of(s.state, *d).await? {
            if st.commit.version.is_some() {
                stored_records.insert(*d, st.commit.status.records_used);
            }
        }
    }
    let shrunk = late::shrunk(&stored_records, new_records);
    if shrunk.is_empty() || s.cfg.allow_shrink {
        return Ok(None);
    }
    Ok(Some(Error::Other(format!(
        "the input holds fewer than half the records the stored facts of {} dates use ({}): raw objects may have expired; nothing published; rerun with --allow-shrink to replace them anyway",
        shrunk.len(),
        shrunk.join("; ")
    ))))
}

/// Commits each date: its facts and status, or (late records seen, date not recomputed) its
/// status alone.
async fn commit_dates(
    s: &Setup<'_>,
    pass: &Pass,
    facts: &facts::Facts,
    dates: &[NaiveDate],
    new_records: &BTreeMap<NaiveDate, u64>,
    fresh: &BTreeMap<NaiveDate, u64>,
    staging_id: &str,
) -> Result<()> {
    let state = s.state;
    state
        .put(&state.child(store::FACTS_META), store::meta_bytes(s.cfg))
        .await?;
    let mut by_date = facts.set.by_date()?;
    let empty = facts.set.empty();
    let started_at = s.started.to_rfc3339();
    for d in dates {
        let day = by_date.remove(d).unwrap_or_else(|| empty.clone());
        let st = DateStatus {
            recomputed_by: Some(s.run_id.to_string()),
            recomputed_at: Some(started_at.clone()),
            arrival_through: Some(pass.arrival_through),
            records_used: new_records.get(d).copied().unwrap_or(0),
            late_since: fresh.get(d).copied().unwrap_or(0),
            late_seen_by: fresh.contains_key(d).then(|| s.run_id.to_string()),
        };
        store::commit_date(state, *d, staging_id, s.run_id, Some(&day), |_| st.clone()).await?;
    }
    for (d, n) in fresh {
        if dates.contains(d) {
            continue;
        }
        store::commit_date(state, *d, staging_id, s.run_id, None, |prev| {
            let mut st = prev.map(|c| c.status.clone()).unwrap_or_default();
            st.late_since = *n;
            st.late_seen_by = Some(s.run_id.to_string());
            st
        })
        .await?;
    }
    Ok(())
}

/// The end-of-run warning for late records left out of the tables, with the command that
/// recomputes their dates.
pub fn late_warning(
    cfg: &RunConfig,
    argv: &[String],
    unhealed: &BTreeMap<NaiveDate, u64>,
) -> Option<String> {
    if unhealed.is_empty() {
        return None;
    }
    let n: u64 = unhealed.values().sum();
    let dates: Vec<NaiveDate> = unhealed.keys().copied().collect();
    let mut cmd = redact::command_line(argv);
    if !cmd.iter().any(|a| a == "--heal-late") {
        cmd.push("--heal-late".into());
    }
    let reach = cfg.range.and_then(|(from, _)| {
        let oldest = from.checked_sub_days(Days::new(cfg.heal_max_days as u64))?;
        dates.iter().any(|d| *d < oldest).then(|| {
            format!(
                " (dates before {oldest} lie more than heal_max_days = {} before the first date: raise it in the pipeline file)",
                cfg.heal_max_days
            )
        })
    });
    Some(format!(
        "{n} late records (uploaded more than {} days after their date) are not in the tables of {}; recompute those dates with: {}{}",
        cfg.max_arrival_delay_days,
        late::blocks(&dates).join(", "),
        cmd.join(" "),
        reach.unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_cut_the_range_in_order() {
        let w = plan(Some((d("2026-01-01"), d("2026-01-10"))), 4);
        assert_eq!(
            w,
            vec![
                Some((d("2026-01-01"), d("2026-01-04"))),
                Some((d("2026-01-05"), d("2026-01-08"))),
                Some((d("2026-01-09"), d("2026-01-10"))),
            ]
        );
        assert_eq!(plan(Some((d("2026-01-01"), d("2026-01-01"))), 7).len(), 1);
        assert_eq!(plan(None, 7), vec![None]);
    }
}
