//! One run of the job: list → read and decode → facts → reports → publish per role.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use polars::prelude::*;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::facts::FactSet;
use crate::ingest::{ingest, Task};
use crate::late::{self, DateStatus};
use crate::manifest::{InputObjects, Manifest, ObjectCounts, OutputFile};
use crate::otlp::{max_time_for, DecodeContext};
use crate::policy::Policy;
use crate::publish::{self, Lock, Publisher, Roots};
use crate::roster::Roster;
use crate::schema::col as c;
use crate::sink::{csv_bytes, parquet_bytes};
use crate::source::{arrival_day, is_telemetry_key, Location};
use crate::{dashboard, facts, quarantine, redact, reports};

/// Reads a small whole object (roster, policy) named by a URL or local path.
async fn read_text(url: &str, what: &str) -> Result<String> {
    let url = &crate::redact::url(url);
    let bytes = if url.contains("://") && !url.starts_with("file://") {
        let (dir, name) = url
            .rsplit_once('/')
            .ok_or_else(|| Error::usage(format!("bad {what} URL {url:?}")))?;
        let loc = Location::parse(dir, false)?;
        loc.get(&loc.child(name))
            .await
            .map_err(|e| match e {
                Error::Store { source, .. } => {
                    Error::usage(format!("cannot read {what} {url}: {source}"))
                }
                e => e,
            })?
            .to_vec()
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        std::fs::read(path).map_err(|e| Error::usage(format!("cannot read {what} {url}: {e}")))?
    };
    String::from_utf8(bytes).map_err(|_| Error::usage(format!("{what} {url} is not UTF-8 text")))
}

fn new_run_id(now: chrono::DateTime<Utc>) -> String {
    format!(
        "{}-{:05}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        std::process::id() % 100_000
    )
}

/// Replaces `member` by its pseudonym in a table that has the column, and sorts the rows by the
/// values written (contract 5.2): rows in the order of the real identities would let anyone who
/// knows the sorted roster (or can read another role's folder) undo the pseudonyms.
fn pseudonymise(df: &DataFrame, policy: &Policy) -> Result<DataFrame> {
    let Ok(col) = df.column(c::MEMBER) else {
        return Ok(df.clone());
    };
    let names: Vec<Option<String>> = col
        .as_materialized_series()
        .str()?
        .iter()
        .map(|m| m.map(|m| policy.pseudonym(m)))
        .collect();
    let mut out = df.clone();
    out.with_column(Column::new(c::MEMBER.into(), names))?;
    // The leading column (date or month), the member, then the other key columns present.
    let names: Vec<&str> = out.get_column_names().iter().map(|n| n.as_str()).collect();
    let mut by: Vec<&str> = vec![names[0], c::MEMBER];
    by.extend(
        [c::MEMBER_TYPE, c::TOOL, c::MODEL]
            .into_iter()
            .filter(|k| names.contains(k)),
    );
    let by: Vec<String> = by.into_iter().map(String::from).collect();
    drop(names);
    Ok(out.sort(by, SortMultipleOptions::default().with_maintain_order(true))?)
}

/// How one role sees a table: pseudonymised or not, and which of its columns are left out.
#[derive(PartialEq, Eq, Clone)]
struct Form {
    pseudonymised: bool,
    drop: Vec<&'static str>,
}

impl Form {
    fn of(access: &crate::policy::RoleAccess, df: &DataFrame) -> Form {
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        Form {
            pseudonymised: access.pseudonymise_member && names.contains(&c::MEMBER),
            drop: access
                .drop
                .iter()
                .copied()
                .filter(|d| names.contains(d))
                .collect(),
        }
    }

    fn apply(&self, df: &DataFrame, policy: &Policy) -> Result<DataFrame> {
        let df = if self.pseudonymised {
            pseudonymise(df, policy)?
        } else {
            df.clone()
        };
        Ok(df.drop_many(self.drop.iter().copied()))
    }
}

/// The outcome of a run, for the exit status and the summary.
pub struct RunOutcome {
    pub manifest: Manifest,
    /// False when the input held no telemetry for the dates and nothing was written.
    pub wrote: bool,
    /// Late records left out of the tables, and the command that recomputes their dates.
    pub late_warning: Option<String>,
}

/// Stored daily facts (internal): one Parquet file per event date, and the time zone they use.
const FACTS_DIR: &str = "_facts";
const FACTS_META: &str = "_facts/_meta.json";

fn facts_path(d: NaiveDate, frame: &str) -> String {
    format!("{FACTS_DIR}/date={d}/{frame}.parquet")
}

/// Version of the stored facts' layout: facts of another layout are refused, not misread.
const FACTS_LAYOUT: u32 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
struct FactsMeta {
    timezone: String,
    #[serde(default)]
    layout: u32,
}

/// Facts stored by earlier runs, except for `skip` dates (those this run recomputes).
async fn stored_facts(out: &Location, skip: &BTreeSet<NaiveDate>) -> Result<Vec<FactSet>> {
    let prefix = out.child(FACTS_DIR);
    let metas: Vec<object_store::ObjectMeta> = out
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix.as_ref(), e))?;
    // Dates with stored facts (a date folder may hold only a status: late records seen).
    let days: BTreeSet<NaiveDate> = metas
        .iter()
        .filter(|m| m.location.as_ref().ends_with("/sessions.parquet"))
        .filter_map(|m| {
            m.location
                .as_ref()
                .split('/')
                .find_map(|p| p.strip_prefix("date="))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        })
        .filter(|d| !skip.contains(d))
        .collect();
    // Fetched a few dates at a time (object stores answer faster in parallel), in date order.
    futures::stream::iter(days)
        .map(|d| async move {
            let mut frames = Vec::new();
            for name in FactSet::NAMES {
                let bytes = out.get(&out.child(&facts_path(d, name))).await?;
                frames.push(ParquetReader::new(std::io::Cursor::new(bytes)).finish()?);
            }
            Ok::<_, Error>(FactSet::from_frames(frames))
        })
        .buffered(8)
        .try_collect()
        .await
}

/// The arrival days to read for event dates `from..=to` (4.2), or `None` (every day).
fn arrival_window(
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

/// Lists every input, keeps telemetry, prunes arrival partitions outside `window` (4.2).
async fn list_inputs(
    inputs: &[Arc<Location>],
    window: Option<(NaiveDate, NaiveDate)>,
) -> Result<(Vec<Task>, ObjectCounts)> {
    let mut objects = ObjectCounts::default();
    let mut tasks = Vec::new();
    for loc in inputs {
        let listing = loc.list_window(window).await?;
        objects.partitions_skipped += listing.partitions_skipped;
        objects.links_skipped += listing.links_skipped;
        for meta in listing.objects {
            objects.listed += 1;
            let key = meta.location.as_ref();
            if !is_telemetry_key(key) {
                objects.not_telemetry += 1;
                continue;
            }
            if let (Some((lo, hi)), Some(day)) = (window, arrival_day(key)) {
                if day < lo || day > hi {
                    objects.skipped_by_arrival_partition += 1;
                    continue;
                }
            }
            tasks.push(Task {
                location: loc.clone(),
                meta,
            });
        }
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
    Ok((tasks, objects))
}

/// The output and state roots (one and the same unless `state` is set).
fn open_roots(cfg: &RunConfig) -> Result<Roots> {
    Ok(match &cfg.state {
        Some(s) => Roots {
            state: Location::parse(s, true)?,
            reports: Location::parse(&cfg.output, true)?,
        },
        None => Roots::one(Location::parse(&cfg.output, true)?),
    })
}

/// Stored facts of another layout or time zone are refused, not misread.
async fn check_facts_meta(state: &Location, cfg: &RunConfig) -> Result<()> {
    let Ok(bytes) = state.get(&state.child(FACTS_META)).await else {
        return Ok(());
    };
    let meta: FactsMeta = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Other(format!("bad {FACTS_META}: {e}")))?;
    if meta.layout != FACTS_LAYOUT {
        return Err(Error::usage(format!(
            "{} holds daily facts in an older layout, from an earlier version of cc-analytics; write to a new output, or remove its {FACTS_DIR}/ and backfill the dates again",
            state.url
        )));
    }
    if meta.timezone != cfg.tz.name() {
        return Err(Error::usage(format!(
            "{} holds facts computed in time zone {}; run with --timezone {} or use another output",
            state.url, meta.timezone, meta.timezone
        )));
    }
    Ok(())
}

/// One read of the input: what was listed, what it decoded into, the quarantine it wrote.
struct Pass {
    tasks: Arc<Vec<Task>>,
    objects: ObjectCounts,
    ing: crate::ingest::Ingested,
    quarantined: Vec<OutputFile>,
    /// The last arrival day read for the recomputed dates.
    arrival_through: NaiveDate,
}

/// Everything a run needs before it reads.
struct Setup<'a> {
    cfg: &'a RunConfig,
    roster: &'a Roster,
    inputs: &'a [Arc<Location>],
    ctx: DecodeContext,
    state: &'a Location,
    run_id: &'a str,
    progress: bool,
    today: NaiveDate,
}

/// Lists (unless `listed` is given) and reads the input for the run's dates and `extra` dates.
async fn read_pass(
    s: &Setup<'_>,
    extra: &[NaiveDate],
    listed: Option<(Vec<Task>, ObjectCounts)>,
) -> Result<Pass> {
    let cfg = s.cfg;
    // Healed dates widen the window back to the first of them.
    let range = cfg
        .range
        .map(|(from, to)| (extra.first().map_or(from, |e| (*e).min(from)), to));
    let window = arrival_window(range, cfg.max_arrival_delay_days);
    let (tasks, objects) = match listed {
        Some(l) => l,
        None => list_inputs(s.inputs, window).await?,
    };
    let mut tasks = Arc::new(tasks);
    // Batches in flight: enough to keep every core decoding while the next batch is fetched.
    let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let phase = Instant::now();
    let acc = facts::Accumulator::new(s.roster, cfg.range)
        .with_extra_dates(extra)
        .with_limits(cfg.limits);
    let mut writer = quarantine::Writer::new(s.state, s.run_id);
    let mut ing = ingest(
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
    // Local listings leave sizes, times and etags out; the reads brought them.
    if !ing.metas.is_empty() {
        let t = Arc::make_mut(&mut tasks);
        for (i, meta) in ing.metas.drain(..) {
            t[i].meta = meta;
        }
    }
    tracing::info!(
        "decoded {} records from {} lines in {:.2}s",
        ing.acc.kept(),
        ing.counts.lines_read,
        phase.elapsed().as_secs_f64()
    );
    Ok(Pass {
        tasks,
        objects,
        ing,
        quarantined,
        arrival_through: window.map_or(s.today, |w| w.1),
    })
}

/// Late records (4.4) of dates this run does not recompute, not yet in their facts: by date,
/// with the stored status of each.
async fn late_outside(
    s: &Setup<'_>,
    late: &BTreeMap<(i32, i32), u64>,
) -> Result<(BTreeMap<NaiveDate, u64>, BTreeMap<NaiveDate, DateStatus>)> {
    let in_range = |d: NaiveDate| s.cfg.range.is_none_or(|(a, b)| a <= d && d <= b);
    let dates: BTreeSet<NaiveDate> = late
        .keys()
        .map(|(d, _)| facts::date_of_days(*d))
        .filter(|d| !in_range(*d))
        .collect();
    let mut status = BTreeMap::new();
    for d in dates {
        status.insert(d, late::read_status(s.state, d).await?.unwrap_or_default());
    }
    let mut fresh = late::not_yet_counted(late, &status);
    fresh.retain(|d, _| status.contains_key(d));
    Ok((fresh, status))
}

/// The dates healing recomputes: late ones at most `heal_max_days` before the first date.
fn heal_dates(cfg: &RunConfig, fresh: &BTreeMap<NaiveDate, u64>) -> Vec<NaiveDate> {
    let Some((from, _)) = cfg.range.filter(|_| cfg.heal_late) else {
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

/// The end-of-run warning for late records left out of the tables, with the command that
/// recomputes their dates.
fn late_warning(
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

pub async fn run(cfg: &RunConfig, argv: Vec<String>, progress: bool) -> Result<RunOutcome> {
    let started = Utc::now();
    let clock = Instant::now();
    let run_id = new_run_id(started);

    // Everything that can be refused is checked before anything is written.
    let policy = match &cfg.policy {
        Some(p) => Policy::parse(&read_text(p, "policy").await?, p, |k| std::env::var(k).ok())?,
        None => Policy::builtin(),
    };
    let roles = policy.select_roles(cfg.roles.as_deref())?;
    let roster = match &cfg.roster {
        Some(r) => Roster::parse(&read_text(r, "roster").await?, r)?,
        None => Roster::default(),
    };
    let inputs = cfg
        .inputs
        .iter()
        .map(|u| Location::parse(u, false).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    // An input prefix that holds the output root would have the job read its own manifests and
    // quarantine as telemetry.
    for root in std::iter::once(&cfg.output).chain(&cfg.state) {
        for input in &cfg.inputs {
            if crate::source::contains(input, root) {
                return Err(Error::usage(format!(
                    "input {} holds the output root {}: the job would read its own files as telemetry; put the output (and state) outside every input prefix",
                    redact::url(input),
                    redact::url(root)
                )));
            }
        }
    }
    let listed = list_inputs(
        &inputs,
        arrival_window(cfg.range, cfg.max_arrival_delay_days),
    )
    .await?;

    // The output: locked against other runs, interrupted publishes completed first. The
    // internal state lives apart from the reports when `state` is set.
    let roots = open_roots(cfg)?;
    let state = &roots.state;
    check_facts_meta(state, cfg).await?;
    let lock = Lock::acquire(state, &run_id).await?;
    // Whatever happens below, the lock is released before the run returns.
    let result: Result<RunOutcome> = async {
        publish::recover(&roots).await?;
        let mut ctx = DecodeContext::new(
            cfg.tz,
            max_time_for(started.timestamp_nanos_opt().unwrap_or(i64::MAX)),
        );
        ctx.limits = cfg.limits;
        ctx.late_after_days = cfg.max_arrival_delay_days as i32;
        let setup = Setup {
            cfg,
            roster: &roster,
            inputs: &inputs,
            ctx,
            state,
            run_id: &run_id,
            progress,
            today: started.date_naive(),
        };
        let mut pass = read_pass(&setup, &[], Some(listed)).await?;
        let (mut fresh, mut status) = late_outside(&setup, &pass.ing.late).await?;
        let healed = if pass.ing.stopped_early.is_none() {
            heal_dates(cfg, &fresh)
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
            quarantine::remove_run(state, &run_id).await?;
            pass = read_pass(&setup, &healed, None).await?;
            (fresh, status) = late_outside(&setup, &pass.ing.late).await?;
            fresh.retain(|d, _| !healed.contains(d));
        }
        let warning = late_warning(cfg, &argv, &fresh);
        publish_run(
            &setup,
            &roots,
            &policy,
            &roles,
            pass,
            started,
            &argv,
            &healed,
            (fresh, status),
            warning,
        )
        .await
    }
    .await;
    let released = lock.release().await;
    let outcome = result?;
    released?;
    tracing::info!("run {run_id} done in {:.1}s", clock.elapsed().as_secs_f64());
    Ok(outcome)
}

/// From a pass over the input to published outputs: facts, checks (bad input, shrinking),
/// stored facts, tables per role, dashboard, manifest.
#[allow(clippy::too_many_arguments)]
async fn publish_run(
    s: &Setup<'_>,
    roots: &Roots,
    policy: &Policy,
    roles: &[String],
    pass: Pass,
    started: chrono::DateTime<Utc>,
    argv: &[String],
    healed: &[NaiveDate],
    (fresh, mut status): (BTreeMap<NaiveDate, u64>, BTreeMap<NaiveDate, DateStatus>),
    warning: Option<String>,
) -> Result<RunOutcome> {
    let (cfg, state, run_id) = (s.cfg, s.state, s.run_id);
    let Pass {
        tasks,
        objects,
        ing,
        quarantined,
        arrival_through,
    } = pass;
    let phase = Instant::now();
    let mut counts = ing.counts.clone();
    let facts = ing.acc.finish()?;
    counts.records_used = facts.records_used;
    counts.records_outside_range = facts.records_outside_range;
    if facts.records_implausible > 0 {
        counts.records_rejected += facts.records_implausible;
        *counts
            .rejected_by_reason
            .entry(crate::otlp::Reason::ImplausibleValue.to_string())
            .or_default() += facts.records_implausible;
    }
    tracing::info!(
        "built {} fact rows in {:.2}s",
        facts.set.sessions.height(),
        phase.elapsed().as_secs_f64()
    );
    let dates: Vec<NaiveDate> = facts.set.dates()?;
    let late_dates = counts
        .late_by_date
        .iter()
        .map(|(d, &n)| {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
            let st = day.and_then(|d| status.get(&d));
            (
                d.clone(),
                crate::manifest::LateDate {
                    records_late: n,
                    not_in_tables: day.and_then(|d| fresh.get(&d)).copied().unwrap_or(0),
                    recomputed: day.is_some_and(|d| dates.contains(&d)),
                    healed: day.is_some_and(|d| healed.contains(&d)),
                    last_recomputed_at: st.and_then(|s| s.recomputed_at.clone()),
                },
            )
        })
        .collect();

    let mut manifest = Manifest {
        run_id: run_id.to_string(),
        status: "ok".into(),
        started_at: started.to_rfc3339(),
        finished_at: String::new(),
        command_line: redact::command_line(argv),
        timezone: cfg.tz.name().to_string(),
        inputs: cfg.inputs.iter().map(|u| redact::url(u)).collect(),
        output: redact::url(&cfg.output),
        state: cfg.state.as_deref().map(redact::url),
        dates_recomputed: dates.iter().map(|d| d.to_string()).collect(),
        dates_healed: healed.iter().map(|d| d.to_string()).collect(),
        late_dates,
        roles: roles.to_vec(),
        objects,
        counts,
        input_objects: InputObjects(tasks.clone()),
        outputs: quarantined,
        error: None,
    };
    let fail = |mut manifest: Manifest, err: Error| async move {
        manifest.status = "failed".into();
        manifest.error = Some(redact::text(&err.to_string()));
        write_manifest(state, &mut manifest).await?;
        Err::<RunOutcome, Error>(err)
    };

    let ratio = manifest.counts.bad_ratio();
    if let Some(why) = &ing.stopped_early {
        let msg = format!("{why}; see _quarantine/{run_id}/");
        return fail(manifest, Error::TooMuchBadInput(msg)).await;
    }
    if ratio > cfg.max_bad_ratio {
        let msg = format!(
            "{:.4} of the lines are bad ({} quarantined, {} with rejected records, of {}), above --max-bad-ratio {}; see _quarantine/{run_id}/",
            ratio,
            manifest.counts.lines_quarantined,
            manifest.counts.lines_with_rejected_records,
            manifest.counts.lines_read,
            cfg.max_bad_ratio
        );
        return fail(manifest, Error::TooMuchBadInput(msg)).await;
    }
    if manifest.counts.records_used == 0 {
        tracing::warn!(
            "the input holds no Claude Code telemetry for the requested dates: nothing written"
        );
        write_manifest(state, &mut manifest).await?;
        return Ok(RunOutcome {
            manifest,
            wrote: false,
            late_warning: warning,
        });
    }

    // The shrink guard (4.4): a date whose new facts use fewer than half the stored records.
    let new_records = late::records_by_date(&facts.set.sessions)?;
    let mut stored_records = BTreeMap::new();
    for d in &dates {
        if let Some(n) = late::stored_records(state, *d).await? {
            stored_records.insert(*d, n);
        }
    }
    let shrunk = late::shrunk(&stored_records, &new_records);
    if !shrunk.is_empty() && !cfg.allow_shrink {
        let msg = format!(
            "the input holds fewer than half the records the stored facts of {} dates use ({}): raw objects may have expired; nothing published; rerun with --allow-shrink to replace them anyway",
            shrunk.len(),
            shrunk.join("; ")
        );
        return fail(manifest, Error::Other(msg)).await;
    }

    // Stage the recomputed dates' facts and statuses, then rebuild every table from all
    // stored facts.
    let mut publisher = Publisher::new(roots, run_id);
    let recomputed: BTreeSet<NaiveDate> = dates.iter().copied().collect();
    let mut by_date = facts.set.by_date()?;
    let empty = facts.set.empty();
    for d in &dates {
        let day = by_date.remove(d).unwrap_or_else(|| empty.clone());
        for (name, df) in day.named() {
            publisher
                .stage(
                    &facts_path(*d, name),
                    parquet_bytes(&mut df.clone(), &format!("facts_{name}"))?,
                )
                .await?;
        }
        status.insert(
            *d,
            DateStatus {
                recomputed_by: Some(run_id.to_string()),
                recomputed_at: Some(manifest.started_at.clone()),
                arrival_through: Some(arrival_through),
                records_used: new_records.get(d).copied().unwrap_or(0),
                late_since: 0,
                late_seen_by: None,
            },
        );
    }
    for (d, n) in &fresh {
        let st = status.entry(*d).or_default();
        st.late_since = *n;
        st.late_seen_by = Some(run_id.to_string());
    }
    for (d, st) in &status {
        if recomputed.contains(d) || fresh.contains_key(d) {
            let body = serde_json::to_vec_pretty(st).expect("status serialises");
            publisher.stage(&late::status_path(*d), body).await?;
        }
    }
    let meta = serde_json::to_vec(&FactsMeta {
        timezone: cfg.tz.name().to_string(),
        layout: FACTS_LAYOUT,
    })
    .expect("meta serialises");
    publisher.stage(FACTS_META, meta).await?;
    let phase = Instant::now();
    let mut sets = stored_facts(state, &recomputed).await?;
    tracing::info!(
        "read {} stored fact rows of {} dates in {:.2}s",
        sets.iter().map(|f| f.sessions.height()).sum::<usize>(),
        sets.len(),
        phase.elapsed().as_secs_f64()
    );
    sets.push(facts.set.clone());
    let all_facts = FactSet::concat(sets)?;
    tracing::debug!("concatenated in {:.2}s", phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    let tables = reports::build(&all_facts, s.roster)?;
    // The facts are summed into the tables: their memory goes before the encoding's.
    drop((all_facts, facts));
    tracing::info!("built the tables in {:.2}s", phase.elapsed().as_secs_f64());
    let built_at = Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let phase = Instant::now();
    // Each table is encoded once per form (as is, or pseudonymised) and the same bytes are
    // staged for every role that sees that form: roles share most tables.
    let access: Vec<_> = roles
        .iter()
        .map(|r| policy.access(r).expect("selected roles may see something"))
        .collect();
    let mut visible: Vec<Vec<(&'static str, DataFrame)>> = vec![Vec::new(); roles.len()];
    for (name, df) in &tables {
        let forms: Vec<Option<Form>> = access
            .iter()
            .map(|a| a.tables.contains(name).then(|| Form::of(a, df)))
            .collect();
        let mut done: Vec<&Form> = Vec::new();
        for form in forms.iter().flatten() {
            if done.contains(&form) {
                continue;
            }
            done.push(form);
            let who: Vec<usize> = (0..roles.len())
                .filter(|&i| forms[i].as_ref() == Some(form))
                .collect();
            let mut df = form.apply(df, policy)?;
            let rows = df.height() as u64;
            let encoded = [
                ("parquet", parquet_bytes(&mut df, name)?),
                ("csv", csv_bytes(&mut df)?),
            ];
            for &i in &who {
                for (ext, bytes) in &encoded {
                    let rel = format!("reports/{}/{name}.{ext}", roles[i]);
                    manifest.outputs.push(OutputFile {
                        path: rel.clone(),
                        rows,
                        bytes: bytes.len() as u64,
                    });
                    publisher.stage(&rel, bytes.clone()).await?;
                }
                visible[i].push((name, df.clone()));
            }
        }
    }
    if cfg.dashboard {
        for (role, visible) in roles.iter().zip(&visible) {
            // Built from this role's own (filtered, pseudonymised) tables only.
            let html = dashboard::render(role, visible, cfg.tz.name(), &built_at)?;
            let rel = format!("reports/{role}/dashboard.html");
            manifest.outputs.push(OutputFile {
                path: rel.clone(),
                rows: 0,
                bytes: html.len() as u64,
            });
            publisher.stage(&rel, html.into_bytes()).await?;
        }
    }
    drop(visible);
    manifest.outputs.sort_by(|a, b| a.path.cmp(&b.path));
    tracing::info!("wrote the tables in {:.2}s", phase.elapsed().as_secs_f64());
    // The tables are written: their memory goes before the manifest's is needed.
    drop(tables);
    publisher.commit().await?;
    write_manifest(state, &mut manifest).await?;
    let expired = quarantine::expire(state, cfg.quarantine_retention_days, Utc::now()).await?;
    if expired > 0 {
        tracing::info!(
            "removed the quarantine of {expired} runs older than {} days",
            cfg.quarantine_retention_days
        );
    }
    if let Some(w) = &warning {
        tracing::warn!("{w}");
    }
    Ok(RunOutcome {
        manifest,
        wrote: true,
        late_warning: warning,
    })
}

async fn write_manifest(output: &Location, m: &mut Manifest) -> Result<()> {
    m.finished_at = Utc::now().to_rfc3339();
    let json = serde_json::to_vec_pretty(m).map_err(|e| Error::Other(e.to_string()))?;
    output
        .put(&output.child(&format!("_runs/{}.json", m.run_id)), json)
        .await
}
