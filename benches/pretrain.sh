#!/usr/bin/env bash
# Benchmark: the pretrain stage's collaborative LM (tokens/s and peak memory) against the same
# model, documents and batch size in PyTorch + transformers (benches/pretrain_torch.py), on the
# same machine in the same run; prints the ratios. The stage runs twice: as it trains by default
# (a GPT-2 on the CPU backend: the fused trainer, src/model/fused/) and with `engine: burn` (the
# burn model, which Llama backbones and the other backends use). Not run by CI.
# Needs: python3 with torch and transformers (pip install torch transformers; ~5.7 GB).
#   bash benches/pretrain.sh        (env: EPOCHS=2 N_EMBD=64 N_LAYER=2 N_HEAD=4 BATCH=32)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EPOCHS=${EPOCHS:-2}; N_EMBD=${N_EMBD:-64}; N_LAYER=${N_LAYER:-2}; N_HEAD=${N_HEAD:-4}; BATCH=${BATCH:-32}
THREADS=$(nproc)
python3 -c "import torch, transformers" 2>/dev/null || { echo "error: needs torch and transformers (pip install torch transformers)" >&2; exit 1; }
cargo build --release --quiet
BIN="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/cllm4rec-pipe"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cat > "$W/p.yaml" <<YAML
name: bench-pretrain
stages:
  ingest:
    kind: ingest
    params: {format: movielens, path: $(pwd)/data/ml-latest-small, min_rating: 4.0}
  tokenize:
    kind: tokenize
    needs: [ingest]
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {n_embd: $N_EMBD, n_layer: $N_LAYER, n_head: $N_HEAD, n_positions: 512, batch_size: $BATCH, epochs: $EPOCHS, content: false, batching: bucket, engine: auto}
YAML
# the stage log has "collab epoch N: ... (T tokens in S s, R tokens/s)"; prints tokens/s
measure() {
    "$BIN" --cache-dir "$W/cache" run "$W/p.yaml" --set "stages.pretrain.params.engine=$1" --force pretrain > /dev/null 2>&1 || true   # warm: ingest, tokenize
    /usr/bin/time -f "%M" -o "$W/rss-$1" "$BIN" --cache-dir "$W/cache" run "$W/p.yaml" --set "stages.pretrain.params.engine=$1" --force pretrain > "$W/out" 2>&1
    local log
    log=$("$BIN" --cache-dir "$W/cache" show "$W/p.yaml" --set "stages.pretrain.params.engine=$1" pretrain | sed -n 's/^log: *//p')
    python3 -c "
import re
t = s = 0
for m in re.finditer(r'\((\d+) tokens in ([0-9.]+) s', open('$log').read()):
    t += int(m.group(1)); s += float(m.group(2))
print(t / s)"
}
ours=$(measure auto)
ours_rss=$(( $(cat "$W/rss-auto") / 1024 ))
burn=$(measure burn)
burn_rss=$(( $(cat "$W/rss-burn") / 1024 ))
TOK=$("$BIN" --cache-dir "$W/cache" show "$W/p.yaml" tokenize | sed -n 's/^output: //p')
torch=$(python3 benches/pretrain_torch.py "$TOK" --n-layer "$N_LAYER" --n-head "$N_HEAD" --n-embd "$N_EMBD" --n-positions 512 --batch-size "$BATCH" --epochs "$EPOCHS" --threads "$THREADS")
python3 - "$ours" "$ours_rss" "$burn" "$burn_rss" "$torch" <<'PY'
import json, sys
ours, ours_rss, burn, burn_rss = map(float, sys.argv[1:5])
t = json.loads(sys.argv[5])
print(f"collaborative pretraining, ml-latest-small, {t['threads']} threads")
print(f"cllm4rec-pipe (fused trainer)  {ours:10.0f} tokens/s   peak RSS {ours_rss:7.0f} MiB (whole process)")
print(f"cllm4rec-pipe (engine: burn)   {burn:10.0f} tokens/s   peak RSS {burn_rss:7.0f} MiB (whole process)")
print(f"PyTorch {t['torch']:<22} {t['tokens_per_s']:10.0f} tokens/s   peak RSS {t['peak_rss_mib']:7.0f} MiB")
print(f"throughput ratio ours/PyTorch {ours / t['tokens_per_s']:.2f} (goal >= 1)   memory ratio {ours_rss / t['peak_rss_mib']:.2f} (goal <= 1)")
print(f"  engine: burn: throughput ratio {burn / t['tokens_per_s']:.2f}   memory ratio {burn_rss / t['peak_rss_mib']:.2f}")
PY
