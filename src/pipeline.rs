//! One run of the job: list → read and decode → facts → reports → publish per role.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use polars::prelude::*;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::facts::FactSet;
use crate::ingest::{ingest, Task};
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
    let days: BTreeSet<NaiveDate> = metas
        .iter()
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

    // List, keep telemetry, prune arrival partitions that cannot hold the dates (4.2).
    let arrival_window = cfg.range.map(|(from, to)| {
        (
            from.checked_sub_days(Days::new(1)).unwrap_or(from),
            to.checked_add_days(Days::new(cfg.max_arrival_delay_days as u64))
                .unwrap_or(to),
        )
    });
    let mut objects = ObjectCounts::default();
    let mut tasks = Vec::new();
    for loc in &inputs {
        let (metas, skipped) = loc.list_window(arrival_window).await?;
        objects.partitions_skipped += skipped;
        for meta in metas {
            objects.listed += 1;
            let key = meta.location.as_ref();
            if !is_telemetry_key(key) {
                objects.not_telemetry += 1;
                continue;
            }
            if let (Some((lo, hi)), Some(day)) = (arrival_window, arrival_day(key)) {
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

    // The output: locked against other runs, interrupted publishes completed first. The
    // internal state lives apart from the reports when `state` is set.
    let roots = match &cfg.state {
        Some(s) => Roots {
            state: Location::parse(s, true)?,
            reports: Location::parse(&cfg.output, true)?,
        },
        None => Roots::one(Location::parse(&cfg.output, true)?),
    };
    let state = &roots.state;
    let meta_path = state.child(FACTS_META);
    if let Ok(bytes) = state.get(&meta_path).await {
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
                state.url,
                meta.timezone,
                meta.timezone
            )));
        }
    }
    let lock = Lock::acquire(state, &run_id).await?;
    // Whatever happens below, the lock is released before the run returns.
    let result: Result<RunOutcome> = async {
        publish::recover(&roots).await?;

        let mut tasks = Arc::new(tasks);


        let ctx = DecodeContext {
            tz: cfg.tz,
            max_time_ns: max_time_for(started.timestamp_nanos_opt().unwrap_or(i64::MAX)),
        };
        // Batches in flight: enough to keep every core decoding while the next batch is fetched.
        let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
        let phase = Instant::now();
        let acc = facts::Accumulator::new(&roster, cfg.range);
        let mut ing = ingest(tasks.clone(), ctx, concurrency, progress, acc).await?;
        // Local listings leave sizes, times and etags out; the reads brought them.
        if !ing.metas.is_empty() {
            let t = Arc::make_mut(&mut tasks);
            for (i, meta) in ing.metas.drain(..) {
                t[i].meta = meta;
            }
        }
        let ing_records = ing.acc.kept();
        tracing::info!(
            "decoded {ing_records} records from {} lines in {:.2}s",
            ing.counts.lines_read,
            phase.elapsed().as_secs_f64()
        );
        let phase = Instant::now();
        let mut counts = ing.counts.clone();

        let facts = ing.acc.finish()?;
        counts.records_used = facts.records_used;
        counts.records_outside_range = facts.records_outside_range;
        tracing::info!(
            "built {} fact rows in {:.2}s",
            facts.set.sessions.height(),
            phase.elapsed().as_secs_f64()
        );

        let dates: Vec<NaiveDate> = facts.set.dates()?;

        let mut manifest = Manifest {
            run_id: run_id.clone(),
            status: "ok".into(),
            started_at: started.to_rfc3339(),
            finished_at: String::new(),
            command_line: redact::command_line(&argv),
            timezone: cfg.tz.name().to_string(),
            inputs: cfg.inputs.iter().map(|u| redact::url(u)).collect(),
            output: redact::url(&cfg.output),
            state: cfg.state.as_deref().map(redact::url),
            dates_recomputed: dates.iter().map(|d| d.to_string()).collect(),
            roles: roles.clone(),
            objects,
            counts,
            input_objects: InputObjects(tasks.clone()),
            outputs: Vec::new(),
            error: None,
        };

        quarantine::write(state, &run_id, &ing.bad_lines, &mut manifest).await?;
        let ratio = manifest.counts.bad_ratio();
        if ratio > cfg.max_bad_ratio {
            let msg = format!(
                "{:.4} of the lines are bad ({} quarantined, {} with rejected records, of {}), above --max-bad-ratio {}; see _quarantine/{run_id}/",
                ratio,
                manifest.counts.lines_quarantined,
                manifest.counts.lines_with_rejected_records,
                manifest.counts.lines_read,
                cfg.max_bad_ratio
            );
            manifest.status = "failed".into();
            manifest.error = Some(redact::text(&msg));
            write_manifest(state, &mut manifest).await?;
            return Err(Error::TooMuchBadInput(msg));
        }
        if manifest.counts.records_used == 0 {
            tracing::warn!(
                "the input holds no Claude Code telemetry for the requested dates: nothing written"
            );
            return Ok(RunOutcome {
                manifest,
                wrote: false,
            });
        }

        // Stage the recomputed dates' facts, then rebuild every table from all stored facts.
        let mut publisher = Publisher::new(&roots, &run_id);
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
        let tables = reports::build(&all_facts, &roster)?;
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
                let mut df = form.apply(df, &policy)?;
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
        let expired =
            quarantine::expire(state, cfg.quarantine_retention_days, Utc::now()).await?;
        if expired > 0 {
            tracing::info!(
                "removed the quarantine of {expired} runs older than {} days",
                cfg.quarantine_retention_days
            );
        }
        tracing::info!("run {run_id} done in {:.1}s", clock.elapsed().as_secs_f64());
        Ok(RunOutcome {
            manifest,
            wrote: true,
        })
    }
    .await;
    let released = lock.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

async fn write_manifest(output: &Location, m: &mut Manifest) -> Result<()> {
    m.finished_at = Utc::now().to_rfc3339();
    let json = serde_json::to_vec_pretty(m).map_err(|e| Error::Other(e.to_string()))?;
    output
        .put(&output.child(&format!("_runs/{}.json", m.run_id)), json)
        .await
}
