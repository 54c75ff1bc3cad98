#!/usr/bin/env bash
# Report and export benchmark for cllm4rec-pipe. A benchmark, not a test: CI does not run it.
#
# What it measures (release build): a POINTS-point sweep of trivial `command` stages
# (prep -> train[x] -> eval[x], each eval writing a metrics.json, -> a gather over eval[*]:
# 2 x POINTS + 2 instances) is run once into a scratch cache, then, each the median of RUNS
# runs:
#   - `report` of the whole sweep into one HTML page (goal: < 2 s at 1,000 points);
#   - `export mlflow` and `export tensorboard` of it;
#   - against them, `plan` of the same sweep (the key computation every one of them does too).
# It also prints the page's size.
#
# Run:   bash benches/report.sh
# Env:   POINTS (default 1000), RUNS (default 5), CARGO_TARGET_DIR, BIN (a binary to use instead
#        of building one).
set -euo pipefail

POINTS=${POINTS:-1000}
RUNS=${RUNS:-5}
GOAL_S=2

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z ${BIN:-} ]]; then
    echo "== building the release binary"
    cargo build --release --quiet
    BIN="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/cllm4rec-pipe"
fi
[[ -x $BIN ]] || { echo "error: no binary at $BIN" >&2; exit 1; }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
export CLLM4REC_CACHE="$W/cache"
git init -q .   # the workspace root

{
    echo "name: report-bench"
    echo "matrix:"
    printf '  x: ['
    seq -s, 1 "$POINTS" | tr -d '\n'
    echo ']'
    cat <<'YAML'
stages:
  prep:
    kind: command
    cmd: ["sh", "-c", "echo 1 > $CLLM4REC_OUT/p.txt"]
  train:
    kind: command
    needs: [prep]
    params: {x: "${matrix.x}"}
    cmd: ["sh", "-c", "echo ${params.x} > $CLLM4REC_OUT/m.txt"]
  eval:
    kind: command
    needs: [train]
    cmd: ["sh", "-c", "echo \"{\\\"recall@20\\\": 0.${matrix.x}, \\\"users\\\": 10}\" > $CLLM4REC_OUT/metrics.json"]
  gather:
    kind: command
    needs: ["eval[*]"]
    cmd: ["sh", "-c", "ls $CLLM4REC_IN_EVAL | wc -l > $CLLM4REC_OUT/n.txt"]
YAML
} > sweep.yaml

instances=$(( 2 * POINTS + 2 ))
echo "== first run of the $POINTS-point sweep ($instances instances)"
t0=$(date +%s.%N)
"$BIN" run sweep.yaml > run.log 2> /dev/null
summary=$(grep -m1 " instances: " run.log)
echo "   $summary, in $(echo "$(date +%s.%N) - $t0" | bc) s"
[[ $summary == "$instances instances: $instances ran, 0 cached, 0 failed, 0 skipped" ]] || {
    echo "error: the sweep did not run whole" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
time_it() {
    local i t0 t1
    for i in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        "$@" > /dev/null
        t1=$(date +%s.%N)
        echo "$t1 - $t0" | bc
    done | median
}

plan=$(time_it "$BIN" plan sweep.yaml)
report=$(time_it "$BIN" report sweep.yaml -o "$W/report.html")
mlflow=$(time_it "$BIN" export mlflow sweep.yaml "$W/mlruns")
tb=$(time_it "$BIN" export tensorboard sweep.yaml "$W/tb")
size=$(stat -c %s "$W/report.html")
"$BIN" verify > /dev/null

printf '\n%-44s %10s\n' "measurement ($instances instances, median of $RUNS)" "seconds"
printf '%-44s %10.3f\n' "plan" "$plan"
printf '%-44s %10.3f   goal < %s s: %s\n' "report (one page, $(( size / 1024 )) KiB)" "$report" "$GOAL_S" \
    "$(echo "$report < $GOAL_S" | bc | sed 's/1/met/;s/0/NOT met/')"
printf '%-44s %10.3f\n' "export mlflow ($(( instances )) runs)" "$mlflow"
printf '%-44s %10.3f\n' "export tensorboard" "$tb"
