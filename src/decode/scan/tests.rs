//! The scanner against serde: on every line it accepts, the same flat document as serde's
//! parse; every line serde refuses, it refuses too. Real lines (the sample data), edge cases
//! one by one, and lines mutated at random.

use std::fmt::Write;

use super::super::depth::too_deep;
use super::super::flat::{Flat, Span};
use super::super::values::{AnyValue, Num};
use super::super::wire::{Doc, KeyValue};
use super::scan;

/// The document as its walk sees it, values spelled exactly (floats by their bits).
fn view(f: &Flat<'_>) -> String {
    fn num(n: &Option<Num<'_>>) -> String {
        match n {
            None => "-".into(),
            Some(Num::Int(i)) => format!("i{i}"),
            Some(Num::Float(x)) => format!("f{:x}", x.to_bits()),
            Some(Num::Str(s)) => format!("s{s:?}"),
        }
    }
    fn value(v: &AnyValue<'_>) -> String {
        match v {
            AnyValue::Absent => "absent".into(),
            AnyValue::Str(s) => format!("str{s:?}"),
            AnyValue::Int(n) => format!("int{}", num(&Some(n.clone()))),
            AnyValue::Double(n) => format!("dbl{}", num(&Some(n.clone()))),
            AnyValue::Bool(b) => format!("bool{b}"),
            AnyValue::Raw(r) => format!("raw{r:?}"),
        }
    }
    fn attrs(out: &mut String, a: &[KeyValue<'_>]) {
        for kv in a {
            write!(out, " {:?}={}", kv.key, value(&kv.value)).unwrap();
        }
    }
    let mut out = format!("logs={} metrics={}\n", f.has_logs, f.has_metrics);
    let span = |s: Span| s.range();
    for r in &f.log_resources {
        out += "resource";
        attrs(&mut out, f.attrs(r.attrs));
        out += "\n";
        for s in &f.scopes[span(r.children)] {
            writeln!(out, " scope {:?}", s.name).unwrap();
            for l in &f.logs[span(s.records)] {
                let body = l.body.as_ref().map_or("-".into(), value);
                write!(
                    out,
                    "  log t={} o={} body={body}",
                    num(&l.time_unix_nano),
                    num(&l.observed_time_unix_nano)
                )
                .unwrap();
                attrs(&mut out, f.attrs(l.attrs));
                out += "\n";
            }
        }
    }
    for r in &f.metric_resources {
        out += "resource";
        attrs(&mut out, f.attrs(r.attrs));
        out += "\n";
        for m in &f.metrics[span(r.children)] {
            write!(out, " metric {:?}", m.name).unwrap();
            match m.chosen {
                None => out += " none\n",
                Some(c) => {
                    writeln!(out, " t={} v={}", c.temporality, c.value_points).unwrap();
                    for p in &f.points[span(c.points)] {
                        write!(
                            out,
                            "  point s={} t={} d={} i={}",
                            num(&p.start_time_unix_nano),
                            num(&p.time_unix_nano),
                            num(&p.as_double),
                            num(&p.as_int)
                        )
                        .unwrap();
                        attrs(&mut out, f.attrs(p.attrs));
                        out += "\n";
                    }
                }
            }
        }
    }
    out
}

/// What the serde path makes of a line (`None`: quarantined).
fn by_serde(line: &str) -> Option<Flat<'_>> {
    if too_deep(line.as_bytes()) {
        return None;
    }
    serde_json::from_str::<Doc>(line).ok().map(Flat::from_doc)
}

/// The scanner agrees with serde on `line`: same document, or leaves the line to serde.
/// Returns whether the scanner took it.
fn agrees(line: &str) -> bool {
    match scan(line) {
        None => false,
        Some(f) => {
            let Some(g) = by_serde(line) else {
                panic!("the scanner accepted a line serde refuses: {line}")
            };
            assert_eq!(view(&f), view(&g), "{line}");
            true
        }
    }
}

fn sample_lines() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs =
        vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/telemetry")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p)
            } else {
                files.push(p)
            }
        }
    }
    files.sort();
    let mut lines = Vec::new();
    for f in files.iter().step_by(7) {
        let d = crate::source::decompress(&std::fs::read(f).unwrap());
        let text = String::from_utf8(d.data).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    lines
}

const LOG: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}},{"key":"team.id","value":{"stringValue":"payments"}}]},"scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events","version":"2.1"},"logRecords":[{"timeUnixNano":"1791447318137000000","observedTimeUnixNano":1791447318137000000,"body":{"stringValue":"claude_code.api_request"},"attributes":[{"key":"session.id","value":{"stringValue":"s1"}},{"key":"event.sequence","value":{"intValue":"15"}},{"key":"input_tokens","value":{"intValue":2}},{"key":"cost_usd","value":{"doubleValue":0.00276519}},{"key":"ok","value":{"boolValue":true}},{"key":"list","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}}],"droppedAttributesCount":0,"traceId":""}]}]}]}"#;

const METRIC: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}}]},"scopeMetrics":[{"scope":{"name":"com.anthropic.claude_code"},"metrics":[{"name":"claude_code.cost.usage","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s1"}},{"key":"model","value":{"stringValue":"m"}}],"startTimeUnixNano":"1791447318000000000","timeUnixNano":"1791447378000000000","asDouble":0.5}],"aggregationTemporality":2,"isMonotonic":true}},{"name":"claude_code.lines_of_code.count","gauge":{"dataPoints":[{"timeUnixNano":"1791447378000000000","asInt":"7"}]},"histogram":{"dataPoints":[{"bucketCounts":["1"]}]}},{"name":"h","histogram":{"dataPoints":[{"timeUnixNano":"1791447378000000000","bucketCounts":["1","2"],"explicitBounds":[1.5]}]}}]}]}]}"#;

#[test]
fn takes_every_line_of_the_sample_data_and_agrees_with_serde() {
    let lines = sample_lines();
    assert!(lines.len() > 100, "{} lines", lines.len());
    for l in &lines {
        assert!(agrees(l), "the scanner left a sample line to serde: {l}");
    }
}

#[test]
fn takes_the_shapes_it_knows_and_agrees_with_serde() {
    let cases = [
        LOG.to_string(),
        METRIC.to_string(),
        // Whitespace everywhere JSON allows it.
        format!(" \t{}\r\n", LOG.replace(',', " ,\n ").replace(':', " : ")),
        // Escaped values (unescaped by serde_json), a surrogate pair, non-ASCII text.
        LOG.replace(r#""s1""#, r#""s\"1\\ \u00e9 \ud83d\ude00 é/\/""#),
        LOG.replace(r#""2.1""#, r#""\u12ab\n""#),
        // Absent and null where serde takes them: no body, null body, no attributes, null
        // numbers and values, a null list of resources.
        LOG.replace(r#""body":{"stringValue":"claude_code.api_request"},"#, ""),
        LOG.replace(r#"{"stringValue":"claude_code.api_request"}"#, "null"),
        LOG.replace(
            r#""timeUnixNano":"1791447318137000000""#,
            r#""timeUnixNano":null"#,
        ),
        LOG.replace(
            r#"{"intValue":2}"#,
            r#"{"intValue":null,"stringValue":"3"}"#,
        ),
        LOG.replace(r#"{"intValue":2}"#, "{}"),
        LOG.replace(
            r#"{"key":"ok","value":{"boolValue":true}},"#,
            r#"{"key":"ok"},"#,
        ),
        r#"{"resourceLogs":null,"resourceMetrics":[]}"#.into(),
        r#"{"other":1}"#.into(),
        // Numbers serde reads in its own ways: booleans as text, negative and long integers,
        // exponents, -0.
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":true}"#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":-2}"#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":-0}"#),
        LOG.replace(
            r#"{"intValue":2}"#,
            r#"{"intValue":123456789012345678901234}"#,
        ),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":9223372036854775807}"#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":1.5e3}"#),
        LOG.replace("0.00276519", "2.5E-7"),
        // Several kinds in one value: the highest ranked wins, as in serde.
        LOG.replace(
            r#"{"intValue":2}"#,
            r#"{"boolValue":false,"intValue":2,"doubleValue":1}"#,
        ),
        // Unknown fields of every type, nested.
        LOG.replace(
            r#""traceId":"""#,
            r#""x":{"a":[1,{"b":null}],"c":"\"}"},"y":[[],{}]"#,
        ),
        // A sum's temporality; gauges and histograms.
        METRIC.replace(
            r#""aggregationTemporality":2"#,
            r#""aggregationTemporality":"2""#,
        ),
        METRIC.replace(
            r#""aggregationTemporality":2"#,
            r#""aggregationTemporality":1"#,
        ),
    ];
    for c in &cases {
        assert!(agrees(c), "the scanner left a known shape to serde: {c}");
    }
}

#[test]
fn leaves_to_serde_what_serde_refuses_or_reads_its_own_way() {
    let deep = format!(
        r#"{{"resourceLogs":[],"x":{}1{}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let cases = [
        // Invalid JSON.
        LOG.replace("}]}]}]}", "}]}]}],}"),
        LOG.replace(r#""s1""#, "\"s\u{1}1\""),
        LOG.replace(r#""s1""#, r#""s\x1""#),
        LOG.replace(r#""s1""#, r#""s\u12""#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":02}"#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":1.}"#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":nul}"#),
        format!("{LOG} x"),
        format!("{LOG}{LOG}"),
        LOG[..LOG.len() - 3].to_string(),
        // JSON serde refuses: a duplicate field, null lists, wrong types.
        LOG.replace(r#""observedTimeUnixNano""#, r#""timeUnixNano""#),
        LOG.replace(r#"{"intValue":2}"#, r#"{"intValue":2,"intValue":3}"#),
        LOG.replace(r#""droppedAttributesCount":0,"#, r#""attributes":null,"#),
        LOG.replace(r#""key":"session.id","#, ""),
        LOG.replace(r#"{"stringValue":"s1"}"#, "null"),
        LOG.replace(r#"{"stringValue":"s1"}"#, r#"{"stringValue":1}"#),
        LOG.replace(
            r#""name":"com.anthropic.claude_code.events""#,
            r#""name":null"#,
        ),
        // Lone surrogates: serde refuses them in strings it keeps.
        LOG.replace(r#""s1""#, r#""\ud800""#),
        // Shapes serde reads its own way: a struct as an array, an escaped key.
        LOG.replace(
            r#""resource":{"attributes""#,
            r#""resource":[],"z":{"attributes""#,
        ),
        LOG.replace(r#""resourceLogs""#, r#""resource\u004cogs""#),
        r#"[null,null]"#.into(),
        // Nesting past the limit (`too_deep` refuses it).
        deep,
    ];
    for c in &cases {
        assert!(
            !agrees(c),
            "the scanner took a line it must leave to serde: {c}"
        );
    }
}

/// Tokens that break or bend JSON where they land.
const INSERTS: &[&str] = &[
    "null",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "\\",
    "\\u00",
    "\\ud800",
    "-0",
    "1e5",
    "01",
    "true",
    " ",
    "é",
    "\"key\":\"k\",",
    "\"attributes\":null,",
    "\"resource\":{},",
    "{}",
    "[]",
    "\"timeUnixNano\":1,",
    "\"value\":{},",
    "\"stringValue\":\"x\",",
    "1.5",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_lines_agree_with_serde(
        base in 0usize..2,
        edits in proptest::collection::vec((0usize..3, 0usize..5000, 0usize..40, 0usize..INSERTS.len()), 1..4),
    ) {
        let mut line = [LOG, METRIC][base].to_string();
        for (kind, at, len, ins) in edits {
            let at = at % (line.len() + 1);
            if !line.is_char_boundary(at) {
                continue;
            }
            let end = (at + len).min(line.len());
            match kind {
                0 => line.insert_str(at, INSERTS[ins]),
                1 if line.is_char_boundary(end) => line.replace_range(at..end, ""),
                2 if line.is_char_boundary(end) => {
                    let piece = line[at..end].to_string();
                    line.insert_str(end, &piece);
                }
                _ => {}
            }
        }
        agrees(&line);
    }

    #[test]
    fn numbers_are_read_as_serde_reads_them(
        text in r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
    ) {
        let line = METRIC.replace("0.5", &text).replace(r#""7""#, &text);
        // Out of f64's range serde refuses the number: so does the scanner.
        proptest::prop_assert_eq!(agrees(&line), by_serde(&line).is_some(), "{}", line);
    }
}

proptest::proptest! {
    #[test]
    fn the_word_scan_finds_the_first_special_byte(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        plain in 0usize..40,
    ) {
        // Runs of plain bytes first, so that the special byte falls in any lane of a word.
        let mut b = vec![b'a'; plain];
        b.extend(bytes);
        let want = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        proptest::prop_assert_eq!(super::to_special(&b), want);
    }
}
