use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cc-analytics"));
    // A short lease: a run killed by a test leaves the output to the next run within 2 s.
    c.env("CC_ANALYTICS_LEASE_SECONDS", "2");
    c
}

/// Writes `dir/policy.toml`: `admin` sees every table as it is, `developer` every table with
/// `member` pseudonymised (plus `developer_extra`, lines of that role's section).
pub fn admin_and_pseudonymised_developer(dir: &Path, developer_extra: &str) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "pseudonym_key_env = \"CC_ANALYTICS_PSEUDONYM_KEY\"\n\
             [roles.admin]\ntables = [\"*\"]\n\
             [roles.developer]\ntables = [\"*\"]\npseudonymise = [\"member\"]\n{developer_extra}"
        ),
    )
    .unwrap();
    policy
}

/// The newest record of an output's lease, if any.
pub fn lease_newest(state: &Path) -> Option<serde_json::Value> {
    let newest = std::fs::read_dir(state.join("_lease"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .max()?;
    Some(serde_json::from_str(&std::fs::read_to_string(newest).unwrap()).unwrap())
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
    reference_check_with(input, roster, output, tz, role, None)
}

/// The reference check of a run that used the pipeline file `config` (its dimensions).
pub fn reference_check_with(
    input: &Path,
    roster: &Path,
    output: &Path,
    tz: &str,
    role: &str,
    config: Option<&Path>,
) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/reference/check.py"))
        .args(["--input", input.to_str().unwrap()])
        .args(["--roster", roster.to_str().unwrap()])
        .args(["--output", output.to_str().unwrap()])
        .args(["--timezone", tz, "--role", role]);
    if let Some(c) = config {
        cmd.args(["--config", c.to_str().unwrap()]);
    }
    let out = cmd
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
    let files: Vec<(String, Vec<u8>)> = walk(&out.join("reports"))
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect();
    comparable(files)
}

/// Report files as two runs that publish the same tables write them: without the dashboards
/// (they show the time they were built) and the `_published.json` records, and with the run id
/// each Parquet file carries in its metadata masked (it is the record's run id).
pub fn comparable(files: Vec<(String, Vec<u8>)>) -> std::collections::BTreeMap<String, Vec<u8>> {
    let run_of: std::collections::BTreeMap<String, String> = files
        .iter()
        .filter(|(k, _)| k.ends_with("/_published.json"))
        .map(|(k, v)| {
            let rec: serde_json::Value = serde_json::from_slice(v).unwrap();
            let dir = k.trim_end_matches("_published.json").to_string();
            (dir, rec["run_id"].as_str().unwrap().to_string())
        })
        .collect();
    files
        .into_iter()
        .filter(|(k, _)| !k.ends_with(".html") && !k.ends_with("/_published.json"))
        .map(|(k, mut v)| {
            if k.ends_with(".parquet") {
                let dir = &k[..k.rfind('/').unwrap() + 1];
                let run = run_of
                    .get(dir)
                    .unwrap_or_else(|| panic!("{k}: its folder has no _published.json"));
                let n = masked(&mut v, run.as_bytes());
                assert_eq!(n, 1, "{k} carries its run id {run} once");
            }
            (k, v)
        })
        .collect()
}

/// Overwrites every occurrence of `needle` in `v` with `X`s; returns how many there were.
fn masked(v: &mut [u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + needle.len() <= v.len() {
        if &v[i..i + needle.len()] == needle {
            v[i..i + needle.len()].fill(b'X');
            n += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    n
}

/// The current commit record of a stored date (the highest sequence number), as JSON.
pub fn current_commit(out: &Path, date: &str) -> serde_json::Value {
    let dir = out.join(format!("_facts/date={date}/_commits"));
    let newest = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .max()
        .expect("a commit record");
    serde_json::from_str(&std::fs::read_to_string(newest).unwrap()).unwrap()
}

/// A frame file of a stored date's current version.
pub fn current_facts(out: &Path, date: &str, frame: &str) -> PathBuf {
    let c = current_commit(out, date);
    let v = c["version"].as_str().expect("a version");
    out.join(format!("_facts/date={date}/v={v}/{frame}.parquet"))
}

/// A free port for a test server, below the kernel's ephemeral range so that the outgoing
/// connections of concurrent tests (which take their source ports from that range) cannot
/// take it between this check and the server's own bind.
pub fn server_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1_000));
    // Spread test binaries running at once apart by their pid.
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let port = first + (start + NEXT.fetch_add(7, Ordering::Relaxed)) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port between {first} and {}", first + span)
}

/// The keys under `_staging/` (object keys, or paths relative to the output root) that a
/// finished run may not leave: all of them but those of one run whose commit is complete
/// (`_done`), which the next run removes.
pub fn staging_left(keys: &[String]) -> Vec<String> {
    let run_of = |k: &str| {
        let (_, rest) = k.split_once("_staging/")?;
        rest.split('/').next().map(String::from)
    };
    let done: Vec<String> = keys
        .iter()
        .filter(|k| k.ends_with("/_done"))
        .filter_map(|k| run_of(k))
        .collect();
    keys.iter()
        .filter(|k| k.contains("_staging/"))
        .filter(|k| done.len() != 1 || run_of(k).as_ref() != Some(&done[0]))
        .cloned()
        .collect()
}

/// `staging_left` of a local output root.
pub fn staging_left_in(out: &Path) -> Vec<String> {
    if !out.join("_staging").exists() {
        return Vec::new();
    }
    let keys: Vec<String> = walk(&out.join("_staging"))
        .into_iter()
        .map(|p| p.strip_prefix(out).unwrap().display().to_string())
        .collect();
    staging_left(&keys)
}
