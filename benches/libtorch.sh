#!/usr/bin/env bash
# Sets up the CPU-only libtorch 2.9.0 that the `tch` cargo feature builds against (burn-tch
# 0.22 -> tch 0.22 -> torch-sys 0.22, which accepts libtorch 2.9.0 and no other), cut from PyPI
# wheels rather than a libtorch download:
#   - torch 2.9.0 (cp311, manylinux_2_28_x86_64): include/, and from torch/lib only
#     libtorch_cpu.so, libc10.so, libgomp.so.1 and libshm.so (not the 1 GB libtorch_cuda.so);
#   - nvidia-cuda-runtime-cu12 and nvidia-cuda-cupti-cu12 12.8.90: libcudart.so.12 and
#     libcupti.so.12, which libtorch_cpu.so of that wheel names as NEEDED (they are only
#     loaded: it runs on a machine without a GPU or driver);
#   - an empty libtorch.so (the wheel's one only pulls in libtorch_cuda.so), so that torch-sys's
#     `-ltorch` links;
#   - build-version (2.9.0), which torch-sys checks.
# The wheels are fetched with `pip download` (no install: the Python environment is untouched),
# pinned by sha256 (pip refuses a wheel that does not match), and unpacked into DIR. Idempotent:
# a complete DIR is left as it is. Needs python3 with pip, unzip and a C compiler (cc).
#
#   bash benches/libtorch.sh DIR            (a 911 MB download; DIR ends up 487 MB)
#   eval "$(bash benches/libtorch.sh DIR)"  (sets LIBTORCH and LD_LIBRARY_PATH in this shell)
# Env: LIBTORCH_WHEELS=FOLDER keeps the downloaded wheels there (and reuses them) instead of
#      in a temporary folder.
# Prints the two `export` lines to stdout; everything else goes to stderr.
set -euo pipefail

VERSION=2.9.0
usage() { echo "usage: bash benches/libtorch.sh DIR" >&2; exit 2; }
[[ $# -eq 1 && -n $1 ]] || usage
mkdir -p "$(dirname "$1")"
DIR="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

print_env() {
    echo "export LIBTORCH=$DIR"
    echo "export LD_LIBRARY_PATH=$DIR/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
}

if [[ -f $DIR/.complete && $(cat "$DIR/build-version" 2>/dev/null) == "$VERSION" ]]; then
    echo "libtorch $VERSION already set up in $DIR" >&2
    print_env
    exit 0
fi
if [[ -e $DIR ]]; then
    echo "error: $DIR exists but is not a complete libtorch $VERSION set up by this script; remove it or pick another folder" >&2
    exit 1
fi
for tool in python3 unzip cc; do
    command -v "$tool" >/dev/null || { echo "error: needs $tool" >&2; exit 1; }
done

TMP=$(mktemp -d "$DIR.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
WHEELS=${LIBTORCH_WHEELS:-$TMP/wheels}
mkdir -p "$WHEELS"
# One wheel for every Python: the libraries do not depend on the interpreter, so the cp311
# build is fetched whatever python3 is, and the hashes pin exactly these files.
cat > "$TMP/requirements.txt" <<'REQ'
torch==2.9.0 --hash=sha256:51de31219c97c51cf4bf2be94d622e3deb5dcc526c6dc00e97c17eaec0fc1d67
nvidia-cuda-runtime-cu12==12.8.90 --hash=sha256:adade8dcbd0edf427b7204d480d6066d33902cab2a4707dcfc48a2d0fd44ab90
nvidia-cuda-cupti-cu12==12.8.90 --hash=sha256:ea0cb07ebda26bb9b29ba82cda34849e73c166c18162d3913575b0c9db9a6182
REQ
echo "== pip download (no install) into $WHEELS" >&2
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp \
    -r "$TMP/requirements.txt" -d "$WHEELS" >&2

OUT=$TMP/libtorch
mkdir -p "$OUT/lib" "$TMP/x"
echo "== unpacking" >&2
unzip -q -o "$WHEELS"/torch-$VERSION-cp311-cp311-manylinux_2_28_x86_64.whl 'torch/include/*' \
    torch/lib/libtorch_cpu.so torch/lib/libc10.so torch/lib/libgomp.so.1 torch/lib/libshm.so -d "$TMP/x"
unzip -q -o "$WHEELS"/nvidia_cuda_runtime_cu12-12.8.90-*.whl nvidia/cuda_runtime/lib/libcudart.so.12 -d "$TMP/x"
unzip -q -o "$WHEELS"/nvidia_cuda_cupti_cu12-12.8.90-*.whl nvidia/cuda_cupti/lib/libcupti.so.12 -d "$TMP/x"
mv "$TMP/x/torch/include" "$OUT/include"
mv "$TMP/x/torch/lib/"* "$TMP/x/nvidia/cuda_runtime/lib/"* "$TMP/x/nvidia/cuda_cupti/lib/"* "$OUT/lib/"
# torch-sys links with -lgomp: give it the wheel's OpenMP runtime (the one libtorch_cpu uses).
ln -s libgomp.so.1 "$OUT/lib/libgomp.so"
# The empty libtorch.so (an ELF shared object with no symbols).
cc -shared -o "$OUT/lib/libtorch.so" -x c /dev/null
echo "$VERSION" > "$OUT/build-version"
for lib in libtorch_cpu.so libc10.so libgomp.so.1 libcudart.so.12 libcupti.so.12; do
    [[ -f $OUT/lib/$lib ]] || { echo "error: $lib missing from the unpacked wheels" >&2; exit 1; }
done
touch "$OUT/.complete"
mv "$OUT" "$DIR"
echo "libtorch $VERSION (CPU) set up in $DIR ($(du -sh "$DIR" | cut -f1))" >&2
print_env
