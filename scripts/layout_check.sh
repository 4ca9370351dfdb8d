#!/usr/bin/env bash
# Writes the outputs of a fixed sequence of runs with one binary, so that two builds (before and
# after a change that must not change behaviour) can be compared with scripts/same_outputs.py:
#   1. the embedded default on sample_data (dimensions, roster, every role);
#   2. generated data with every twist the generator has (duplicates, late uploads, cumulative
#      counters, agents_view sessions, install-only and anonymous members, movers between teams),
#      across a month boundary, in Los Angeles time: a backfill in windows of 3 days, a nightly
#      run of one date, then `reports`.
#
#   scripts/layout_check.sh BIN DEST      # DEST/sample and DEST/generated
#   scripts/layout_check.sh old/cc-analytics /tmp/before
#   scripts/layout_check.sh target/release/cc-analytics /tmp/after
#   scripts/same_outputs.py /tmp/before/sample /tmp/after/sample
#   scripts/same_outputs.py /tmp/before/generated /tmp/after/generated
# The runs write to one fixed path (/tmp/cc-analytics-layout/out) with the binary copied to one
# fixed path, so that the manifests name the same output and command; each result is then moved
# to DEST.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=$2
WORK=/tmp/cc-analytics-layout
# The generated input is kept between calls: the objects' modification times are in the manifest.
DATA=${LAYOUT_DATA:-/tmp/cc-analytics-layout-data}
rm -rf "$WORK" "$DEST"
mkdir -p "$WORK" "$DEST"
# One path for every binary compared: the manifests record the command line.
cp "$1" "$WORK/cc-analytics"
BIN=$WORK/cc-analytics
cat > "$WORK/pipeline.toml" <<TOML
input = ["$DATA/telemetry"]
roster = "$DATA/roster.csv"
output = "$WORK/out"
timezone = "America/Los_Angeles"
window_days = 3
[dimensions.team]
attributes = ["team.id", "team"]
roster = "team"
[dimensions.cost_center]
attributes = ["cost_center"]
roster = "cost_center"
TOML
"$BIN" -q run --config pipelines/local.toml --output "$WORK/out"
mv "$WORK/out" "$DEST/sample"
[ -d "$DATA/telemetry" ] || "$BIN" -q generate --output "$DATA" --members 24 --days 12 --start 2026-10-25 --seed 99
"$BIN" -q run --config "$WORK/pipeline.toml" --from 2026-10-25 --to 2026-11-05
"$BIN" -q run --config "$WORK/pipeline.toml" --date 2026-11-03
"$BIN" -q reports --config "$WORK/pipeline.toml"
mv "$WORK/out" "$DEST/generated"
rm -rf "$WORK"
echo "outputs under $DEST/sample and $DEST/generated" >&2
