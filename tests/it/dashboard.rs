//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/test.sh) loads each page from disk with network features off.

use std::path::Path;
use std::process::Command;

use crate::util::*;

pub fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("which")
            .arg(c)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            return c.to_string();
        }
    }
    panic!("no chromium on PATH (scripts/test.sh installs Debian's chromium package)");
}

pub fn browser(profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium")
}

fn csv_rows(p: &Path) -> Vec<Vec<String>> {
    read(p)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn dashboard_loads_offline_without_errors_and_shows_every_day_and_member() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sample = repo().join("sample_data");
    // The embedded default's pipeline file (sample data, roster, the team and cost-centre
    // dimensions), run from the repository as it expects.
    run_in(
        Some(&repo()),
        &[
            "run",
            "--config",
            "pipelines/local.toml",
            "--output",
            out.to_str().unwrap(),
            "--roles",
            "admin,billing",
        ],
        &[],
        0,
    );
    let page = out.join("reports/admin/dashboard.html");
    let html = read(&page);
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external reference"
    );

    let net = dir.path().join("net.json");
    let o = browser(
        &dir.path().join("profile1"),
        &[
            &format!("--log-net-log={}", net.display()),
            "--virtual-time-budget=3000",
            "--dump-dom",
        ],
        &page,
    );
    let dom = String::from_utf8_lossy(&o.stdout).to_string();
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        dom.contains(r#"data-ready="1""#),
        "the page script ran: {log}"
    );
    assert!(!dom.contains("data-errors"), "script errors: {dom}");
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:?}"
    );
    // The page made no request: no URL request in the net log was initiated by it (Chromium's
    // own background requests, initiator "not an origin", are refused by this machine anyway).
    let netlog: serde_json::Value = serde_json::from_str(&read(&net)).unwrap_or_else(|_| {
        // A log cut short by the browser's exit lacks its closing brackets.
        serde_json::from_str(&format!(
            "{}]}}",
            read(&net).trim_end().trim_end_matches(',')
        ))
        .unwrap()
    });
    let page_requests: Vec<String> = netlog["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let url = p["url"].as_str()?;
            let initiator = p["initiator"].as_str()?;
            (initiator != "not an origin" && !url.starts_with("file:"))
                .then(|| format!("{initiator} → {url}"))
        })
        .collect();
    assert!(
        page_requests.is_empty(),
        "the page made requests: {page_requests:?}"
    );

    // One point per day in every chart, one bar per day of lines.
    let days = csv_rows(&out.join("reports/admin/daily_activity.csv")).len();
    let svg = |id: &str| -> String {
        let start = dom
            .find(&format!(r#"<svg id="{id}""#))
            .unwrap_or_else(|| panic!("chart {id}"));
        dom[start..start + dom[start..].find("</svg>").unwrap()].to_string()
    };
    assert_eq!(svg("lines").matches(r#"<rect class="pt""#).count(), days);
    for id in ["activity", "spend"] {
        assert_eq!(
            svg(id).matches(r#"<circle class="pt""#).count(),
            days,
            "{id} left series"
        );
        assert_eq!(
            svg(id).matches(r#"<circle class="pt2""#).count(),
            days,
            "{id} right series"
        );
    }
    // The team table shows one row per member of the latest month.
    let monthly = csv_rows(&out.join("reports/admin/member_monthly.csv"));
    let latest = monthly.iter().map(|r| r[0].clone()).max().unwrap();
    let members = monthly.iter().filter(|r| r[0] == latest).count();
    let team = &dom[dom.find(r#"<table id="team""#).unwrap()..];
    let team = &team[..team.find("</table>").unwrap()];
    let visible = team.matches("<tr data-month=").count() - team.matches(" hidden=").count();
    assert_eq!(visible, members);
    assert!(dom.contains("Time zone: <strong>UTC</strong>"));

    // The team breakdown: a row per team value of the period, as in daily_by_dimension.
    let mut teams: Vec<String> = csv_rows(&out.join("reports/admin/daily_by_dimension.csv"))
        .into_iter()
        .filter(|r| r[1] == "team")
        .map(|r| r[2].clone())
        .collect();
    teams.sort();
    teams.dedup();
    assert!(teams.len() >= 4, "{teams:?}");
    let table = &dom[dom.find(r#"<table id="by-dimension""#).expect("team table")..];
    let table = &table[..table.find("</table>").unwrap()];
    for t in &teams {
        assert!(
            table.contains(&format!(r#"<tr data-value="{t}">"#)),
            "{t} in {table}"
        );
    }
    assert_eq!(table.matches("<tr data-value=").count(), teams.len());
    // Adoption: four lines (daily, 7 days, 28 days, seats), a point per day each.
    let adoption = svg("adoption");
    for k in 0..4 {
        assert_eq!(
            adoption
                .matches(&format!(r#"<circle class="s{k}""#))
                .count(),
            days,
            "adoption series {k}"
        );
    }
    // Gone quiet: the roster's idle member (never active) and nobody active lately.
    let members = csv_rows(&out.join("reports/admin/members.csv"));
    let quiet: Vec<&Vec<String>> = members
        .iter()
        .filter(|r| r[7] == "true" && (r[4].is_empty() || r[4].as_str() < "2026-10-06"))
        .collect();
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    let list = &dom[dom.find(r#"<table id="quiet""#).expect("quiet list")..];
    let list = &list[..list.find("</table>").unwrap()];
    assert!(
        list.contains("idle@example.com") && list.contains("never"),
        "{list}"
    );
    assert_eq!(list.matches(r#"<tr><th scope="row">"#).count(), 1);

    // A screenshot for people to look at.
    let shot = out.join("reports/admin/dashboard.png");
    let o = browser(
        &dir.path().join("profile2"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=900,3600",
            "--hide-scrollbars",
        ],
        &page,
    );
    assert!(
        shot.is_file(),
        "screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    if let Ok(keep) = std::env::var("CC_ANALYTICS_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    // The billing page under the built-in policy sees everything too; with --no-dashboard none.
    assert!(out.join("reports/billing/dashboard.html").is_file());
    let out2 = dir.path().join("out2");
    run(
        &[
            "run",
            "--input",
            sample.join("telemetry").to_str().unwrap(),
            "--output",
            out2.to_str().unwrap(),
            "--no-dashboard",
        ],
        0,
    );
    assert!(!out2.join("reports/admin/dashboard.html").exists());
}

#[test]
fn a_restricted_role_page_holds_only_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fx = repo().join("tests/fixtures/small");
    run_in(
        None,
        &[
            "run",
            "--input",
            fx.join("input").to_str().unwrap(),
            "--roster",
            fx.join("roster.csv").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--policy",
            repo()
                .join("pipelines/policies/least_privilege.toml")
                .to_str()
                .unwrap(),
        ],
        &[(
            "CC_ANALYTICS_PSEUDONYM_KEY",
            "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
        )],
        0,
    );
    let billing = read(out.join("reports/billing/dashboard.html"));
    assert!(billing.contains("Lines of code is not available to this role."));
    assert!(billing.contains(r#"<svg id="spend""#));
    assert!(billing.contains("alice@example.com"));
    let dev = read(out.join("reports/developer/dashboard.html"));
    assert!(
        !dev.contains("@example.com"),
        "developer page holds an email"
    );
    assert!(dev.contains("or pseudonym"));
}
