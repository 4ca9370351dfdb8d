//! One run of the job: check everything that can be refused, then work through the range
//! window by window ([`window`]: list → read and decode → facts → checks → commit; a shard's
//! block in [`shard`], a backfill's progress in [`progress`]), then rebuild every table from the
//! stored facts ([`crate::facts::store`], [`crate::reports`]) and publish them per role
//! ([`crate::publish::folders`]), with the run's manifest.

mod progress;
mod rebuild;
mod shard;
mod state;
mod window;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};

use crate::config::roster::Roster;
use crate::config::RunConfig;
use crate::decode::otlp::{max_time_for, DecodeContext};
use crate::error::{Error, Result};
use crate::facts::store;
use crate::manifest::{Counts, Manifest, ObjectCounts};
use crate::policy::redact;
use crate::policy::Policy;
use crate::publish::folders as tables;
use crate::publish::lease::Lease;
use crate::publish::{self, Carry, CarryPlan, Cleanup, Roots};
use crate::source::Location;
use state::RunState;

/// Reads a small whole object (roster, policy) named by a URL or local path.
async fn read_text(url: &str, what: &str) -> Result<String> {
    let url = &redact::url(url);
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
    // The time, then a random part: pods repeat host names and pids, and two attempts of one
    // shard may start in the same millisecond.
    let random =
        ahash::RandomState::new().hash_one((std::process::id(), now.timestamp_nanos_opt()));
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%S%3fZ"), random as u32)
}

/// The policy, the roles to write (refused when one may see nothing) and the roster.
async fn who_sees_what(cfg: &RunConfig) -> Result<(Policy, Vec<String>, Roster)> {
    let policy = match &cfg.policy {
        Some(p) => Policy::parse(&read_text(p, "policy").await?, p, |k| std::env::var(k).ok())?,
        None => Policy::builtin(),
    };
    let roles = policy.select_roles(cfg.roles.as_deref())?;
    let roster = match &cfg.roster {
        Some(r) => Roster::parse(&read_text(r, "roster").await?, r)?,
        None => Roster::default(),
    };
    for (dim, column) in cfg.dimensions.roster_columns() {
        match &cfg.roster {
            Some(r) if roster.column(column).is_none() => {
                return Err(Error::usage(format!(
                    "dimension {dim:?} names the roster column {column:?}, which the roster {} lacks (its columns after aliases: {})",
                    redact::url(r),
                    if roster.columns.is_empty() { "none".to_string() } else { roster.columns.join(", ") }
                )));
            }
            None => tracing::warn!(
                "dimension {dim:?} names the roster column {column:?}, but no roster is given: its values come from telemetry only"
            ),
            _ => {}
        }
    }
    Ok((policy, roles, roster))
}

/// The outcome of a run, for the exit status and the summary.
pub struct RunOutcome {
    pub manifest: Manifest,
    /// False when the input held no telemetry for the dates and nothing was written.
    pub wrote: bool,
    /// Late records left out of the tables, and the command that recomputes their dates.
    pub late_warning: Option<String>,
}

/// A run's manifest as it starts: what it was asked to do, no counts yet.
fn new_manifest(
    run_id: &str,
    cfg: &RunConfig,
    started: chrono::DateTime<Utc>,
    argv: &[String],
    roles: &[String],
    input_objects_file: String,
) -> Manifest {
    Manifest {
        run_id: run_id.to_string(),
        status: "ok".into(),
        started_at: started.to_rfc3339(),
        finished_at: String::new(),
        command_line: redact::command_line(argv),
        timezone: cfg.tz.name().to_string(),
        inputs: cfg.inputs.iter().map(|u| redact::url(u)).collect(),
        output: redact::url(&cfg.output),
        state: cfg.state.as_deref().map(redact::url),
        dates_recomputed: Vec::new(),
        dates_healed: Vec::new(),
        windows_skipped: Vec::new(),
        table_months: Default::default(),
        late_dates: BTreeMap::new(),
        roles: roles.to_vec(),
        objects: ObjectCounts::default(),
        counts: Counts::default(),
        input_objects_file,
        outputs: Vec::new(),
        error: None,
    }
}

impl RunOutcome {
    /// The outcome of a shard with an empty block: nothing read, nothing written.
    fn nothing(run_id: &str, cfg: &RunConfig) -> RunOutcome {
        RunOutcome {
            manifest: new_manifest(run_id, cfg, Utc::now(), &[], &[], String::new()),
            wrote: false,
            late_warning: None,
        }
    }
}

/// Everything a window needs: the run's configuration and what was set up before reading.
pub(crate) struct Setup<'a> {
    cfg: &'a RunConfig,
    roster: &'a Roster,
    inputs: &'a [Arc<Location>],
    ctx: DecodeContext,
    roots: &'a Roots,
    state: &'a Location,
    run_id: &'a str,
    progress: bool,
    started: chrono::DateTime<Utc>,
    today: NaiveDate,
    /// The lease of a run that publishes (none for a shard), checked before publishing.
    lease: Option<&'a Lease>,
}

/// Starts copying the stored months before `first_date` (`None`: every month) into the run's new
/// files of the per-member tables, while the run works (`publish::Carry`).
fn start_carry(
    s: &Setup<'_>,
    policy: &Policy,
    roles: &[String],
    first_date: Option<NaiveDate>,
) -> Carry {
    Carry::start(CarryPlan {
        state: s.state,
        run_id: s.run_id,
        policy,
        roles,
        roster: s.roster,
        dims: &s.cfg.dimensions,
        first_date,
    })
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

/// An input prefix that holds the output root would have the job read its own manifests and
/// quarantine as telemetry.
fn refuse_output_inside_input(cfg: &RunConfig) -> Result<()> {
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
    Ok(())
}

pub async fn run(cfg: &RunConfig, argv: Vec<String>, progress: bool) -> Result<RunOutcome> {
    let started = Utc::now();
    let clock = Instant::now();
    let run_id = new_run_id(started);
    // A shard works on its block of the backfill's dates and publishes no reports.
    let block_cfg;
    let (cfg, plan) = match cfg.shard {
        None => (cfg, None),
        Some(sh) => {
            block_cfg = shard_block(cfg, sh);
            if block_cfg.range.is_none() {
                return Ok(RunOutcome::nothing(&run_id, cfg));
            }
            (&block_cfg, Some((shard::Plan::of(cfg, sh), sh)))
        }
    };

    // Everything that can be refused is checked before anything is written.
    let (policy, roles, roster) = who_sees_what(cfg).await?;
    let inputs = cfg
        .inputs
        .iter()
        .map(|u| Location::parse(u, false).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    refuse_output_inside_input(cfg)?;
    let windows = window::plan(cfg.range, cfg.window_days);
    // The first window is listed before anything is written: a missing bucket or refused
    // credentials are usage errors that leave no trace.
    let first_listing = window::list_inputs(
        &inputs,
        window::arrival_window(windows[0], cfg.max_arrival_delay_days),
    )
    .await?;

    // The output: locked against other runs, interrupted publishes completed first. The
    // internal state lives apart from the reports when `state` is set.
    let roots = open_roots(cfg)?;
    let state = &roots.state;
    store::check_meta(state, cfg).await?;
    let (lock, cleanup) = hold_output(
        &roots,
        (&run_id, cfg.reuse_replaced_files),
        plan.as_ref().map(|(p, _)| p),
    )
    .await?;
    // Whatever happens below, the lease is released before the run returns.
    let result: Result<RunOutcome> = async {
        let mut ctx = DecodeContext::new(
            cfg.tz,
            max_time_for(started.timestamp_nanos_opt().unwrap_or(i64::MAX)),
        );
        ctx.limits = cfg.limits;
        ctx.late_after_days = cfg.max_arrival_delay_days as i32;
        ctx.tags = cfg.dimensions.keys;
        let setup = Setup {
            cfg,
            roster: &roster,
            inputs: &inputs,
            ctx,
            roots: &roots,
            state,
            run_id: &run_id,
            progress,
            started,
            today: started.date_naive(),
            lease: lock.as_ref(),
        };
        let mut run = RunState::new(&setup, &argv, &roles);
        // The months before the run's dates are copied into the new table files meanwhile.
        let carry = match (&plan, cfg.range) {
            (None, Some((from, _))) => start_carry(&setup, &policy, &roles, Some(from)),
            _ => Carry::none(),
        };
        run.windows(&windows, first_listing).await?;
        match &plan {
            None => run.publish(&policy, &roles, false, carry).await,
            Some((plan, sh)) => run.finish_shard(plan, *sh).await,
        }
    }
    .await;
    publish::discard_unused(&roots, &run_id);
    cleanup.finish().await;
    let released = match lock {
        Some(l) => l.release().await,
        None => Ok(()),
    };
    let outcome = result?;
    released?;
    tracing::info!("run {run_id} done in {:.1}s", clock.elapsed().as_secs_f64());
    Ok(outcome)
}

/// The configuration of shard `sh`: the run's, with its block of the dates (none: an empty
/// block).
fn shard_block(cfg: &RunConfig, sh: crate::config::Shard) -> RunConfig {
    let (from, to) = cfg.range.expect("shard mode has a range");
    let block = sh.block((from, to));
    tracing::info!(
        "shard {} of {} of the backfill {from} … {to}: {}",
        sh.index,
        sh.count,
        match block {
            Some((a, b)) => format!("dates {a} … {b}"),
            None => "no dates (an empty block): nothing to do".into(),
        }
    );
    RunConfig {
        range: block,
        ..cfg.clone()
    }
}

/// Takes the output for a run: the lease for one that publishes reports; for a shard (`plan`),
/// which runs beside the other shards of its backfill and only commits dates (safe between
/// writers), the conditional-write probe and the plan. A publish stopped half-way is rolled
/// back by the next run of any kind: a shard takes the lease just for that, and lets it go.
async fn hold_output(
    roots: &Roots,
    (run_id, reuse): (&str, bool),
    plan: Option<&shard::Plan>,
) -> Result<(Option<Lease>, Cleanup)> {
    let state = &roots.state;
    let Some(plan) = plan else {
        let lease = Lease::acquire(state, run_id).await?;
        let reuse_for = reuse.then_some(run_id);
        return match publish::recover(roots, reuse_for).await {
            Ok(cleanup) => Ok((Some(lease), cleanup)),
            Err(e) => {
                lease.release().await?;
                Err(e)
            }
        };
    };
    crate::publish::lease::probe(state, run_id).await?;
    shard::join(state, plan).await?;
    if publish::interrupted(roots).await? {
        let lease = Lease::acquire(state, run_id).await?;
        // A shard waits for the removal: it lets the lease go at once.
        let recovered = match publish::recover(roots, None).await {
            Ok(cleanup) => {
                cleanup.finish().await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        lease.release().await?;
        recovered?;
    }
    Ok((None, Cleanup::none()))
}

/// `reports`: every role's tables and dashboards rebuilt from the stored facts, with the
/// roster, policy and roles given, under the lease; no telemetry is read.
pub async fn reports(cfg: &RunConfig, argv: Vec<String>) -> Result<RunOutcome> {
    let started = Utc::now();
    let run_id = new_run_id(started);
    let (policy, roles, roster) = who_sees_what(cfg).await?;
    let roots = open_roots(cfg)?;
    let state = &roots.state;
    if store::stored_dates(state).await?.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no stored facts: run `cc-analytics run` first",
            redact::url(&state.url)
        )));
    }
    store::check_meta(state, cfg).await?;
    shard::check_complete(state).await?;
    let (lock, cleanup) = hold_output(&roots, (&run_id, cfg.reuse_replaced_files), None).await?;
    let lock = lock.expect("a run without a plan holds the lease");
    let result: Result<RunOutcome> = async {
        let setup = Setup {
            cfg,
            roster: &roster,
            inputs: &[],
            ctx: DecodeContext::new(cfg.tz, i64::MAX),
            roots: &roots,
            state,
            run_id: &run_id,
            progress: false,
            started,
            today: started.date_naive(),
            lease: Some(&lock),
        };
        let carry = start_carry(&setup, &policy, &roles, None);
        RunState::new(&setup, &argv, &roles)
            .publish(&policy, &roles, true, carry)
            .await
    }
    .await;
    publish::discard_unused(&roots, &run_id);
    cleanup.finish().await;
    let released = lock.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}
