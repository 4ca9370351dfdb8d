#!/usr/bin/env bash
# Benchmark: a backfill fanned out in shards (contract 4.3) on this machine, then the reduce.
#
# Generates BENCH_DAYS days of telemetry for BENCH_MEMBERS members (Collector-sized objects of
# BENCH_RECORDS_PER_OBJECT records), then for each shard count in BENCH_SHARDS runs that many
# `run --shard-index I --shard-count N` processes at once against one fresh output, then
# `reports`. Prints the wall time of the shards and of the reduce, each shard's peak RSS, and
# checks that the tables equal those of the first count's run.
#
#   scripts/bench_shards.sh                                   # 1,000 members, 28 days, 1 2 4
#   BENCH_MEMBERS=7000 BENCH_SHARDS="1 4" scripts/bench_shards.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS=${BENCH_MEMBERS:-1000}
DAYS=${BENCH_DAYS:-28}
PER_OBJECT=${BENCH_RECORDS_PER_OBJECT:-10000}
SHARDS=${BENCH_SHARDS:-1 2 4}
WORK=${BENCH_DIR:-$(mktemp -d)}
BIN=${CC_ANALYTICS_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q
  BIN=target/release/cc-analytics
fi
FROM=2026-01-01
TO=$(date -d "$FROM + $((DAYS - 1)) days" +%F)
mkdir -p "$WORK"
if [ "${BENCH_REUSE:-0}" = 1 ] && [ -d "$WORK/data/telemetry" ]; then
  echo "reusing the data under $WORK/data" >&2
else
  rm -rf "$WORK/data"
  echo "generating $MEMBERS members x $DAYS days ($PER_OBJECT records per object) ..." >&2
  "$BIN" -q generate --output "$WORK/data" --members "$MEMBERS" --days "$DAYS" --start "$FROM" \
    --compression gz --seed 3 --records-per-object "$PER_OBJECT"
fi
peak() { grep "Maximum resident set size" "$1" | awk -F': ' '{printf "%d", $2 / 1024}'; }
first=""
for n in $SHARDS; do
  out="$WORK/out-$n"
  rm -rf "$out"
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 0 $((n - 1))); do
    /usr/bin/time -v "$BIN" -q run --input "$WORK/data/telemetry" --roster "$WORK/data/roster.csv" \
      --output "$out" --from "$FROM" --to "$TO" --shard-index "$i" --shard-count "$n" \
      2> "$WORK/shard-$n-$i.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  mid=$(date +%s.%N)
  /usr/bin/time -v "$BIN" -q reports --roster "$WORK/data/roster.csv" --output "$out" \
    2> "$WORK/reduce-$n.log"
  end=$(date +%s.%N)
  rss=""
  for i in $(seq 0 $((n - 1))); do rss="$rss $(peak "$WORK/shard-$n-$i.log")"; done
  printf "%d shards: shards %.1f s, reduce %.1f s, peak RSS per shard (MB):%s, reduce %s MB\n" \
    "$n" "$(echo "$mid - $start" | bc)" "$(echo "$end - $mid" | bc)" "$rss" "$(peak "$WORK/reduce-$n.log")"
  if [ -z "$first" ]; then
    first=$n
  elif ! diff -r -q -x '*.html' -x '_published.json' -x '*.parquet' "$WORK/out-$first/reports" "$out/reports" >/dev/null; then
    echo "the tables of $n shards differ from those of $first" >&2
    exit 1
  fi
done
