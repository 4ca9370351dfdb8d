//! `reports/<role>/dashboard.html`: the organisation's Claude Code analytics page, built only
//! from the tables that role may see. One self-contained file: inline SVG charts drawn here,
//! inline CSS, a little inline script for sorting and the month selector; no network.

use polars::prelude::*;

mod charts;
mod sections;

use charts::*;
use sections::*;

use crate::error::Result;
use crate::schema::{col as c, table, EDIT_TOOLS};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The table `name` when the role sees it with every column in `cols` (a policy may `drop`
/// columns: a section without its columns is shown as not available).
fn find<'a>(
    tables: &'a [(&'static str, DataFrame)],
    name: &str,
    cols: &[&str],
) -> Option<&'a DataFrame> {
    tables
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| d)
        .filter(|d| cols.iter().all(|c| d.column(c).is_ok()))
}

fn dates(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let s = df.column(name)?.cast(&DataType::String)?;
    Ok(s.str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

fn f64s(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let s = df.column(name)?.cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

/// A numeric column as chart values (missing = 0).
fn values(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    Ok(f64s(df, name)?
        .into_iter()
        .map(|x| x.unwrap_or(0.0))
        .collect())
}

fn strs(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

fn section(title: &str, body: &str) -> String {
    format!("<section><h2>{}</h2>{body}</section>", esc(title))
}

fn unavailable(what: &str) -> String {
    format!(
        r#"<p class="na">{} is not available to this role.</p>"#,
        esc(what)
    )
}

/// The page's only script. The page's Content-Security-Policy allows this script by its hash and
/// no other: even a string that escaped the escaping could not run, nor load anything.
const SCRIPT: &str = r#"
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); document.body.dataset.errors = errors.join(" | "); });
  var team = document.getElementById("team");
  var month = document.getElementById("month");
  if (team && month) {
    month.addEventListener("change", function () {
      team.querySelectorAll("tbody tr").forEach(function (r) { r.hidden = r.dataset.month !== month.value; });
    });
    team.querySelectorAll("thead button").forEach(function (b) {
      b.addEventListener("click", function () {
        var col = +b.dataset.col, th = b.parentNode;
        var desc = th.getAttribute("aria-sort") !== "descending";
        team.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", desc ? "descending" : "ascending");
        var body = team.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          var vx = x.dataset.v !== undefined ? +x.dataset.v : x.textContent;
          var vy = y.dataset.v !== undefined ? +y.dataset.v : y.textContent;
          var r = vx < vy ? -1 : vx > vy ? 1 : 0;
          return desc ? -r : r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  document.body.dataset.ready = "1";
})();
"#;

/// `sha256-<base64>` of [`SCRIPT`], as a CSP source.
fn script_hash() -> String {
    use sha2::{Digest, Sha256};
    format!("sha256-{}", base64(&Sha256::digest(SCRIPT.as_bytes())))
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Builds the page for `role` from its tables.
pub fn render(
    role: &str,
    tables: &[(&'static str, DataFrame)],
    tz: &str,
    built_at: &str,
) -> Result<String> {
    let mut all_days: Vec<String> = Vec::new();
    for (_, df) in tables {
        if df.get_column_names().iter().any(|n| n.as_str() == c::DATE) {
            all_days.extend(dates(df, c::DATE)?);
        }
    }
    all_days.sort();
    all_days.dedup();
    let range = match (all_days.first(), all_days.last()) {
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => "no data".into(),
    };

    let sections = [
        lines_section,
        rate_section,
        activity_section,
        spend_section,
        team_section,
        dimension_section,
        adoption_section,
        quiet_section,
    ];
    let mut body = String::new();
    for section in sections {
        body += &section(tables)?;
    }
    page(role, tz, built_at, &range, &body)
}

/// The whole document around the sections: header, styles, the script and its policy.
fn page(role: &str, tz: &str, built_at: &str, range: &str, body: &str) -> Result<String> {
    Ok(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src '{script_hash}'; img-src data:; form-action 'none'; base-uri 'none'">
<title>Claude Code analytics — {role_e}</title>
<style>
body {{ font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a; background: #fff; margin: 0 auto; max-width: 820px; padding: 24px; }}
h1 {{ font-size: 1.6em; margin: 0 0 4px; }} h2 {{ font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid #ccc; }}
.meta {{ color: #444; margin: 0; }} .kpi {{ font-size: 1.1em; }} .kpi span {{ font-weight: 700; font-size: 1.4em; }}
figure {{ margin: 0; }} svg {{ width: 100%; height: auto; }} .tick {{ font-size: 11px; fill: #333; }}
.axis-label {{ font-size: 12px; font-weight: 600; }} .grid {{ stroke: #e3e3e3; }} .axis {{ stroke: #555; }}
.legend {{ font-size: 13px; }} table {{ border-collapse: collapse; width: 100%; margin: 8px 0; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #ddd; }}
#team {{ table-layout: fixed; }} #team tbody th {{ word-break: break-all; font-weight: 500; }}
#team thead th:nth-child(1) {{ width: 50%; }} #team thead th:nth-child(2) {{ width: 14%; }} td[data-v], .rates td {{ text-align: right; }}
caption {{ text-align: left; color: #444; font-size: 13px; padding-bottom: 4px; }}
thead th button {{ font: inherit; font-weight: 700; border: 0; background: none; padding: 0; cursor: pointer; color: #1a1a1a; text-decoration: underline dotted; }}
.rate-bar {{ display: inline-block; height: 10px; background: {BLUE}; vertical-align: middle; max-width: 120px; }}
.na {{ color: #555; font-style: italic; }}
@media print {{ body {{ max-width: none; padding: 0; }} section {{ break-inside: avoid; }} select, button {{ border: 0; }} }}
</style>
</head>
<body>
<header>
<h1>Claude Code analytics</h1>
<p class="meta">Role: <strong>{role_e}</strong> · Dates: <strong id="range">{range}</strong> · Time zone: <strong>{tz_e}</strong> · Built: {built}</p>
<p class="meta">Spend figures are estimates reported by Claude Code, in US dollars.</p>
</header>
<main>
{body}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        role_e = esc(role),
        tz_e = esc(tz),
        built = esc(built_at),
        script_hash = script_hash(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_hash_is_base64_of_sha256() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let page = render("admin", &[], "UTC", "now").unwrap();
        assert!(page.contains(&format!("script-src '{}'", script_hash())));
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(!page.contains("unsafe-inline'; img") && !page.contains("script-src 'unsafe"));
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(1.23456), "1.23");
    }

    #[test]
    fn page_shows_only_what_the_role_may_see() {
        let daily_spend = DataFrame::new_infer_height(vec![
            Column::new("date".into(), [20_000i32, 20_001])
                .cast(&DataType::Date)
                .unwrap(),
            Column::new("active_users".into(), [2i64, 3]),
            Column::new("spend_usd".into(), [1.5f64, 2.25]),
        ])
        .unwrap();
        let html = render(
            "billing",
            &[(table::DAILY_SPEND, daily_spend)],
            "UTC",
            "now",
        )
        .unwrap();
        assert_eq!(
            html.matches(r#"<circle class="pt" "#).count(),
            2,
            "one user point per day"
        );
        assert_eq!(
            html.matches(r#"<circle class="pt2" "#).count(),
            2,
            "one spend point per day"
        );
        assert!(html.contains(r#"<span id="spend-total">3.75</span>"#));
        assert!(html.contains("Team insights is not available to this role."));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no network references"
        );
    }

    #[test]
    fn quiet_members_are_roster_members_idle_for_28_days_and_teams_sum_the_period() {
        let day = |d: i32| Some(20_000 + d);
        let members = DataFrame::new_infer_height(vec![
            Column::new("member".into(), ["a", "b", "c", "d", "e"]),
            Column::new("member_type".into(), ["user"; 5]),
            Column::new(
                "last_active".into(),
                [day(30), day(2), day(3), None, day(1)],
            )
            .cast(&DataType::Date)
            .unwrap(),
            Column::new("in_roster".into(), [true, true, true, true, false]),
        ])
        .unwrap();
        let by_dim = DataFrame::new_infer_height(vec![
            Column::new("date".into(), [20_000i32, 20_001, 20_001, 20_001])
                .cast(&DataType::Date)
                .unwrap(),
            Column::new("dimension".into(), ["cost_center", "team", "team", "team"]),
            Column::new("value".into(), ["x", "pay", "pay", "web"]),
            Column::new("spend_usd".into(), [9.0, 1.0, 2.0, 0.5]),
            Column::new("lines_accepted".into(), [1i64, 2, 3, 4]),
            Column::new("accepted".into(), [1i64, 3, 0, 0]),
            Column::new("rejected".into(), [0i64, 1, 0, 0]),
        ])
        .unwrap();
        let html = render(
            "admin",
            &[
                (table::MEMBERS, members),
                (table::DAILY_BY_DIMENSION, by_dim),
            ],
            "UTC",
            "now",
        )
        .unwrap();
        // 28 days ending on day 30 are days 3 … 30: b (day 2) and d (never) are quiet, c is not,
        // e is not in the roster.
        assert!(
            html.contains(r#"<span id="quiet-count">2</span>"#),
            "{html}"
        );
        let list = &html[html.find(r#"<table id="quiet""#).unwrap()..];
        assert!(list.contains(">b<") && list.contains(">d<") && !list.contains(">c<"));
        // The team dimension is preferred; its values summed over the period, by spend.
        assert!(html.contains("<h2>By team</h2>"));
        let t = &html[html.find(r#"<table id="by-dimension""#).unwrap()..];
        let (pay, web) = (
            t.find(r#"data-value="pay""#).unwrap(),
            t.find(r#"data-value="web""#).unwrap(),
        );
        assert!(pay < web);
        assert!(t.contains("$3.00") && t.contains("75.0%") && !t.contains(r#"data-value="x""#));
    }
}
