"""A GGUF model with its metadata (architecture, shapes, tokenizer) kept and its weights replaced
by seeded random ones, for throughput checks where the real file cannot travel.

benches/gpu.sh uses it: SmolLM2-135M's Q4_1 GGUF is 98 MB, more than the 64 MiB that may be
carried to the device machine, and the tokens/s and memory of a frozen backbone depend on its
shapes, not on its weight values. So the file is cut here and filled again there:

  python3 benches/gguf_random.py cut  MODEL.gguf HEAD.gguf   # metadata and tensor table only
  python3 benches/gguf_random.py fill HEAD.gguf OUT.gguf [--seed 0]

`fill` writes every tensor in its own type with valid values: F32 norms (1-D tensors whose name
has `norm`) are 1, other F32 tensors N(0, 0.02); Q8_0 and Q4_1 blocks hold uniform random codes
with scales that give values of about +-0.02 (Q4_1: minimum -0.02, step 0.04/15). F16, Q4_0
likewise; other types are refused by name. The same HEAD and seed give the same bytes.
`cut` needs the standard library only, `fill` numpy too.
"""
import argparse
import math
import struct
import sys

np = None  # numpy, imported by `fill` only (`cut` runs on the standard library)

GGUF_MAGIC = b"GGUF"
# ggml type id -> (name, values per block, bytes per block)
TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 8: ("Q8_0", 32, 34)}
# GGUF metadata value types -> struct format (strings 8, arrays 9 are handled apart)
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, data, path):
        self.b, self.at, self.path = data, 0, path

    def take(self, fmt):
        size = struct.calcsize("<" + fmt)
        if self.at + size > len(self.b):
            sys.exit(f"error: {self.path}: truncated at byte {self.at} (wanted {size} more)")
        v = struct.unpack_from("<" + fmt, self.b, self.at)
        self.at += size
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        s = self.b[self.at:self.at + n]
        self.at += n
        return s.decode("utf-8", "replace")

    def value(self, t):
        if t in SCALARS:
            return self.take(SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            return [self.value(et) for _ in range(n)]
        sys.exit(f"error: {self.path}: unknown metadata type {t} at byte {self.at}")


def parse(path):
    """(bytes of the file, the data section's offset, [(name, dims, type, offset)])."""
    data = open(path, "rb").read()
    r = Reader(data, path)
    if data[:4] != GGUF_MAGIC:
        sys.exit(f"error: {path}: not a GGUF file")
    r.at = 4
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    if version not in (2, 3):
        sys.exit(f"error: {path}: GGUF version {version}, expected 2 or 3")
    alignment = 32
    for _ in range(n_kv):
        key, t = r.string(), r.take("I")
        v = r.value(t)
        if key == "general.alignment":
            alignment = v
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        tensors.append((name, dims, r.take("I"), r.take("Q")))
    data_at = (r.at + alignment - 1) // alignment * alignment
    return data, data_at, tensors


def nbytes(name, dims, t):
    if t not in TYPES:
        sys.exit(f"error: tensor {name} has ggml type {t}, which this script cannot fill")
    _, per, size = TYPES[t]
    count = math.prod(dims)
    return count // per * size


def fill_tensor(rng, name, dims, t):
    count = math.prod(dims)
    kind = TYPES[t][0]
    if kind == "F32":
        if len(dims) == 1 and "norm" in name:
            return np.ones(count, "<f4").tobytes()
        return (rng.standard_normal(count) * 0.02).astype("<f4").tobytes()
    if kind == "F16":
        return (rng.standard_normal(count) * 0.02).astype("<f2").tobytes()
    blocks = count // 32
    if kind == "Q8_0":
        d = np.full((blocks, 1), 0.02 / 127, "<f2").view(np.uint8)
        q = rng.integers(-127, 128, (blocks, 32), dtype=np.int8).view(np.uint8)
        return np.concatenate([d, q], axis=1).tobytes()
    if kind == "Q4_0":
        d = np.full((blocks, 1), 0.04 / 15, "<f2").view(np.uint8)
        q = rng.integers(0, 256, (blocks, 16), dtype=np.uint8)
        return np.concatenate([d, q], axis=1).tobytes()
    # Q4_1: scale, minimum, 16 bytes of two 4-bit codes each
    d = np.full((blocks, 1), 0.04 / 15, "<f2").view(np.uint8)
    m = np.full((blocks, 1), -0.02, "<f2").view(np.uint8)
    q = rng.integers(0, 256, (blocks, 16), dtype=np.uint8)
    return np.concatenate([d, m, q], axis=1).tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cut", help="keep the metadata and tensor table, drop the weights")
    c.add_argument("model")
    c.add_argument("head")
    f = sub.add_parser("fill", help="write the model with seeded random weights")
    f.add_argument("head")
    f.add_argument("out")
    f.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "cut":
        data, data_at, tensors = parse(a.model)
        for name, dims, t, _ in tensors:
            nbytes(name, dims, t)  # refuse a type `fill` cannot write, now rather than there
        with open(a.head, "wb") as out:
            out.write(data[:data_at])
        print(f"{a.head}: {data_at} bytes of metadata, {len(tensors)} tensors ({len(data) - data_at} bytes of weights left out)")
        return 0
    global np
    import numpy
    np = numpy
    data, data_at, tensors = parse(a.head)
    rng = np.random.default_rng(a.seed)
    with open(a.out, "wb") as out:
        out.write(data[:data_at])
        at = 0
        for name, dims, t, offset in sorted(tensors, key=lambda x: x[3]):
            if offset < at:
                sys.exit(f"error: {a.head}: tensor {name} overlaps the one before it")
            out.write(b"\0" * (offset - at))
            chunk = fill_tensor(rng, name, dims, t)
            assert len(chunk) == nbytes(name, dims, t)
            out.write(chunk)
            at = offset + len(chunk)
    print(f"{a.out}: {len(tensors)} tensors with seeded random weights (seed {a.seed}), {data_at + at} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
