//! `reports/<role>/dashboard.html`: the organisation's Claude Code analytics page, built only
//! from the tables that role may see. One self-contained file: inline SVG charts drawn here,
//! inline CSS, a little inline script for sorting and the month selector; no network.

use std::fmt::Write as _;

use polars::prelude::*;

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

/// A "nice" axis maximum (1, 2 or 5 × 10^k) at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 && ch != '-' {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

const W: f64 = 760.0;
const H: f64 = 280.0;
const ML: f64 = 70.0;
const MR: f64 = 70.0;
const MT: f64 = 16.0;
const MB: f64 = 48.0;
const BLUE: &str = "#1f4e79";
const ORANGE: &str = "#a04a00";
const GREEN: &str = "#2e6b30";
const GREY: &str = "#666666";

struct Series<'a> {
    label: &'a str,
    unit: &'a str,
    values: Vec<f64>,
    color: &'static str,
}

fn x_of(i: usize, n: usize) -> f64 {
    let inner = W - ML - MR;
    if n <= 1 {
        ML + inner / 2.0
    } else {
        ML + inner * (i as f64 + 0.5) / n as f64
    }
}

fn y_axis(out: &mut String, max: f64, x: f64, anchor: &str, label: &str, color: &str) {
    let inner = H - MT - MB;
    // Five segments of a 1/2/5 maximum give round ticks (0.2, 0.4 or 1 × 10^k).
    for k in 0..=5 {
        let v = max * k as f64 / 5.0;
        let y = MT + inner * (1.0 - k as f64 / 5.0);
        let tx = if anchor == "end" { x - 6.0 } else { x + 6.0 };
        let _ = write!(
            out,
            r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" class="tick">{}</text>"#,
            y + 4.0,
            fmt_num(v)
        );
        if anchor == "end" {
            let _ = write!(
                out,
                r#"<line x1="{ML}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/>"#,
                W - MR
            );
        }
    }
    let lx = if anchor == "end" { 16.0 } else { W - 12.0 };
    let _ = write!(
        out,
        r#"<text transform="translate({lx},{:.1}) rotate(-90)" text-anchor="middle" class="axis-label" fill="{color}">{}</text>"#,
        MT + inner / 2.0,
        esc(label)
    );
}

fn x_axis(out: &mut String, days: &[String]) {
    let n = days.len();
    let step = n.div_ceil(8).max(1);
    for (i, d) in days.iter().enumerate() {
        if i % step == 0 || i == n - 1 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                x_of(i, n),
                H - MB + 16.0,
                &d[5..]
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{ML}" x2="{:.1}" y1="{:.1}" y2="{:.1}" class="axis"/><text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-label">Date (month-day)</text>"#,
        W - MR,
        H - MB,
        H - MB,
        ML + (W - ML - MR) / 2.0,
        H - 8.0
    );
}

/// A chart of one per-day series as bars, or two as lines on a left and a right axis.
fn chart(
    id: &str,
    title: &str,
    desc: &str,
    days: &[String],
    left: Series,
    right: Option<Series>,
    bars: bool,
) -> String {
    let mut out = String::new();
    let n = days.len();
    let inner = H - MT - MB;
    let _ = write!(
        out,
        r#"<figure><svg id="{id}" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(title),
        esc(desc)
    );
    let lmax = nice_max(left.values.iter().cloned().fold(0.0, f64::max));
    y_axis(
        &mut out,
        lmax,
        ML,
        "end",
        &format!("{} ({})", left.label, left.unit),
        left.color,
    );
    x_axis(&mut out, days);
    let y = |v: f64, max: f64| MT + inner * (1.0 - v / max);
    if bars {
        let bw = ((W - ML - MR) / n.max(1) as f64 * 0.7).min(40.0);
        for (i, v) in left.values.iter().enumerate() {
            let top = y(*v, lmax);
            let _ = write!(
                out,
                r#"<rect class="pt" data-date="{}" x="{:.1}" y="{top:.1}" width="{bw:.1}" height="{:.1}" fill="{}"><title>{}: {} {}</title></rect>"#,
                days[i],
                x_of(i, n) - bw / 2.0,
                (H - MB - top).max(0.0),
                left.color,
                days[i],
                fmt_num(*v),
                esc(left.unit)
            );
        }
    } else {
        line(&mut out, days, &left, lmax, "pt");
    }
    let mut legend = vec![(left.label, left.color, bars)];
    if let Some(r) = right {
        let rmax = nice_max(r.values.iter().cloned().fold(0.0, f64::max));
        y_axis(
            &mut out,
            rmax,
            W - MR,
            "start",
            &format!("{} ({})", r.label, r.unit),
            r.color,
        );
        line(&mut out, days, &r, rmax, "pt2");
        legend.push((r.label, r.color, false));
    }
    out.push_str("</svg><figcaption class=\"legend\">");
    for (label, color, bar) in legend {
        let mark = if bar { "■" } else { "●" };
        let _ = write!(
            out,
            r#"<span style="color:{color}">{mark}</span> {} "#,
            esc(label)
        );
    }
    out.push_str("</figcaption></figure>");
    out
}

/// A chart of several per-day series as lines on one axis (classes `s0`, `s1`, …).
fn lines_chart(id: &str, title: &str, desc: &str, days: &[String], series: Vec<Series>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure><svg id="{id}" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(title),
        esc(desc)
    );
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().cloned())
            .fold(0.0, f64::max),
    );
    let unit = series.first().map_or("", |s| s.unit);
    y_axis(&mut out, max, ML, "end", unit, "#333");
    x_axis(&mut out, days);
    for (k, s) in series.iter().enumerate() {
        line(&mut out, days, s, max, &format!("s{k}"));
    }
    out.push_str("</svg><figcaption class=\"legend\">");
    for s in &series {
        let _ = write!(
            out,
            r#"<span style="color:{}">●</span> {} "#,
            s.color,
            esc(s.label)
        );
    }
    out.push_str("</figcaption></figure>");
    out
}

fn line(out: &mut String, days: &[String], s: &Series, max: f64, class: &str) {
    let n = days.len();
    let inner = H - MT - MB;
    let pts: Vec<String> = s
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x_of(i, n), MT + inner * (1.0 - v / max)))
        .collect();
    let _ = write!(
        out,
        r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
        pts.join(" "),
        s.color
    );
    for (i, v) in s.values.iter().enumerate() {
        let _ = write!(
            out,
            r#"<circle class="{class}" data-date="{}" cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{}: {} {}</title></circle>"#,
            days[i],
            x_of(i, n),
            MT + inner * (1.0 - v / max),
            s.color,
            days[i],
            fmt_num(*v),
            esc(s.unit)
        );
    }
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

/// Spend, lines and accept rate per value of the `team` dimension (else the first one), summed
/// over the period, from `daily_by_dimension`.
fn dimension_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    const TITLE: &str = "By team";
    let Some(df) = find(
        tables,
        table::DAILY_BY_DIMENSION,
        &[
            c::DIMENSION,
            c::VALUE,
            c::SPEND_USD,
            c::LINES_ACCEPTED,
            c::ACCEPTED,
            c::REJECTED,
        ],
    ) else {
        return Ok(section(TITLE, &unavailable("The team breakdown")));
    };
    let dims = strs(df, c::DIMENSION)?;
    let Some(dim) = dims
        .iter()
        .find(|d| *d == "team")
        .or_else(|| dims.iter().min())
        .cloned()
    else {
        return Ok(section(
            TITLE,
            r#"<p class="na">No dimension is configured (see <code>[dimensions]</code> in the pipeline file).</p>"#,
        ));
    };
    let values = strs(df, c::VALUE)?;
    let (spend, lines) = (f64s(df, c::SPEND_USD)?, f64s(df, c::LINES_ACCEPTED)?);
    let (acc, rej) = (f64s(df, c::ACCEPTED)?, f64s(df, c::REJECTED)?);
    let mut sums = std::collections::BTreeMap::<&str, [f64; 4]>::new();
    for i in (0..dims.len()).filter(|&i| dims[i] == dim) {
        let e = sums.entry(values[i].as_str()).or_default();
        for (k, v) in [spend[i], lines[i], acc[i], rej[i]].into_iter().enumerate() {
            e[k] += v.unwrap_or(0.0);
        }
    }
    let mut order: Vec<(&str, [f64; 4])> = sums.into_iter().collect();
    order.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]).then(a.0.cmp(b.0)));
    let top = order.first().map_or(0.0, |o| o.1[0]).max(f64::MIN_POSITIVE);
    let mut rows = String::new();
    for (value, [s, l, a, r]) in &order {
        let rate = if a + r > 0.0 {
            format!("{:.1}%", a / (a + r) * 100.0)
        } else {
            "no decisions".into()
        };
        let _ = write!(
            rows,
            r#"<tr data-value="{v}"><th scope="row">{v}</th><td data-v="{s}"><span class="rate-bar" style="width:{w:.0}%"></span> ${s:.2}</td><td data-v="{l}">{}</td><td>{rate}</td></tr>"#,
            fmt_num(*l),
            v = esc(value),
            w = s / top * 100.0
        );
    }
    Ok(section(
        &format!("By {}", dim.replace('_', " ")),
        &format!(
            r#"<table id="by-dimension" class="rates"><caption>Spend, lines accepted and accept rate per {d} value, whole period; usage counts under the value it had when it happened</caption><thead><tr><th scope="col">{d}</th><th scope="col">Spend (USD)</th><th scope="col">Lines accepted</th><th scope="col">Accept rate</th></tr></thead><tbody>{rows}</tbody></table>"#,
            d = esc(&dim)
        ),
    ))
}

/// Daily, 7-day and 28-day active users and the roster's seats, from `daily_adoption`.
fn adoption_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    const TITLE: &str = "Adoption";
    let Some(df) = find(
        tables,
        table::DAILY_ADOPTION,
        &[
            c::DATE,
            c::ACTIVE_USERS,
            c::ACTIVE_USERS_7D,
            c::ACTIVE_USERS_28D,
        ],
    ) else {
        return Ok(section(TITLE, &unavailable("Adoption")));
    };
    let days = dates(df, c::DATE)?;
    let mut series = vec![
        Series {
            label: "Active users",
            unit: "users",
            values: values(df, c::ACTIVE_USERS)?,
            color: BLUE,
        },
        Series {
            label: "Active in 7 days",
            unit: "users",
            values: values(df, c::ACTIVE_USERS_7D)?,
            color: ORANGE,
        },
        Series {
            label: "Active in 28 days",
            unit: "users",
            values: values(df, c::ACTIVE_USERS_28D)?,
            color: GREEN,
        },
    ];
    let seats = df
        .column(c::ROSTER_MEMBERS)
        .ok()
        .and_then(|_| f64s(df, c::ROSTER_MEMBERS).ok())
        .filter(|v| v.iter().any(Option::is_some));
    let mut kpi = String::new();
    if let Some(seats) = seats {
        let seats: Vec<f64> = seats.into_iter().map(|v| v.unwrap_or(0.0)).collect();
        let last = seats.last().copied().unwrap_or(0.0);
        if let Ok(active) = f64s(df, c::ROSTER_ACTIVE_28D) {
            let a = active.last().copied().flatten().unwrap_or(0.0);
            let _ = write!(
                kpi,
                r#"<p class="kpi"><span id="seats-used">{}</span> of {} roster seats active in the last 28 days</p>"#,
                fmt_num(a),
                fmt_num(last)
            );
        }
        series.push(Series {
            label: "Roster seats",
            unit: "users",
            values: seats,
            color: GREY,
        });
    }
    Ok(section(
        TITLE,
        &format!(
            "{kpi}{}",
            lines_chart(
                "adoption",
                "Active users per day, in the last 7 and 28 days, and roster seats",
                "Line chart: distinct members active on the day, in the 7 days and in the 28 days ending on it, and the roster's members.",
                &days,
                series,
            )
        ),
    ))
}

/// Roster members with no activity in the 28 days ending on the last stored date, from `members`.
fn quiet_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    const TITLE: &str = "Gone quiet";
    let Some(df) = find(
        tables,
        table::MEMBERS,
        &[c::MEMBER, c::MEMBER_TYPE, c::LAST_ACTIVE, c::IN_ROSTER],
    ) else {
        return Ok(section(TITLE, &unavailable("The list of quiet members")));
    };
    let members = strs(df, c::MEMBER)?;
    let types = strs(df, c::MEMBER_TYPE)?;
    let last: Vec<Option<i32>> = df
        .column(c::LAST_ACTIVE)?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .collect();
    let in_roster: Vec<bool> = df
        .column(c::IN_ROSTER)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let Some(newest) = last.iter().flatten().max().copied() else {
        return Ok(section(
            TITLE,
            r#"<p class="na">No activity stored yet.</p>"#,
        ));
    };
    let mut rows = String::new();
    let mut n = 0;
    for i in 0..members.len() {
        if !in_roster[i] || last[i].is_some_and(|l| l > newest - 28) {
            continue;
        }
        n += 1;
        let when = last[i].map_or_else(
            || "never".to_string(),
            |d| crate::facts::date_of_days(d).to_string(),
        );
        let _ = write!(
            rows,
            r#"<tr><th scope="row">{}</th><td>{}</td><td>{when}</td></tr>"#,
            esc(&members[i]),
            esc(&types[i])
        );
    }
    let through = crate::facts::date_of_days(newest);
    Ok(section(
        TITLE,
        &if n == 0 {
            format!(
                r#"<p id="quiet-none">Every roster member was active in the 28 days to {through}.</p>"#
            )
        } else {
            format!(
                r#"<p class="kpi"><span id="quiet-count">{n}</span> roster members not active in the 28 days to {through}</p><table id="quiet"><thead><tr><th scope="col">Member</th><th scope="col">Type</th><th scope="col">Last active</th></tr></thead><tbody>{rows}</tbody></table>"#
            )
        },
    ))
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

/// Lines of code accepted per day, from `daily_lines`.
fn lines_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(tables, table::DAILY_LINES, &[c::DATE, c::LINES_ACCEPTED]) {
            Some(df) => {
                let days = dates(df, c::DATE)?;
                let v: Vec<f64> = values(df, c::LINES_ACCEPTED)?;
                let total: f64 = v.iter().sum();
                let chart = chart(
                    "lines",
                    "Lines of code accepted per day",
                    "Bar chart: lines of code written by Claude Code and accepted, per day.",
                    &days,
                    Series {
                        label: "Lines accepted",
                        unit: "lines",
                        values: v,
                        color: BLUE,
                    },
                    None,
                    true,
                );
                section(
                    "Lines of code accepted",
                    &format!(
                        r#"<p class="kpi"><span id="lines-total">{}</span> lines accepted in the period</p>{chart}"#,
                        fmt_num(total)
                    ),
                )
            }
            None => section("Lines of code accepted", &unavailable("Lines of code")),
        },
    )
}

/// The suggestion accept rate, overall and per edit tool, from `daily_accept_rate`.
fn rate_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::DAILY_ACCEPT_RATE,
            &[c::TOOL, c::ACCEPTED, c::REJECTED],
        ) {
            Some(df) => {
                let tools = strs(df, c::TOOL)?;
                let acc = f64s(df, c::ACCEPTED)?;
                let rej = f64s(df, c::REJECTED)?;
                let mut sums = std::collections::BTreeMap::<String, (f64, f64)>::new();
                for i in 0..tools.len() {
                    let e = sums.entry(tools[i].clone()).or_default();
                    e.0 += acc[i].unwrap_or(0.0);
                    e.1 += rej[i].unwrap_or(0.0);
                }
                let rate = |t: &str| {
                    sums.get(t)
                        .filter(|(a, r)| a + r > 0.0)
                        .map(|(a, r)| a / (a + r))
                };
                let mut rows = String::new();
                for t in std::iter::once("all").chain(EDIT_TOOLS) {
                    let (a, r) = sums.get(t).copied().unwrap_or_default();
                    let name = if t == "all" {
                        "All code-editing tools"
                    } else {
                        t
                    };
                    let (pct, width) = match rate(t) {
                        Some(x) => (format!("{:.1}%", x * 100.0), x * 100.0),
                        None => ("no decisions".into(), 0.0),
                    };
                    let _ = write!(
                        rows,
                        r#"<tr data-tool="{t}"><th scope="row">{name}</th><td>{}</td><td>{}</td><td><span class="rate-bar" style="width:{width:.0}%"></span> {pct}</td></tr>"#,
                        fmt_num(a),
                        fmt_num(r)
                    );
                }
                section(
                    "Suggestion accept rate",
                    &format!(
                        r#"<p class="kpi"><span id="rate-all">{}</span> of code-editing suggestions accepted</p><table class="rates"><caption>Accepted and rejected suggestions per tool, whole period</caption><thead><tr><th scope="col">Tool</th><th scope="col">Accepted</th><th scope="col">Rejected</th><th scope="col">Accept rate</th></tr></thead><tbody>{rows}</tbody></table>"#,
                        rate("all")
                            .map(|x| format!("{:.1}%", x * 100.0))
                            .unwrap_or_else(|| "—".into())
                    ),
                )
            }
            None => section("Suggestion accept rate", &unavailable("The accept rate")),
        },
    )
}

/// Active users (left axis) and sessions (right) per day, from `daily_activity`.
fn activity_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::DAILY_ACTIVITY,
            &[c::DATE, c::ACTIVE_USERS, c::SESSIONS],
        ) {
            Some(df) => {
                let days = dates(df, c::DATE)?;
                let users = values(df, c::ACTIVE_USERS)?;
                let sessions = values(df, c::SESSIONS)?;
                section(
                "Activity",
                &chart(
                    "activity",
                    "Active users and sessions per day",
                    "Line chart: active users per day on the left axis, sessions per day on the right axis.",
                    &days,
                    Series { label: "Active users", unit: "users", values: users, color: BLUE },
                    Some(Series { label: "Sessions", unit: "sessions", values: sessions, color: ORANGE }),
                    false,
                ),
            )
            }
            None => section("Activity", &unavailable("Activity")),
        },
    )
}

/// Active users (left axis) and spend (right) per day, from `daily_spend`.
fn spend_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::DAILY_SPEND,
            &[c::DATE, c::ACTIVE_USERS, c::SPEND_USD],
        ) {
            Some(df) => {
                let days = dates(df, c::DATE)?;
                let users = values(df, c::ACTIVE_USERS)?;
                let spend: Vec<f64> = values(df, c::SPEND_USD)?;
                let total: f64 = spend.iter().sum();
                section(
                "Spend",
                &format!(
                    r#"<p class="kpi">$<span id="spend-total">{}</span> estimated spend in the period</p>{}"#,
                    fmt_num(total),
                    chart(
                        "spend",
                        "Active users and spend per day",
                        "Line chart: active users per day on the left axis, estimated spend in US dollars per day on the right axis.",
                        &days,
                        Series { label: "Active users", unit: "users", values: users, color: BLUE },
                        Some(Series { label: "Spend", unit: "USD", values: spend, color: ORANGE }),
                        false,
                    )
                ),
            )
            }
            None => section("Spend", &unavailable("Spend")),
        },
    )
}

/// Team insights: every member with spend and lines per month, from `member_monthly`.
fn team_section(tables: &[(&'static str, DataFrame)]) -> Result<String> {
    Ok(
        match find(
            tables,
            table::MEMBER_MONTHLY,
            &[
                c::MONTH,
                c::MEMBER,
                c::MEMBER_TYPE,
                c::SPEND_USD,
                c::LINES_ACCEPTED,
            ],
        ) {
            Some(df) => {
                let months = dates(df, c::MONTH)?;
                let members = strs(df, c::MEMBER)?;
                let types = strs(df, c::MEMBER_TYPE)?;
                let spend = f64s(df, c::SPEND_USD)?;
                let lines = f64s(df, c::LINES_ACCEPTED)?;
                let mut uniq = months.clone();
                uniq.sort();
                uniq.dedup();
                let latest = uniq.last().cloned().unwrap_or_default();
                let mut opts = String::new();
                for m in uniq.iter().rev() {
                    let sel = if *m == latest { " selected" } else { "" };
                    let _ = write!(opts, r#"<option value="{m}"{sel}>{}</option>"#, &m[..7]);
                }
                let mut rows = String::new();
                // Highest spend first, as the header's sort mark says.
                let mut order: Vec<usize> = (0..members.len()).collect();
                order.sort_by(|&a, &b| {
                    months[a]
                        .cmp(&months[b])
                        .then(spend[b].unwrap_or(0.0).total_cmp(&spend[a].unwrap_or(0.0)))
                        .then(members[a].cmp(&members[b]))
                });
                for i in order {
                    let hidden = if months[i] == latest { "" } else { " hidden" };
                    let kind = match types[i].as_str() {
                        "api_key" => "API key",
                        "user" => "User",
                        "install" => "Install",
                        _ => "Unattributed",
                    };
                    let s = spend[i].unwrap_or(0.0);
                    let l = lines[i].unwrap_or(0.0);
                    let _ = write!(
                        rows,
                        r#"<tr data-month="{}"{hidden}><th scope="row">{}</th><td>{kind}</td><td data-v="{s}">${:.2}</td><td data-v="{l}">{}</td></tr>"#,
                        months[i],
                        esc(&members[i]),
                        s,
                        fmt_num(l)
                    );
                }
                section(
                    "Team insights",
                    &format!(
                        r#"<p><label for="month">Month</label> <select id="month">{opts}</select></p><table id="team" class="sortable"><caption>Members: spend and lines accepted this month. API keys are shown by key name, users by email{}.</caption><thead><tr><th scope="col"><button data-col="0">Member</button></th><th scope="col"><button data-col="1">Type</button></th><th scope="col" aria-sort="descending"><button data-col="2">Spend this month (USD)</button></th><th scope="col"><button data-col="3">Lines this month</button></th></tr></thead><tbody>{rows}</tbody></table>"#,
                        if members.iter().any(|m| m.starts_with("m_")) {
                            " or pseudonym"
                        } else {
                            ""
                        }
                    ),
                )
            }
            None => section("Team insights", &unavailable("Team insights")),
        },
    )
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
