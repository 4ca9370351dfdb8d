//! Run configuration: the command line, an optional TOML file (or the embedded default),
//! merged and validated once, so that everything after it is infallible.

pub mod dimensions;
pub mod roster;

use std::path::PathBuf;

use chrono::{Days, NaiveDate};
use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The embedded default pipeline (`pipelines/local.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../pipelines/local.toml");

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

/// The pipeline file. Unknown keys are errors.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub input: Vec<String>,
    pub output: Option<String>,
    pub state: Option<String>,
    pub roster: Option<String>,
    pub policy: Option<String>,
    pub date: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub lookback_days: Option<u32>,
    pub timezone: Option<String>,
    pub roles: Option<Vec<String>>,
    pub max_bad_ratio: Option<f64>,
    pub max_arrival_delay_days: Option<u32>,
    /// Write `reports/<role>/dashboard.html` (default true).
    pub dashboard: Option<bool>,
    /// Days a run's quarantine folder is kept (default 30).
    pub quarantine_retention_days: Option<u32>,
    /// Recompute the event dates of late records too (default false).
    pub heal_late: Option<bool>,
    /// How far before the first date healing reaches (default 31 days).
    pub heal_max_days: Option<u32>,
    /// Largest cost of one request or metric point, in USD (default 1000).
    pub max_cost_usd: Option<f64>,
    /// Largest token count or other count of one record (default 10^9).
    pub max_count: Option<f64>,
    /// Event dates per window of a run over a range (default 7): memory follows one window.
    pub window_days: Option<u32>,
    /// Shards of a backfill (contract 4.3): shard mode, the index from the flag or environment.
    pub shard_count: Option<u32>,
    /// Dimensions (contract 5.5.1), by name.
    #[serde(default)]
    pub dimensions: std::collections::BTreeMap<String, DimensionSpec>,
}

/// `[dimensions.<name>]` of the pipeline file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct DimensionSpec {
    #[serde(default)]
    pub attributes: Vec<String>,
    pub roster: Option<String>,
}

impl FileConfig {
    pub fn parse(text: &str, source: &str) -> Result<FileConfig> {
        toml::from_str(text).map_err(|e| {
            Error::usage(format!(
                "config {source}: {}",
                e.to_string().replace('\n', " ").trim()
            ))
        })
    }
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub inputs: Vec<String>,
    pub output: String,
    /// Root of the internal state; `None` = the output root.
    pub state: Option<String>,
    pub roster: Option<String>,
    pub policy: Option<String>,
    pub tz: Tz,
    /// Inclusive range of event dates to recompute; `None` = every date in the input.
    pub range: Option<(NaiveDate, NaiveDate)>,
    pub roles: Option<Vec<String>>,
    pub max_bad_ratio: f64,
    pub max_arrival_delay_days: u32,
    pub dashboard: bool,
    pub quarantine_retention_days: u32,
    pub heal_late: bool,
    pub heal_max_days: u32,
    pub allow_shrink: bool,
    pub limits: crate::decode::otlp::Limits,
    pub window_days: u32,
    /// Shard mode (contract 4.3): this shard's index and the count; `range` is then the
    /// backfill's whole range, and `shard_block` gives this shard's dates.
    pub shard: Option<Shard>,
    pub dimensions: crate::config::dimensions::Dimensions,
}

/// One shard of a backfill: index `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Environment variables that give a shard's count and index, in order of precedence.
const COUNT_VARS: [&str; 2] = ["CC_ANALYTICS_SHARD_COUNT", "CLOUD_RUN_TASK_COUNT"];
const INDEX_VARS: [&str; 4] = [
    "CC_ANALYTICS_SHARD_INDEX",
    "JOB_COMPLETION_INDEX",
    "CLOUD_RUN_TASK_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
];

/// The first of `vars` that is set, parsed as a number (a set but bad value is a usage error).
fn env_number(vars: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Result<Option<u32>> {
    for v in vars {
        if let Some(s) = env(v).filter(|s| !s.trim().is_empty()) {
            return s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::usage(format!("{v}={s:?} is not a shard number")));
        }
    }
    Ok(None)
}

/// Shard mode from flags, file and environment (contract 4.3): on only when a count is given;
/// the index variables alone are ignored.
pub fn resolve_shard(
    args: &RunArgs,
    file_count: Option<u32>,
    range: Option<(NaiveDate, NaiveDate)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Shard>> {
    let count = match args.shard_count.or(file_count) {
        Some(n) => Some(n),
        None => env_number(&COUNT_VARS, env)?,
    };
    let Some(count) = count else {
        if args.shard_index.is_some() {
            return Err(Error::usage("--shard-index needs --shard-count"));
        }
        return Ok(None);
    };
    if count == 0 {
        return Err(Error::usage("the shard count must be at least 1"));
    }
    let index = match args.shard_index {
        Some(i) => i,
        None => env_number(&INDEX_VARS, env)?.ok_or_else(|| {
            Error::usage(format!(
                "shard mode ({count} shards) without an index: give --shard-index or set one of {}",
                INDEX_VARS.join(", ")
            ))
        })?,
    };
    if index >= count {
        return Err(Error::usage(format!(
            "shard index {index} is outside 0..{count}"
        )));
    }
    if range.is_none() {
        return Err(Error::usage(
            "shard mode needs the backfill's dates: --from/--to or --date with --lookback-days",
        ));
    }
    Ok(Some(Shard { index, count }))
}

impl Shard {
    /// This shard's block of `from..=to` (contract 4.3): N contiguous blocks in order, the
    /// first `len mod N` one date longer; `None` for an empty block.
    pub fn block(&self, (from, to): (NaiveDate, NaiveDate)) -> Option<(NaiveDate, NaiveDate)> {
        let len = (to - from).num_days() as u64 + 1;
        let (n, i) = (self.count as u64, self.index as u64);
        let (base, extra) = (len / n, len % n);
        let start = i * base + i.min(extra);
        let size = base + u64::from(i < extra);
        if size == 0 {
            return None;
        }
        let a = from.checked_add_days(Days::new(start))?;
        let b = a.checked_add_days(Days::new(size - 1))?;
        Some((a, b))
    }
}

impl RunConfig {
    /// Merges flags over the config file; `now` resolves `today` and `yesterday`.
    pub fn resolve(args: &RunArgs, now: chrono::DateTime<chrono::Utc>) -> Result<RunConfig> {
        Self::resolve_with(args, now, true)
    }

    /// The configuration of `reports`: no input, no dates (the stored facts are the input).
    pub fn resolve_reports(
        args: &ReportsArgs,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<RunConfig> {
        let run = RunArgs {
            out: args.clone(),
            ..Default::default()
        };
        let mut cfg = Self::resolve_with(&run, now, false)?;
        cfg.inputs.clear();
        cfg.range = None;
        Ok(cfg)
    }

    fn resolve_with(
        args: &RunArgs,
        now: chrono::DateTime<chrono::Utc>,
        need_inputs: bool,
    ) -> Result<RunConfig> {
        let file = read_file(args)?;
        let tz = time_zone(args, &file)?;
        let inputs = if args.input.is_empty() {
            file.input.clone()
        } else {
            args.input.clone()
        };
        if inputs.is_empty() && need_inputs {
            return Err(Error::usage("no --input given and none in the config"));
        }
        let output = args
            .out
            .output
            .clone()
            .or(file.output.clone())
            .ok_or_else(|| Error::usage("no --output given and none in the config"))?;
        let range = date_range(args, &file, now.with_timezone(&tz).date_naive())?;
        let max_bad_ratio = args.max_bad_ratio.or(file.max_bad_ratio).unwrap_or(0.01);
        if !(0.0..=1.0).contains(&max_bad_ratio) {
            return Err(Error::usage(format!(
                "--max-bad-ratio {max_bad_ratio} is not between 0 and 1"
            )));
        }
        let roles = args.out.roles.clone().or(file.roles.clone());
        check_roles(roles.as_deref())?;
        let state = args.out.state.clone().or(file.state.clone());
        if state.as_deref() == Some(output.as_str()) {
            return Err(Error::usage(
                "state is the output root itself: leave it out, or give a root apart from the reports",
            ));
        }
        // The embedded default's roster and dimensions belong to its sample input: with other
        // inputs (or another roster) given on the command line they do not apply.
        let embedded_sample = args.out.config.is_none() && !args.input.is_empty();
        Ok(RunConfig {
            inputs,
            output,
            state,
            roster: args.out.roster.clone().or(if embedded_sample {
                None
            } else {
                file.roster.clone()
            }),
            policy: args.out.policy.clone().or(file.policy.clone()),
            tz,
            range,
            roles,
            max_bad_ratio,
            max_arrival_delay_days: file.max_arrival_delay_days.unwrap_or(3),
            dashboard: !args.out.no_dashboard && file.dashboard.unwrap_or(true),
            quarantine_retention_days: file.quarantine_retention_days.unwrap_or(30),
            heal_late: args.heal_late || file.heal_late.unwrap_or(false),
            heal_max_days: file.heal_max_days.unwrap_or(31),
            allow_shrink: args.allow_shrink,
            limits: limits(&file)?,
            window_days: args.window_days.or(file.window_days).unwrap_or(7).max(1),
            shard: if need_inputs {
                resolve_shard(args, file.shard_count, range, &|v| std::env::var(v).ok())?
            } else {
                None
            },
            dimensions: dimensions(
                &file,
                args.out.config.is_some() || (args.input.is_empty() && args.out.roster.is_none()),
            )?,
        })
    }
}

/// The pipeline file named by `--config`, else the embedded default.
fn read_file(args: &RunArgs) -> Result<FileConfig> {
    match &args.out.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::usage(format!("cannot read config {}: {e}", p.display())))?;
            FileConfig::parse(&text, &p.display().to_string())
        }
        None => FileConfig::parse(DEFAULT_CONFIG, "pipelines/local.toml (embedded)"),
    }
}

fn time_zone(args: &RunArgs, file: &FileConfig) -> Result<Tz> {
    let tz_name = args
        .out
        .timezone
        .clone()
        .or(file.timezone.clone())
        .unwrap_or_else(|| "UTC".into());
    tz_name.parse().map_err(|_| {
        Error::usage(format!(
            "unknown time zone {tz_name:?} (use an IANA name such as Europe/Berlin)"
        ))
    })
}

/// The dates to recompute from `--date` (with `--lookback-days`) or `--from/--to`, the flags
/// before the file; `None`: every date in the input.
fn date_range(
    args: &RunArgs,
    file: &FileConfig,
    today: NaiveDate,
) -> Result<Option<(NaiveDate, NaiveDate)>> {
    let flag_range = args.date.is_some() || args.from.is_some();
    let (date, from, to) = if flag_range {
        (args.date.clone(), args.from.clone(), args.to.clone())
    } else {
        (file.date.clone(), file.from.clone(), file.to.clone())
    };
    let lookback = args.lookback_days.or(file.lookback_days);
    match (date, from, to) {
        (Some(d), None, None) => {
            let d = parse_day(&d, today)?;
            let start = d
                .checked_sub_days(Days::new(lookback.unwrap_or(0) as u64))
                .ok_or_else(|| Error::usage("--lookback-days reaches before year 1"))?;
            Ok(Some((start, d)))
        }
        (None, Some(f), Some(t)) => {
            let (f, t) = (parse_day(&f, today)?, parse_day(&t, today)?);
            if f > t {
                return Err(Error::usage(format!("--from {f} is after --to {t}")));
            }
            if lookback.is_some() {
                return Err(Error::usage(
                    "--lookback-days goes with --date, not --from/--to",
                ));
            }
            Ok(Some((f, t)))
        }
        (None, None, None) => {
            if lookback.is_some() {
                return Err(Error::usage("--lookback-days needs --date"));
            }
            Ok(None)
        }
        (Some(_), _, _) => Err(Error::usage("--date cannot be combined with --from/--to")),
        _ => Err(Error::usage("--from and --to go together")),
    }
}

fn check_roles(roles: Option<&[String]>) -> Result<()> {
    for r in roles.unwrap_or_default() {
        if !crate::schema::ROLES.contains(&r.as_str()) {
            return Err(Error::usage(format!(
                "unknown role {r:?} (one of {})",
                crate::schema::ROLES.join(", ")
            )));
        }
    }
    Ok(())
}

/// The plausibility bounds of the pipeline file, within what keeps every sum in 64 bits.
fn limits(file: &FileConfig) -> Result<crate::decode::otlp::Limits> {
    let defaults = crate::decode::otlp::Limits::default();
    let limits = crate::decode::otlp::Limits {
        max_cost_usd: file.max_cost_usd.unwrap_or(defaults.max_cost_usd),
        max_count: file.max_count.unwrap_or(defaults.max_count),
    };
    if !(limits.max_cost_usd > 0.0 && limits.max_count > 0.0)
        || limits.max_cost_usd > 1e6
        || limits.max_count > 1e15
    {
        return Err(Error::usage(
            "max_cost_usd must lie in (0, 1e6] and max_count in (0, 1e15]: sums of bounded values must fit 64-bit integers",
        ));
    }
    Ok(limits)
}

/// The file's dimensions (none when `apply` is false: the embedded default's, off its sample).
fn dimensions(file: &FileConfig, apply: bool) -> Result<crate::config::dimensions::Dimensions> {
    crate::config::dimensions::Dimensions::new(
        file.dimensions
            .iter()
            .filter(|_| apply)
            .map(|(name, d)| crate::config::dimensions::Dimension {
                name: name.clone(),
                attributes: d.attributes.clone(),
                roster: d.roster.clone(),
            })
            .collect(),
    )
}

/// `YYYY-MM-DD`, `today` or `yesterday`.
pub fn parse_day(s: &str, today: NaiveDate) -> Result<NaiveDate> {
    match s {
        "today" => Ok(today),
        "yesterday" => Ok(today.pred_opt().expect("a day before today")),
        _ => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            Error::usage(format!(
                "bad date {s:?} (use YYYY-MM-DD, today or yesterday)"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> chrono::DateTime<chrono::Utc> {
        // 2026-11-25T03:00Z is still 2026-11-24 in Los Angeles.
        chrono::Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
    }

    fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
        let mut a = RunArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn embedded_default_reads_sample_data() {
        let c = RunConfig::resolve(&RunArgs::default(), now()).unwrap();
        assert_eq!(c.inputs, vec!["sample_data/telemetry"]);
        assert_eq!(c.output, "out");
        assert_eq!(c.tz, chrono_tz::UTC);
        assert_eq!(c.range, None);
        assert_eq!(c.roster.as_deref(), Some("sample_data/roster.csv"));
        let c = RunConfig::resolve(&args(|a| a.input = vec!["elsewhere".into()]), now()).unwrap();
        assert_eq!(
            c.roster, None,
            "the sample roster does not apply to other inputs"
        );
    }

    #[test]
    fn dates_resolve_in_the_time_zone() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let c = RunConfig::resolve(
            &args(|a| {
                a.date = Some("yesterday".into());
                a.out.timezone = Some("America/Los_Angeles".into());
                a.lookback_days = Some(2);
            }),
            now(),
        )
        .unwrap();
        assert_eq!(c.range, Some((d(2026, 11, 21), d(2026, 11, 23))));
        let c = RunConfig::resolve(&args(|a| a.date = Some("today".into())), now()).unwrap();
        assert_eq!(c.range, Some((d(2026, 11, 25), d(2026, 11, 25))));
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let cases: Vec<(RunArgs, &str)> = vec![
            (
                args(|a| a.out.timezone = Some("Mars/Olympus".into())),
                "Mars/Olympus",
            ),
            (args(|a| a.date = Some("2026-13-01".into())), "2026-13-01"),
            (
                args(|a| {
                    a.from = Some("2026-02-02".into());
                    a.to = Some("2026-02-01".into());
                }),
                "after",
            ),
            (args(|a| a.out.roles = Some(vec!["boss".into()])), "boss"),
            (args(|a| a.max_bad_ratio = Some(2.0)), "max-bad-ratio"),
        ];
        for (a, needle) in cases {
            let e = RunConfig::resolve(&a, now()).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn shipped_pipeline_files_parse() {
        for name in ["local", "nightly", "backfill"] {
            let text = std::fs::read_to_string(format!("pipelines/{name}.toml")).unwrap();
            let f = FileConfig::parse(&text, name).unwrap();
            if name == "nightly" {
                assert_eq!(f.heal_late, Some(true));
            }
        }
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let e = FileConfig::parse("inputs = [\"x\"]\n", "p.toml").unwrap_err();
        assert!(e.to_string().contains("inputs"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn shard_blocks_cut_the_dates_in_order_the_first_ones_longer() {
        let range = (day("2026-01-01"), day("2026-01-10"));
        let blocks: Vec<_> = (0..4)
            .map(|index| Shard { index, count: 4 }.block(range))
            .collect();
        // 10 dates in 4 blocks: 3, 3, 2, 2.
        assert_eq!(
            blocks,
            vec![
                Some((day("2026-01-01"), day("2026-01-03"))),
                Some((day("2026-01-04"), day("2026-01-06"))),
                Some((day("2026-01-07"), day("2026-01-08"))),
                Some((day("2026-01-09"), day("2026-01-10"))),
            ]
        );
        // More shards than dates: the last blocks are empty.
        let two = (day("2026-01-01"), day("2026-01-02"));
        assert_eq!(Shard { index: 2, count: 3 }.block(two), None);
        assert_eq!(
            Shard { index: 1, count: 3 }.block(two),
            Some((day("2026-01-02"), day("2026-01-02")))
        );
    }

    #[test]
    fn shard_mode_needs_a_count_and_takes_the_index_from_the_environment() {
        let range = Some((day("2026-01-01"), day("2026-01-10")));
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let plain = RunArgs::default();
        // An index variable alone (a plain run inside an Indexed Job) is not shard mode.
        let only_index = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(
            resolve_shard(&plain, None, range, &only_index).unwrap(),
            None
        );
        let k8s = env(&[
            ("JOB_COMPLETION_INDEX", "2"),
            ("CC_ANALYTICS_SHARD_COUNT", "4"),
        ]);
        assert_eq!(
            resolve_shard(&plain, None, range, &k8s).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        let cloud_run = env(&[("CLOUD_RUN_TASK_INDEX", "1"), ("CLOUD_RUN_TASK_COUNT", "3")]);
        assert_eq!(
            resolve_shard(&plain, None, range, &cloud_run).unwrap(),
            Some(Shard { index: 1, count: 3 })
        );
        // Our own variable comes before the engines'; the flag before every variable.
        let both = env(&[
            ("CC_ANALYTICS_SHARD_INDEX", "0"),
            ("AWS_BATCH_JOB_ARRAY_INDEX", "3"),
        ]);
        assert_eq!(
            resolve_shard(&plain, Some(4), range, &both).unwrap(),
            Some(Shard { index: 0, count: 4 })
        );
        let flag = args(|a| a.shard_index = Some(3));
        assert_eq!(
            resolve_shard(&flag, Some(4), range, &both).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        let none = env(&[]);
        for (a, count, r) in [
            (args(|a| a.shard_count = Some(4)), None, range),
            (args(|a| a.shard_index = Some(4)), Some(4), range),
            (args(|a| a.shard_index = Some(1)), None, range),
            (args(|a| a.shard_index = Some(0)), Some(2), None),
        ] {
            let e = resolve_shard(&a, count, r, &none).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
        }
    }
}
