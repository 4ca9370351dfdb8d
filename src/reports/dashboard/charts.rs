//! The page's charts: inline SVG drawn here (axes with round ticks, bars, lines), with titles
//! and descriptions for screen readers, and the page's colours.

use std::fmt::Write as _;

use super::esc;

/// A "nice" axis maximum (1, 2 or 5 × 10^k) at or above `v`.
pub(super) fn nice_max(v: f64) -> f64 {
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

pub(super) fn fmt_num(v: f64) -> String {
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

pub(super) const W: f64 = 760.0;
pub(super) const H: f64 = 280.0;
pub(super) const ML: f64 = 70.0;
pub(super) const MR: f64 = 70.0;
pub(super) const MT: f64 = 16.0;
pub(super) const MB: f64 = 48.0;
pub(super) const BLUE: &str = "#1f4e79";
pub(super) const ORANGE: &str = "#a04a00";
pub(super) const GREEN: &str = "#2e6b30";
pub(super) const GREY: &str = "#666666";

pub(super) struct Series<'a> {
    pub(super) label: &'a str,
    pub(super) unit: &'a str,
    pub(super) values: Vec<f64>,
    pub(super) color: &'static str,
}

pub(super) fn x_of(i: usize, n: usize) -> f64 {
    let inner = W - ML - MR;
    if n <= 1 {
        ML + inner / 2.0
    } else {
        ML + inner * (i as f64 + 0.5) / n as f64
    }
}

pub(super) fn y_axis(out: &mut String, max: f64, x: f64, anchor: &str, label: &str, color: &str) {
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

pub(super) fn x_axis(out: &mut String, days: &[String]) {
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
pub(super) fn chart(
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
pub(super) fn lines_chart(
    id: &str,
    title: &str,
    desc: &str,
    days: &[String],
    series: Vec<Series>,
) -> String {
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

pub(super) fn line(out: &mut String, days: &[String], s: &Series, max: f64, class: &str) {
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
