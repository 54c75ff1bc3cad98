#!/usr/bin/env bash
# Benchmark: ingest + tokenize of Amazon Beauty (../shared/data/amazon2014/beauty) from cold,
# in a fresh cache, with the release build. Goal: under 15 s on the project's 2-core machine.
# Not a test: CI does not run it.
#   bash benches/ingest.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${1:-$(cd .. && pwd)/shared/data/amazon2014/beauty}
[[ -d $DATA ]] || { echo "error: no data at $DATA" >&2; exit 1; }
cargo build --release --quiet
BIN="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/cllm4rec-pipe"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
runs=()
for i in 1 2 3; do
    rm -rf "$W/cache"
    t0=$(date +%s%N)
    "$BIN" --cache-dir "$W/cache" run pipelines/beauty.yaml --set "params.data_dir=$DATA" > "$W/out.txt" 2>/dev/null
    t1=$(date +%s%N)
    grep -q "2 instances: 2 ran" "$W/out.txt" || { cat "$W/out.txt"; exit 1; }
    runs+=($(( (t1 - t0) / 1000000 )))
done
sorted=($(printf '%s\n' "${runs[@]}" | sort -n))
median=${sorted[1]}
echo "ingest + tokenize of Beauty from cold (3 runs, ms): ${runs[*]}"
awk -v m="$median" 'BEGIN { printf "median %.2f s   goal < 15 s: %s\n", m / 1000, (m < 15000 ? "PASS" : "MISS") }'
