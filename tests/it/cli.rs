//! Usage errors: one clear line naming the culprit, exit 2, nothing written.

use crate::util::*;

fn fixture_input() -> String {
    repo()
        .join("tests/fixtures/small/input")
        .display()
        .to_string()
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let input = fixture_input();
    let bad_roster = dir.path().join("bad.csv");
    std::fs::write(
        &bad_roster,
        "member,member_type,role,aliases\na@x.com,user,wizard,\n",
    )
    .unwrap();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "inputz = [\"x\"]\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--timezone", "Mars/Olympus"], "Mars/Olympus"),
        (vec!["--roles", "admin,boss"], "boss"),
        (vec!["--roles", "user"], "user"),
        (vec!["--date", "2026-02-30"], "2026-02-30"),
        (vec!["--from", "2026-10-09", "--to", "2026-10-08"], "after"),
        (vec!["--roster", bad_roster.to_str().unwrap()], "wizard"),
        (vec!["--config", bad_config.to_str().unwrap()], "inputz"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["run", "--input", &input, "--output", o];
        args.extend(extra.iter().copied());
        let r = run(&args, 2);
        let e = stderr(&r);
        assert!(e.contains(needle), "{args:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        assert!(!out.exists(), "{args:?} wrote output");
    }
    let r = run(
        &["run", "--input", "/nonexistent/telemetry", "--output", o],
        2,
    );
    assert!(stderr(&r).contains("/nonexistent/telemetry"));
    assert!(!out.exists());
}

#[test]
fn input_without_telemetry_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.path().join("out");
    let r = run(
        &[
            "run",
            "--input",
            empty.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert!(stderr(&r).contains("nothing written"), "{}", stderr(&r));
    assert!(!out.join("reports").exists());
}

#[test]
fn roles_flag_limits_the_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run(
        &[
            "run",
            "--input",
            &fixture_input(),
            "--output",
            out.to_str().unwrap(),
            "--roles",
            "billing",
        ],
        0,
    );
    let roles: Vec<String> = std::fs::read_dir(out.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(roles, vec!["billing"]);
}

#[test]
fn reports_rebuilds_the_tables_from_the_stored_facts() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small");
    let out = dir.path().join("out");
    let (input, roster) = (fx.join("input"), fx.join("roster.csv"));
    let (input, roster) = (input.to_str().unwrap(), roster.to_str().unwrap());
    let o = out.to_str().unwrap();
    // Nothing stored yet: a usage error, nothing written.
    let r = run(&["reports", "--output", o, "--roster", roster], 2);
    assert!(stderr(&r).contains("no stored facts"), "{}", stderr(&r));
    run(
        &[
            "run", "--input", input, "--roster", roster, "--output", o, "--roles", "admin",
        ],
        0,
    );
    let before = read(out.join("reports/admin/member_monthly.csv"));
    std::fs::remove_dir_all(out.join("reports")).unwrap();
    // The same tables from the stored facts alone, and other roles on demand.
    run(
        &[
            "reports",
            "--output",
            o,
            "--roster",
            roster,
            "--roles",
            "admin,billing",
        ],
        0,
    );
    assert_eq!(read(out.join("reports/admin/member_monthly.csv")), before);
    assert_eq!(read(out.join("reports/billing/member_monthly.csv")), before);
    // Another time zone than the facts' is refused.
    let r = run(
        &["reports", "--output", o, "--timezone", "Europe/Berlin"],
        2,
    );
    assert!(stderr(&r).contains("time zone"), "{}", stderr(&r));
}
