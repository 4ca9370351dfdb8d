//! Object-store faults: a fault-injecting HTTP proxy (here, on 127.0.0.1) in front of
//! moto_server fails or resets a share of requests; the run retries and ends with the same
//! tables. A permanent failure ends the run with the object key in the message.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::s3::{s3_get, s3_reports, Moto};
use crate::util::*;

#[derive(Clone)]
enum Fault {
    /// Of every 6 requests: one answered 503 SlowDown, one cut off without an answer.
    Flaky,
    /// Every request whose request line contains this fails with 500.
    Poison(String),
    /// Every request is refused as S3 refuses unknown credentials.
    Deny,
    /// Conditional headers are dropped, as stores that ignore them do (SeaweedFS 3.96).
    IgnoreConditions,
}

struct Proxy {
    port: u16,
    pub faults: Arc<AtomicUsize>,
}

fn read_request(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    // One request per connection: the proxy closes after each answer.
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    Some((head, body))
}

impl Proxy {
    fn start(upstream: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(AtomicUsize::new(0));
        let count = Arc::new(AtomicUsize::new(0));
        let f2 = faults.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { break };
                let (fault, faults, count) = (fault.clone(), f2.clone(), count.clone());
                std::thread::spawn(move || {
                    let Some((head, body)) = read_request(&mut c) else {
                        return;
                    };
                    let head = match &fault {
                        Fault::IgnoreConditions => head
                            .split("\r\n")
                            .filter(|l| {
                                let l = l.to_ascii_lowercase();
                                !l.starts_with("if-none-match:") && !l.starts_with("if-match:")
                            })
                            .collect::<Vec<_>>()
                            .join("\r\n"),
                        _ => head,
                    };
                    let i = count.fetch_add(1, Ordering::SeqCst);
                    let first_line = head.lines().next().unwrap_or("").to_string();
                    let fail = match &fault {
                        Fault::Flaky => match i % 6 {
                            1 => Some("HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                            4 => Some(""), // reset: close without an answer
                            _ => None,
                        },
                        Fault::Poison(p) if first_line.contains(p.as_str()) => {
                            Some("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        }
                        Fault::Poison(_) | Fault::IgnoreConditions => None,
                        Fault::Deny => Some(
                            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 115\r\nConnection: close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidAccessKeyId</Code><Message>Unknown key</Message></Error>\n",
                        ),
                    };
                    if let Some(answer) = fail {
                        faults.fetch_add(1, Ordering::SeqCst);
                        let _ = c.write_all(answer.as_bytes());
                        let _ = c.shutdown(Shutdown::Both);
                        return;
                    }
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let _ = up.write_all(head.as_bytes());
                    let _ = up.write_all(&body);
                    let _ = std::io::copy(&mut up, &mut c);
                    let _ = c.shutdown(Shutdown::Both);
                });
            }
        });
        Proxy { port, faults }
    }

    fn env(&self, moto: &Moto) -> Vec<(&'static str, String)> {
        let mut env = moto.env();
        for (k, v) in env.iter_mut() {
            if *k == "AWS_ENDPOINT_URL" {
                *v = format!("http://127.0.0.1:{}", self.port);
            }
        }
        env
    }
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn transient_faults_are_retried_and_change_nothing() {
    let moto = Moto::start();
    moto.create_bucket("faults");
    let direct = moto.env();
    run_in(
        None,
        &[
            "generate",
            "--output",
            "s3://faults/raw",
            "--members",
            "4",
            "--days",
            "2",
            "--seed",
            "21",
        ],
        &as_refs(&direct),
        0,
    );
    let args = |out: &str| {
        vec![
            "run".to_string(),
            "--input".into(),
            "s3://faults/raw/telemetry".into(),
            "--roster".into(),
            "s3://faults/raw/roster.csv".into(),
            "--output".into(),
            out.to_string(),
            "--roles".into(),
            "admin".into(),
        ]
    };
    let a = args("s3://faults/clean");
    run_in(
        None,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &as_refs(&direct),
        0,
    );

    let proxy = Proxy::start(moto.port, Fault::Flaky);
    let a = args("s3://faults/flaky");
    run_in(
        None,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &as_refs(&proxy.env(&moto)),
        0,
    );
    assert!(
        proxy.faults.load(Ordering::SeqCst) > 20,
        "the proxy injected faults"
    );
    let (flaky, clean) = (
        s3_reports(&moto, "faults", "flaky"),
        s3_reports(&moto, "faults", "clean"),
    );
    for t in [
        "daily_activity",
        "daily_spend_by_model",
        "member_daily",
        "member_monthly",
    ] {
        for ext in ["parquet", "csv"] {
            let key = format!("reports/admin/{t}.{ext}");
            assert!(
                flaky.contains_key(&key) && flaky.get(&key) == clean.get(&key),
                "{key}"
            );
        }
    }
}

#[test]
fn a_permanent_failure_names_the_object() {
    let moto = Moto::start();
    moto.create_bucket("broken");
    let direct = moto.env();
    run_in(
        None,
        &[
            "generate",
            "--output",
            "s3://broken/raw",
            "--members",
            "2",
            "--days",
            "1",
            "--seed",
            "4",
        ],
        &as_refs(&direct),
        0,
    );
    // Fail every GET of one object: the first metrics object of the listing.
    let keys = crate::s3::s3_list(&moto, "broken", "raw/telemetry");
    let victim = keys
        .iter()
        .find(|k| k.contains("metrics_"))
        .unwrap()
        .clone();
    let proxy = Proxy::start(
        moto.port,
        Fault::Poison(victim.rsplit('/').next().unwrap().to_string()),
    );
    let mut env_poison = proxy.env(&moto);
    env_poison.push(("CC_ANALYTICS_RETRY_MAX", "2".into()));
    let r = run_in(
        None,
        &[
            "run",
            "--input",
            "s3://broken/raw/telemetry",
            "--output",
            "s3://broken/out",
        ],
        &as_refs(&env_poison),
        1,
    );
    let e = stderr(&r);
    assert!(e.contains(&victim), "the message names {victim}: {e}");
    assert!(
        s3_get(&moto, "broken", "out/reports/admin/daily_spend.csv").is_none(),
        "nothing published"
    );
}

#[test]
fn wrong_credentials_are_a_clear_usage_error() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port, Fault::Deny);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = run_in(
        None,
        &[
            "run",
            "--input",
            "s3://bucket/telemetry",
            "--output",
            out.to_str().unwrap(),
        ],
        &as_refs(&proxy.env(&moto)),
        2,
    );
    let e = stderr(&r);
    assert!(
        e.contains("s3://bucket/telemetry") && e.contains("credentials"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!out.exists());
}

/// A store that accepts a second conditional create of one key cannot keep two writers apart:
/// the run refuses at once (exit 2), before it writes anything, rather than fall back to plain
/// puts.
#[test]
fn a_store_that_ignores_conditional_writes_is_refused() {
    let moto = Moto::start();
    moto.create_bucket("noconds");
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small/input");
    let proxy = Proxy::start(moto.port, Fault::IgnoreConditions);
    for shard in [false, true] {
        let mut args = vec![
            "run",
            "--input",
            fx.to_str().unwrap(),
            "--output",
            "s3://noconds/out",
        ];
        if shard {
            args.extend([
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-02",
                "--shard-index",
                "0",
                "--shard-count",
                "2",
            ]);
        }
        let r = run_in(Some(dir.path()), &args, &as_refs(&proxy.env(&moto)), 2);
        assert!(
            stderr(&r).contains("accepted a second conditional create"),
            "{}",
            stderr(&r)
        );
    }
    let left = crate::s3::s3_list(&moto, "noconds", "out");
    assert!(left.is_empty(), "nothing is written: {left:?}");
    // Through the same proxy without the fault, the run works: the refusal was the store's.
    let ok = Proxy::start(moto.port, Fault::Poison("never-matches".into()));
    run_in(
        Some(dir.path()),
        &[
            "run",
            "--input",
            fx.to_str().unwrap(),
            "--output",
            "s3://noconds/out",
        ],
        &as_refs(&ok.env(&moto)),
        0,
    );
}
