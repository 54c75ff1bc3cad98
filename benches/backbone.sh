#!/usr/bin/env bash
# Benchmark: pretrain throughput (tokens/s) of a backbone on the CPU, three ways in one run,
# on the same documents, batch size, sequence lengths and loss (one collaborative epoch of the
# `pretrain` stage, `content: false`, over a reduced MovieLens corpus):
#   1. ours, burn's ndarray backend (the default build, with `engine: burn`: a random GPT-2
#      would otherwise train with the fused CPU trainer, which benches/pretrain.sh measures);
#   2. ours, libtorch 2.9.0 through burn-tch (`--features tch`);
#   3. PyTorch + transformers (benches/pretrain_torch.py, the installed torch), same model.
# Prints tokens/s, the epoch's loss and peak RSS of each, and the ratios against PyTorch.
# Not run by CI.
#
#   bash benches/backbone.sh [BACKBONE]
# BACKBONE: the pretrain stage's `backbone:`: `random` (default: a random GPT-2 of
#   N_LAYER x N_EMBD, trained) or a .gguf file (SmolLM2-135M, frozen as the stage freezes a
#   pretrained backbone; PyTorch loads the same file with transformers). With a .gguf the
#   documents are tokenized with its tokenizer (`tokenizer: gguf`, `tokenizer_file:`).
# Env: USERS=200 (ml-latest-small users kept, in id order: one document each), BATCH=32,
#   N_POSITIONS=512, N_LAYER=2 N_HEAD=4 N_EMBD=64 (random GPT-2 only), EPOCHS=1,
#   TOKENIZER (`gpt2`, or a .gguf file; default gpt2, or BACKBONE when it is a .gguf),
#   LIBTORCH_DIR (default /var/tmp/libtorch-2.9.0; set up by benches/libtorch.sh if absent),
#   SKIP_TCH=1 (no libtorch run), CARGO_TARGET_DIR.
# Needs: cargo, python3 with torch and transformers (and gguf for a .gguf), awk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BACKBONE=${1:-random}
USERS=${USERS:-200}; BATCH=${BATCH:-32}; N_POSITIONS=${N_POSITIONS:-512}; EPOCHS=${EPOCHS:-1}
N_LAYER=${N_LAYER:-2}; N_HEAD=${N_HEAD:-4}; N_EMBD=${N_EMBD:-64}
LIBTORCH_DIR=${LIBTORCH_DIR:-/var/tmp/libtorch-2.9.0}
THREADS=$(nproc)
case $BACKBONE in
    random) TOKENIZER=${TOKENIZER:-gpt2} ;;
    *.gguf)
        [[ -f $BACKBONE ]] || { echo "error: no backbone file $BACKBONE" >&2; exit 1; }
        BACKBONE=$(cd "$(dirname "$BACKBONE")" && pwd)/$(basename "$BACKBONE")
        TOKENIZER=${TOKENIZER:-$BACKBONE} ;;
    *) echo "error: BACKBONE must be \`random\` or a .gguf file, not \`$BACKBONE\`" >&2; exit 2 ;;
esac
python3 -c "import torch, transformers" 2>/dev/null \
    || { echo "error: needs torch and transformers (pip install torch transformers)" >&2; exit 1; }

W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building: cargo build --release (ndarray)" >&2
cargo build --release --quiet
cp "$TARGET/release/cllm4rec-pipe" "$W/bin-ndarray"
if [[ ${SKIP_TCH:-0} != 1 ]]; then
    eval "$(bash benches/libtorch.sh "$LIBTORCH_DIR")"
    echo "== building: cargo build --release --features tch (LIBTORCH=$LIBTORCH)" >&2
    cargo build --release --quiet --features tch
    cp "$TARGET/release/cllm4rec-pipe" "$W/bin-tch"
fi

# The reduced corpus: the first USERS users of ml-latest-small (ratings and tags), all movies.
mkdir -p "$W/ml"
awk -F, -v n="$USERS" 'NR == 1 || $1 <= n' data/ml-latest-small/ratings.csv > "$W/ml/ratings.csv"
awk -F, -v n="$USERS" 'NR == 1 || $1 <= n' data/ml-latest-small/tags.csv > "$W/ml/tags.csv"
cp data/ml-latest-small/movies.csv data/ml-latest-small/links.csv "$W/ml/"

# The pipeline, in a workspace of its own (a .gguf is copied in: paths stay inside it).
mkdir -p "$W/ws/stages"
if [[ $BACKBONE == random ]]; then
    shape="backbone: random, n_layer: $N_LAYER, n_head: $N_HEAD, n_embd: $N_EMBD,"
else
    cp "$BACKBONE" "$W/ws/backbone.gguf"
    shape="backbone: backbone.gguf,"
fi
if [[ $TOKENIZER == gpt2 ]]; then
    tok="tokenizer: gpt2"
elif [[ $TOKENIZER == "$BACKBONE" ]]; then
    tok="tokenizer: gguf, tokenizer_file: backbone.gguf"
else
    cp "$TOKENIZER" "$W/ws/tokenizer.gguf"
    tok="tokenizer: gguf, tokenizer_file: tokenizer.gguf"
fi
cat > "$W/ws/p.yaml" <<YAML
name: bench-backbone
stages:
  ingest:
    kind: ingest
    params: {format: movielens, path: $W/ml, min_rating: 4.0}
  tokenize:
    kind: tokenize
    needs: [ingest]
    params: {$tok}
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {$shape n_positions: $N_POSITIONS, batch_size: $BATCH, epochs: $EPOCHS, content: false, batching: bucket, engine: burn}
YAML

# ours BACKEND: one forced pretrain run; prints "tokens/s loss rss_mib"
ours() {
    local bin=$W/bin-$1
    /usr/bin/time -f "%M" -o "$W/rss-$1" "$bin" --cache-dir "$W/cache" run "$W/ws/p.yaml" --force pretrain \
        > "$W/out-$1" 2>&1 || { echo "error: the $1 run failed:" >&2; tail -n 20 "$W/out-$1" >&2; exit 1; }
    local log
    log=$("$bin" --cache-dir "$W/cache" show "$W/ws/p.yaml" pretrain | sed -n 's/^log: *//p')
    python3 - "$log" "$(cat "$W/rss-$1")" <<'PY'
import re, sys
t = s = 0; loss = []
for m in re.finditer(r'collab epoch \d+: loss ([0-9.]+) nll [0-9.]+ \((\d+) tokens in ([0-9.]+) s', open(sys.argv[1]).read()):
    loss.append(float(m.group(1))); t += int(m.group(2)); s += float(m.group(3))
if not t:
    sys.exit(f"error: no collab epoch in {sys.argv[1]}")
print(t / s, loss[-1], int(sys.argv[2]) / 1024, t, s)
PY
}
echo "== ours, ndarray" >&2
r=$(ours ndarray); read -r nd_tps nd_loss nd_rss nd_tok nd_s <<<"$r"
if [[ -x $W/bin-tch ]]; then
    echo "== ours, libtorch" >&2
    r=$(ours tch); read -r tc_tps tc_loss tc_rss tc_tok tc_s <<<"$r"
fi
TOK=$("$W/bin-ndarray" --cache-dir "$W/cache" show "$W/ws/p.yaml" tokenize | sed -n 's/^output: //p')
docs=$(python3 -c "import struct,sys; print(struct.unpack_from('<Q', open(sys.argv[1],'rb').read(), 8)[0])" "$TOK/collab.tok")
echo "== PyTorch" >&2
if [[ $BACKBONE == random ]]; then
    targs=(--n-layer "$N_LAYER" --n-head "$N_HEAD" --n-embd "$N_EMBD")
else
    targs=(--backbone "$BACKBONE")
fi
torch=$(python3 benches/pretrain_torch.py "$TOK" "${targs[@]}" --n-positions "$N_POSITIONS" \
    --batch-size "$BATCH" --epochs "$EPOCHS" --threads "$THREADS")

python3 - "$EPOCHS" "$docs" "$THREADS" "$torch" "$nd_tps" "$nd_loss" "$nd_rss" "$nd_tok" "$nd_s" \
    "${tc_tps:-}" "${tc_loss:-}" "${tc_rss:-}" "${tc_tok:-}" "${tc_s:-}" <<'PY'
import json, sys
epochs, docs, threads, t = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
rows = [("ours, ndarray", *map(float, sys.argv[5:10]))]
if sys.argv[10]:
    rows.append(("ours, libtorch 2.9.0", *map(float, sys.argv[10:15])))
pt = t["tokens_per_s"]
print(f"pretrain (collaborative LM, {epochs} epoch(s)) on {docs} documents, backbone {t['backbone']}, {threads} threads")
for name, tps, loss, rss, tok, secs in rows:
    print(f"{name:<22} {tps:8.0f} tokens/s ({tok:.0f} in {secs:.1f} s)   loss {loss:.4f}   peak RSS {rss:5.0f} MiB   ratio to PyTorch {tps / pt:.2f}")
print(f"{'PyTorch ' + t['torch']:<22} {pt:8.0f} tokens/s ({t['tokens']} in {t['seconds']:.1f} s)   loss {t['loss']:.4f}   peak RSS {t['peak_rss_mib']:5.0f} MiB")
PY
