#!/usr/bin/env bash
# Benchmark through S3: the objects under BENCH_DIR/data/telemetry (as scripts/bench.sh
# generates them) uploaded to a moto_server on 127.0.0.1, then timed
#   1. cc-analytics run --input s3://…  (end to end, output on local disk),
#   2. moto alone: every object fetched with 8 concurrent GETs (boto3), the server's own rate,
# printing records/s, CPU and peak RSS side by side. The server is stopped at the end.
#
#   BENCH_DIR=/tmp/b BENCH_RECORDS_PER_OBJECT=10000 scripts/bench.sh   # make the data first
#   BENCH_DIR=/tmp/b scripts/bench_s3.sh
#   CC_ANALYTICS_BIN=path/to/binary BENCH_DIR=/tmp/b scripts/bench_s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${BENCH_DIR:?set BENCH_DIR to a directory holding data/telemetry (scripts/bench.sh)}
BIN=${CC_ANALYTICS_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q
  BIN=target/release/cc-analytics
fi
python3 -c "import moto, boto3" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2.1' boto3
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
moto_server -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ALLOW_HTTP=true
for _ in $(seq 100); do
  curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break
  sleep 0.1
done

python3 - "$WORK/data/telemetry" <<'PY'
import os, sys, boto3
from concurrent.futures import ThreadPoolExecutor
root = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket="bench")
files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
def put(p):
    s3.upload_file(p, "bench", "telemetry/" + os.path.relpath(p, root))
with ThreadPoolExecutor(8) as ex:
    list(ex.map(put, files))
print(f"uploaded {len(files)} objects", file=sys.stderr)
PY

rm -rf "$WORK/out-s3"
/usr/bin/time -v "$BIN" -q run --input s3://bench/telemetry --output "$WORK/out-s3" --no-dashboard \
  > "$WORK/run-s3.out" 2> "$WORK/run-s3.time"
t_run=$(grep "Elapsed (wall clock)" "$WORK/run-s3.time" | awk -F': ' '{print $2}' \
  | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
rss=$(grep "Maximum resident set size" "$WORK/run-s3.time" | awk -F': ' '{print $2}')
cpu=$(grep "Percent of CPU" "$WORK/run-s3.time" | awk -F': ' '{print $2}')
records=$(python3 -c "import json,glob; m=json.load(open(sorted(glob.glob('$WORK/out-s3/_runs/*.json'))[-1])); print(m['counts']['records_parsed'])")

t_moto=$(python3 - <<'PY'
import time, boto3
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3")
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="bench") for o in p.get("Contents", [])]
t = time.monotonic()
def get(k):
    return len(s3.get_object(Bucket="bench", Key=k)["Body"].read())
with ThreadPoolExecutor(8) as ex:
    n = sum(ex.map(get, keys))
print(f"{time.monotonic() - t:.2f}")
PY
)
python3 - "$records" "$t_run" "$rss" "$cpu" "$t_moto" <<'PY'
import sys
records, t, rss, cpu, moto = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
print(f"records: {records:,}")
print(f"cc-analytics run from S3 (moto): {t:.2f} s = {records/t:,.0f} records/s, CPU {cpu}, peak RSS {rss/1024:.0f} MB")
print(f"moto alone (8 concurrent GETs):  {moto:.2f} s = {records/moto:,.0f} records/s")
PY
