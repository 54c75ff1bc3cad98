#!/usr/bin/env bash
# Benchmark: the Llama backbone at SmolLM2-135M's shape (random init), tokens/s of a training
# step (forward + backward) and of an inference forward, batch 8 x 64, against the same model
# and step in PyTorch + transformers (benches/llama_torch.py) in the same run; prints the
# ratios. With CLLM4REC_SMOLLM2_GGUF set, also the GGUF's load time. Not run by CI.
# Needs: python3 with torch and transformers.
#   bash benches/llama.sh        (env: BATCH=8 SEQ=64 STEPS=3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -c "import torch, transformers" 2>/dev/null || { echo "error: needs torch and transformers (pip install torch transformers)" >&2; exit 1; }
ours=$(cargo bench --quiet --bench llama_throughput 2>/dev/null)
echo "$ours"
theirs=$(python3 benches/llama_torch.py 2>/dev/null)
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import re, statistics, sys
ours, theirs = sys.argv[1], sys.argv[2]
for what, key in [("forward+backward", "fwd\\+bwd"), ("forward (inference)", "fwd")]:
    o = statistics.median(float(x) for x in re.findall(re.escape(what) + r" step: [0-9.]+ s, ([0-9.]+) tokens/s", ours))
    t = float(re.search(r"torch " + key + r" ([0-9.]+)", theirs).group(1))
    print(f"{what}: ours / PyTorch = {o / t:.2f} ({o:.0f} vs {t:.0f} tokens/s)")
PY
