//! Input and output on S3: a real `moto_server` on 127.0.0.1 and a free port, driven through
//! the `object_store` crate by the binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A moto S3 server, stopped when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = crate::util::server_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
        let m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// A plain HTTP request (moto accepts unsigned ones): returns (status, body).
    pub fn http(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = buf[head_end + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (status, body)
    }

    pub fn create_bucket(&self, name: &str) {
        let (status, _) = self.http("PUT", &format!("/{name}"));
        assert_eq!(status, 200, "create bucket");
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
        b = &b[line_end + 2 + n + 2..];
    }
}

/// An S3-compatible test server on 127.0.0.1.
pub trait Server {
    fn port(&self) -> u16;
}

impl Server for Moto {
    fn port(&self) -> u16 {
        self.port
    }
}

/// The bucket through the `object_store` crate, signed with the test credentials.
fn store(moto: &impl Server, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_endpoint(format!("http://127.0.0.1:{}", moto.port()))
        .with_allow_http(true)
        .build()
        .unwrap()
}

/// Runs a future of the test on a runtime of its own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn s3_get(moto: &impl Server, bucket: &str, key: &str) -> Option<Vec<u8>> {
    use object_store::ObjectStoreExt;
    let store = store(moto, bucket);
    block_on(async {
        let r = store.get(&object_store::path::Path::from(key)).await.ok()?;
        Some(r.bytes().await.unwrap().to_vec())
    })
}

pub fn s3_list(moto: &impl Server, bucket: &str, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let store = store(moto, bucket);
    block_on(async {
        let p = object_store::path::Path::from(prefix);
        let v: Vec<_> = object_store::ObjectStore::list(&store, Some(&p))
            .try_collect()
            .await
            .unwrap();
        v.into_iter().map(|m| m.location.to_string()).collect()
    })
}

/// The report files under `prefix` (`<prefix>/reports/…`) as `util::comparable` gives them,
/// keyed by their path below `prefix`.
pub fn s3_reports(
    server: &impl Server,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let base = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let files = s3_list(server, bucket, &format!("{base}reports"))
        .into_iter()
        .map(|k| {
            let body = s3_get(server, bucket, &k).unwrap();
            (k[base.len()..].to_string(), body)
        })
        .collect();
    comparable(files)
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn s3_input_and_output_give_the_same_tables_as_local_files() {
    let moto = Moto::start();
    moto.create_bucket("telemetry");
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gen = ["--members", "6", "--days", "3", "--seed", "9"];

    // The same generated data on S3 and on disk.
    let mut args = vec!["generate", "--output", "s3://telemetry/raw"];
    args.extend(gen);
    run_in(None, &args, &env, 0);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("raw");
    let mut args = vec!["generate", "--output", local.to_str().unwrap()];
    args.extend(gen);
    run(&args, 0);

    run_in(
        None,
        &[
            "run",
            "--input",
            "s3://telemetry/raw/telemetry",
            "--roster",
            "s3://telemetry/raw/roster.csv",
            "--output",
            "s3://telemetry/analytics",
            "--roles",
            "admin,billing",
        ],
        &env,
        0,
    );
    let out = dir.path().join("out");
    run(
        &[
            "run",
            "--input",
            local.join("telemetry").to_str().unwrap(),
            "--roster",
            local.join("roster.csv").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--roles",
            "admin,billing",
        ],
        0,
    );
    let (on_s3, on_disk) = (s3_reports(&moto, "telemetry", "analytics"), reports(&out));
    assert_eq!(
        on_s3.keys().collect::<Vec<_>>(),
        on_disk.keys().collect::<Vec<_>>()
    );
    for role in ["admin", "billing"] {
        for table in [
            "daily_activity",
            "daily_spend_by_model",
            "member_daily",
            "member_monthly",
        ] {
            for ext in ["csv", "parquet"] {
                let key = format!("reports/{role}/{table}.{ext}");
                assert!(
                    on_s3
                        .get(&key)
                        .is_some_and(|b| Some(b) == on_disk.get(&key)),
                    "{key}: S3 and local differ"
                );
            }
        }
    }
    // Objects read from S3 as streams (as objects past 64 MiB are): the same tables.
    run_in(
        None,
        &[
            "run",
            "--input",
            "s3://telemetry/raw/telemetry",
            "--roster",
            "s3://telemetry/raw/roster.csv",
            "--output",
            "s3://telemetry/streamed",
            "--roles",
            "admin,billing",
        ],
        &[env.as_slice(), &[("CC_ANALYTICS_STREAM_OBJECT_BYTES", "0")]].concat(),
        0,
    );
    assert!(
        s3_reports(&moto, "telemetry", "streamed") == on_s3,
        "streamed objects give other tables"
    );
    // The manifest on S3 names the S3 objects it read.
    let runs: Vec<String> = s3_list(&moto, "telemetry", "analytics/_runs")
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let body = s3_get(&moto, "telemetry", &runs[0]).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let file = m["input_objects_file"].as_str().unwrap();
    let objects = objects_of(&s3_get(&moto, "telemetry", &format!("analytics/{file}")).unwrap());
    let first = objects[0]["key"].as_str().unwrap();
    assert!(
        first.starts_with("s3://telemetry/raw/telemetry/year="),
        "{first}"
    );
    assert!(objects[0]["etag"].is_string());
    assert_eq!(objects.len() as u64, m["objects"]["read"].as_u64().unwrap());

    // Nightly runs on S3: incremental facts, lock and two-phase publish through the S3 API give
    // the same tables as on disk, and leave no staging or lock behind.
    let nightly_local = dir.path().join("nightly");
    for d in ["2026-10-01", "2026-10-02"] {
        run_in(
            None,
            &[
                "run",
                "--input",
                "s3://telemetry/raw/telemetry",
                "--output",
                "s3://telemetry/nightly",
                "--date",
                d,
                "--roles",
                "admin",
            ],
            &env,
            0,
        );
        run(
            &[
                "run",
                "--input",
                local.join("telemetry").to_str().unwrap(),
                "--output",
                nightly_local.to_str().unwrap(),
                "--date",
                d,
                "--roles",
                "admin",
            ],
            0,
        );
    }
    let (on_s3, on_disk) = (
        s3_reports(&moto, "telemetry", "nightly"),
        reports(&nightly_local),
    );
    for table in ["daily_spend", "member_monthly"] {
        let key = format!("reports/admin/{table}.parquet");
        assert!(on_s3[&key] == on_disk[&key], "nightly {key}");
    }
    let keys = s3_list(&moto, "telemetry", "nightly");
    let mut left = staging_left(&keys);
    left.extend(keys.into_iter().filter(|k| k.ends_with("_lock")));
    assert!(left.is_empty(), "{left:?}");
    // Two dates' facts, three frames each.
    let facts: Vec<String> = s3_list(&moto, "telemetry", "nightly/_facts")
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(facts.len(), 6, "{facts:?}");
    for frame in ["sessions", "models", "tools"] {
        let n = facts
            .iter()
            .filter(|k| k.ends_with(&format!("/{frame}.parquet")))
            .count();
        assert_eq!(n, 2, "{facts:?}");
    }

    // A bucket that does not exist is a clear error naming it.
    let r = run_in(
        None,
        &[
            "run",
            "--input",
            "s3://no-such-bucket/x",
            "--output",
            out.to_str().unwrap(),
        ],
        &env,
        2,
    );
    assert!(stderr(&r).contains("no-such-bucket"), "{}", stderr(&r));
}

#[test]
fn s3_state_in_its_own_bucket_leaves_only_reports_in_the_reports_bucket() {
    let moto = Moto::start();
    for b in ["raw", "reports", "state"] {
        moto.create_bucket(b);
    }
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gen = ["--members", "5", "--days", "3", "--seed", "4"];
    let mut args = vec!["generate", "--output", "s3://raw/gen"];
    args.extend(gen);
    run_in(None, &args, &env, 0);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("gen");
    let mut args = vec!["generate", "--output", local.to_str().unwrap()];
    args.extend(gen);
    run(&args, 0);
    let out = dir.path().join("out");
    for d in ["2026-10-01", "2026-10-02"] {
        run_in(
            None,
            &[
                "run",
                "--input",
                "s3://raw/gen/telemetry",
                "--roster",
                "s3://raw/gen/roster.csv",
                "--output",
                "s3://reports/cc",
                "--state",
                "s3://state/cc",
                "--date",
                d,
                "--roles",
                "admin",
            ],
            &env,
            0,
        );
        run(
            &[
                "run",
                "--input",
                local.join("telemetry").to_str().unwrap(),
                "--roster",
                local.join("roster.csv").to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--date",
                d,
                "--roles",
                "admin",
            ],
            0,
        );
    }
    let reports = s3_list(&moto, "reports", "");
    assert!(!reports.is_empty());
    assert!(
        reports.iter().all(|k| k.starts_with("cc/reports/admin/")),
        "{reports:?}"
    );
    let (on_s3, on_disk) = (
        s3_reports(&moto, "reports", "cc"),
        crate::util::reports(&out),
    );
    for table in ["daily_spend", "member_daily", "member_monthly"] {
        for ext in ["csv", "parquet"] {
            let key = format!("reports/admin/{table}.{ext}");
            assert!(
                on_s3[&key] == on_disk[&key],
                "{key}: split roots on S3 and one root on disk differ"
            );
        }
    }
    let state = s3_list(&moto, "state", "cc");
    for prefix in [
        "cc/_facts/date=2026-10-01/",
        "cc/_facts/date=2026-10-02/",
        "cc/_runs/",
    ] {
        assert!(
            state.iter().any(|k| k.starts_with(prefix)),
            "{prefix}: {state:?}"
        );
    }
    assert!(staging_left(&state).is_empty(), "{state:?}");
    // Report files only in the reports bucket (the staging keeps the replaced ones until the
    // next run).
    assert!(
        !state
            .iter()
            .filter(|k| !k.contains("_staging/"))
            .any(|k| k.ends_with("_lock") || k.contains("/reports/")),
        "{state:?}"
    );
}
