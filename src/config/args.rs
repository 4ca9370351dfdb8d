//! The command line: subcommands and their flags (validated with the pipeline file in
//! `RunConfig::resolve`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cc-analytics",
    version,
    about = "Rebuilds Claude Code analytics tables from raw OpenTelemetry telemetry in object storage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Read telemetry, compute the analytics tables, write them per role.
    Run(RunArgs),
    /// Rebuild every role's tables and dashboard from the stored facts (no telemetry read).
    Reports(ReportsArgs),
    /// Write deterministic synthetic telemetry (and a roster) for tests, demos and benchmarks.
    Generate(crate::generate::GenerateArgs),
}

/// The flags `run` and `reports` share: the output, how it is shown, and what the tables
/// depend on. `reports` takes these alone.
#[derive(Args, Debug, Default, Clone)]
pub struct OutputArgs {
    /// Pipeline file (TOML). Without it the embedded default `pipelines/local.toml` is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output root (a path or URL).
    #[arg(long, value_name = "URL")]
    pub output: Option<String>,
    /// Root for the job's internal state (stored facts, run manifests, quarantine, staging,
    /// lease), apart from the reports. Default: the output root.
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// Roster CSV (member,member_type,role,aliases[,attributes…]).
    #[arg(long, value_name = "URL")]
    pub roster: Option<String>,
    /// Role policy (TOML). Without it the built-in policy applies.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<String>,
    /// IANA time zone of days and months (default UTC); stored facts keep the one they were
    /// computed in.
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Roles to write reports for, comma-separated (default: every role that may see something).
    #[arg(long, value_name = "ROLE,...", value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    /// Do not write `dashboard.html` next to each role's tables.
    #[arg(long)]
    pub no_dashboard: bool,
}

/// `reports`: the flags of `run` that the tables depend on.
pub type ReportsArgs = OutputArgs;

#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Telemetry prefix: a path, file://, s3://, gs:// or az:// URL. Repeatable.
    #[arg(long, value_name = "URL")]
    pub input: Vec<String>,
    /// Recompute one day: YYYY-MM-DD, today or yesterday (in --timezone).
    #[arg(long, value_name = "D", conflicts_with_all = ["from", "to"])]
    pub date: Option<String>,
    /// First day of a range to recompute (with --to).
    #[arg(long, value_name = "D", requires = "to")]
    pub from: Option<String>,
    /// Last day of a range to recompute (with --from).
    #[arg(long, value_name = "D", requires = "from")]
    pub to: Option<String>,
    /// With --date D: recompute D-N … D.
    #[arg(long, value_name = "N")]
    pub lookback_days: Option<u32>,
    /// Largest share of bad lines tolerated before the run fails with exit 3 (default 0.01).
    #[arg(long, value_name = "F")]
    pub max_bad_ratio: Option<f64>,
    /// Also recompute the event dates of late records (contract 4.4), at most `heal_max_days`
    /// before the first date.
    #[arg(long)]
    pub heal_late: bool,
    /// Replace stored facts even with facts of fewer than half their records (contract 4.4).
    #[arg(long)]
    pub allow_shrink: bool,
    /// Event dates per window (default 7): a run over a range reads and commits its facts one
    /// window at a time, so that its memory follows one window, not the range.
    #[arg(long, value_name = "N")]
    pub window_days: Option<u32>,
    /// This shard's index, 0 ≤ I < N (contract 4.3; else CC_ANALYTICS_SHARD_INDEX,
    /// JOB_COMPLETION_INDEX, CLOUD_RUN_TASK_INDEX or AWS_BATCH_JOB_ARRAY_INDEX).
    #[arg(long, value_name = "I")]
    pub shard_index: Option<u32>,
    /// Shards of the backfill: the run stores the facts of its block of the dates and writes no
    /// reports (else `shard_count` in the pipeline file, CC_ANALYTICS_SHARD_COUNT or
    /// CLOUD_RUN_TASK_COUNT).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,
}
