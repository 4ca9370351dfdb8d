//! Run configuration: the command line, an optional TOML file (or the embedded default),
//! merged and validated once, so that everything after it is infallible.

mod args;
pub mod dimensions;
mod file;
pub mod roster;
mod shard;

pub use args::{Cli, Command, OutputArgs, ReportsArgs, RunArgs};
pub use file::{DimensionSpec, FileConfig};
pub use shard::{resolve_shard, Shard};

use chrono::{Days, NaiveDate};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// The embedded default pipeline (`pipelines/local.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../pipelines/local.toml");

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
    /// Reuse the replaced per-member CSV files on a local disk (`publish::reuse`).
    pub reuse_replaced_files: bool,
    /// Shard mode (contract 4.3): this shard's index and the count; `range` is then the
    /// backfill's whole range, and `shard_block` gives this shard's dates.
    pub shard: Option<Shard>,
    pub dimensions: crate::config::dimensions::Dimensions,
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
            reuse_replaced_files: file.reuse_replaced_files.unwrap_or(true),
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

    pub(super) fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
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
}
