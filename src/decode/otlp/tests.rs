//! Unit tests of the decoder: number encodings, time fallbacks, rejected records and lines,
//! and hostile input (deep nesting, unusable values).

mod decoding {
    use super::super::*;
    use crate::decode::model::CUMULATIVE;
    use crate::decode::values::Num;
    use std::borrow::Cow;

    fn ctx() -> DecodeContext {
        DecodeContext::new(chrono_tz::UTC, max_time_for(1_800_000_000_000_000_000))
    }

    const LOG: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}},{"key":"user.email","value":{"stringValue":"res@example.com"}}]},"scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events"},"logRecords":[{"timeUnixNano":"1791447318137000000","observedTimeUnixNano":"1791447318137000000","body":{"stringValue":"claude_code.api_request"},"attributes":[{"key":"session.id","value":{"stringValue":"s1"}},{"key":"user.email","value":{"stringValue":"dev@example.com"}},{"key":"event.name","value":{"stringValue":"api_request"}},{"key":"event.sequence","value":{"intValue":"15"}},{"key":"model","value":{"stringValue":"claude-haiku-5-5"}},{"key":"input_tokens","value":{"intValue":2}},{"key":"output_tokens","value":{"stringValue":"4"}},{"key":"cache_read_tokens","value":{"doubleValue":9179}},{"key":"cost_usd","value":{"doubleValue":0.00276519}},{"key":"cost_usd_micros","value":{"intValue":"2765"}}]}]}]}]}"#;

    #[test]
    fn int64_strings_are_read_exactly_or_refused() {
        let n = |s: &'static str| Num::Str(Cow::Borrowed(s)).as_i64();
        assert_eq!(n("1793526301000000000"), Some(1_793_526_301_000_000_000));
        assert_eq!(n("9223372036854775807"), Some(i64::MAX));
        assert_eq!(n("9223372036854775808"), None);
        assert_eq!(n("99999999999999999999"), None);
        assert_eq!(n("007"), Some(7));
        assert_eq!(n(" 12 "), Some(12));
        assert_eq!(n("-5"), Some(-5));
        assert_eq!(n("1e3"), Some(1000));
        assert_eq!(n("1.5"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn decodes_api_request_with_mixed_number_encodings() {
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, LOG).unwrap();
        let r = &d.records;
        assert_eq!(r.len(), 1);
        assert_eq!(r.kind[0], EVENT);
        assert_eq!(r.name[0], sym::API_REQUEST);
        assert_eq!(r.time_ns[0], 1_791_447_318_137_000_000);
        // Record attribute wins over the resource attribute.
        assert_eq!(d.dict.resolve(r.email[0]), "dev@example.com");
        assert_eq!(d.dict.resolve(r.session[0]), "s1");
        assert_eq!(r.input_tokens[0], Some(2));
        assert_eq!(r.output_tokens[0], Some(4));
        assert_eq!(r.cache_read_tokens[0], Some(9179));
        assert_eq!(r.cache_creation_tokens[0], None);
        assert_eq!(r.cost[0], Some(0.00276519));
        assert_eq!(d.counts.records_parsed, 1);
    }

    #[test]
    fn cost_falls_back_to_micros() {
        let line = LOG.replace(
            r#"{"key":"cost_usd","value":{"doubleValue":0.00276519}},"#,
            "",
        );
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.cost[0], Some(0.002765));
    }

    #[test]
    fn event_time_falls_back_to_event_timestamp_then_observed() {
        let line = LOG
            .replace(r#""timeUnixNano":"1791447318137000000","#, r#""timeUnixNano":"0","#)
            .replace(
                r#"{"key":"event.name""#,
                r#"{"key":"event.timestamp","value":{"stringValue":"2026-10-08T08:15:00.000Z"}},{"key":"event.name""#,
            );
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.time_ns[0], 1_791_447_300_000_000_000);
        let line = LOG.replace(r#""timeUnixNano":"1791447318137000000","#, "");
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.time_ns[0], 1_791_447_318_137_000_000);
    }

    #[test]
    fn rejects_bad_cost_and_old_time_but_keeps_line() {
        let line = LOG.replace(r#"{"doubleValue":0.00276519}"#, r#"{"stringValue":"lots"}"#);
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(3, &line).unwrap();
        assert_eq!(d.records.len(), 0);
        assert_eq!(d.rejected, vec![(3, Reason::BadNumber)]);
        let line = LOG.replace(r#"{"doubleValue":0.00276519}"#, r#"{"doubleValue":-1.5}"#);
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.rejected, vec![(0, Reason::NegativeValue)]);
        let line = LOG.replace("1791447318137000000", "1000000000000000000");
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.rejected, vec![(0, Reason::TimeOutOfRange)]);
    }

    #[test]
    fn non_json_and_non_otlp_lines_are_errors() {
        let mut d = ObjectDecoder::new(ctx());
        assert_eq!(
            d.decode_line(0, "{not json").unwrap_err().0,
            Reason::InvalidJson
        );
        assert_eq!(
            d.decode_line(0, r#"{"a":1}"#).unwrap_err().0,
            Reason::NotOtlp
        );
        assert_eq!(
            d.decode_line(0, "[1,2]").unwrap_err().0,
            Reason::InvalidJson
        );
    }

    #[test]
    fn records_of_other_services_are_ignored() {
        let line = LOG
            .replace("claude_code.api_request", "other.thing")
            .replace("com.anthropic.claude_code.events", "io.other");
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, &line).unwrap();
        assert_eq!(d.records.len(), 0);
        assert_eq!(d.counts.records_ignored, 1);
        let m = r#"{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"metrics":[{"name":"http.server.duration","sum":{"dataPoints":[{"timeUnixNano":"1791447318000000000","asInt":"1"}],"aggregationTemporality":1}},{"name":"claude_code.commit.count","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s"}}],"startTimeUnixNano":1791447258000000000,"timeUnixNano":1791447318000000000,"asInt":"2"}],"aggregationTemporality":2}}]}]}]}"#;
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, m).unwrap();
        assert_eq!(d.counts.records_parsed, 2);
        assert_eq!(d.counts.records_ignored, 1);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.records.name[0], sym::M_COMMIT);
        assert_eq!(d.records.temporality[0], CUMULATIVE);
        assert_eq!(d.records.value[0], 2.0);
        assert_eq!(d.records.start_ns[0], 1_791_447_258_000_000_000);
    }

    #[test]
    fn legacy_tool_attribute_and_attribute_order_do_not_matter() {
        let a = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"claude_code.code_edit_tool.decision","sum":{"dataPoints":[{"attributes":[{"key":"tool","value":{"stringValue":"MultiEdit"}},{"key":"decision","value":{"stringValue":"accept"}}],"timeUnixNano":"1791447318000000000","asDouble":3}],"aggregationTemporality":1}}]}]}]}"#;
        let b = a.replace(
            r#"{"key":"tool","value":{"stringValue":"MultiEdit"}},{"key":"decision","value":{"stringValue":"accept"}}"#,
            r#"{"key":"decision","value":{"stringValue":"accept"}},{"key":"tool","value":{"stringValue":"MultiEdit"}}"#,
        );
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, a).unwrap();
        d.decode_line(1, &b).unwrap();
        assert_eq!(d.records.tool[0], sym::MULTI_EDIT);
        assert_eq!(d.records.decision[0], sym::ACCEPT);
        assert_eq!(d.records.dkey[0], d.records.dkey[1]);
        assert_eq!(d.records.series[0], d.records.series[1]);
    }

    #[test]
    fn local_day_follows_dst_in_los_angeles() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        // 2026-03-08 is the spring-forward day (UTC-8 before 02:00, UTC-7 after).
        // 2026-03-09T07:30Z = 2026-03-09T00:30-07:00 → March 9 (a fixed -8 would say March 8).
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-09T07:30:00Z").unwrap();
        let day = local_day(&la, t.timestamp_nanos_opt().unwrap());
        let mar8 = (chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32;
        assert_eq!(day, mar8 + 1);
        // 2026-03-08T07:30Z = 2026-03-07T23:30-08:00 → March 7 (PST still in force).
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-08T07:30:00Z").unwrap();
        assert_eq!(local_day(&la, t.timestamp_nanos_opt().unwrap()), mar8 - 1);
    }
}

mod hostile {
    use super::super::*;
    use crate::decode::depth::{too_deep_from, Scan};
    use proptest::prelude::*;

    fn ctx() -> DecodeContext {
        DecodeContext::new(chrono_tz::UTC, i64::MAX)
    }

    const SAMPLE: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"user.email","value":{"stringValue":"a@b"}}]},"scopeMetrics":[{"metrics":[{"name":"claude_code.cost.usage","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s"}},{"key":"model","value":{"intValue":"7"}}],"startTimeUnixNano":"1791447258000000000","timeUnixNano":"1791447318000000000","asDouble":0.5}],"aggregationTemporality":2}}]}]}],"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1791447318137000000","body":{"stringValue":"claude_code.api_request"},"attributes":[{"key":"event.sequence","value":{"intValue":"1"}},{"key":"cost_usd","value":{"doubleValue":1e308}},{"key":"input_tokens","value":{"stringValue":"-3"}}]}]}]}]}"#;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let mut d = ObjectDecoder::new(ctx());
            let _ = d.decode_line(0, &s);
        }

        /// Mutations of a valid line (bytes replaced, cut, duplicated) never panic it, and
        /// every record it reads is accounted for.
        #[test]
        fn mutated_otlp_never_panics(pos in 0usize..SAMPLE.len(), len in 0usize..40, with in "[\\[\\]{}\":,0-9a-zA-Z.\\-]{0,12}") {
            let mut s = SAMPLE.as_bytes().to_vec();
            let end = (pos + len).min(s.len());
            s.splice(pos..end, with.bytes());
            if let Ok(line) = std::str::from_utf8(&s) {
                let mut d = ObjectDecoder::new(ctx());
                if d.decode_line(0, line).is_ok() {
                    prop_assert_eq!(
                        d.counts.records_parsed,
                        d.records.len() as u64 + d.counts.records_ignored + d.counts.records_rejected
                    );
                }
            }
        }
    }

    /// The byte-by-byte scan `too_deep` replaced: the reference it must agree with.
    fn too_deep_reference(b: &[u8]) -> bool {
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        for &c in b {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(3000))]
        #[test]
        fn depth_scan_agrees_with_the_byte_by_byte_reference(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("[".to_string()),
                    proptest::strategy::Just("{".to_string()),
                    proptest::strategy::Just("]".to_string()),
                    proptest::strategy::Just("}".to_string()),
                    "[a-z:,]{0,3}",
                    // A string: backslashes, escaped quotes and brackets inside.
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            proptest::strategy::Just("\\\\".to_string()),
                            proptest::strategy::Just("\\\"".to_string()),
                            proptest::strategy::Just("\\[".to_string()),
                            proptest::strategy::Just("[".to_string()),
                            proptest::strategy::Just("}".to_string()),
                            "[a-z]{0,40}",
                        ],
                        0..8,
                    )
                    .prop_map(|p| format!("\"{}\"", p.concat())),
                ],
                0..200,
            ),
            open in 0usize..80,
        ) {
            let text = format!("{}{}", "[".repeat(open), parts.concat());
            let want = too_deep_reference(text.as_bytes());
            proptest::prop_assert_eq!(too_deep(text.as_bytes()), want, "{}", text);
            proptest::prop_assert_eq!(too_deep_from(text.as_bytes(), Scan::default()), want, "{}", text);
        }
    }

    #[test]
    fn depth_scan_counts_exactly_to_the_limit_across_blocks() {
        for pad in 0..130 {
            for n in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2] {
                for (open, close) in [("[", "]"), ("{", "}")] {
                    let text = format!("{}{}{}", " ".repeat(pad), open.repeat(n), close.repeat(n));
                    assert_eq!(too_deep(text.as_bytes()), n > MAX_DEPTH, "{pad} {n}");
                }
            }
        }
    }

    #[test]
    fn depth_scan_handles_escapes_on_block_boundaries() {
        // Escapes and quotes at every offset around the 32-byte blocks of the vector scan.
        for pad in 0..100 {
            for tail in [r"\\", r#"\""#, r#"\\\""#, r"\\\\", r"\"] {
                let text = format!(
                    r#"{}{{"x":"{}{tail}{}"}}{}"#,
                    "[".repeat(60),
                    "a".repeat(pad),
                    "[".repeat(10),
                    "[".repeat(5)
                );
                let b = text.as_bytes();
                assert_eq!(too_deep(b), too_deep_reference(b), "{text}");
            }
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        let (open, close) = ("[".repeat(100_000), "]".repeat(100_000));
        for line in [
            format!("{open}{close}"),
            format!(r#"{{"resourceLogs":[],"unknown":{open}{close}}}"#),
            format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"kvlistValue":{open}{close}}}}}]}}]}}]}}"#
            ),
        ] {
            let mut d = ObjectDecoder::new(ctx());
            assert_eq!(d.decode_line(0, &line).unwrap_err().0, Reason::TooDeep);
        }
        // Brackets inside strings do not count.
        let mut d = ObjectDecoder::new(ctx());
        let s = format!(r#"{{"resourceLogs":[],"x":"{open}\"{open}"}}"#);
        assert!(d.decode_line(0, &s).is_ok());
    }

    #[test]
    fn sample_with_unusable_values_rejects_the_bad_record_only() {
        let mut d = ObjectDecoder::new(ctx());
        d.decode_line(0, SAMPLE).unwrap();
        assert_eq!(d.counts.records_parsed, 2);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.rejected, vec![(0, Reason::NegativeValue)]);
    }
}
