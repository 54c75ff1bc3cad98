#!/usr/bin/env bash
# Multi-VAE training speed: our `multivae` stage against plain PyTorch (benches/multivae_torch.py)
# on the same model, data and batch shapes, in the same run. A benchmark, not a test: CI does
# not run it.
#
# Data: the training split of Amazon Beauty (ingest as pipelines/beauty-baselines.yaml: P5
# layout, 5-core; 22,363 users, 12,101 items), Multi-VAE at the paper's sizes (600, 200;
# dropout 0.5; batches of 500 users: 45 updates an epoch). Ours: the stage's duration_s from its
# cache record, run for 2 and for EPOCHS epochs (validated only at the last epoch): per epoch =
# the difference / (EPOCHS - 2), so start-up, data loading and the one validation cancel out.
# PyTorch: the median of its epochs 2..EPOCHS (no validation), twice: with the dense input
# batch of the paper's code and RecBole, and with a sparse one for the first layer, as ours.
# All on every core. Prints the seconds per epoch and per update of each, the ratios PyTorch /
# ours (>= 1 means ours is at least as fast; the trainers issue's goal, against the faster of
# the two), and each process's peak RSS.
#
# Run:   bash benches/baselines.sh
# Env:   DATA (default ../shared/data/amazon2014/beauty), EPOCHS (default 6), PY (a python with
#        torch, `pip install torch`; default /var/tmp/cllm4rec-torch-py/bin/python where it
#        exists, as benches/gpu.sh, else python3), BIN (a binary instead of `cargo build
#        --release`), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=$(cd "${DATA:-../shared/data/amazon2014/beauty}" && pwd)
EPOCHS=${EPOCHS:-6}
PY=${PY:-$([[ -x /var/tmp/cllm4rec-torch-py/bin/python ]] && echo /var/tmp/cllm4rec-torch-py/bin/python || echo python3)}
(( EPOCHS >= 3 )) || { echo "error: EPOCHS must be at least 3" >&2; exit 2; }
"$PY" -c "import torch" 2>/dev/null || { echo "error: $PY has no torch (pip install torch, or set PY)" >&2; exit 2; }
if [[ -z ${BIN:-} ]]; then
    cargo build --release --locked --quiet
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cllm4rec-pipe
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cat > "$W/p.yaml" <<YAML
name: bench-multivae
params:
  epochs: 2
stages:
  ingest:
    kind: ingest
    params: {format: p5, path: "$DATA", kcore: 5}
  multivae:
    kind: multivae
    needs: [ingest]
    params: {epochs: "\${params.epochs}", eval_every: "\${params.epochs}"}
YAML
export CLLM4REC_CACHE="$W/cache"
duration() { # the multivae stage's duration_s for EPOCHS=$1, and the run's peak RSS in MiB
    /usr/bin/time -f %M -o "$W/rss" "$BIN" run "$W/p.yaml" --set "params.epochs=$1" > "$W/run.log" 2>&1 \
        || { cat "$W/run.log" >&2; exit 1; }
    local d
    d=$("$BIN" show "$W/p.yaml" multivae --set "params.epochs=$1" 2>/dev/null | grep -o '"duration_s": [0-9.e+-]*' | head -1 | awk '{print $2}')
    echo "$d $(( $(cat "$W/rss") / 1024 ))"
}
echo "== multivae: ours (2 and $EPOCHS epochs) and PyTorch ($EPOCHS epochs), Beauty's training split ($DATA)"
read -r d2 _ < <(duration 2)
read -r dn rss_ours < <(duration "$EPOCHS")
ingest_dir=$("$BIN" show "$W/p.yaml" ingest 2>/dev/null | awk '/^output:/ {print $2}')
torch_run() { # $1: dense or sparse
    local flag=()
    [[ $1 == sparse ]] && flag=(--sparse-input)
    /usr/bin/time -f %M -o "$W/rss.$1" "$PY" benches/multivae_torch.py "$ingest_dir" --epochs "$EPOCHS" "${flag[@]}" > "$W/$1.log" 2>&1 \
        || { cat "$W/$1.log" >&2; exit 1; }
    tail -1 "$W/$1.log" > "$W/$1.json"
}
torch_run dense
torch_run sparse
"$PY" - "$d2" "$dn" "$EPOCHS" "$W" "$rss_ours" <<'PY'
import json, statistics, sys
d2, dn, n, w, rss_ours = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
ours = (dn - d2) / (n - 2)
runs = {k: json.load(open(f"{w}/{k}.json")) for k in ("dense", "sparse")}
rss = {k: int(open(f"{w}/rss.{k}").read()) // 1024 for k in runs}
t = runs["dense"]
u = t["updates_per_epoch"]
print(f"users {t['users']}, items {t['items']}, {u} updates an epoch; PyTorch {t['torch']}, {t['threads']} threads")
print(f"ours:    {ours:.2f} s/epoch, {1000 * ours / u:.0f} ms/update (the stage: {d2:.1f} s for 2 epochs, {dn:.1f} s for {n}); peak RSS {rss_ours} MiB")
best = None
for k, r in runs.items():
    e = statistics.median(r["epoch_s"][1:])
    best = e if best is None else min(best, e)
    print(f"PyTorch, {k} input: {e:.2f} s/epoch, {1000 * e / u:.0f} ms/update (epochs: {', '.join(f'{x:.2f}' for x in r['epoch_s'])}); "
          f"ratio PyTorch / ours {e / ours:.2f}; peak RSS {rss[k]} MiB, ours / PyTorch {rss_ours / rss[k]:.2f}")
print(f"ratio against the faster PyTorch, per epoch and per update: {best / ours:.2f} (goal >= 1)")
PY
