#!/usr/bin/env bash
# Benchmark: generate gzip OTLP telemetry in the Collector's S3 layout with `cc-analytics
# generate`, then, on the same files, time
#   1. cc-analytics run (end to end: list, read, decode, facts, tables, Parquet/CSV),
#   2. gzip -dc over every object (the floor: decompression alone, one core),
#   3. DuckDB doing the daily tables in SQL (scripts/duckdb_daily.py, 2 threads),
# and print records/s, peak RSS and the ratios side by side.
#
#   scripts/bench.sh                    # about 2 M records (BENCH_MEMBERS=2000, BENCH_DAYS=7)
#   BENCH_MEMBERS=6000 BENCH_DAYS=14 scripts/bench.sh     # about 6 M
#   CC_ANALYTICS_BIN=path/to/binary BENCH_DIR=/tmp/b scripts/bench.sh
#   BENCH_MEMBERS=5000 BENCH_DAYS=14 BENCH_DUCKDB=0 scripts/bench.sh   # ~10 M, without DuckDB
#     (DuckDB needs about 3 GB per million records here: 10 M do not fit in 24 GiB)
#   BENCH_REUSE=1 ...                   # keep the data already generated under BENCH_DIR
#   BENCH_RECORDS_PER_OBJECT=10000 ...  # Collector-sized objects (about 1 MB gzip each)
#   BENCH_RANGE=1 ...                   # run over --from/--to (in windows of BENCH_WINDOW_DAYS,
#                                       # default 7) instead of every date in the input
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS=${BENCH_MEMBERS:-2000}
DAYS=${BENCH_DAYS:-7}
WORK=${BENCH_DIR:-$(mktemp -d)}
BIN=${CC_ANALYTICS_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q
  BIN=target/release/cc-analytics
fi
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check duckdb
DUCKDB=${BENCH_DUCKDB:-1}
mkdir -p "$WORK"
rm -rf "$WORK/out"
if [ "${BENCH_REUSE:-0}" = 1 ] && [ -d "$WORK/data/telemetry" ]; then
  echo "reusing the data under $WORK/data" >&2
else
  rm -rf "$WORK/data"
  echo "generating $MEMBERS members x $DAYS days under $WORK/data ..." >&2
  per_object=()
  [ -n "${BENCH_RECORDS_PER_OBJECT:-}" ] && per_object=(--records-per-object "$BENCH_RECORDS_PER_OBJECT")
  "$BIN" -q generate --output "$WORK/data" --members "$MEMBERS" --days "$DAYS" --compression gz --seed 1 \
    --start 2026-01-01 "${per_object[@]}"
fi
range=()
if [ "${BENCH_RANGE:-0}" = 1 ]; then
  last=$(python3 -c "import datetime as d; print(d.date(2026,1,1) + d.timedelta(days=$DAYS - 1))")
  range=(--from 2026-01-01 --to "$last" --window-days "${BENCH_WINDOW_DAYS:-7}")
fi

timed() { # name, command...: runs it under /usr/bin/time -v, prints "seconds rss_kb"
  local name=$1; shift
  /usr/bin/time -v "$@" > "$WORK/$name.out" 2> "$WORK/$name.time"
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$WORK/$name.time" | awk -F': ' '{print $2}' \
    | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(grep "Maximum resident set size" "$WORK/$name.time" | awk -F': ' '{print $2}')
  echo "$wall $rss"
}

# Every tool reads the objects from the page cache: read them all once first, untimed (with
# cold files the first tool timed would also be timing the disk).
find "$WORK/data/telemetry" -type f -print0 | xargs -0 cat > /dev/null

read -r t_run rss_run < <(timed run "$BIN" -q run --input "$WORK/data/telemetry" --output "$WORK/out" --no-dashboard "${range[@]}")
cpu_run=$(grep "Percent of CPU" "$WORK/run.time" | awk -F': ' '{print $2}')
records=$(python3 -c "import json,glob; m=json.load(open(sorted(glob.glob('$WORK/out/_runs/*.json'))[-1])); print(m['counts']['records_parsed'])")
bytes=$(du -sb "$WORK/data/telemetry" | cut -f1)
read -r t_gz rss_gz < <(timed gzip sh -c "find '$WORK/data/telemetry' -name '*.gz' -print0 | xargs -0 cat | gzip -dc | wc -c")
json_bytes=$(cat "$WORK/gzip.out")
if [ "$DUCKDB" = 1 ]; then
  read -r t_duck rss_duck < <(timed duckdb python3 scripts/duckdb_daily.py "$WORK/data/telemetry" 2)
else
  t_duck=0 rss_duck=0
fi

echo "cc-analytics CPU: $cpu_run (of 200% on 2 cores)"
python3 - "$records" "$bytes" "$json_bytes" "$t_run" "$rss_run" "$t_gz" "$rss_gz" "$t_duck" "$rss_duck" <<'PY'
import sys
records, gz_bytes, json_bytes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = [("cc-analytics run", float(sys.argv[4]), int(sys.argv[5])),
        ("gzip -dc (floor, 1 core)", float(sys.argv[6]), int(sys.argv[7])),
        ("DuckDB SQL (2 threads)", float(sys.argv[8]), int(sys.argv[9]))]
print(f"records: {records:,}   gzip objects: {gz_bytes/1e6:.1f} MB   JSON: {json_bytes/1e6:.1f} MB ({json_bytes/max(records,1):.0f} B/record)")
print(f"{'tool':28} {'seconds':>8} {'records/s':>11} {'peak RSS MB':>12} {'time vs cc-analytics':>21}")
base = rows[0][1]
for name, t, rss in rows:
    if t == 0 and rss == 0:
        print(f"{name:28} {'skipped':>8}")
        continue
    t = max(t, 0.01)
    print(f"{name:28} {t:8.2f} {records/t:11,.0f} {rss/1024:12.0f} {t/base:21.2f}")
PY
