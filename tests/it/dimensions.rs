//! Dimensions, per-member breakdowns, adoption and the API-shaped export (contract 5.5, 5.6) on
//! generated telemetry: against the reference, against the daily tables, pseudonymised, and
//! nightly against backfill.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

const KEY: &str = "dimension-test-key-0123456789abcdef";

fn generate(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--members",
            "12",
            "--days",
            "6",
            "--start",
            "2026-10-28",
            "--seed",
            "14",
        ],
        0,
    );
    data
}

/// A pipeline file naming the generated data, `out` and the two dimensions.
fn config(dir: &Path, data: &Path, out: &Path) -> PathBuf {
    let path = dir.join(format!(
        "pipeline-{}.toml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &path,
        format!(
            r#"input = ["{}"]
roster = "{}"
output = "{}"
[dimensions.team]
attributes = ["team.id", "team"]
roster = "team"
[dimensions.cost_center]
attributes = ["cost_center"]
roster = "cost_center"
"#,
            data.join("telemetry").display(),
            data.join("roster.csv").display(),
            out.display()
        ),
    )
    .unwrap();
    path
}

fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sums over dimension values and over members equal the daily tables (DuckDB on the Parquet).
const SUMS: &str = r#"
import sys, duckdb
d = sys.argv[1] + "/reports/admin/"
q = lambda s: duckdb.sql(s.replace("T(", "read_parquet('" + d).replace(".pq)", ".parquet')")).fetchall()
checks = {
  "sessions and spend per dimension": """
    select count(*) from (select date, dimension, sum(sessions) s, sum(spend_usd) sp, sum(lines_accepted) la,
      sum(accepted) a, sum(rejected) r, sum(commits) c from T(daily_by_dimension.pq) group by all) x
    join T(daily_activity.pq) act using (date) join T(daily_spend.pq) sp using (date)
    join T(daily_lines.pq) l using (date)
    join (select * from T(daily_accept_rate.pq) where tool = 'all') ar using (date)
    join (select date, sum(commits) c2 from T(member_daily.pq) group by all) md using (date)
    where x.s != act.sessions or abs(x.sp - sp.spend_usd) > 1e-9 or x.la != l.lines_accepted
      or x.a != ar.accepted or x.r != ar.rejected or x.c != md.c2""",
  "active users per dimension at least the day's": """
    select count(*) from (select date, dimension, sum(active_users) u from T(daily_by_dimension.pq) group by all) x
    join T(daily_activity.pq) act using (date) where x.u < act.active_users""",
  "tool rows over members": """
    select count(*) from (select date, tool, sum(accepted) a, sum(rejected) r from T(member_daily_by_tool.pq) group by all) x
    full join (select * from T(daily_accept_rate.pq) where tool != 'all') t using (date, tool)
    where x.a is distinct from t.accepted or x.r is distinct from t.rejected""",
  "model rows over members": """
    select count(*) from (select date, model, sum(requests) n, sum(spend_usd) s, sum(input_tokens) i,
      sum(cache_read_tokens) cr from T(member_daily_by_model.pq) group by all) x
    full join T(daily_spend_by_model.pq) m using (date, model)
    where x.n is distinct from m.requests or abs(x.s - m.spend_usd) > 1e-9 or x.s is null
      or x.i is distinct from m.input_tokens or x.cr is distinct from m.cache_read_tokens""",
  "adoption's active users": """
    select count(*) from T(daily_adoption.pq) a full join T(daily_activity.pq) d using (date)
    where a.active_users is distinct from d.active_users or a.active_users_28d < a.active_users_7d
      or a.active_users_7d < a.active_users""",
}
bad = [name for name, sql in checks.items() if q(sql)[0][0] != 0]
dims = q("select distinct dimension from T(daily_by_dimension.pq) order by 1")
print("bad:", bad, "dimensions:", dims)
assert not bad and dims == [("cost_center",), ("team",)]
"#;

/// A loader written from the Analytics API's documented response shape: it pages through
/// `data` / `has_more` / `next_page` and flattens each element, the way a warehouse loader for
/// `GET /v1/organizations/usage_report/claude_code` does, then checks the totals against
/// `member_daily` read with pyarrow.
const LOADER: &str = r#"
import json, os, sys, pyarrow.parquet as pq
folder = sys.argv[1]
rows = []
def load_page(page):
    for el in page["data"]:
        actor = el["actor"]
        who = actor.get("email_address") or actor.get("api_key_name") or actor.get("install_id") or "(unattributed)"
        cm = el["core_metrics"]
        rows.append({
            "date": el["date"][:10], "actor_type": actor["type"], "actor": who,
            "sessions": cm["num_sessions"], "lines_added": cm["lines_of_code"]["added"],
            "lines_removed": cm["lines_of_code"]["removed"], "commits": cm["commits_by_claude_code"],
            "prs": cm["pull_requests_by_claude_code"],
            "accepted": sum(t["accepted"] for t in el["tool_actions"].values()),
            "rejected": sum(t["rejected"] for t in el["tool_actions"].values()),
            "cost_cents": sum(m["estimated_cost"]["amount"] for m in el["model_breakdown"]
                              if m["estimated_cost"]["currency"] == "USD"),
            "tokens": sum(sum(m["tokens"].values()) for m in el["model_breakdown"]),
        })
    return page["has_more"], page["next_page"]
files = sorted(os.listdir(folder))
for f in files:
    more, nxt = load_page(json.load(open(os.path.join(folder, f))))
    assert more is False and nxt is None
md = pq.read_table(os.path.join(folder, "..", "member_daily.parquet")).to_pylist()
kinds = {"user": "user_actor", "api_key": "api_actor", "install": "install_actor", "unattributed": "unattributed_actor"}
want = {(str(r["date"]), kinds[r["member_type"]], r["member"]): r for r in md}
got = {(r["date"], r["actor_type"], r["actor"]): r for r in rows}
assert set(got) == set(want), (sorted(set(got) ^ set(want)))[:5]
for k, r in got.items():
    w = want[k]
    assert (r["sessions"], r["lines_added"], r["lines_removed"], r["commits"], r["prs"], r["accepted"], r["rejected"]) == \
        (w["sessions"], w["lines_accepted"], w["lines_removed"], w["commits"], w["pull_requests"], w["accepted"], w["rejected"]), (k, r, w)
    assert abs(r["cost_cents"] - w["spend_usd"] * 100) < 1e-6, (k, r, w)
    assert r["tokens"] == w["input_tokens"] + w["output_tokens"] + w["cache_read_tokens"] + w["cache_creation_tokens"]
print(len(files), "pages,", len(rows), "rows loaded")
"#;

/// The README's example queries (polars and DuckDB) run on `out`, and the two engines agree.
fn readme_examples(out: &Path) {
    let readme = read(repo().join("README.md"));
    let start = readme
        .find("<!-- examples:start -->")
        .expect("examples in the README");
    let block = &readme[start..readme.find("<!-- examples:end -->").unwrap()];
    let code = &block[block.find("```python\n").unwrap() + 10..block.rfind("```").unwrap()];
    let code = code.replace(
        r#"r = "out/reports/admin/""#,
        &format!(r#"r = "{}/reports/admin/""#, out.display()),
    );
    assert!(
        code.contains(&out.display().to_string()),
        "the examples read `r`"
    );
    let script = format!(
        "{code}\n\
         for name in ['team_spend', 'team_spend_sql', 'member_tools', 'member_tools_sql', 'models', 'seats', 'quiet', 'quiet_sql', 'usage']:\n    \
             assert len(globals()[name]) > 0, name\n\
         assert team_spend.rows() == team_spend_sql.rows()\n\
         assert member_tools['accepted'].to_list() == member_tools_sql['accepted'].to_list()\n\
         assert quiet['member'].to_list() == quiet_sql['member'].to_list()\n\
         print('examples ok', len(quiet))\n"
    );
    let ran = python(&script, &[]);
    assert!(ran.contains("examples ok"), "{ran}");
}

#[test]
fn dimension_breakdown_adoption_and_export_agree_with_the_reference_and_the_daily_tables() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path());
    let out = dir.path().join("backfill");
    let cfg = config(dir.path(), &data, &out);
    run(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--from",
            "2026-10-28",
            "--to",
            "2026-11-02",
        ],
        0,
    );
    reference_check_with(
        &data.join("telemetry"),
        &data.join("roster.csv"),
        &out,
        "UTC",
        "admin",
        Some(&cfg),
    );
    python(SUMS, &[&out]);
    let loaded = python(LOADER, &[&out.join("reports/admin/claude_code_usage")]);
    assert!(loaded.starts_with("6 pages"), "{loaded}");
    readme_examples(&out);
    // Members without a team in telemetry or roster (anonymous, unrostered) are under (none).
    let by_dim = read(out.join("reports/admin/daily_by_dimension.csv"));
    assert!(by_dim.contains("2026-10-28,team,(none),"), "{by_dim}");

    // Nightly runs, one date each, give the same bytes for every table and export file.
    let nightly = dir.path().join("nightly");
    let ncfg = config(dir.path(), &data, &nightly);
    for d in [
        "2026-10-28",
        "2026-10-29",
        "2026-10-30",
        "2026-10-31",
        "2026-11-01",
        "2026-11-02",
    ] {
        run(&["run", "--config", ncfg.to_str().unwrap(), "--date", d], 0);
    }
    let (a, b) = (reports(&out), reports(&nightly));
    assert!(a.contains_key("reports/admin/member_daily_by_model.parquet"));
    assert!(a.contains_key("reports/developer/claude_code_usage/2026-11-02.json"));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (k, v) in &a {
        assert!(
            b[k] == *v,
            "{k} differs between the backfill and nightly runs"
        );
    }

    // A run without dimensions writes the two tables empty, with their columns.
    let plain = dir.path().join("plain");
    run(
        &[
            "run",
            "--input",
            data.join("telemetry").to_str().unwrap(),
            "--roster",
            data.join("roster.csv").to_str().unwrap(),
            "--output",
            plain.to_str().unwrap(),
        ],
        0,
    );
    let empty = read(plain.join("reports/admin/monthly_by_dimension.csv"));
    assert_eq!(
        empty,
        "month,dimension,value,active_users,sessions,spend_usd,lines_accepted,accepted,rejected,accept_rate\n"
    );
}

#[test]
fn pseudonymised_folders_carry_no_identity_in_the_new_tables_or_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path());
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &data, &out);
    let policy = admin_and_pseudonymised_developer(dir.path(), "drop = [\"role\"]\n");
    run_in(
        None,
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[("CC_ANALYTICS_PSEUDONYM_KEY", KEY)],
        0,
    );
    // Every identity the admin folder shows, and the roster's aliases.
    let mut identities: Vec<String> = read(out.join("reports/admin/members.csv"))
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .filter(|m| m != "(unattributed)")
        .collect();
    for line in read(data.join("roster.csv")).lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        identities.extend(f[3].split(';').filter(|a| !a.is_empty()).map(String::from));
    }
    assert!(identities.len() > 10, "{identities:?}");
    let dev = out.join("reports/developer");
    let files = walk(&dev);
    assert!(files
        .iter()
        .any(|f| f.ends_with("claude_code_usage/2026-11-02.json")));
    assert!(files.iter().any(|f| f.ends_with("members.parquet")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for id in &identities {
            assert!(!text.contains(id.as_str()), "{} holds {id}", f.display());
        }
    }
    // The pseudonyms are those of HMAC-SHA256(key, member), computed independently, and the
    // export's elements are sorted by them.
    let script = format!(
        r#"
import hmac, hashlib, json, sys
admin = json.load(open(sys.argv[1]))
dev = json.load(open(sys.argv[2]))
def name(a):
    return a.get("email_address") or a.get("api_key_name") or a.get("install_id")
pseudo = lambda m: "m_" + hmac.new(b"{KEY}", m.encode(), hashlib.sha256).hexdigest()[:16]
want = [pseudo(name(e["actor"])) for e in admin["data"] if name(e["actor"])]
got = [name(e["actor"]) for e in dev["data"] if name(e["actor"])]
assert got == sorted(want, key=str.encode) and len(got) > 5, (got, want)
print("ok")
"#
    );
    let d = "claude_code_usage/2026-10-30.json";
    python(&script, &[&out.join("reports/admin").join(d), &dev.join(d)]);
    // `role` is dropped from the developer's members table.
    assert!(!read(dev.join("members.csv"))
        .lines()
        .next()
        .unwrap()
        .contains("role"));
}
