//! Role policies: least privilege, pseudonyms, refusals.

use crate::util::*;

fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn least_privilege_policy_filters_tables_and_pseudonymises_members() {
    let dir = tempfile::tempdir().unwrap();
    let fx = repo().join("tests/fixtures/small");
    let policy = repo().join("pipelines/policies/least_privilege.toml");
    let input = fx.join("input");
    let roster = fx.join("roster.csv");
    let args = |out: &std::path::Path| {
        vec![
            "run".to_string(),
            "--input".into(),
            input.display().to_string(),
            "--roster".into(),
            roster.display().to_string(),
            "--policy".into(),
            policy.display().to_string(),
            "--output".into(),
            out.display().to_string(),
        ]
    };
    const KEY: &str = "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-";
    let key = [("CC_ANALYTICS_PSEUDONYM_KEY", KEY)];

    // Without the key the policy is refused and nothing is written.
    let out = dir.path().join("nokey");
    let a = args(&out);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = run_in(None, &a, &[("CC_ANALYTICS_PSEUDONYM_KEY", "")], 2);
    assert!(
        stderr(&r).contains("CC_ANALYTICS_PSEUDONYM_KEY"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());

    let out = dir.path().join("out");
    let a = args(&out);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_in(None, &a, &key, 0);
    let names = |role: &str| -> Vec<String> {
        all_files(&out.join("reports").join(role))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names("billing"),
        vec![
            "_published.json",
            "daily_spend.csv",
            "daily_spend.parquet",
            "daily_spend_by_model.csv",
            "daily_spend_by_model.parquet",
            "dashboard.html",
            "member_monthly.csv",
            "member_monthly.parquet",
            "monthly_by_dimension.csv",
            "monthly_by_dimension.parquet",
        ]
    );
    // 9 tables × (Parquet + CSV), the dashboard and `_published.json`; no export.
    assert_eq!(names("developer").len(), 20);
    assert!(!out.join("reports/developer/claude_code_usage").exists());
    assert!(out.join("reports/admin/claude_code_usage").is_dir());
    assert!(!names("developer")
        .iter()
        .any(|n| n.starts_with("member_daily")));
    // No email anywhere in the developer folder, Parquet included.
    for f in all_files(&out.join("reports/developer")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(b"@example.com".len())
                .any(|w| w == b"@example.com"),
            "{} holds an email",
            f.display()
        );
    }
    // Pseudonym = m_ + 16 hex digits of HMAC-SHA256(key, member); computed here independently
    // with Python's hmac module for alice@example.com and the key.
    let csv = read(out.join("reports/developer/member_monthly.csv"));
    let expected = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import hmac,hashlib;print('m_'+hmac.new(b'{KEY}',b'alice@example.com',hashlib.sha256).hexdigest()[:16])"),
        ])
        .output()
        .unwrap();
    let alice = String::from_utf8(expected.stdout)
        .unwrap()
        .trim()
        .to_string();
    // The developer folder leaves `role` out (drop = ["role"]); the admin folder keeps it.
    assert!(
        csv.starts_with("month,member,member_type,spend_usd,lines_accepted,sessions,active_days\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("{alice},user,3.500000,30,1,2")),
        "{csv}"
    );
    assert!(read(out.join("reports/admin/member_monthly.csv"))
        .starts_with("month,member,member_type,role,"));
    // Admin still sees the emails; billing sees them too (not pseudonymised there).
    assert!(read(out.join("reports/admin/member_monthly.csv")).contains("alice@example.com"));

    // Stable across runs.
    let out2 = dir.path().join("out2");
    let a = args(&out2);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_in(None, &a, &key, 0);
    assert_eq!(csv, read(out2.join("reports/developer/member_monthly.csv")));

    // A role the policy does not list may see nothing.
    let out3 = dir.path().join("out3");
    let mut a = args(&out3);
    a.extend(["--roles".into(), "developer,user".into()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = run_in(None, &a, &key, 2);
    assert!(stderr(&r).contains("\"user\""), "{}", stderr(&r));
    assert!(!out3.exists());
}
