#!/usr/bin/env bash
# Engine benchmark for cllm4rec-pipe. This is a benchmark, not a test: CI does not run it.
#
# What it measures (release build):
#   1. Overhead on a fully cached 18-instance pipeline shaped like a 5-point lambda_c sweep:
#      ingest -> tokenize -> (pretrain -> finetune -> evaluate) x5 -> ablate.
#      (a) the no-op rerun `cllm4rec-pipe run` and (b) `cllm4rec-pipe plan`: median and min
#      wall time over RUNS runs. Goal: median < 50 ms each.
#   2. Hashing throughput: `cllm4rec-pipe hash FILE` against `b3sum FILE` on a HASH_MB file
#      of random data, page cache warm, runs alternated. Goal: ours/b3sum >= 0.80. The two
#      must print the same hash (the script fails if not).
#
#   3. Scaling: the first run, the no-op rerun and `plan` of a sweep of trivial `command`
#      stages, prep -> train[x] -> eval[x] -> a gather over eval[*] (2 x POINTS + 2
#      instances), for each POINTS of SCALE_POINTS, each into a fresh cache, with the
#      runner's peak RSS, beside the same shell commands run alone (xargs -P, as many at a
#      time as the runner's default -j); the no-op rerun and `plan` the median of 3 runs each.
#      Goals: the first run's overhead per instance beyond
#      the programs' own time <= 5 ms, and not growing with the sweep; at 10^5 instances a
#      no-op rerun and `plan` <= 2 s each and peak RSS < 1 GB.
#      `bash benches/engine.sh scaling` runs only this part.
#   4. Side by side with Snakemake: the same DAG shape as a Snakefile (rules prep, train and
#      eval with wildcard x, gather = expand over all x, all), the same shell commands writing
#      the same small files, against ours on the same pipeline, for each POINTS of
#      SNAKE_POINTS, each in a fresh folder: the first run (`snakemake --cores N` against
#      `run -j N`, N the core count, our default), the no-op rerun (the same command again)
#      and the dry run (`snakemake -n` against `plan`) both before the first run (all to run)
#      and after it (all done). It checks that both made the same 2 x POINTS + 2 files with
#      the same content (the gather lists every x), that the reruns did nothing ("Nothing to be
#      done"; no output touched) and that the dry runs counted the jobs. It prints a table with
#      both times, the ratio snakemake/ours per column, the first run's time per job beside
#      that of the bare shell commands run N at a time (the floor of both), and the 1-minute
#      load average. Goal: ours >= 10x faster on each. Snakemake SNAKEMAKE_VERSION (pinned
#      below) is installed from PyPI into the venv SNAKEMAKE_VENV on first use (needs python3
#      >= 3.11 and PyPI; reused after). Its flags are explained in snakemake_side().
#      `bash benches/engine.sh snakemake` runs only this part; the full run runs it last.
#
# Run:   bash benches/engine.sh [scaling|snakemake]
# Env:   RUNS (default 30), HASH_MB (default 1024), HASH_RUNS (default 5), CARGO_TARGET_DIR,
#        SCALE_POINTS (default "50 500 5000 50000": about 10^2, 10^3, 10^4, 10^5 instances;
#        "none" skips),
#        SCALE_DIR (where the scaling caches go; default the system's temp folder), BIN (a
#        binary to use instead of building one),
#        SNAKE_POINTS (default "50 500 5000": 10^2, 10^3, 10^4 jobs; "none"
#        skips; Snakemake's first run of 10^4 jobs alone took 17 min at load 4-5 on 2 cores), SNAKE_REPS
#        (runs per no-op rerun and dry run, median; default 3), SNAKE_CORES (default nproc),
#        SNAKE_SCHEDULER (default greedy), SNAKE_DIR (where its folders go; default the temp
#        folder), SNAKEMAKE_VENV (default /var/tmp/cllm4rec-snakemake).
# Needs: cargo, b3sum, python3 (if hyperfine is used; and for Snakemake); hyperfine is optional (bash loop otherwise).
set -euo pipefail

RUNS=${RUNS:-30}
HASH_MB=${HASH_MB:-1024}
HASH_RUNS=${HASH_RUNS:-5}
GOAL_MS=50
GOAL_RATIO=0.80
SNAKEMAKE_VERSION=9.27.1 # pinned; the snakemake part installs it into SNAKEMAKE_VENV

if [[ ${1:-} != scaling && ${1:-} != snakemake ]] && ! command -v b3sum >/dev/null 2>&1; then
    echo "error: b3sum is not installed; install it with \`apt-get install b3sum\` (or \`cargo install b3sum\`)" >&2
    exit 1
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z ${BIN:-} ]]; then
    echo "== building the release binary"
    cargo build --release --quiet
    BIN="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/cllm4rec-pipe"
fi
[[ -x $BIN ]] || { echo "error: no binary at $BIN" >&2; exit 1; }

W=$(mktemp -d)
# Folders of finished measurements are removed when the script ends, not between
# measurements: on ext4 without a journal (this project's machines) the inode allocator skips
# every inode deleted in the last five minutes, one lookup each, so removing the 10^5-instance
# sweep (over a million files) made the file creations of the next measurements slower.
LEFT=()
SNAKE_ROOT=
cleanup() { rm -rf "$W" ${SNAKE_ROOT:+"$SNAKE_ROOT"} ${LEFT[@]+"${LEFT[@]}"}; }
trap cleanup EXIT
cd "$W"
export CLLM4REC_CACHE="$W/cache"

median() { sort -n | awk '{a[NR]=$1} END {print NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# ---- scaling ------------------------------------------------------------------------------
scaling() {
    local points=${SCALE_POINTS:-50 500 5000 50000}
    [[ $points == none ]] && return 0
    echo "== scaling: prep -> train[x] -> eval[x] -> gather(eval[*]), sh -c stages, 2 x POINTS + 2 instances"
    echo "   programs alone: the same $(nproc) at a time with xargs -P (the floor); overhead = (first run - programs alone) / instances (goal <= 5 ms)"
    echo "   goals at 10^5 instances: no-op rerun and plan <= 2 s each, peak RSS < 1 GB"
    printf '%10s %12s %14s %16s %14s %14s %10s %12s %10s\n' instances "first run" "per instance" "programs alone" "overhead" "no-op rerun" plan "peak RSS" "load"
    local n d s e first rerun plan rss floor load
    for n in $points; do
        d=$(mktemp -d -p "${SCALE_DIR:-${TMPDIR:-/tmp}}")
        (
            cd "$d"; git init -q .
            export CLLM4REC_CACHE="$d/cache"
            {
                echo "name: scale"; echo "matrix:"; printf '  x: ['; seq -s, 1 "$n" | tr -d '\n'; echo ']'
                cat <<'YAML'
stages:
  prep:
    kind: command
    cmd: ["sh", "-c", "echo prep > $CLLM4REC_OUT/p"]
  train:
    kind: command
    needs: [prep]
    cmd: ["sh", "-c", "echo ${matrix.x} > $CLLM4REC_OUT/t"]
  eval:
    kind: command
    needs: [train]
    cmd: ["sh", "-c", "echo ${matrix.x} > $CLLM4REC_OUT/e"]
  gather:
    kind: command
    needs: ["eval[*]"]
    cmd: ["sh", "-c", "ls $CLLM4REC_IN_EVAL | wc -l > $CLLM4REC_OUT/n"]
YAML
            } > s.yaml
            local inst=$(( 2 * n + 2 ))
            load=$(cut -d' ' -f1 /proc/loadavg)
            # the floor: the stage programs alone, as many at a time as the runner's default -j
            mkdir floor
            s=$(date +%s%N); seq 1 "$inst" | xargs -P "$(nproc)" -I{} sh -c "echo {} > floor/{}"; e=$(date +%s%N)
            floor=$(( (e - s) / 1000000 ))
            sync; s=$(date +%s%N); /usr/bin/time -f %M -o rss "$BIN" run s.yaml > run.log 2>/dev/null; e=$(date +%s%N)
            grep -q "^$inst instances: $inst ran, 0 cached, 0 failed" run.log || { echo "error: the $inst-instance sweep did not run whole" >&2; exit 1; }
            first=$(( (e - s) / 1000000 ))
            # no-op reruns and plans: the median of 3 (one run of each varied by up to 30% here)
            local -a reruns=() plans=()
            for _ in 1 2 3; do
                s=$(date +%s%N); "$BIN" run s.yaml > rerun.log 2>/dev/null; e=$(date +%s%N); reruns+=($(( (e - s) / 1000000 )))
                grep -q "^$inst instances: 0 ran, $inst cached" rerun.log || { echo "error: the rerun was not a no-op" >&2; exit 1; }
                s=$(date +%s%N); "$BIN" plan s.yaml > /dev/null 2>&1; e=$(date +%s%N); plans+=($(( (e - s) / 1000000 )))
            done
            rerun=$(printf '%s\n' "${reruns[@]}" | median); plan=$(printf '%s\n' "${plans[@]}" | median)
            rss=$(( $(cat rss) / 1024 ))
            awk -v i="$inst" -v f="$first" -v fl="$floor" -v r="$rerun" -v p="$plan" -v m="$rss" -v l="$load" 'BEGIN {
                printf "%10d %10.2f s %11.2f ms %14.2f s %11.2f ms %12.3f s %8.3f s %8d MiB %10s\n", i, f / 1e3, f / i, fl / 1e3, (f - fl) / i, r / 1e3, p / 1e3, m, l }'
        )
        LEFT+=("$d")
    done
}
if [[ ${1:-} == scaling ]]; then
    scaling
    exit 0
fi

# ---- side by side with Snakemake --------------------------------------------------------
# The scaling DAG through both engines, in fresh folders, interleaved phase by phase so both
# see the same load. Snakemake: rules prep, train (wildcard x), eval (wildcard x), gather
# (expand over all x) and all; ours: the same four stages as a matrix pipeline. The same shell
# commands write the same small files (`echo prep`, `echo x`, `echo x`, and the gather
# `cat eval/*/e | sort -n`, which lists every x).
snakemake_venv() { # -> the snakemake executable of the pinned version, installed if needed
    local venv=${SNAKEMAKE_VENV:-/var/tmp/cllm4rec-snakemake} have
    have=$("$venv/bin/snakemake" --version 2>/dev/null || true)
    if [[ $have != "$SNAKEMAKE_VERSION" ]]; then
        echo "== installing snakemake==$SNAKEMAKE_VERSION from PyPI into $venv${have:+ (it has $have)}" >&2
        if ! { [[ -x $venv/bin/pip ]] || python3 -m venv "$venv"; } \
            || ! "$venv/bin/pip" install --quiet --disable-pip-version-check --retries 1 --timeout 20 \
                "snakemake==$SNAKEMAKE_VERSION" >&2; then
            echo "error: could not install snakemake==$SNAKEMAKE_VERSION into $venv: is PyPI reachable (network, or a pip index/proxy in pip.conf)? It needs python3 >= 3.11 with venv. Or set SNAKEMAKE_VENV to a venv that has snakemake $SNAKEMAKE_VERSION, or skip this part with SNAKE_POINTS=none" >&2
            return 1
        fi
        have=$("$venv/bin/snakemake" --version)
        [[ $have == "$SNAKEMAKE_VERSION" ]] || { echo "error: $venv has snakemake $have, not $SNAKEMAKE_VERSION" >&2; return 1; }
    fi
    echo "$venv/bin/snakemake"
}
timed() { # timed LOG CMD... -> wall ms; the command's stdout and stderr go to LOG
    local log=$1 s e; shift
    s=$(date +%s%N)
    "$@" > "$log" 2>&1 || { echo "error: \`$*\` failed; its log ends:" >&2; tail -n 20 "$log" >&2; return 1; }
    e=$(date +%s%N)
    echo $(( (e - s) / 1000000 ))
}
listing() { # listing FILE... -> "name<TAB>line" for each line of each file, sorted
    awk '{n = FILENAME; sub(".*/", "", n); print n "\t" $0}' "$@" | LC_ALL=C sort
}
snakemake_side() {
    local points=${SNAKE_POINTS:-50 500 5000} reps=${SNAKE_REPS:-3} cores=${SNAKE_CORES:-$(nproc)}
    local sched=${SNAKE_SCHEDULER:-greedy} smk root
    [[ $points == none ]] && return 0
    smk=$(snakemake_venv)
    if [[ -n ${SNAKE_DIR:-} ]]; then
        SNAKE_ROOT=$(mktemp -d -p "$SNAKE_DIR")
        root=$SNAKE_ROOT
    else
        root="$W/snakemake"; mkdir -p "$root"
    fi
    # Snakemake's flags: --cores as our -j; --scheduler greedy, the one its --help calls
    # fast (the default, ilp, solves an ILP at each scheduling step; at 10^3 jobs it took
    # about as long, 52 s against 47 s under load; SNAKE_SCHEDULER=ilp measures it again);
    # --quiet for the runs (no progress or rule lines;
    # "Nothing to be done" still prints), `--quiet rules host` for the dry runs (they print
    # the job-count summary, which is checked); no conda/apptainer (the default); default
    # rerun triggers (mtime, params, input, software-env, code); default locking.
    local -a sm=("$smk" --cores "$cores" --scheduler "$sched")
    echo "== snakemake $SNAKEMAKE_VERSION vs cllm4rec-pipe: the scaling DAG, 2 x POINTS + 2 jobs (--cores $cores / -j $cores; our default -j is the core count), scheduler $sched"
    echo "   first run once each into a fresh folder; no-op rerun and dry runs the median of $reps; ratio = snakemake / ours (goal >= 10x on each)"
    printf '%7s | %-26s | %-26s | %-26s | %-26s | %-23s | %s\n' "" "first run (s)" "no-op rerun (s)" \
        "dry run / plan, cold (s)" "dry run / plan, warm (s)" "first run, ms/job" "load"
    printf '%7s | %9s %8s %7s | %9s %8s %7s | %9s %8s %7s | %9s %8s %7s | %7s %7s %7s | %s\n' jobs \
        snakemake ours ratio snakemake ours ratio snakemake ours ratio snakemake ours ratio smk ours "sh -c" "1-min avg"
    local n d inst load i
    for n in $points; do
        d=$(mktemp -d -p "$root")
        (
            inst=$(( 2 * n + 2 ))
            load=$(cut -d' ' -f1 /proc/loadavg)
            mkdir "$d/smk" "$d/ours"
            # -- the Snakefile
            {
                printf 'X = list(range(1, %d + 1))\n' "$n"
                cat <<'SMK'

rule all:
    input: "gather/all"

rule prep:
    output: "prep/p"
    shell: "echo prep > {output}"

rule train:
    input: "prep/p"
    output: "train/{x}/t"
    shell: "echo {wildcards.x} > {output}"

rule eval:
    input: "train/{x}/t"
    output: "eval/{x}/e"
    shell: "echo {wildcards.x} > {output}"

rule gather:
    input: expand("eval/{x}/e", x=X)
    output: "gather/all"
    shell: "cat eval/*/e | sort -n > {output}"
SMK
            } > "$d/smk/Snakefile"
            # -- our pipeline: scaling()'s, with the same gather command
            {
                echo "name: scale"; echo "matrix:"; printf '  x: ['; seq -s, 1 "$n" | tr -d '\n'; echo ']'
                cat <<'YAML'
stages:
  prep:
    kind: command
    cmd: ["sh", "-c", "echo prep > $CLLM4REC_OUT/p"]
  train:
    kind: command
    needs: [prep]
    cmd: ["sh", "-c", "echo ${matrix.x} > $CLLM4REC_OUT/t"]
  eval:
    kind: command
    needs: [train]
    cmd: ["sh", "-c", "echo ${matrix.x} > $CLLM4REC_OUT/e"]
  gather:
    kind: command
    needs: ["eval[*]"]
    cmd: ["sh", "-c", "cat $CLLM4REC_IN_EVAL/*/e | sort -n > $CLLM4REC_OUT/all"]
YAML
            } > "$d/ours/s.yaml"
            (cd "$d/ours" && git init -q .)
            # S: Snakemake in its folder (its XDG cache there too); O: ours in its folder and cache
            local -a S=(env -C "$d/smk" XDG_CACHE_HOME="$d/xdg" "${sm[@]}") O=(env -C "$d/ours" CLLM4REC_CACHE="$d/ours/cache" "$BIN")
            fail() { echo "error: $n points: $1; see $2:" >&2; tail -n 20 "$2" >&2; exit 1; }
            # -- dry run / plan with everything to run
            local -a sc=() oc=() sr=() orr=() sw=() ow=()
            for ((i = 0; i < reps; i++)); do
                sc+=("$(timed "$d/s.cold" "${S[@]}" -n --quiet rules host)"); oc+=("$(timed "$d/o.cold" "${O[@]}" plan s.yaml)")
            done
            grep -Eq "^total +$(( inst + 1 ))\$" "$d/s.cold" || fail "snakemake -n did not plan $(( inst + 1 )) jobs" "$d/s.cold"
            grep -q "^$inst instances: 0 cached, $inst to run" "$d/o.cold" || fail "plan did not show $inst to run" "$d/o.cold"
            # -- the floor: the jobs' shell commands alone, $cores at a time
            local sf of fl
            mkdir "$d/floor"
            fl=$(timed "$d/floor.log" xargs -P "$cores" -I{} sh -c "echo {} > $d/floor/{}" < <(seq 1 "$inst"))
            # -- first run
            # each starts with nothing of the other's left to write back (Snakemake does not
            # fsync its thousands of files; ours fsyncs each commit). Ours first: Snakemake
            # makes and deletes a marker file per job (.snakemake/incomplete), and on ext4
            # without a journal (this project's machines) inodes deleted in the last five
            # minutes slow down every later file creation in their block group; ours deletes
            # none, so it cannot slow Snakemake's run that way (after Snakemake's, ours took
            # 1.68 s instead of 1.24-1.36 s for 10^3 jobs).
            sync; of=$(timed "$d/o.first" "${O[@]}" run -j "$cores" s.yaml)
            sync; sf=$(timed "$d/s.first" "${S[@]}" --quiet)
            grep -q "^$inst instances: $inst ran, 0 cached, 0 failed" "$d/o.first" || fail "our run did not run whole" "$d/o.first"
            # -- both made the same files with the same content; the gather lists every x
            local -a sfiles ofiles
            mapfile -t sfiles < <(cd "$d/smk" && find prep train eval gather -type f | LC_ALL=C sort)
            mapfile -t ofiles < <(find "$d/ours/cache/objects" -path '*/data/*' -type f | LC_ALL=C sort)
            (( ${#sfiles[@]} == inst )) || fail "snakemake made ${#sfiles[@]} files, not $inst" "$d/s.first"
            (( ${#ofiles[@]} == inst )) || fail "our run made ${#ofiles[@]} files, not $inst" "$d/o.first"
            (cd "$d/smk" && listing "${sfiles[@]}") > "$d/s.list"
            listing "${ofiles[@]}" > "$d/o.list"
            cmp -s "$d/s.list" "$d/o.list" || { diff "$d/s.list" "$d/o.list" | head >&2; fail "the two made different files" "$d/o.first"; }
            seq 1 "$n" | cmp -s - "$d/smk/gather/all" || fail "snakemake's gather does not list 1..$n" "$d/s.first"
            seq 1 "$n" | cmp -s - "$(grep '/all$' <<<"$(printf '%s\n' "${ofiles[@]}")")" \
                || fail "our gather does not list 1..$n" "$d/o.first"
            # -- no-op reruns: nothing runs, no output changes
            touch "$d/mark"; sleep 0.01
            for ((i = 0; i < reps; i++)); do
                sr+=("$(timed "$d/s.rerun" "${S[@]}" --quiet)"); orr+=("$(timed "$d/o.rerun" "${O[@]}" run -j "$cores" s.yaml)")
                grep -q "Nothing to be done" "$d/s.rerun" || fail "snakemake's rerun was not a no-op" "$d/s.rerun"
                grep -q "^$inst instances: 0 ran, $inst cached" "$d/o.rerun" || fail "our rerun was not a no-op" "$d/o.rerun"
            done
            [[ -z $(cd "$d/smk" && find prep train eval gather -newer "$d/mark") ]] || fail "snakemake's rerun touched outputs" "$d/s.rerun"
            # -- dry run / plan with everything done
            for ((i = 0; i < reps; i++)); do
                sw+=("$(timed "$d/s.warm" "${S[@]}" -n --quiet rules host)"); ow+=("$(timed "$d/o.warm" "${O[@]}" plan s.yaml)")
            done
            grep -q "Nothing to be done" "$d/s.warm" || fail "snakemake -n found work after the run" "$d/s.warm"
            grep -q "^$inst instances: $inst cached, 0 to run" "$d/o.warm" || fail "plan found work after the run" "$d/o.warm"
            med() { printf '%s\n' "$@" | median; }
            awk -v j="$inst" -v l="$load" -v sf="$sf" -v of="$of" -v fl="$fl" \
                -v sr="$(med "${sr[@]}")" -v orr="$(med "${orr[@]}")" -v sc="$(med "${sc[@]}")" -v oc="$(med "${oc[@]}")" \
                -v sw="$(med "${sw[@]}")" -v ow="$(med "${ow[@]}")" 'function g(s, o) {
                    r = s / (o > 0 ? o : 1); if (r < 10) miss = miss " " name
                    return sprintf("%9.3f %8.3f %6.1fx", s / 1e3, o / 1e3, r) }
                BEGIN { miss = ""
                    name = "first";  a = g(sf, of); name = "rerun"; b = g(sr, orr)
                    name = "cold-dry"; c = g(sc, oc); name = "warm-dry"; e = g(sw, ow)
                    printf "%7d | %s | %s | %s | %s | %7.2f %7.2f %7.2f | %s%s\n", j, a, b, c, e, sf / j, of / j, fl / j, l,
                        miss == "" ? "" : "   below 10x:" miss }'
        )
        LEFT+=("$d")
    done
}
if [[ ${1:-} == snakemake ]]; then
    snakemake_side
    exit 0
fi

# ---- the pipeline: 1 + 1 + 3x5 + 1 = 18 instances -------------------------------------
printf 'print("prep")\n' > prep.py
printf 'print("train")\n' > train.py
cat > bench.yaml <<'EOF'
name: bench
params: {size: 1000}
matrix:
  lambda_c: [0.01, 0.1, 1, 10, 100]
stages:
  ingest:
    kind: command
    cmd: ["sh", "-c", "seq ${params.size} > $CLLM4REC_OUT/rows.txt"]
    deps: [prep.py]
  tokenize:
    kind: command
    needs: [ingest]
    cmd: ["sh", "-c", "wc -l < $CLLM4REC_IN_INGEST/rows.txt > $CLLM4REC_OUT/n.txt"]
  pretrain:
    kind: command
    needs: [tokenize]
    params: {lambda_c: "${matrix.lambda_c}"}
    deps: [train.py]
    cmd: ["sh", "-c", "cat $CLLM4REC_PARAMS > $CLLM4REC_OUT/p.json"]
  finetune:
    kind: command
    needs: [pretrain]
    cmd: ["sh", "-c", "cp $CLLM4REC_IN_PRETRAIN/p.json $CLLM4REC_OUT/ft.json"]
  evaluate:
    kind: command
    needs: [finetune]
    cmd: 'echo "{\"recall\": 0.$(wc -c < $CLLM4REC_IN_FINETUNE/ft.json)}" > $CLLM4REC_OUT/metrics.json'
    shell: true
  ablate:
    kind: command
    needs: ["evaluate[*]"]
    cmd: "ls $CLLM4REC_IN_EVALUATE > $CLLM4REC_OUT/list.txt"
    shell: true
EOF

expect() { # expect WHAT PATTERN OUTPUT
    grep -q "$2" <<<"$3" || { echo "error: $1: expected '$2' in:" >&2; echo "$3" >&2; exit 1; }
}
out=$("$BIN" run bench.yaml 2>/dev/null)
expect "first run" "^18 instances: 18 ran, 0 cached, 0 failed" "$out"
out=$("$BIN" run bench.yaml 2>/dev/null)
expect "no-op rerun" "^18 instances: 0 ran, 18 cached, 0 failed" "$out"
out=$("$BIN" plan bench.yaml 2>/dev/null)
expect "plan" "^18 instances: 18 cached, 0 to run" "$out"

# time_cmd NAME CMD... -> prints "median_ms min_ms"
time_cmd() {
    local name=$1; shift
    if command -v hyperfine >/dev/null 2>&1; then
        hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$W/$name.json" "$*" >/dev/null # errors stay visible
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f %.1f" % (r["median"]*1e3, r["min"]*1e3))' "$W/$name.json"
    else
        local i t0
        for ((i = 0; i < 3; i++)); do "$@" >/dev/null 2>&1; done
        for ((i = 0; i < RUNS; i++)); do
            t0=$(date +%s%N); "$@" >/dev/null 2>&1; echo $(( $(date +%s%N) - t0 ))
        done | sort -n | awk '{a[NR]=$1} END {m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f\n", m/1e6, a[1]/1e6}'
    fi
}
verdict() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { ok = op == "<" ? a < b : a >= b; print ok ? "PASS" : "MISS" }'; }

tool=$(command -v hyperfine >/dev/null 2>&1 && echo hyperfine || echo "bash loop")
echo "== engine overhead: 18 instances, all cached, $RUNS runs each ($tool)"
for what in run plan; do
    t=$(time_cmd "$what" "$BIN" "$what" bench.yaml) # not <(...): a failure must stop the script
    read -r med min <<<"$t"
    printf '%-6s median %7.1f ms   min %7.1f ms   goal < %d ms: %s\n' "$what" "$med" "$min" "$GOAL_MS" "$(verdict "$med" "$GOAL_MS" "<")"
done
echo "for scale: DVC 3.67 takes 2.8-3.6 s and Snakemake 9.27 1.4-3.9 s on this shape on this kind of machine (figures from the issue, not measured here)"

# ---- hashing throughput -----------------------------------------------------------------
F="$W/blob.bin"
head -c "${HASH_MB}M" /dev/urandom > "$F"
cat "$F" > /dev/null # warm the page cache
theirs=$(b3sum "$F" | cut -d' ' -f1)
ours=$("$BIN" hash "$F" | cut -d' ' -f1)
if [[ $ours != "$theirs" ]]; then
    echo "error: hashes differ: b3sum $theirs, cllm4rec-pipe $ours" >&2
    exit 1
fi
: > "$W/t.b3"; : > "$W/t.ours"
for ((i = 0; i < HASH_RUNS; i++)); do
    t0=$(date +%s%N); b3sum "$F" >/dev/null; echo $(( $(date +%s%N) - t0 )) >> "$W/t.b3"
    t0=$(date +%s%N); "$BIN" hash "$F" >/dev/null; echo $(( $(date +%s%N) - t0 )) >> "$W/t.ours"
done
median_ns() { sort -n "$1" | awk '{a[NR]=$1} END {print NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
b3_ns=$(median_ns "$W/t.b3"); our_ns=$(median_ns "$W/t.ours")
echo "== hashing: ${HASH_MB} MiB file, page cache warm, median of $HASH_RUNS alternated runs, same hash ($ours)"
awk -v mb="$HASH_MB" -v b="$b3_ns" -v o="$our_ns" -v g="$GOAL_RATIO" 'BEGIN {
    tb = mb / (b / 1e9); to = mb / (o / 1e9); r = to / tb
    printf "b3sum          %8.0f MiB/s  (%.0f ms)\n", tb, b / 1e6
    printf "cllm4rec-pipe  %8.0f MiB/s  (%.0f ms)\n", to, o / 1e6
    printf "ratio ours/b3sum %.2f   goal >= %.2f: %s\n", r, g, (r >= g ? "PASS" : "MISS")
}'

scaling
snakemake_side
