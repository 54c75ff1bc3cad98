#!/usr/bin/env bash
# Sets up the LLVM that the `cuda` cargo feature builds against, from PyPI instead of GitHub.
#
# burn 0.22's `cuda` is cubecl-cuda 0.11, which depends on cubecl-llvm (its LLVM/NVPTX code
# generator, one of the two compilers it offers; this project's build uses the other, NVRTC, at
# run time). cubecl-llvm links LLVM 23.1 statically, found by its build dependency
# tracel-llvm-bundler 23.1.0-4: that build script downloads tracel-llvm's prebuilt bundle from
# github.com (unreachable here) into `$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4` (default
# `~/.local/share`), unless the folder already holds its sentinel `.tracel-llvm-installed`.
# Then the link reads the folder with `bin/llvm-config --link-static` (libraries, include
# folder, flags) and nothing is downloaded.
#
# This script fills that folder from two PyPI wheels of mlc-llvm-static 23.1.1.post0, a
# relocatable LLVM 23.1.1 SDK (static libraries, headers, and an `llvm-config` that is a
# Python script): the base wheel (X86) and its extra-targets wheel (NVPTX and the other
# backends; `llvm-config --targets-built` then lists NVPTX). LLVM 23.1.1 is ABI-compatible with
# the 23.1.0 the bundler names (a patch release; llvm-sys 231 accepts any 23.1). The wheels
# are fetched with `pip download` (no install), pinned by sha256, and their `static/` folder
# is unpacked into DIR/tracel/tracel-llvm-23.1.0-4 with the sentinel. Idempotent: a complete
# DIR is left as it is. Needs python3 (with pip; also at build time, for llvm-config) and
# unzip. A 111 MB download; DIR ends up 397 MB.
#
#   bash benches/llvm.sh DIR            (prints the exports below)
#   eval "$(bash benches/llvm.sh DIR)"  (sets them in this shell)
#   cargo build --release --no-default-features --features cuda
#
# It prints two `export` lines on stdout (everything else goes to stderr):
#   XDG_DATA_HOME=DIR          where tracel-llvm-bundler looks for its LLVM;
#   CUDARC_CUDA_VERSION=13000  the CUDA API version (13.0) cudarc binds, so that its build script
#                              does not run `nvcc` (no CUDA toolkit is needed to build; the
#                              driver and NVRTC of CUDA 13 are loaded at run time).
# Env: LLVM_WHEELS=FOLDER keeps the downloaded wheels there (and reuses them).
set -euo pipefail

VERSION=23.1.1.post0
BUNDLE=tracel-llvm-23.1.0-4 # the folder tracel-llvm-bundler 23.1.0-4 looks for
CUDA_API=13000 # cudarc spells CUDA 13.0 as 13000
usage() { echo "usage: bash benches/llvm.sh DIR" >&2; exit 2; }
[[ $# -eq 1 && -n $1 ]] || usage
mkdir -p "$(dirname "$1")"
DIR="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
PREFIX=$DIR/tracel/$BUNDLE

print_env() {
    echo "export XDG_DATA_HOME=$DIR"
    echo "export CUDARC_CUDA_VERSION=$CUDA_API"
}

if [[ -f $PREFIX/.tracel-llvm-installed && $(cat "$DIR/version" 2>/dev/null) == "$VERSION" ]]; then
    echo "LLVM (mlc-llvm-static $VERSION) already set up in $DIR" >&2
    print_env
    exit 0
fi
if [[ -e $DIR ]]; then
    echo "error: $DIR exists but is not a complete LLVM set up by this script; remove it or pick another folder" >&2
    exit 1
fi
for tool in python3 unzip; do
    command -v "$tool" >/dev/null || { echo "error: needs $tool" >&2; exit 1; }
done

TMP=$(mktemp -d "$DIR.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
WHEELS=${LLVM_WHEELS:-$TMP/wheels}
mkdir -p "$WHEELS"
cat > "$TMP/requirements.txt" <<'REQ'
mlc-llvm-static==23.1.1.post0 --hash=sha256:dcfec888abfaa418be77d41af585805f31463584cf9c90582992c00f392c1ac5
mlc-llvm-static-extra-targets==23.1.1.post0 --hash=sha256:c36e834d9a4e9cf9759f27fece65711ece7a2fc2b5a96dbb15d66f5e9e787929
REQ
echo "== pip download (no install) into $WHEELS" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary=:all: --platform manylinux_2_28_x86_64 -r "$TMP/requirements.txt" -d "$WHEELS" >&2

echo "== unpacking" >&2
mkdir -p "$TMP/x"
for wheel in "$WHEELS"/mlc_llvm_static-$VERSION-*.whl "$WHEELS"/mlc_llvm_static_extra_targets-$VERSION-*.whl; do
    unzip -q -o "$wheel" 'mlc_llvm_static/static/*' -d "$TMP/x"
done
OUT=$TMP/out
mkdir -p "$OUT/tracel"
mv "$TMP/x/mlc_llvm_static/static" "$OUT/tracel/$BUNDLE"
chmod +x "$OUT/tracel/$BUNDLE/bin/llvm-config"
# What the link will read: the version and NVPTX among the targets.
config=$OUT/tracel/$BUNDLE/bin/llvm-config
got=$("$config" --version)
[[ $got == 23.1.* ]] || { echo "error: llvm-config says version $got, not 23.1.x" >&2; exit 1; }
"$config" --targets-built | tr ' ' '\n' | grep -qx NVPTX \
    || { echo "error: the unpacked LLVM has no NVPTX target" >&2; exit 1; }
touch "$OUT/tracel/$BUNDLE/.tracel-llvm-installed"
echo "$VERSION" > "$OUT/version"
mv "$OUT" "$DIR"
echo "LLVM $got (mlc-llvm-static $VERSION, NVPTX) set up in $DIR ($(du -sh "$DIR" | cut -f1))" >&2
print_env
