#!/usr/bin/env bash
# Training speed of the ID baselines: our `multivae` and `lightgcn` stages against plain
# PyTorch (benches/multivae_torch.py, benches/lightgcn_torch.py) on the same models, data and
# batch shapes, in the same run. A benchmark, not a test: CI does not run it.
#
# Data: the training split of Amazon Beauty (ingest as pipelines/beauty-baselines.yaml: P5
# layout, 5-core; 22,363 users, 12,101 items). Multi-VAE at the paper's sizes (600, 200;
# dropout 0.5; batches of 500 users: 45 updates an epoch); LightGCN as beauty-baselines.yaml
# trains it (64 wide, 3 layers, batches of 8192 pairs, lr 0.005). Ours: the stage's duration_s
# from its cache record, run for 2 and for EPOCHS epochs (validated only at the last epoch):
# per epoch = the difference / (EPOCHS - 2), so start-up, data loading and the one validation
# cancel out; one stage at a time. PyTorch: the median of its epochs 2..EPOCHS (no
# validation); Multi-VAE twice: with the dense input batch of the paper's code and RecBole, and
# with a sparse one for the first layer, as ours. All on every core. Prints the seconds per
# epoch and per update of each, the ratios PyTorch / ours (>= 1 means ours is at least as
# fast; the trainers issue's goal, against the faster PyTorch), and each process's peak RSS.
#
# Run:   bash benches/baselines.sh
# Env:   DATA (default ../shared/data/amazon2014/beauty), EPOCHS (default 6), LG_EPOCHS (LightGCN's; default 4),
#        MODELS (default "multivae lightgcn": which to measure), PY (a python with
#        torch, `pip install torch`; default /var/tmp/cllm4rec-torch-py/bin/python where it
#        exists, as benches/gpu.sh, else python3), BIN (a binary instead of `cargo build
#        --release`), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=$(cd "${DATA:-../shared/data/amazon2014/beauty}" && pwd)
EPOCHS=${EPOCHS:-6}
PY=${PY:-$([[ -x /var/tmp/cllm4rec-torch-py/bin/python ]] && echo /var/tmp/cllm4rec-torch-py/bin/python || echo python3)}
LG_EPOCHS=${LG_EPOCHS:-4}
MODELS=${MODELS:-multivae lightgcn}
has() { [[ " $MODELS " == *" $1 "* ]]; }
(( EPOCHS >= 3 && LG_EPOCHS >= 3 )) || { echo "error: EPOCHS and LG_EPOCHS must be at least 3" >&2; exit 2; }
"$PY" -c "import torch" 2>/dev/null || { echo "error: $PY has no torch (pip install torch, or set PY)" >&2; exit 2; }
if [[ -z ${BIN:-} ]]; then
    cargo build --release --locked --quiet
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cllm4rec-pipe
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for m in multivae lightgcn; do
    extra=""
    [[ $m == lightgcn ]] && extra=", batch_size: 8192, lr: 0.005"
    cat > "$W/$m.yaml" <<YAML
name: bench-$m
params:
  epochs: 2
stages:
  ingest:
    kind: ingest
    params: {format: p5, path: "$DATA", kcore: 5}
  $m:
    kind: $m
    needs: [ingest]
    params: {epochs: "\${params.epochs}", eval_every: "\${params.epochs}"$extra}
YAML
done
export CLLM4REC_CACHE="$W/cache"
duration() { # MODEL EPOCHS: the stage's duration_s, and the run's peak RSS in MiB
    /usr/bin/time -f %M -o "$W/rss" "$BIN" run "$W/$1.yaml" --set "params.epochs=$2" > "$W/run.log" 2>&1 \
        || { cat "$W/run.log" >&2; exit 1; }
    local d
    d=$("$BIN" show "$W/$1.yaml" "$1" --set "params.epochs=$2" 2>/dev/null | grep -o '"duration_s": [0-9.e+-]*' | head -1 | awk '{print $2}')
    echo "$d $(( $(cat "$W/rss") / 1024 ))"
}
torch_run() { # NAME SCRIPT ARGS...: PyTorch's per-epoch JSON into $W/NAME.json, peak RSS into $W/rss.NAME
    local name=$1 script=$2
    shift 2
    /usr/bin/time -f %M -o "$W/rss.$name" "$PY" "benches/$script" "$ingest_dir" "$@" > "$W/$name.log" 2>&1 \
        || { cat "$W/$name.log" >&2; exit 1; }
    tail -1 "$W/$name.log" > "$W/$name.json"
    echo $(( $(cat "$W/rss.$name") / 1024 )) > "$W/rss.$name"
}
echo "== ID baselines: ours (2 and N epochs, one stage at a time) against PyTorch, Beauty's training split ($DATA)"
mv2=0 mvn=0 mv_rss=0 lg2=0 lgn=0 lg_rss=0
if has multivae; then
    read -r mv2 _ < <(duration multivae 2)
    read -r mvn mv_rss < <(duration multivae "$EPOCHS")
fi
if has lightgcn; then
    read -r lg2 _ < <(duration lightgcn 2)
    read -r lgn lg_rss < <(duration lightgcn "$LG_EPOCHS")
fi
first=${MODELS%% *}
ingest_dir=$("$BIN" show "$W/$first.yaml" ingest 2>/dev/null | awk '/^output:/ {print $2}')
if has multivae; then
    torch_run mv-dense multivae_torch.py --epochs "$EPOCHS"
    torch_run mv-sparse multivae_torch.py --epochs "$EPOCHS" --sparse-input
fi
has lightgcn && torch_run lg lightgcn_torch.py --epochs "$LG_EPOCHS" --batch-size 8192 --lr 0.005
"$PY" - "$W" "$EPOCHS" "$mv2" "$mvn" "$mv_rss" "$LG_EPOCHS" "$lg2" "$lgn" "$lg_rss" "$MODELS" <<'PY'
import json, statistics, sys
w = sys.argv[1]
def report(title, n, d2, dn, rss_ours, runs):
    n, d2, dn, rss_ours = int(n), float(d2), float(dn), int(rss_ours)
    ours = (dn - d2) / (n - 2)
    first = json.load(open(f"{w}/{runs[0][1]}.json"))
    u = first["updates_per_epoch"]
    print(f"{title}: {first['users']} users, {first['items']} items, {u} updates an epoch; PyTorch {first['torch']}, {first['threads']} threads")
    print(f"  ours: {ours:.2f} s/epoch, {1000 * ours / u:.0f} ms/update (the stage: {d2:.1f} s for 2 epochs, {dn:.1f} s for {n}); peak RSS {rss_ours} MiB")
    best = None
    for label, name in runs:
        r = json.load(open(f"{w}/{name}.json"))
        rss = int(open(f"{w}/rss.{name}").read())
        e = statistics.median(r["epoch_s"][1:])
        best = e if best is None else min(best, e)
        print(f"  PyTorch{label}: {e:.2f} s/epoch, {1000 * e / u:.0f} ms/update (epochs: {', '.join(f'{x:.2f}' for x in r['epoch_s'])}); "
              f"ratio PyTorch / ours {e / ours:.2f}; peak RSS {rss} MiB, ours / PyTorch {rss_ours / rss:.2f}")
    print(f"  ratio against the faster PyTorch, per epoch and per update: {best / ours:.2f} (goal >= 1)")
a = sys.argv
models = a[10].split()
if "multivae" in models:
    report("multivae", a[2], a[3], a[4], a[5], [(", dense input", "mv-dense"), (", sparse input", "mv-sparse")])
if "lightgcn" in models:
    report("lightgcn", a[6], a[7], a[8], a[9], [("", "lg")])
PY
