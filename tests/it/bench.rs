//! The benchmark script still works (a tiny run of it; the real benchmark is not run in CI).

use crate::util::*;

#[test]
fn bench_script_runs_and_prints_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/bench.sh"))
        .env("BENCH_MEMBERS", "4")
        .env("BENCH_DAYS", "1")
        .env("BENCH_DIR", dir.path())
        .env("CC_ANALYTICS_BIN", env!("CARGO_BIN_EXE_cc-analytics"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "cc-analytics run",
        "gzip -dc (floor, 1 core)",
        "DuckDB SQL (2 threads)",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row} in {text}"));
        let records_per_s: f64 = line[row.len()..]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap();
        assert!(records_per_s > 0.0, "{line}");
    }
    assert!(text.contains("records: "), "{text}");
}
