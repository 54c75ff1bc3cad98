"""Reference losses and gradients of CLLM4Rec's three losses WITH DROPOUT on the tiny GPT-2, from
PyTorch + transformers (GPT-2's own dropout sites), for testing both Rust engines' dropout.

Run from the repo root (needs torch, transformers, numpy, safetensors; seconds on a CPU):
    python3 tests/reference/make_dropout_grads.py
It writes tests/fixtures/dropout-grads/ and is deterministic.

The batches, tables, model and losses are those of make_cllm4rec_grads.py (imported). What is
added: every call transformers' GPT2Model makes to torch.nn.functional.dropout (in forward order:
`drop` on the input embeddings plus positions; per block, the eager attention's dropout of the
attention probabilities, `attn.resid_dropout`, `mlp.dropout`) multiplies its input by a fixed
mask instead of drawing one. The masks are the ones src/model/dropout.rs defines, recomputed
here from its description: with key K and rate p, element (a, b) of site s (embedding 1,
attention 2, attention output 3, MLP output 4) in layer l, batch row r, has
    h = sm(sm(K ^ sm(s << 56 | l << 40 | r)) ^ (a << 32 | b)),   sm = SplitMix64's output function
and is 0 when (h >> 40) / 2^24 < p, else 1 / (1 - p) (float32); a = position and b = column for
the three [position, d] sites, a = head << 16 | query and b = key for the probabilities.
K = 12345, p = 0.25 (so that the tiny batches drop many elements).
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_cllm4rec_grads as ref  # noqa: E402

OUT = os.path.join(ref.ROOT, "tests", "fixtures", "dropout-grads")
KEY, P = 12345, 0.25
M64 = (1 << 64) - 1
EMBEDDING, ATTENTION, ATTENTION_OUT, MLP_OUT = 1, 2, 3, 4


def sm(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def factor(site, layer, row, a, b):
    place = (site << 56) | (layer << 40) | row
    h = sm(sm(KEY ^ sm(place)) ^ ((a << 32) | b))
    u = np.float32(h >> 40) / np.float32(1 << 24)
    return np.float32(0.0) if u < np.float32(P) else np.float32(1.0) / (np.float32(1.0) - np.float32(P))


def hidden_mask(site, layer, rows, length, d):
    m = np.empty((rows, length, d), dtype=np.float32)
    for r in range(rows):
        for t in range(length):
            for c in range(d):
                m[r, t, c] = factor(site, layer, r, t, c)
    return torch.from_numpy(m)


def attention_mask(layer, rows, heads, length):
    m = np.empty((rows, heads, length, length), dtype=np.float32)
    for r in range(rows):
        for h in range(heads):
            for i in range(length):
                for j in range(length):
                    m[r, h, i, j] = factor(ATTENTION, layer, r, (h << 16) | i, j)
    return torch.from_numpy(m)


class Masks:
    """Stands in for torch.nn.functional.dropout: the next site's mask, in forward order."""

    def __init__(self, rows, length, d, heads, layers):
        self.queue = [hidden_mask(EMBEDDING, 0, rows, length, d)]
        for l in range(layers):
            self.queue += [attention_mask(l, rows, heads, length),
                           hidden_mask(ATTENTION_OUT, l, rows, length, d),
                           hidden_mask(MLP_OUT, l, rows, length, d)]
        self.used = 0

    def __call__(self, x, p=0.5, training=True, inplace=False):
        m = self.queue[self.used]
        self.used += 1
        assert x.shape == m.shape, (x.shape, m.shape, self.used)
        return x * m.to(x.dtype)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model, keys = ref.load_model(torch.float32)
    tables0 = ref.make_tables()
    cfg = model.config
    os.makedirs(OUT, exist_ok=True)
    cases = {"key": KEY, "p": P, "lambda_c": ref.LAMBDA_C}
    real = torch.nn.functional.dropout
    for case in ref.CASES:
        rows = ref.BATCHES[case]
        length = max(len(t) for t, *_ in rows)
        masks = Masks(len(rows), length, cfg.n_embd, cfg.n_head, cfg.n_layer)
        tables = {n: t.clone().requires_grad_(True) for n, t in tables0.items()}
        torch.nn.functional.dropout = masks
        try:
            loss, nll, n, _, grads = ref.compute(model, tables, case, rows)
        finally:
            torch.nn.functional.dropout = real
        assert masks.used == len(masks.queue), (masks.used, len(masks.queue))
        tables = {n: t.clone().requires_grad_(True) for n, t in tables0.items()}
        plain, _, _, _, _ = ref.compute(model, tables, case, rows)
        print(f"{case}: loss {loss.item():.9g} with dropout, {plain.item():.9g} without; n {n}")
        assert abs(loss.item() - plain.item()) > 1e-3, "the masks changed nothing"
        save_file({"grad." + k: v.contiguous() for k, v in grads.items()},
                  os.path.join(OUT, case + ".safetensors"))
        cases[case] = {"loss": float(loss.item()), "nll_sum": float(nll.item()), "n_predictions": n}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    print("written", OUT)


if __name__ == "__main__":
    main()
