//! Shard mode of a backfill (contract 4.3): the count and index from flags, file and the
//! environment of the scheduler, and each shard's block of dates.

use chrono::{Days, NaiveDate};

use super::RunArgs;
use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::args;

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
