//! A run in progress: its windows worked through in order (those an earlier attempt of the
//! same backfill committed skipped), what they leave to tell (manifest counts, the objects
//! file, late dates not healed, backfill progress), a shard's end, and publishing with the
//! manifest written last.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{NaiveDate, Utc};

use super::{new_manifest, progress, rebuild, shard, tables, window, RunOutcome, Setup};
use crate::decode::quarantine;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ObjectsFile};
use crate::policy::{redact, Policy};
use crate::publish::{Carry, Publisher};
use crate::source::Location;

/// A run in progress: its manifest, the objects file, what its windows left to tell.
pub(super) struct RunState<'a> {
    s: &'a Setup<'a>,
    argv: &'a [String],
    manifest: Manifest,
    objects_file: Option<ObjectsFile>,
    unhealed: BTreeMap<NaiveDate, u64>,
    backfill: Option<progress::Progress>,
    /// Windows an earlier run of the same backfill committed, skipped here.
    skipped: usize,
    /// Dates of those windows: their export (5.6) is written by this run, which publishes.
    skipped_dates: Vec<NaiveDate>,
}

impl<'a> RunState<'a> {
    pub(super) fn new(s: &'a Setup<'a>, argv: &'a [String], roles: &[String]) -> RunState<'a> {
        let cfg = s.cfg;
        let objects_file = ObjectsFile::new(s.state, s.run_id);
        RunState {
            s,
            argv,
            manifest: new_manifest(
                s.run_id,
                cfg,
                s.started,
                argv,
                roles,
                objects_file.path.clone(),
            ),
            objects_file: Some(objects_file),
            unhealed: BTreeMap::new(),
            backfill: None,
            skipped: 0,
            skipped_dates: Vec::new(),
        }
    }

    /// Works through the windows, committing each one's facts.
    pub(super) async fn windows(
        &mut self,
        windows: &[Option<(NaiveDate, NaiveDate)>],
        first_listing: window::Listed,
    ) -> Result<()> {
        let s = self.s;
        if windows.len() > 1 {
            self.backfill = Some(progress::Progress::load(s.state, s.cfg).await?);
        }
        let mut listing = Some(first_listing);
        for (k, w) in windows.iter().enumerate() {
            let listed = listing.take();
            if let (Some(b), Some(w)) = (&self.backfill, w) {
                if let Some(c) = b.done(*w) {
                    tracing::info!(
                        "window {} … {} was committed by run {} of this backfill: skipped",
                        w.0,
                        w.1,
                        c.run_id
                    );
                    self.manifest
                        .windows_skipped
                        .push(format!("{} … {}", w.0, w.1));
                    self.skipped += 1;
                    self.skipped_dates
                        .extend(w.0.iter_days().take_while(|d| *d <= w.1));
                    continue;
                }
            }
            if windows.len() > 1 {
                let (a, b) = w.expect("windows of a range");
                tracing::info!("window {} of {}: {a} … {b}", k + 1, windows.len());
            }
            match window::run(s, k, *w, listed).await? {
                Ok(done) => {
                    self.absorb(done).await?;
                    tracing::debug!(
                        "peak RSS after window {}: {}",
                        k + 1,
                        crate::memory::peak_rss()
                    );
                    if let (Some(b), Some(w)) = (&mut self.backfill, w) {
                        b.record(*w, s.run_id).await?;
                    }
                    if abort_after() == Some(k + 1) {
                        std::process::abort();
                    }
                }
                Err(window::Failed { done, error }) => {
                    self.absorb(done).await?;
                    self.manifest.status = "failed".into();
                    self.manifest.error = Some(redact::text(&error.to_string()));
                    self.write_manifest().await?;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Adds a window's counts, dates and objects to the run's.
    pub(super) async fn absorb(&mut self, done: window::Done) -> Result<()> {
        let m = &mut self.manifest;
        m.counts.add(&done.counts);
        m.objects.add(&done.objects);
        m.dates_recomputed
            .extend(done.dates.iter().map(|d| d.to_string()));
        m.dates_healed
            .extend(done.healed.iter().map(|d| d.to_string()));
        m.late_dates.extend(done.late_dates);
        m.outputs.extend(done.quarantined);
        for (d, n) in done.unhealed {
            self.unhealed.insert(d, n);
        }
        // A date a later window recomputed is no longer short.
        for d in &done.dates {
            self.unhealed.remove(d);
        }
        if let Some(f) = &mut self.objects_file {
            f.add(done.entries).await?;
        }
        Ok(())
    }

    /// A shard's end: its manifest and its done record; the reports are the reduce's.
    pub(super) async fn finish_shard(
        mut self,
        plan: &shard::Plan,
        sh: crate::config::Shard,
    ) -> Result<RunOutcome> {
        let s = self.s;
        let warning = window::late_warning(s.cfg, self.argv, &self.unhealed);
        self.write_manifest().await?;
        shard::done(s.state, plan, sh, s.cfg.range, s.run_id).await?;
        if let Some(b) = self.backfill.take() {
            b.remove().await?;
        }
        Ok(RunOutcome {
            manifest: self.manifest,
            wrote: false,
            late_warning: warning,
        })
    }

    pub(super) async fn write_manifest(&mut self) -> Result<()> {
        if let Some(f) = self.objects_file.take() {
            f.finish().await?;
        }
        write_manifest(self.s.state, &mut self.manifest).await
    }

    /// Rebuilds every table from the stored facts and publishes them per role, with the
    /// manifest.
    pub(super) async fn publish(
        mut self,
        policy: &Policy,
        roles: &[String],
        always: bool,
        carry: Carry,
    ) -> Result<RunOutcome> {
        let s = self.s;
        let (cfg, state) = (s.cfg, s.state);
        let warning = window::late_warning(cfg, self.argv, &self.unhealed);
        if !always && self.manifest.counts.records_used == 0 && self.skipped == 0 {
            tracing::warn!(
                "the input holds no Claude Code telemetry for the requested dates: nothing written"
            );
            carry.discard().await;
            self.write_manifest().await?;
            return Ok(RunOutcome {
                manifest: self.manifest,
                wrote: false,
                late_warning: warning,
            });
        }
        // Building the tables hands freed memory back at once (the decoding's, then each kind
        // of fact's); writing them keeps it a while again.
        crate::memory::release();
        let (tables, stored, (rebuilt, reused)) =
            rebuild::build_tables(state, s.roster, cfg.roster.is_some(), &cfg.dimensions).await?;
        crate::memory::keep_freed();
        tracing::debug!(
            "peak RSS after building the tables: {}",
            crate::memory::peak_rss()
        );
        // The export covers the dates this run recomputed (or skipped as committed by an
        // earlier attempt of its backfill); `reports`, a rebuild, covers every stored date.
        let export_dates: Vec<NaiveDate> = if always {
            stored
        } else {
            self.manifest
                .dates_recomputed
                .iter()
                .chain(&self.manifest.dates_healed)
                .filter_map(|d| d.parse().ok())
                .chain(self.skipped_dates.iter().copied())
                .collect()
        };
        self.manifest.table_months = crate::manifest::TableMonths { rebuilt, reused };
        let phase = Instant::now();
        let mut publisher = Publisher::new(s.roots, s.run_id);
        tables::stage(
            cfg,
            policy,
            roles,
            &tables,
            &export_dates,
            state,
            carry,
            &mut publisher,
            &mut self.manifest,
        )
        .await?;
        self.manifest.outputs.sort_by(|a, b| a.path.cmp(&b.path));
        tracing::info!("wrote the tables in {:.2}s", phase.elapsed().as_secs_f64());
        tracing::debug!("peak RSS after the tables: {}", crate::memory::peak_rss());
        // The tables are written: their memory goes before the manifest's is needed.
        drop(tables);
        if let Some(l) = s.lease {
            l.check().await?;
        }
        publisher.commit().await?;
        let phase = Instant::now();
        self.write_manifest().await?;
        tracing::debug!(
            "wrote the manifest in {:.2}s",
            phase.elapsed().as_secs_f64()
        );
        if let Some(b) = self.backfill.take() {
            b.remove().await?;
        }
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
            manifest: self.manifest,
            wrote: true,
            late_warning: warning,
        })
    }
}

async fn write_manifest(output: &Location, m: &mut Manifest) -> Result<()> {
    m.finished_at = Utc::now().to_rfc3339();
    let json = serde_json::to_vec_pretty(m).map_err(|e| Error::Other(e.to_string()))?;
    output
        .put(&output.child(&format!("_runs/{}.json", m.run_id)), json)
        .await
}

/// Test hook: `CC_ANALYTICS_ABORT_AFTER_WINDOWS=N` aborts the process (as kill -9 would) once N
/// windows are committed, to prove that a backfill stopped between windows resumes.
fn abort_after() -> Option<usize> {
    std::env::var("CC_ANALYTICS_ABORT_AFTER_WINDOWS")
        .ok()
        .and_then(|v| v.parse().ok())
}
