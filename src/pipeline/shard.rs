//! Shards of a backfill and the reduce's check (contract 4.3).
//!
//! A shard stores the facts of its block of the dates and no reports. The first shard of a
//! backfill to start creates the plan record (create-only: exactly one wins); every other shard
//! must find the same plan. Each shard that finishes leaves a done record. `reports` (the
//! reduce) refuses while a recorded plan has blocks without their done record.
//!
//! ```text
//! _shards/<from>_<to>_of<N>/plan.json       the backfill: dates, shard count, time zone, inputs
//! _shards/<from>_<to>_of<N>/shard-<I>.json  shard I committed its block (run id, time)
//! ```

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{RunConfig, Shard};
use crate::error::{Error, Result};
use crate::policy::redact;
use crate::source::Location;

const SHARDS_DIR: &str = "_shards";

/// What every shard of one backfill must agree on.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Plan {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub shard_count: u32,
    pub timezone: String,
    pub inputs: Vec<String>,
    pub max_arrival_delay_days: u32,
    /// The dimensions the shards store values for (5.5.1), as `name=attributes|roster;…`.
    #[serde(default)]
    pub dimensions: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct ShardDone {
    index: u32,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    run_id: String,
    finished_at: String,
}

fn plan_dir(p: &Plan) -> String {
    format!("{SHARDS_DIR}/{}_{}_of{}", p.from, p.to, p.shard_count)
}

impl Plan {
    pub fn of(cfg: &RunConfig, shard: Shard) -> Plan {
        let (from, to) = cfg.range.expect("shard mode has a range");
        Plan {
            from,
            to,
            shard_count: shard.count,
            timezone: cfg.tz.name().to_string(),
            inputs: cfg.inputs.iter().map(|u| redact::url(u)).collect(),
            max_arrival_delay_days: cfg.max_arrival_delay_days,
            dimensions: cfg.dimensions.describe(),
        }
    }

    /// The indexes whose block holds dates.
    fn busy_indexes(&self) -> Vec<u32> {
        (0..self.shard_count)
            .filter(|&index| {
                Shard {
                    index,
                    count: self.shard_count,
                }
                .block((self.from, self.to))
                .is_some()
            })
            .collect()
    }
}

/// Creates the plan record, or checks that the one there is the same backfill.
pub async fn join(state: &Location, plan: &Plan) -> Result<()> {
    let path = state.child(&format!("{}/plan.json", plan_dir(plan)));
    let body = serde_json::to_vec_pretty(plan).expect("plan serialises");
    if state.create(&path, body).await? {
        return Ok(());
    }
    let bytes = state.get(&path).await?;
    let there: Plan = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Other(format!("bad shard plan {path}: {e}")))?;
    if &there != plan {
        return Err(Error::usage(format!(
            "{path} records another backfill over the same dates and shard count ({}); every shard of one backfill must run with the same time zone, inputs and max_arrival_delay_days",
            serde_json::to_string(&there).unwrap_or_default()
        )));
    }
    Ok(())
}

/// Records that shard `shard` has committed its block.
pub async fn done(
    state: &Location,
    plan: &Plan,
    shard: Shard,
    block: Option<(NaiveDate, NaiveDate)>,
    run_id: &str,
) -> Result<()> {
    let rec = ShardDone {
        index: shard.index,
        from: block.map(|b| b.0),
        to: block.map(|b| b.1),
        run_id: run_id.to_string(),
        finished_at: Utc::now().to_rfc3339(),
    };
    let path = state.child(&format!("{}/shard-{}.json", plan_dir(plan), shard.index));
    state
        .put(&path, serde_json::to_vec_pretty(&rec).expect("serialises"))
        .await
}

/// The reduce's check: every recorded backfill has all its shards done, or an error naming the
/// missing ones.
pub async fn check_complete(state: &Location) -> Result<()> {
    let metas = state.list_all(&state.child(SHARDS_DIR)).await?;
    let names: std::collections::BTreeSet<String> =
        metas.iter().map(|m| m.location.to_string()).collect();
    let mut missing = Vec::new();
    for m in &metas {
        let key = m.location.as_ref();
        let Some(dir) = key.strip_suffix("/plan.json") else {
            continue;
        };
        let bytes = state.get(&m.location).await?;
        let plan: Plan = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(format!("bad shard plan {key}: {e}")))?;
        let absent: Vec<String> = plan
            .busy_indexes()
            .into_iter()
            .filter(|i| !names.contains(&format!("{dir}/shard-{i}.json")))
            .map(|i| i.to_string())
            .collect();
        if !absent.is_empty() {
            missing.push(format!(
                "the backfill {} … {} in {} shards lacks shard {}",
                plan.from,
                plan.to,
                plan.shard_count,
                absent.join(", ")
            ));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "{}: run the missing shards (same command, same --shard-count) before `reports`, or remove {SHARDS_DIR}/<plan>/ under the state root to give that backfill up",
        missing.join("; ")
    )))
}
