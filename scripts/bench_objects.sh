#!/usr/bin/env bash
# Memory per listed object: runs over N local objects of one record each, and the bytes of peak
# RSS each object adds (the difference between two sizes of N, divided by the objects between
# them). What it measures is what a window holds per object it reads: the listing (key, size),
# the objects file's line for it, and the one record's dedup key.
#
#   scripts/bench_objects.sh [BIN] [SMALL] [LARGE]    # default: target/release/cc-analytics 20000 1000000
# The objects are written once under $BENCH_OBJECTS_DIR (default /tmp/cc-analytics-objects).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/cc-analytics}
SMALL=${2:-20000}
LARGE=${3:-1000000}
ROOT=${BENCH_OBJECTS_DIR:-/tmp/cc-analytics-objects}
make_objects() {
    [ -f "$ROOT/$1/done" ] && return
    rm -rf "$ROOT/$1"
    python3 - "$ROOT/$1" "$1" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
t0 = 1790812800  # 2026-10-01T00:00:00Z
line = ('{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}}]},'
        '"scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events"},"logRecords":[{"timeUnixNano":"%d",'
        '"body":{"stringValue":"claude_code.user_prompt"},"attributes":[{"key":"session.id","value":{"stringValue":"s1"}},'
        '{"key":"user.email","value":{"stringValue":"dev@example.com"}},{"key":"event.name","value":{"stringValue":"user_prompt"}},'
        '{"key":"event.sequence","value":{"intValue":"%d"}}]}]}]}]}\n')
for i in range(n):
    t = t0 + i * 86000 // n
    d = os.path.join(root, "telemetry", "year=2026/month=10/day=01/hour=%02d/minute=%02d" % (t // 3600 % 24, t // 60 % 60))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "logs_%09d.json" % rng.randrange(10**9)), "w") as f:
        f.write(line % (t * 10**9, i))
open(os.path.join(root, "done"), "w").close()
PY
}
peak() {
    local out; out=$(mktemp -d)
    /usr/bin/time -f "%M" -o "$out/rss" "$BIN" -q run --input "$ROOT/$1/telemetry" --output "$out/o" \
        --date 2026-10-01 --timezone UTC --no-dashboard >/dev/null
    cat "$out/rss"; rm -rf "$out"
}
make_objects "$SMALL"
make_objects "$LARGE"
a=$(peak "$SMALL"); b=$(peak "$LARGE")
python3 -c "
a, b, s, l = $a, $b, $SMALL, $LARGE
print(f'{s:,} objects: {a/1024:.0f} MB peak RSS; {l:,} objects: {b/1024:.0f} MB; {(b - a) * 1024 / (l - s):.0f} bytes per object')"
