//! Unit tests of one object's decoding: line accounting, truncated and cut objects, lines
//! across chunk boundaries, the per-line limit.

mod accounting {
    use super::super::*;
    use std::io::Write;

    fn ctx() -> DecodeContext {
        DecodeContext::new(chrono_tz::UTC, i64::MAX)
    }

    const GOOD: &str = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"claude_code.commit.count","sum":{"dataPoints":[{"attributes":[{"key":"session.id","value":{"stringValue":"s"}}],"timeUnixNano":"1791447318000000000","asInt":"1"}],"aggregationTemporality":1}}]}]}]}"#;

    #[test]
    fn every_line_is_accounted_for() {
        let bad_cost = GOOD.replace(r#""asInt":"1""#, r#""asInt":"x""#);
        let text = format!("{GOOD}\n\n{{broken\n{bad_cost}\r\n{GOOD}\n");
        let o = decode_object("k", text.as_bytes(), ctx());
        assert_eq!(o.lines_read, 4);
        assert_eq!(o.lines_parsed, 3);
        assert_eq!(o.decoder.records.len(), 2);
        assert_eq!(o.bad_lines.len(), 2);
        assert_eq!(o.bad_lines[0].line_no, 3);
        assert_eq!(o.bad_lines[0].text, b"{broken");
        assert_eq!(o.bad_lines[1].reasons, vec![Reason::BadNumber]);
        assert_eq!(o.bad_lines[1].text, bad_cost.as_bytes());
    }

    #[test]
    fn truncated_gzip_uses_complete_lines_and_quarantines_the_rest() {
        let text = format!("{GOOD}\n").repeat(200);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let o = decode_object("k", &gz[..gz.len() * 2 / 3], ctx());
        let used = o.decoder.records.len() as u64;
        assert!(used > 0 && used < 200, "{used}");
        assert_eq!(o.lines_parsed, used);
        assert_eq!(o.lines_read, used + 1);
        assert_eq!(o.bad_lines.last().unwrap().reasons, vec![Reason::Truncated]);
    }

    #[test]
    fn an_object_past_the_size_limit_uses_its_lines_within_it_and_quarantines_the_cut_one() {
        let line = format!("{GOOD}\n");
        let text = line.repeat(200);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut o = ObjectOutput::new(ctx());
        o.decompressor = Decompressor::with_limit(line.len() * 100 + line.len() / 2);
        decode_into(&mut o, "k", &gz, &mut |_| {});
        assert_eq!(o.lines_parsed, 100);
        assert_eq!(o.lines_read, 101);
        let cut = o.bad_lines.last().unwrap();
        assert_eq!(cut.reasons, vec![Reason::TooLarge]);
        assert_eq!(cut.line_no, 101);
        assert_eq!(cut.text, &line.as_bytes()[..line.len() / 2]);
        assert!(
            cut.detail.contains("CC_ANALYTICS_MAX_OBJECT_BYTES"),
            "{}",
            cut.detail
        );
    }
}

mod streaming {
    use super::super::*;
    use std::io::Write;

    const LINE: &str = r#"{"resourceLogs":[{"scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events"},"logRecords":[{"timeUnixNano":"1791421200000000000","body":{"stringValue":"claude_code.user_prompt"},"attributes":[{"key":"session.id","value":{"stringValue":"s"}}]}]}]}]}"#;

    /// Lines cut anywhere by chunk boundaries decode as when the object is one chunk.
    #[test]
    fn lines_across_chunks_decode_as_whole_ones() {
        let mut text = String::new();
        for i in 0..50 {
            text += LINE;
            text += if i % 7 == 0 { "\r\n" } else { "\n" };
            if i % 11 == 0 {
                text += "{broken\n\n";
            }
        }
        text += LINE; // no final newline
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let whole = {
            let mut o = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
            decode_into(&mut o, "k", &gz, &mut |_| {});
            o
        };
        assert_eq!(whole.lines_parsed, 51);
        assert_eq!(whole.bad_lines.len(), 5);
        let zst = zstd::encode_all(text.as_bytes(), 3).unwrap();
        // Two gzip members in a row, as a compacted object can be.
        let half = text.len() / 2 + text[text.len() / 2..].find('\n').unwrap() + 1;
        let mut two = Vec::new();
        for part in [&text[..half], &text[half..]] {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            g.write_all(part.as_bytes()).unwrap();
            two.extend(g.finish().unwrap());
        }
        for chunk in [1, 2, 3, 7, 64, 250, 251, 4096] {
            for (bytes, streamed) in [
                (&gz[..], false),
                (&zst[..], false),
                (text.as_bytes(), false),
                (&gz[..], true),
                (&zst[..], true),
                (text.as_bytes(), true),
                (&two[..], true),
            ] {
                let mut o = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
                o.decompressor = Decompressor::with_limit(usize::MAX).with_chunk(chunk);
                if streamed {
                    // The path of objects too large to fetch whole: read and inflated as a
                    // stream on a thread of their own.
                    let reader = Box::new(std::io::Cursor::new(bytes.to_vec()));
                    decode_stream(&mut o, "k", reader, &mut |_| {});
                } else {
                    decode_into(&mut o, "k", bytes, &mut |_| {});
                }
                assert_eq!(o.lines_read, whole.lines_read, "chunk {chunk}");
                assert_eq!(o.lines_parsed, whole.lines_parsed, "chunk {chunk}");
                assert_eq!(o.decoder.records.len(), whole.decoder.records.len());
                let lines = |o: &ObjectOutput| -> Vec<(usize, Vec<u8>)> {
                    o.bad_lines
                        .iter()
                        .map(|b| (b.line_no, b.text.clone()))
                        .collect()
                };
                assert_eq!(lines(&o), lines(&whole), "chunk {chunk}");
            }
        }
        // A cut stream read as a stream: the lines before the cut decoded, the cut quarantined.
        let cut = &gz[..gz.len() * 2 / 3];
        let mut o = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
        decode_stream(
            &mut o,
            "k",
            Box::new(std::io::Cursor::new(cut.to_vec())),
            &mut |_| {},
        );
        let last = o.bad_lines.last().unwrap();
        assert_eq!(last.reasons, vec![Reason::Truncated], "{}", last.detail);
        let mut fetched = ObjectOutput::new(DecodeContext::new(chrono_tz::UTC, i64::MAX));
        decode_into(&mut fetched, "k", cut, &mut |_| {});
        assert_eq!(
            o.lines_parsed, fetched.lines_parsed,
            "the same lines as when fetched whole"
        );
    }
}

mod limits {
    use super::super::*;

    #[test]
    fn an_overlong_line_is_quarantined_unread() {
        let ctx = DecodeContext::new(chrono_tz::UTC, i64::MAX);
        let mut text = vec![b'{'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(b"{\"resourceLogs\":[]}\n");
        let o = decode_object("big", &text, ctx);
        assert_eq!(o.lines_read, 2);
        assert_eq!(o.lines_parsed, 1);
        assert_eq!(o.bad_lines[0].reasons, vec![Reason::LineTooLong]);
    }
}
