//! The OTLP line decoder must never panic, whatever the bytes.
#![no_main]

use cc_analytics::otlp::{DecodeContext, ObjectDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let mut d = ObjectDecoder::new(DecodeContext::new(chrono_tz::America::Los_Angeles, i64::MAX));
        let _ = d.decode_line(0, line);
    }
});
