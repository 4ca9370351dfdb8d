use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cc-analytics"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with `args`, returning its output; panics with stderr if `expect` differs.
pub fn run(args: &[&str], expect: i32) -> Output {
    run_in(None, args, &[], expect)
}

pub fn run_in(dir: Option<&Path>, args: &[&str], env: &[(&str, &str)], expect: i32) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cc-analytics");
    assert_eq!(
        out.status.code(),
        Some(expect),
        "cc-analytics {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// Runs the independent Python reference (`tests/reference/check.py`) over input and output.
pub fn reference_check(input: &Path, roster: &Path, output: &Path, tz: &str, role: &str) {
    let out = Command::new("python3")
        .arg(repo().join("tests/reference/check.py"))
        .args(["--input", input.to_str().unwrap()])
        .args(["--roster", roster.to_str().unwrap()])
        .args(["--output", output.to_str().unwrap()])
        .args(["--timezone", tz, "--role", role])
        .output()
        .expect("python3 (the reference check needs python3 with pyarrow, duckdb, zstandard: .ci/run installs them)");
    assert!(
        out.status.success(),
        "reference check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The run manifest of the newest run under `out`.
pub fn manifest(out: &Path) -> serde_json::Value {
    let mut runs: Vec<_> = std::fs::read_dir(out.join("_runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    runs.sort();
    serde_json::from_str(&read(runs.last().unwrap())).unwrap()
}

/// Every file below `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The run manifest's accounting identities (contract 5.4).
pub fn assert_counts_add_up(m: &serde_json::Value) {
    let c = &m["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(
        n("lines_read"),
        n("lines_parsed") + n("lines_quarantined"),
        "{c}"
    );
    assert_eq!(
        n("records_parsed"),
        n("records_used")
            + n("records_duplicate")
            + n("records_outside_range")
            + n("records_ignored")
            + n("records_rejected"),
        "{c}"
    );
}

/// The input objects a manifest names (its `input_objects_file` under `root`: gzip JSON Lines).
pub fn input_objects(root: &Path, m: &serde_json::Value) -> Vec<serde_json::Value> {
    let file = root.join(
        m["input_objects_file"]
            .as_str()
            .expect("input_objects_file"),
    );
    objects_of(&std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
}

/// The objects of an objects file's bytes.
pub fn objects_of(gz: &[u8]) -> Vec<serde_json::Value> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every table file under `reports/`, by relative path (the dashboard states when it was built,
/// so it differs between runs by that line).
pub fn reports(out: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walk(&out.join("reports"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e != "html"))
        .map(|p| {
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}
