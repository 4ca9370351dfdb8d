//! Object storage: turning `--input`/`--output` URLs into stores, listing telemetry objects,
//! reading and decompressing them.

mod decompress;
mod listing;
mod location;

pub use decompress::*;
pub use listing::{arrival_day, is_telemetry_key, Listing};
pub use location::{classify, contains, finish_upload, retry_config, Location};

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use std::io::Read;
    use std::io::Write;

    #[test]
    fn telemetry_keys() {
        for k in ["a/b.json", "x.jsonl.gz", "x.ndjson.zst", "logs_1.json.gz"] {
            assert!(is_telemetry_key(k), "{k}");
        }
        for k in ["roster.csv", "a.json.bz2", "a.gz", "x.jsonx"] {
            assert!(!is_telemetry_key(k), "{k}");
        }
    }

    #[test]
    fn arrival_partition_is_parsed() {
        assert_eq!(
            arrival_day("raw/year=2026/month=08/day=22/hour=15/minute=04/logs_1.json.gz"),
            NaiveDate::from_ymd_opt(2026, 8, 22)
        );
        assert_eq!(arrival_day("raw/2026/08/22/logs.json"), None);
    }

    /// flate2's own multi-member reader: the reference the reusing decompressor must agree with.
    fn reference(bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let ok = flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .is_ok();
        (out, ok)
    }

    #[test]
    fn gunzip_agrees_with_flate2_on_members_headers_and_cuts() {
        let mut one = Decompressor::default();
        for seed in 0..40u64 {
            let text: Vec<u8> = (0..(seed * 997 % 20_000))
                .map(|i| b"abcdefghij{}\"\n"[((i * 7 + seed) % 14) as usize])
                .collect();
            let mut b = flate2::GzBuilder::new();
            if seed % 2 == 0 {
                b = b.filename("logs.json").comment("c");
            }
            if seed % 3 == 0 {
                b = b.extra(vec![1, 2, 3]);
            }
            let mut w = b.write(Vec::new(), flate2::Compression::new((seed % 9) as u32));
            w.write_all(&text).unwrap();
            let mut gz = w.finish().unwrap();
            if seed % 4 == 0 {
                // A second member.
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(&text[..text.len() / 2]).unwrap();
                gz.extend(w.finish().unwrap());
            }
            let d = one.decompress(&gz);
            assert_eq!(
                (d.data.clone(), d.truncated.is_none()),
                reference(&gz),
                "seed {seed}"
            );
            // (Cuts from 2 bytes on: one byte is not recognised as gzip at all.)
            for cut in [
                2,
                9,
                10,
                gz.len() / 3,
                gz.len() / 2,
                gz.len() - 9,
                gz.len() - 1,
            ] {
                let part = &gz[..cut.min(gz.len())];
                let d = one.decompress(part);
                let (want, ok) = reference(part);
                assert_eq!(d.truncated.is_none(), ok, "seed {seed} cut {cut}");
                // The complete part: what flate2 had inflated before the cut, at least.
                assert!(
                    d.data.starts_with(&want) || want.starts_with(&d.data),
                    "seed {seed} cut {cut}"
                );
                assert!(text
                    .repeat(2)
                    .starts_with(&d.data[..d.data.len().min(text.len())]));
            }
            let mut bad = gz.clone();
            let n = bad.len();
            bad[n - 6] ^= 0xff; // the CRC
            assert!(one.decompress(&bad).truncated.is_some(), "seed {seed}");
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        // 64 MiB of zeros: 64 KB of gzip, a few KB of zstd.
        let zeros = vec![0u8; 64 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        let z = zstd::encode_all(&zeros[..], 3).unwrap();
        let limit = 1 << 20;
        for bytes in [&gz, &z] {
            let d = Decompressor::with_limit(limit).decompress(bytes);
            assert!(d.too_large);
            assert_eq!(d.data.len(), limit);
            assert!(
                d.data.capacity() <= 2 * limit + (64 << 10),
                "{}",
                d.data.capacity()
            );
            assert!(d.truncated.unwrap().contains("more than 1048576 bytes"));
        }
        // Exactly the limit is allowed.
        let text = b"0123456789\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let z = zstd::encode_all(&text[..], 3).unwrap();
        for bytes in [&gz, &z] {
            let d = Decompressor::with_limit(text.len()).decompress(bytes);
            assert!(!d.too_large && d.truncated.is_none());
            assert_eq!(d.data, text);
            assert!(
                Decompressor::with_limit(text.len() - 1)
                    .decompress(bytes)
                    .too_large
            );
        }
    }

    #[test]
    fn decompresses_by_magic_and_keeps_complete_part_of_truncated_gzip() {
        let text = b"line one\nline two\nline three\n".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let d = decompress(&gz);
        assert_eq!(d.data, text);
        assert!(d.truncated.is_none());
        let z = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(decompress(&z).data, text);
        assert_eq!(decompress(&text).data, text);
        let cut = decompress(&gz[..gz.len() / 2]);
        assert!(cut.truncated.is_some());
        assert!(text.starts_with(&cut.data));
    }
}
