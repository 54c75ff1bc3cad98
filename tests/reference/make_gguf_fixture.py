"""Builds tests/fixtures/gguf/small.gguf and small.json with gguf-py (an independent GGUF
writer, reader and de-quantizer), for tests/gguf.rs.

small.gguf holds metadata of every GGUF value type (including arrays of several element
types and a nested array), a custom alignment of 64, and one small tensor of each ggml type
that crate::gguf de-quantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) plus a Q5_0
one that it refuses. Quantized tensors are raw block bytes from a fixed numpy seed, with
every fp16 scale overwritten by a finite value, written through the writer's raw_dtype path.

small.json holds, for each metadata key, the value as this script wrote it and the types
and contents as gguf.GGUFReader reads them back (the reader flattens nested arrays), and
for each tensor its ggml dims, type and gguf.quants.dequantize's f32 values (flattened,
row-major). Floats are written with Python's repr, which round-trips exactly.

Run from the repository root: python3 tests/reference/make_gguf_fixture.py (gguf 0.19.0,
numpy).
"""

import json
from importlib.metadata import version
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

OUT = Path("tests/fixtures/gguf")
rng = np.random.default_rng(20240607)


def finite_f16(n):
    """n finite fp16 scales (as raw bytes), of mixed sign and magnitude."""
    return (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint8).reshape(n, 2)


def blocks(qtype, n_rows, n_cols, scale_offsets):
    """Raw bytes of an [n_rows, n_cols] tensor of `qtype`: random bytes, with a finite
    fp16 at each offset in `scale_offsets` of every block."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = n_rows * n_cols // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in scale_offsets:
        raw[:, off:off + 2] = finite_f16(n_blocks)
    return raw.reshape(n_rows, n_cols // block * size)


# (name, written value, GGUF value type, array element type or None), in file order.
METADATA = [
    ("test.uint8", 200, V.UINT8, None),
    ("test.int8", -100, V.INT8, None),
    ("test.uint16", 60000, V.UINT16, None),
    ("test.int16", -30000, V.INT16, None),
    ("test.uint32", 4000000000, V.UINT32, None),
    ("test.int32", -2000000000, V.INT32, None),
    ("test.uint64", 18000000000000000000, V.UINT64, None),
    ("test.int64", -9000000000000000000, V.INT64, None),
    ("test.float32", 0.1, V.FLOAT32, None),
    ("test.float64", -1.0e-300, V.FLOAT64, None),
    ("test.bool_true", True, V.BOOL, None),
    ("test.bool_false", False, V.BOOL, None),
    ("test.string", "héllo, GGUF ✓", V.STRING, None),
    ("test.empty_string", "", V.STRING, None),
    ("test.array_uint8", [0, 1, 255], V.ARRAY, V.UINT8),
    ("test.array_int32", [-1, 0, 2147483647], V.ARRAY, V.INT32),
    ("test.array_uint64", [1, 2**64 - 1], V.ARRAY, V.UINT64),
    ("test.array_float32", [0.5, -2.25, 3.0e38], V.ARRAY, V.FLOAT32),
    ("test.array_float64", [1.0 / 3.0], V.ARRAY, V.FLOAT64),
    ("test.array_bool", [True, False, True], V.ARRAY, V.BOOL),
    ("test.array_string", ["a", "", "Ġthe", "日本"], V.ARRAY, V.STRING),
    ("test.array_nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY, V.ARRAY),
]

# (name, ggml type, numpy data or raw bytes) in file order; dims are the numpy shape
# reversed (ggml order).
f32 = rng.standard_normal((2, 3, 4)).astype(np.float32)
f16 = rng.standard_normal((2, 16)).astype(np.float16)
bf16_src = rng.standard_normal((2, 16)).astype(np.float32)
bf16 = (bf16_src.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(2, 32)
TENSORS = [
    ("t.f32", Q.F32, f32),
    ("t.f16", Q.F16, f16),
    ("t.bf16", Q.BF16, bf16),
    ("t.q8_0", Q.Q8_0, blocks(Q.Q8_0, 2, 64, [0])),
    ("t.q4_0", Q.Q4_0, blocks(Q.Q4_0, 2, 64, [0])),
    ("t.q4_1", Q.Q4_1, blocks(Q.Q4_1, 2, 64, [0, 2])),
    ("t.q4_k", Q.Q4_K, blocks(Q.Q4_K, 2, 256, [0, 2])),
    ("t.q6_k", Q.Q6_K, blocks(Q.Q6_K, 2, 256, [208])),
    ("t.q5_0", Q.Q5_0, blocks(Q.Q5_0, 1, 32, [0])),
]
ALIGNMENT = 64


def jsonable(v):
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    return v


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "small.gguf"
    w = gguf.GGUFWriter(str(path), arch="testarch")
    w.add_custom_alignment(ALIGNMENT)
    for key, value, vtype, sub in METADATA:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, qtype, data in TENSORS:
        if data.dtype == np.uint8:
            w.add_tensor(name, data, raw_dtype=qtype)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(str(path))
    written = {key: value for key, value, _, _ in METADATA}
    metadata = []
    for field in r.fields.values():
        if field.name.startswith("GGUF."):
            continue  # the reader's pseudo-fields for the header
        metadata.append({
            "key": field.name,
            "types": [t.name.lower() for t in field.types],
            "read": jsonable(field.contents()),
            "written": written.get(field.name),
        })
    tensors = []
    for t in r.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": t.tensor_type.name,
            "type_id": int(t.tensor_type),
            "offset": int(t.data_offset) - int(r.data_offset),
            "values": [float(x) for x in values.reshape(-1)],
        })
    out = {
        "generator": f"tests/reference/make_gguf_fixture.py, gguf {version('gguf')}, numpy {np.__version__}",
        "version": int(r.fields["GGUF.version"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }
    (OUT / "small.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"{path}: {path.stat().st_size} bytes, {len(metadata)} keys, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
