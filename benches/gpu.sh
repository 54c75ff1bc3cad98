#!/usr/bin/env bash
# The GPU check: the CUDA build of cllm4rec-pipe against the CPU build and against PyTorch on
# the same GPU. Not run by CI.
#
#   bash benches/gpu.sh --prepare   here (Rust, no GPU): build the `cuda` feature offline, pack
#                                   gpu-bundle/ (under 64 MiB with the working tree)
#   bash benches/gpu.sh --device    on the GPU machine, from the repository root with
#                                   gpu-bundle/ beside it (no Rust needed): the figures
#   bash benches/gpu.sh --dry-run   here: --prepare, then every step of --device on the CPU
#                                   (the default build, PyTorch on the CPU, reduced shapes), so
#                                   that the one run on the device meets no script error
#   bash benches/gpu.sh             --prepare then --device (a machine with Rust and a GPU)
#
# --prepare
#   1. LLVM from PyPI (benches/llvm.sh LLVM_DIR; the cuda feature links it) and
#      `cargo build --release --locked --no-default-features --features cuda` into
#      CUDA_TARGET (its own target folder, so that the default build is not rebuilt; without
#      the default `openblas`, so that it needs no BLAS library); the binary is stripped and
#      xz-compressed into gpu-bundle/. It needs at run time only glibc 2.35+, libstdc++ (GCC
#      12+) and the NVIDIA driver (cubecl's default CUDA compiler lowers kernels through the
#      linked LLVM to PTX, which the driver loads).
#   2. The CPU build (`cargo build --release`) runs the quickstart (cache CPU_CACHE, default
#      ./cache, where README's first command puts it) and its metrics go into the bundle as the
#      reference.
#   3. Data: Amazon Beauty (BEAUTY_DIR, default ../shared/data/amazon2014/beauty; 1.5 MB) whole,
#      for the estimate's counts, and its first N_USERS users (user_sequence.txt's first lines;
#      default 2,000 of 22,363) for the timed runs; SmolLM2-135M's GGUF metadata and tensor
#      table without its weights (benches/gguf_random.py cut; the 98 MB file would not fit),
#      filled on the device with seeded random weights of the same types and shapes, which
#      both sides load; the gguf Python package's wheel (pinned by hash; transformers reads a
#      GGUF with it).
# --device: one line per figure, each step within its own time cap (the whole under 8 minutes;
#   a step that runs out says so and the script goes on):
#   - the quickstart on the GPU: metrics against the CPU build's (goal: within 2e-3), time;
#   - bit-identical rerun: `reproduce --all` of the quickstart on the GPU;
#   - GPT-2-small-shaped CLLM4Rec (12 layers, 12 heads, 768 wide) collaborative pretraining on
#     the first N_USERS users of Beauty: tokens/s of the last of EPOCHS epochs (the first one
#     compiles and autotunes kernels), ours against PyTorch + transformers on the same model,
#     documents and batches (benches/pretrain_torch.py --device cuda); peak GPU memory of each
#     (nvidia-smi's memory.used over the run, less the idle value; PyTorch's allocator peak too);
#   - the same with SmolLM2-135M frozen (its tokenizer, trainable user/item tables);
#   - the estimated wall time of pipelines/paper-beauty.yaml on the full Beauty: the pipeline
#     run on the first N_USERS users with EST_EPOCHS epochs per training stage, one stage at a
#     time (`--jobs 1`, so that no stage's time includes another's use of the GPU), each stage's
#     time per epoch (between its epoch events) scaled to the pipeline's epochs and to the full
#     data (tokens for pretrain and finetune, users x items for Multi-VAE and evaluation,
#     training interactions for LightGCN), plus its measured fixed part; printed as the sum of
#     all stages and as the longest chain (ingest -> tokenize -> pretrain -> finetune ->
#     evaluate), since the baselines run beside CLLM4Rec.
#   When OUT is set (the device tool sets it), the figures go to $OUT/gpu.txt and the raw
#   outputs beside them (the runs' JSON lines, reproduce's report, PyTorch's JSON).
#
# Env: N_USERS (2000), EPOCHS (2), EST_EPOCHS (2), LLVM_DIR (/var/tmp/cllm4rec-llvm),
#   CUDA_TARGET (/var/tmp/cllm4rec-pipe-target-cuda), CPU_CACHE (cache), BEAUTY_DIR,
#   PYTHON (python3 with torch and transformers; for --dry-run default
#   /var/tmp/cllm4rec-torch-py/bin/python if it exists), OUT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BUNDLE=$ROOT/gpu-bundle
MODE=${1:-all}
case $MODE in --prepare|--device|--dry-run|all) ;; *) echo "usage: bash benches/gpu.sh [--prepare|--device|--dry-run]" >&2; exit 2 ;; esac

N_USERS=${N_USERS:-2000}
EPOCHS=${EPOCHS:-2}
EST_EPOCHS=${EST_EPOCHS:-2}
LLVM_DIR=${LLVM_DIR:-/var/tmp/cllm4rec-llvm}
CUDA_TARGET=${CUDA_TARGET:-/var/tmp/cllm4rec-pipe-target-cuda}
CPU_CACHE=${CPU_CACHE:-cache}
BEAUTY_DIR=${BEAUTY_DIR:-$ROOT/../shared/data/amazon2014/beauty}
SMOLLM2=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
LIMIT_MIB=64
GGUF_WHEEL=gguf-0.19.0-py3-none-any.whl
GGUF_SHA256=70bcd10edfe697fb2dad6e40af2234b9d8ece9a41a99761405121ebda1c3c1cd

say() { echo "$@" >&2; }

# The first N users of a P5-layout dataset (user_sequence.txt.gz's first N lines) with the
# rows of items.tsv.gz for their items only (ingest refuses text for an item nobody has).
head_users() { # N SRC_DIR DST_DIR
    mkdir -p "$3"
    python3 - "$@" <<'PY'
import gzip, sys
n, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with gzip.open(f"{src}/user_sequence.txt.gz", "rt") as f:
    lines = [l for _, l in zip(range(n), f)]
items = {a for l in lines for a in l.split()[1:]}
with gzip.GzipFile(f"{dst}/user_sequence.txt.gz", "wb", mtime=0) as out:
    out.write("".join(lines).encode())
with gzip.open(f"{src}/items.tsv.gz", "rt") as f, gzip.GzipFile(f"{dst}/items.tsv.gz", "wb", mtime=0) as out:
    for i, row in enumerate(f):
        if i == 0 or row.split("\t")[1] in items:
            out.write(row.encode())
with open(f"{dst}/users", "w") as out:
    out.write(f"{len(lines)}\n")
PY
}

# ---- prepare ------------------------------------------------------------------------------
prepare() {
    for tool in cargo python3 xz strip; do
        command -v "$tool" >/dev/null || { say "error: --prepare needs $tool"; exit 1; }
    done
    [[ -f $BEAUTY_DIR/user_sequence.txt.gz && -f $BEAUTY_DIR/items.tsv.gz ]] \
        || { say "error: no Amazon Beauty (user_sequence.txt.gz, items.tsv.gz) in $BEAUTY_DIR; set BEAUTY_DIR"; exit 1; }
    [[ -f $SMOLLM2 ]] || { say "error: no $SMOLLM2 (README \"A pretrained backbone\" says how to get it)"; exit 1; }

    say "== 1. the CUDA build (LLVM from PyPI: benches/llvm.sh $LLVM_DIR)"
    eval "$(bash benches/llvm.sh "$LLVM_DIR")"
    local t0=$SECONDS
    CARGO_TARGET_DIR=$CUDA_TARGET cargo build --release --locked --no-default-features --features cuda
    say "   built in $((SECONDS - t0)) s: $CUDA_TARGET/release/cllm4rec-pipe"
    rm -rf "$BUNDLE.tmp"
    mkdir -p "$BUNDLE.tmp"
    strip -o "$BUNDLE.tmp/cllm4rec-pipe-cuda" "$CUDA_TARGET/release/cllm4rec-pipe"
    xz -T0 -6 "$BUNDLE.tmp/cllm4rec-pipe-cuda"

    say "== 2. the CPU build's quickstart (cache $CPU_CACHE), the reference metrics"
    cargo build --release --locked --quiet
    local cpu_bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/cllm4rec-pipe
    "$cpu_bin" --cache-dir "$CPU_CACHE" run pipelines/quickstart.yaml --progress json | tail -n 1 > "$BUNDLE.tmp/cpu-quickstart.json"

    say "== 3. data: Amazon Beauty, its first $N_USERS users, SmolLM2's GGUF metadata, the gguf wheel"
    mkdir -p "$BUNDLE.tmp/beauty"
    cp "$BEAUTY_DIR/user_sequence.txt.gz" "$BEAUTY_DIR/items.tsv.gz" "$BUNDLE.tmp/beauty/"
    head_users "$N_USERS" "$BEAUTY_DIR" "$BUNDLE.tmp/beauty-head"
    python3 benches/gguf_random.py cut "$SMOLLM2" "$BUNDLE.tmp/smollm2-head.gguf" >&2
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r <(echo "gguf==0.19.0 --hash=sha256:$GGUF_SHA256") -d "$BUNDLE.tmp" >&2
    rm -rf "$BUNDLE"
    mv "$BUNDLE.tmp" "$BUNDLE"

    local tree bundle
    tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n 1 | cut -f1)
    bundle=$(du -sb "$BUNDLE" | cut -f1)
    say "   gpu-bundle/ $((bundle / 1024)) KiB (the CUDA binary $(( $(stat -c %s "$BUNDLE/cllm4rec-pipe-cuda.xz") / 1024 )) KiB compressed) + tracked files $((tree / 1024)) KiB = $(( (bundle + tree) / 1048576 )) MiB of the $LIMIT_MIB MiB that travel"
    (( bundle + tree < LIMIT_MIB * 1048576 )) || { say "error: more than $LIMIT_MIB MiB would travel"; exit 1; }
}

# ---- device -------------------------------------------------------------------------------
W=""
cleanup() { [[ -n $W ]] && rm -rf "$W"; [[ -n ${POLL_PID:-} ]] && kill "$POLL_PID" 2>/dev/null; true; }
trap cleanup EXIT

# One figure: a line on stdout, kept for $OUT/gpu.txt.
figure() { echo "$*"; echo "$*" >> "$W/figures.txt"; }

# Peak GPU memory over a command: nvidia-smi's memory.used of GPU 0 every 100 ms, less the
# value before it started (MiB); "n/a" without nvidia-smi (the dry run).
mem_start() {
    POLL_PID=""
    : > "$W/mem"
    command -v nvidia-smi >/dev/null || return 0
    MEM_IDLE=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -n 1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 > "$W/mem" 2>/dev/null &
    POLL_PID=$!
}
mem_stop() {
    [[ -n ${POLL_PID:-} ]] || { echo n/a; return; }
    kill "$POLL_PID" 2>/dev/null; wait "$POLL_PID" 2>/dev/null || true
    POLL_PID=""
    sort -n "$W/mem" | tail -n 1 | awk -v idle="$MEM_IDLE" '{ print $1 - idle }'
}

# Seconds left of the device steps' budget.
left() { echo $(( BUDGET - (SECONDS - START) )); }
# A step's cap: its own (times CAP_SCALE), or what is left, whichever is smaller (at least 1 s).
cap() { local c=$(( $1 * CAP_SCALE )) l; l=$(left); (( l < c )) && echo $(( l > 1 ? l : 1 )) || echo "$c"; }

# tokens/s of the last collaborative epoch in a pretrain stage's log
last_epoch_rate() {
    sed -n 's/^collab epoch [0-9]*: .*(\([0-9]*\) tokens in \([0-9.]*\) s.*/\1 \2/p' "$1" | tail -n 1 \
        | awk '{ if ($2 > 0) printf "%.0f\n", $1 / $2 }'
}

device() {
    local dry=$1
    W=$(mktemp -d)
    : > "$W/figures.txt"
    START=$SECONDS
    BUDGET=${BUDGET:-450}
    CAP_SCALE=1
    local bin py gpt2_shape smol_positions dev quick_set=()
    [[ -d $BUNDLE ]] || { say "error: no gpu-bundle/ (bash benches/gpu.sh --prepare makes it)"; exit 1; }
    if [[ $dry == 1 ]]; then
        # The CPU build stands in for the CUDA one; PyTorch runs on the CPU; shapes are cut so
        # that the steps take seconds. The figures say nothing about a GPU.
        bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/cllm4rec-pipe
        py=${PYTHON:-$([[ -x /var/tmp/cllm4rec-torch-py/bin/python ]] && echo /var/tmp/cllm4rec-torch-py/bin/python || echo python3)}
        dev=cpu
        gpt2_shape="n_layer: 2, n_head: 4, n_embd: 64"
        GPT2_ARGS=(--n-layer 2 --n-head 4 --n-embd 64)
        smol_positions=32
        N_RUN=30
        quick_set=(--set stages.pretrain.params.epochs=1 --set stages.finetune.params.epochs=1)
        EST_SET=(--set params.n_layer=2 --set params.n_head=4 --set params.n_embd=64)
        # two cores, not a GPU: four times the time (SmolLM2's forward alone takes a while)
        CAP_SCALE=4
        BUDGET=$(( BUDGET * CAP_SCALE ))
        figure "DRY RUN on the CPU (the default build, PyTorch on the CPU, reduced shapes and data): the figures below check the script, not a GPU"
        # The bundle's CUDA binary as the device step unpacks it: it loads here, and without a
        # GPU its device stages refuse to run with the clear error.
        xz -dc "$BUNDLE/cllm4rec-pipe-cuda.xz" > "$W/cuda-bin"
        chmod +x "$W/cuda-bin"
        ! ldd "$W/cuda-bin" | grep "not found" || { say "error: the CUDA binary lacks libraries"; exit 1; }
        local crc=0
        "$W/cuda-bin" --cache-dir "$W/cache-cuda" run pipelines/quickstart.yaml > "$W/cuda.out" 2>&1 || crc=$?
        grep -q "found no CUDA device" "$W/cuda.out" && (( crc == 1 )) \
            || { say "error: the CUDA binary's quickstart did not fail with \`found no CUDA device\` (exit $crc)"; tail "$W/cuda.out" >&2; exit 1; }
        figure "CUDA binary (gpu-bundle/, $(( $(stat -c %s "$W/cuda-bin") / 1048576 )) MiB unpacked; ldd: $(ldd "$W/cuda-bin" | awk '{print $1}' | grep -v -e vdso -e ld-linux | tr '\n' ' ')): without a GPU, pretrain fails with \"found no CUDA device\" as it should"
    else
        py=${PYTHON:-python3}
        dev=cuda
        bin=$W/cllm4rec-pipe
        xz -dc "$BUNDLE/cllm4rec-pipe-cuda.xz" > "$bin" 2>/dev/null \
            || "$py" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
                "$BUNDLE/cllm4rec-pipe-cuda.xz" "$bin"
        chmod +x "$bin"
        if ldd "$bin" | grep -q "not found"; then
            figure "binary: FAILED: libraries not found on this machine: $(ldd "$bin" | grep "not found" | tr -s ' \t' ' ' | tr '\n' ';')"
            exit 1
        fi
        gpt2_shape="n_layer: 12, n_head: 12, n_embd: 768"
        GPT2_ARGS=(--n-layer 12 --n-head 12 --n-embd 768)
        smol_positions=512
        N_RUN=$(cat "$BUNDLE/beauty-head/users")
        EST_SET=()
        # The driver is found by the loader; NVRTC and the toolkit's libraries where CUDA and
        # PyTorch's wheels put them (cubecl's default compiler needs only the driver).
        local extra=""
        [[ -d /usr/local/cuda/lib64 ]] && extra=/usr/local/cuda/lib64
        local site
        site=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" 2>/dev/null || true)
        for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do [[ -d $d ]] && extra=${extra:+$extra:}$d; done
        export LD_LIBRARY_PATH=$extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        command -v nvidia-smi >/dev/null && figure "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader -i 0)"
    fi
    "$py" -c "import torch, transformers" 2>/dev/null || { say "error: $py has no torch and transformers"; exit 1; }
    export PYTHONPATH=$BUNDLE/$GGUF_WHEEL${PYTHONPATH:+:$PYTHONPATH}
    figure "binary: $("$bin" --version 2>&1 | head -n 1); PyTorch $("$py" -c 'import torch, transformers; print(torch.__version__, "+ transformers", transformers.__version__)')"

    # -- the quickstart, and its rerun ---------------------------------------------------------
    local t0 rc=0 qc=$W/cache-quickstart
    t0=$SECONDS
    timeout "$(cap 200)" "$bin" --cache-dir "$qc" run pipelines/quickstart.yaml "${quick_set[@]}" --progress json \
        > "$W/quickstart.jsonl" 2> "$W/quickstart.err" || rc=$?
    local qs_secs=$((SECONDS - t0))
    if [[ $dry == 1 ]]; then
        # the reference is the same shortened run on the CPU: only the comparison is checked
        tail -n 1 "$W/quickstart.jsonl" > "$W/reference.json"
    else
        cp "$BUNDLE/cpu-quickstart.json" "$W/reference.json"
    fi
    if (( rc != 0 )); then
        figure "quickstart: FAILED or out of time (exit $rc after $qs_secs s): $(tail -n 3 "$W/quickstart.err" | tr '\n' ' ')"
    else
        "$py" - "$W/quickstart.jsonl" "$W/reference.json" "$qs_secs" >> "$W/figures.txt" <<'PY'
import json, sys
run = json.loads(open(sys.argv[1]).read().splitlines()[-1])
ref = json.loads(open(sys.argv[2]).read().splitlines()[-1])
def metrics(f):
    return {r["instance"]: r["metrics"] for r in f["results"] if r.get("metrics")}
got, want = metrics(run), metrics(ref)
worst = 0.0
parts = []
for inst in sorted(got):
    m, w = got[inst], want.get(inst, {})
    diffs = [abs(m[k] - w[k]) for k in m if k in w and isinstance(m[k], float)]
    worst = max([worst] + diffs)
    parts.append(f"{inst} " + " ".join(f"{k} {m[k]:.4f} (cpu {w.get(k, float('nan')):.4f})"
                                       for k in ("ndcg@100", "recall@20", "recall@40") if k in m))
print(f"quickstart: {'; '.join(parts)}; max |gpu - cpu| {worst:.4f} (goal <= 0.002: {'met' if worst <= 0.002 else 'NOT met'}); {sys.argv[3]} s for all {len(run['results'])} stages")
PY
        tail -n 1 "$W/figures.txt"
        rc=0
        timeout "$(cap 150)" "$bin" --cache-dir "$qc" reproduce pipelines/quickstart.yaml "${quick_set[@]}" --all \
            > "$W/reproduce.txt" 2>&1 || rc=$?
        figure "rerun (reproduce --all on the device): $(grep -E '^[0-9]+ instances:' "$W/reproduce.txt" || echo "did not finish (exit $rc)")$(grep -E 'DIFFERS|FAILED' "$W/reproduce.txt" | awk '{printf "; %s %s", $1, $2}')"
    fi

    # -- pretrain throughput: GPT-2 small, SmolLM2-135M frozen ---------------------------------
    mkdir -p "$W/ws/stages" "$W/ws/data"
    if [[ $dry == 1 ]]; then
        head_users "$N_RUN" "$BUNDLE/beauty-head" "$W/ws/data/beauty-head"
    else
        cp -r "$BUNDLE/beauty-head" "$W/ws/data/"
    fi
    "$py" benches/gguf_random.py fill "$BUNDLE/smollm2-head.gguf" "$W/ws/backbone.gguf" --seed 0 >&2
    local tok_gpt2="tokenizer: gpt2" tok_smol="tokenizer: gguf, tokenizer_file: backbone.gguf"
    throughput() { # name, backbone params, tokenizer params, pretrain_torch.py args...
        local name=$1 shape=$2 tok=$3; shift 3
        cat > "$W/ws/$name.yaml" <<YAML
name: gpu-$name
stages:
  ingest:
    kind: ingest
    params: {format: p5, path: data/beauty-head, split: random}
  tokenize:
    kind: tokenize
    needs: [ingest]
    params: {$tok}
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {$shape, n_positions: 512, batch_size: 32, epochs: $EPOCHS, content: false, batching: bucket, engine: burn}
YAML
        local c=$W/cache-$name mem rc=0 rate
        "$bin" --cache-dir "$c" run "$W/ws/$name.yaml" --force pretrain >/dev/null 2>&1 || true  # ingest, tokenize
        mem_start
        timeout "$(cap 90)" "$bin" --cache-dir "$c" run "$W/ws/$name.yaml" --force pretrain > "$W/$name.out" 2>&1 || rc=$?
        mem=$(mem_stop)
        local log tokdir
        log=$("$bin" --cache-dir "$c" show "$W/ws/$name.yaml" pretrain 2>/dev/null | sed -n 's/^log: *//p' | head -n 1)
        tokdir=$("$bin" --cache-dir "$c" show "$W/ws/$name.yaml" tokenize | sed -n 's/^output: *//p' | head -n 1)
        rate=$([[ $rc == 0 && -f $log ]] && last_epoch_rate "$log" || echo "")
        mem_start
        rc=0
        timeout "$(cap 90)" "$py" benches/pretrain_torch.py "$tokdir" "$@" --n-positions 512 --batch-size 32 \
            --epochs "$EPOCHS" --device "$dev" --threads "$(nproc)" > "$W/$name-torch.json" 2> "$W/$name-torch.err" || rc=$?
        local tmem
        tmem=$(mem_stop)
        [[ $rc == 0 ]] || say "PyTorch ($name): exit $rc: $(tail -n 3 "$W/$name-torch.err")"
        "$py" - "$name" "${rate:-0}" "$mem" "$tmem" "$W/$name-torch.json" "$tokdir" >> "$W/figures.txt" <<'PY'
import json, struct, sys
name, ours, mem, tmem, tfile, tokdir = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
n_docs, n_tokens = struct.unpack_from("<QQ", open(f"{tokdir}/collab.tok", "rb").read(24), 8)
try:
    t = json.loads(open(tfile).read().splitlines()[-1])
    theirs = t["epochs"][-1]["tokens_per_s"]
    alloc = f", PyTorch's allocator peak {t['peak_gpu_reserved_mib']:.0f} MiB reserved" if "peak_gpu_reserved_mib" in t else ""
except Exception:
    t, theirs, alloc = None, 0.0, ""
ratio = f"{ours / theirs:.2f}" if ours and theirs else "n/a"
memr = f"{float(mem) / float(tmem):.2f}" if mem not in ("n/a", "") and tmem not in ("n/a", "") and float(tmem) > 0 else "n/a"
print(f"pretrain {name} ({n_docs} documents, {n_tokens} tokens, last epoch): ours {ours:.0f} tokens/s, "
      f"PyTorch {theirs:.0f} tokens/s, ratio {ratio} (goal >= 1); peak GPU memory ours {mem} MiB, "
      f"PyTorch {tmem} MiB, ratio {memr}{alloc}")
PY
        tail -n 1 "$W/figures.txt"
    }
    throughput gpt2-small "backbone: random, $gpt2_shape" "$tok_gpt2" "${GPT2_ARGS[@]}"
    throughput smollm2-frozen "backbone: backbone.gguf, n_positions: $smol_positions" "$tok_smol" \
        --backbone "$W/ws/backbone.gguf"

    # -- the estimate of pipelines/paper-beauty.yaml ---------------------------------------------
    # paper-beauty's own stages on the first N users, EST_EPOCHS epochs per training stage, and
    # its ingest + tokenize on all of Beauty for the counts.
    local pb=$W/cache-paper rc=0 full_data sub_data
    sub_data=$W/ws/data/beauty-head
    full_data=$BUNDLE/beauty
    # the first users alone are not 5-core: no k-core filter there (every one of them has 5+)
    local paper_set=(--set "params.data_dir=$sub_data" --set stages.ingest.params.kcore=0
        --set "params.epochs=$EST_EPOCHS" --set "params.finetune_epochs=$EST_EPOCHS"
        --set "stages.multivae.params.epochs=$EST_EPOCHS" --set "stages.lightgcn.params.epochs=$EST_EPOCHS" "${EST_SET[@]}")
    timeout "$(cap 150)" "$bin" --cache-dir "$pb" run pipelines/paper-beauty.yaml --jobs 1 --progress json "${paper_set[@]}" \
        > "$W/paper.jsonl" 2> "$W/paper.err" || rc=$?
    cat > "$W/ws/counts.yaml" <<YAML
name: gpu-counts
stages:
  ingest:
    kind: ingest
    params: {format: p5, path: $full_data, kcore: 5, split: random}
  tokenize:
    kind: tokenize
    needs: [ingest]
YAML
    "$bin" --cache-dir "$pb" run "$W/ws/counts.yaml" > /dev/null 2>&1 || say "the counts of the full Beauty failed"
    local full_ingest full_tok sub_ingest sub_tok
    full_ingest=$("$bin" --cache-dir "$pb" show "$W/ws/counts.yaml" ingest | sed -n 's/^output: *//p' | head -n 1)
    full_tok=$("$bin" --cache-dir "$pb" show "$W/ws/counts.yaml" tokenize | sed -n 's/^output: *//p' | head -n 1)
    sub_ingest=$("$bin" --cache-dir "$pb" show pipelines/paper-beauty.yaml "${paper_set[@]}" ingest 2>/dev/null | sed -n 's/^output: *//p' | head -n 1)
    sub_tok=$("$bin" --cache-dir "$pb" show pipelines/paper-beauty.yaml "${paper_set[@]}" tokenize 2>/dev/null | sed -n 's/^output: *//p' | head -n 1)
    "$py" - "$W/paper.jsonl" "$rc" "$EST_EPOCHS" "$full_ingest" "$full_tok" "$sub_ingest" "$sub_tok" pipelines/paper-beauty.yaml \
        >> "$W/figures.txt" 2>> "$W/paper.err" <<'PY'
import datetime, json, re, struct, sys
jsonl, rc, est, full_ing, full_tok, sub_ing, sub_tok, pipeline = sys.argv[1:9]
est = int(est)
def when(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
ev = [json.loads(l) for l in open(jsonl) if l.strip().startswith("{")]
started, done, epochs = {}, {}, {}
for e in ev:
    i = e.get("instance")
    if e["event"] == "started":
        started[i] = when(e["time"])
    elif e["event"] == "done":
        done[i] = when(e["time"])
    elif e["event"] == "epoch":
        # pretrain: a round is a collaborative and a content epoch; count collaborative ones
        if e.get("entry", {}).get("phase", "collab") == "collab":
            epochs.setdefault(i, []).append(when(e["time"]))
if not (full_ing and sub_ing and full_tok and sub_tok) or any(i not in done for i in started):
    print(f"paper-beauty estimate: not made: the run on the first users did not finish (exit {rc}); stages done: {sorted(done)}")
    sys.exit(0)
def stats(d):
    return json.load(open(f"{d}/stats.json"))
def tokens(d, *names):
    return sum(struct.unpack_from("<QQ", open(f"{d}/{n}.tok", "rb").read(24), 8)[1] for n in names)
fi, si = stats(full_ing), stats(sub_ing)
U, I, X = fi["users"], fi["items"], fi["splits"]["train"]
u, i, x = si["users"], si["items"], si["splits"]["train"]
scale = {
    "pretrain": tokens(full_tok, "collab", "content") / tokens(sub_tok, "collab", "content"),
    "finetune": tokens(full_tok, "rec") / tokens(sub_tok, "rec"),
    "multivae": U * I / (u * i),
    "lightgcn": X / x,
}
# the pipeline's own epochs per training stage
text = open(pipeline).read()
def param(name, default):
    m = re.search(rf"^\s+{name}:\s*([0-9.]+)", text, re.M)
    return float(m.group(1)) if m else default
target = {"pretrain": param("epochs", 10), "finetune": param("finetune_epochs", 20), "multivae": 200, "lightgcn": 100}
total, rows = 0.0, []
chain = ("ingest", "tokenize", "pretrain", "finetune", "cllm4rec")
chain_total = 0.0
for inst in sorted(started):
    secs = done[inst] - started[inst]
    if inst in target and len(epochs.get(inst, [])) >= 2:
        e = epochs[inst]
        per = (e[-1] - e[0]) / (len(e) - 1)
        fixed = max(secs - per * len(e), 0.0)
        t = fixed + per * target[inst] * scale[inst]
        rows.append(f"{inst} {t:.0f} s ({per:.2f} s/epoch x {target[inst]:.0f} x {scale[inst]:.1f} + {fixed:.1f} s)")
    else:
        s = U * I / (u * i) if inst in ("cllm4rec", "most-popular", "multi-vae", "light-gcn") else 1.0
        t = secs * s
        rows.append(f"{inst} {t:.0f} s")
    total += t
    if inst in chain:
        chain_total += t
print(f"paper-beauty estimate (full Beauty: {U} users, {I} items; timed on the first {u} users): "
      f"{total / 60:.1f} min for all stages one after another, {chain_total / 60:.1f} min on the CLLM4Rec chain "
      f"(goal < 60 min); " + ", ".join(rows))
PY
    tail -n 1 "$W/figures.txt"
    figure "device steps: $((SECONDS - START)) s (budget $BUDGET s)"
    if [[ -n ${OUT:-} ]]; then
        cp "$W/figures.txt" "$OUT/gpu.txt"
        for f in quickstart.jsonl reproduce.txt paper.jsonl paper.err gpt2-small-torch.json smollm2-frozen-torch.json; do
            [[ -f $W/$f ]] && cp "$W/$f" "$OUT/"
        done
    fi
}

case $MODE in
    --prepare) prepare ;;
    --device) device 0 ;;
    --dry-run) prepare; device 1 ;;
    all) prepare; device 0 ;;
esac
