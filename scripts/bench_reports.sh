#!/usr/bin/env bash
# Benchmark: rebuild every table from a year of stored daily facts of a large organisation.
#
# Generates two days of telemetry for BENCH_MEMBERS members (default 5000), runs the first day
# to store its facts, copies that day's facts to the BENCH_FACT_DAYS - 2 days before it (each
# copy with its own session ids, as a new day's sessions would be), then times a nightly run of
# the last day: it decodes one day of telemetry, reads every stored date and rebuilds all tables.
# Prints the phase times from the run's log, the wall time and the peak RSS.
#
#   scripts/bench_reports.sh                                  # 5000 members, 365 days
#   BENCH_MEMBERS=50 BENCH_FACT_DAYS=40 scripts/bench_reports.sh
#   BENCH_RECORDS_PER_OBJECT=10000 ...   # the telemetry in Collector-sized objects (default: the
#                                        # generator's small objects, a few records each)
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS=${BENCH_MEMBERS:-5000}
DAYS=${BENCH_FACT_DAYS:-365}
WORK=${BENCH_DIR:-$(mktemp -d)}
BIN=${CC_ANALYTICS_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q
  BIN=target/release/cc-analytics
fi
python3 -c "import pyarrow" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyarrow
LAST=2026-11-24
FIRST=$(date -d "$LAST - 1 day" +%F)
rm -rf "$WORK/data" "$WORK/out"
mkdir -p "$WORK"

echo "generating $MEMBERS members x 2 days, storing the facts of $FIRST ..." >&2
per_object=()
[ -n "${BENCH_RECORDS_PER_OBJECT:-}" ] && per_object=(--records-per-object "$BENCH_RECORDS_PER_OBJECT")
"$BIN" -q generate --output "$WORK/data" --members "$MEMBERS" --days 2 --start "$FIRST" --compression gz --seed 7 \
  "${per_object[@]}"
"$BIN" -q run --input "$WORK/data/telemetry" --output "$WORK/out" --date "$FIRST" --no-dashboard

echo "copying them to the $((DAYS - 2)) days before ..." >&2
python3 - "$WORK/out/_facts" "$FIRST" "$DAYS" <<'PY'
import datetime, os, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
import json
root, first, days = sys.argv[1], datetime.date.fromisoformat(sys.argv[2]), int(sys.argv[3])
# The date's current version (its newest commit record) and its three frames.
commits = f"{root}/date={first}/_commits"
commit = json.load(open(f"{commits}/{max(os.listdir(commits))}"))
v = commit["version"]
frames = {n: pq.read_table(f"{root}/date={first}/v={v}/{n}.parquet") for n in ("sessions", "models", "tools")}
for i in range(1, days - 1):
    d = first - datetime.timedelta(days=i)
    os.makedirs(f"{root}/date={d}/v=copy", exist_ok=True)
    os.makedirs(f"{root}/date={d}/_commits", exist_ok=True)
    with open(f"{root}/date={d}/_commits/000000000001.json", "w") as f:
        json.dump(dict(commit, seq=1, version="copy", run_id="bench-copy"), f)
    for name, src in frames.items():
        t = src.set_column(src.schema.get_field_index("date"), src.schema.field("date"),
                           pa.array([d] * src.num_rows, pa.date32()))
        if name == "sessions":
            s = src.schema.get_field_index("session")
            t = t.set_column(s, src.schema.field("session"),
                             pc.binary_join_element_wise(src["session"], f"d{i}", "-"))
        pq.write_table(t, f"{root}/date={d}/v=copy/{name}.parquet", compression="zstd")
n = frames["sessions"].num_rows
print(f"{n:,} session fact rows per day, {n * (days - 1):,} stored", file=sys.stderr)
PY

# Three nightly runs of the last day: the first builds every month's rows (none stored yet for the
# copied dates); the second rebuilds only the month the run changed; the third is the steady
# state: it also reuses the all-dates CSV files the run before last replaced (on local disk),
# whose layout the first run recorded.
for pass in first second steady; do
  log="$WORK/run-$pass.log"
  /usr/bin/time -v "$BIN" run --input "$WORK/data/telemetry" --output "$WORK/out" --date "$LAST" --no-dashboard \
    > "$WORK/run.out" 2> "$log"
  wall=$(grep "Elapsed (wall clock)" "$log" | awk -F': ' '{print $2}' \
    | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(grep "Maximum resident set size" "$log" | awk -F': ' '{print $2}')
  phase() { { grep -o "$1 in [0-9.]*s" "$log" || true; } | tail -1 | grep -o "[0-9.]*s$" || echo "?"; }
  tables=$({ grep -o "built the tables of .*" "$log" || true; } | tail -1)
  echo "== $pass nightly run ($MEMBERS members, $DAYS days stored)"
  echo "decoded the telemetry:    $(phase '[0-9] lines')"
  echo "tables:                   ${tables:-?}"
  echo "wrote the tables:         $(phase 'wrote the tables')"
  echo "published:                $({ grep -o "published [0-9]* files in [0-9.]*s" "$log" || true; } | tail -1 | grep -o "[0-9.]*s$" || echo "?")"
  echo "whole nightly run:        ${wall}s"
  echo "peak RSS:                 $((rss / 1024)) MB"
done
