//! The OTLP-JSON decoder alone: lines → record columns, in MB/s of uncompressed JSON on one core.
//! Input: the lines of `sample_data/telemetry` (generated, realistic), decompressed up front.

use std::hint::black_box;

use cc_analytics::decode::otlp::{DecodeContext, ObjectDecoder};
use cc_analytics::source::decompress;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

// The allocator the binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sample_lines() -> Vec<String> {
    fn walk(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out)
            } else {
                out.push(p)
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/telemetry"),
        &mut files,
    );
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let d = decompress(&std::fs::read(f).unwrap());
        let text = String::from_utf8(d.data).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    lines
}

fn decode(c: &mut Criterion) {
    let lines = sample_lines();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let ctx = DecodeContext::new(chrono_tz::UTC, i64::MAX);
    let mut g = c.benchmark_group("otlp");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(20);
    g.bench_function("decode_sample_data_lines", |b| {
        b.iter(|| {
            let mut d = ObjectDecoder::new(ctx);
            for (i, l) in lines.iter().enumerate() {
                let _ = d.decode_line(i, black_box(l));
            }
            black_box(d.records.len())
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
