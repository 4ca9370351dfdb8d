//! A backfill's progress under the state root (`_backfills/<from>_<to>_<plan>.json`): the
//! windows it has committed. A backfill stopped half-way (killed, or failed on bad input) and
//! started again with the same command skips those windows; the record goes once the backfill
//! has published its tables, so that running the command again later recomputes everything.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::source::Location;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Committed {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub run_id: String,
    pub committed_at: String,
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct Record {
    /// What the plan is made of (the fingerprint's inputs), for the operator.
    plan: String,
    windows: Vec<Committed>,
}

pub struct Progress {
    state: Location,
    path: String,
    record: Record,
}

/// What makes two backfills the same plan: the same dates, windows, inputs and rules.
fn plan_of(cfg: &RunConfig) -> String {
    let (from, to) = cfg.range.expect("a backfill has a range");
    format!(
        "from={from} to={to} window_days={} timezone={} max_arrival_delay_days={} inputs={} max_cost_usd={} max_count={} heal_late={}",
        cfg.window_days,
        cfg.tz.name(),
        cfg.max_arrival_delay_days,
        cfg.inputs
            .iter()
            .map(|u| crate::policy::redact::url(u))
            .collect::<Vec<_>>()
            .join(","),
        cfg.limits.max_cost_usd,
        cfg.limits.max_count,
        cfg.heal_late,
    )
}

impl Progress {
    /// The progress of this backfill's plan (empty when it has not started).
    pub async fn load(state: &Location, cfg: &RunConfig) -> Result<Progress> {
        let plan = plan_of(cfg);
        let (from, to) = cfg.range.expect("a backfill has a range");
        let digest = hex::encode(Sha256::digest(plan.as_bytes()));
        let path = format!("_backfills/{from}_{to}_{}.json", &digest[..12]);
        let record = match state.get(&state.child(&path)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Other(format!("bad {path}: {e}")))?,
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Record {
                plan,
                windows: Vec::new(),
            },
            Err(e) => return Err(e),
        };
        Ok(Progress {
            state: state.clone(),
            path,
            record,
        })
    }

    /// The commit of window `w`, if an earlier run of this backfill made it.
    pub fn done(&self, w: (NaiveDate, NaiveDate)) -> Option<&Committed> {
        self.record.windows.iter().find(|c| (c.from, c.to) == w)
    }

    /// Records that window `w` is committed.
    pub async fn record(&mut self, w: (NaiveDate, NaiveDate), run_id: &str) -> Result<()> {
        self.record.windows.push(Committed {
            from: w.0,
            to: w.1,
            run_id: run_id.to_string(),
            committed_at: chrono::Utc::now().to_rfc3339(),
        });
        let body = serde_json::to_vec_pretty(&self.record).expect("progress serialises");
        self.state.put(&self.state.child(&self.path), body).await
    }

    /// The backfill is done: its record goes.
    pub async fn remove(self) -> Result<()> {
        self.state.delete(&self.state.child(&self.path)).await
    }
}
