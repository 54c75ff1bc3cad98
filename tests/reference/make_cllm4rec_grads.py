"""Reference losses and gradients of CLLM4Rec's two pretraining losses (Zhu et al., WWW 2024) and of
its RecLLM finetuning loss (multinomial likelihood over the items) on the tiny GPT-2 of
tests/fixtures/gpt2-tiny, computed with PyTorch + transformers (an implementation independent of
the Rust one), for testing the Rust hand-written forward/backward.

Run from the repo root (needs torch, transformers, numpy, safetensors; CPU is enough, ~seconds):
    python3 tests/reference/make_cllm4rec_grads.py
It writes tests/fixtures/cllm4rec-grads/ and is deterministic (two runs give byte-identical files).

What it computes (everything float32):
* Backbone: transformers GPT2Model (eager attention, eval mode, all parameters trainable) loaded
  from tests/fixtures/gpt2-tiny (vocab 512, 64 positions, d=32, 2 layers, 4 heads, gelu_new).
* Extended vocabulary: words 0..511, users U=3 (ids 512..514), items I=5 (ids 515..519). Four
  [*, d] tables collab_users, collab_items, content_users, content_items drawn in that order from
  np.random.default_rng(7).normal(0, 0.02, size), cast to float32 (-> tables.safetensors).
* Input embeddings of a side (collab or content): word -> wte row, user u -> side's users[u-512],
  item i -> side's items[i-515]; fed through inputs_embeds, GPT2Model adds wpe (position_ids are
  passed explicitly as 0..maxlen-1 for every row). Rows are right-padded; attention_mask is 1 on
  real tokens, 0 on padding. Padding positions get the embedding of word 0 (wte[0]) -- this only
  matters for the padding positions of `hidden`, never for the losses or gradients (padding keys
  are masked out for every query; a padding query attends to the real keys at or before it).
* collab and content cases: a sequence (tokens, prompt_len=p) predicts, for t in
  range(max(p,1), len), token t from the last hidden state (after ln_f) at t-1.
  collab side: logits = h[t-1] @ collab_items.T (5 items), target tokens[t]-515;
  content side: logits = h[t-1] @ wte.T (512 words, head tied to wte), target tokens[t].
* Mutual regularisation, lambda_c = 1.5: for every real token occurrence that is a user (item)
  token, ||own_users[u] - other_users[u].detach()||^2 (resp. items), own = the side's tables,
  other = the other side's (no gradient flows into them). Repeats count each time.
* loss = (nll_sum + lambda_c/2 * reg_sum) / n_predictions, nll_sum = sum of -log softmax[target].
* rec (RecLLM finetuning): collab side (embeddings, backbone and regulariser exactly as the collab
  case, other = content tables detached). Each row is a prompt only (prompt_len = len(tokens)) with
  a list of target items (item indices 0..4, may repeat). From the last real token's hidden state
  h_r = h[r, len-1] (after ln_f): logits = h_r @ collab_items.T, log p = log_softmax(logits).
  Weights w[r, j] = 1 for each item j in row r's targets (set, not added: a repeated target counts
  once), nll_sum = -sum_{r,j} w[r,j] log p[r,j]; n_predictions = total number of target entries
  INCLUDING repeats; loss = (nll_sum + lambda_c/2 * reg_sum) / n_predictions.
* Gradients of loss w.r.t. every GPT-2 parameter and the four tables; the two tables of the other
  side get no gradient, stored as zeros.

Outputs in tests/fixtures/cllm4rec-grads/:
  tables.safetensors    collab_users [3,32], collab_items [5,32], content_users [3,32], content_items [5,32]
  collab.safetensors    grad.<name> for every model.safetensors key (e.g. grad.transformer.wte.weight)
  content.safetensors   and for the four tables (grad.collab_users, ...), plus hidden [3, maxlen, 32]
  rec.safetensors       (same keys; rec is on the collab side)
  cases.json            batches, losses, nll sums, prediction counts (rec rows also carry "targets")

Checks done before writing: the losses recomputed by numpy (float64) from the stored hidden states
and tables (for rec, with the set-of-targets weights built separately); the float32 gradients
against a float64 autograd run; and float64 central finite differences on a few gradient entries
against float64 autograd.
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2Model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "tests", "fixtures", "gpt2-tiny")
OUT = os.path.join(ROOT, "tests", "fixtures", "cllm4rec-grads")

BASE, U, I = 512, 3, 5
LAMBDA_C = 1.5
PAD_TOKEN = 0  # word whose embedding fills padding positions (irrelevant to losses and grads)
TABLES = ["collab_users", "collab_items", "content_users", "content_items"]
HAS = [10, 20, 30]  # stands for "has interacted with"


def item(i):
    return BASE + U + i


BATCHES = {
    "collab": [
        ([512] + HAS + [item(3), item(1), item(4), item(0), item(2)], 4),
        ([513] + HAS + [item(2), item(2), item(0)], 4),
        ([514] + HAS + [item(4), item(1), item(3), item(0), item(1), item(2), item(4)], 4),
    ],
    "content": [
        ([512, 40, 41, item(2), 42] + [100, 200, 300, 7, 8, 9], 5),
        ([item(4), 43] + [301, 302, 5], 2),
        ([514, 40, 41, item(0), 42] + [11, 12, 13, 14, 15, 16, 17, 18, 19, 500, 511], 5),
    ],
}
# rec: (tokens, prompt_len = len(tokens), target item indices); row 2 repeats target 3
REC_ROWS = [
    [512] + HAS + [item(1), item(3), 11],
    [513] + HAS + [item(0), 12],
    [514] + HAS + [item(2), item(4), item(1), 13],
]
REC_TARGETS = [[0, 4, 2], [3], [0, 3, 3]]
BATCHES["rec"] = [(t, len(t), y) for t, y in zip(REC_ROWS, REC_TARGETS)]
CASES = ["collab", "content", "rec"]


def side_of(case):
    return "collab" if case == "rec" else case


def load_model(dtype):
    config = GPT2Config.from_pretrained(SRC)
    config._attn_implementation = "eager"
    model = GPT2Model(config)
    sd = load_file(os.path.join(SRC, "model.safetensors"))
    assert all(k.startswith("transformer.") for k in sd), list(sd)
    stripped = {k[len("transformer."):]: v for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(stripped, strict=False)
    assert not unexpected, unexpected
    assert all(n in dict(model.named_buffers()) for n in missing), missing  # only non-weight buffers
    names = [n for n, _ in model.named_parameters()]
    assert sorted(names) == sorted(stripped), (names, list(stripped))
    model = model.to(dtype).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), stripped[n].to(dtype)), n
    return model, sorted(sd)


def make_tables():
    rng = np.random.default_rng(7)
    sizes = [(U, 32), (I, 32), (U, 32), (I, 32)]
    return {n: torch.from_numpy(rng.normal(0.0, 0.02, size=s).astype(np.float32)) for n, s in zip(TABLES, sizes)}


def predictions(rows):
    """(row, position of the predicting hidden state, target token) of every prediction."""
    out = []
    for r, (toks, p, *_) in enumerate(rows):
        for t in range(max(p, 1), len(toks)):
            out.append((r, t - 1, toks[t]))
    return out


def compute(model, tables, case, rows):
    """Forward + backward of one case's loss; returns loss, nll_sum, n, hidden, grads (by model key)."""
    side = side_of(case)
    other = "content" if side == "collab" else "collab"
    own_u, own_i = tables[side + "_users"], tables[side + "_items"]
    oth_u, oth_i = tables[other + "_users"].detach(), tables[other + "_items"].detach()
    wte = model.wte.weight
    L = max(len(t) for t, *_ in rows)
    embeds, mask = [], []
    for toks, *_ in rows:
        e = []
        for x in toks + [PAD_TOKEN] * (L - len(toks)):
            if x < BASE:
                e.append(wte[x])
            elif x < BASE + U:
                e.append(own_u[x - BASE])
            else:
                assert x < BASE + U + I
                e.append(own_i[x - BASE - U])
        embeds.append(torch.stack(e))
        mask.append([1] * len(toks) + [0] * (L - len(toks)))
    embeds = torch.stack(embeds)
    mask = torch.tensor(mask, dtype=torch.long)
    pos = torch.arange(L).unsqueeze(0).expand(len(rows), L)
    h = model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).last_hidden_state
    if case == "rec":
        assert all(p == len(toks) for toks, p, _ in rows)
        hl = torch.stack([h[r, len(toks) - 1] for r, (toks, _, _) in enumerate(rows)])
        logits = hl @ own_i.T
        logp = torch.log_softmax(logits, dim=-1)
        w = torch.zeros(len(rows), I, dtype=logp.dtype)
        for r, (_, _, ys) in enumerate(rows):
            for y in ys:
                assert 0 <= y < I
                w[r, y] = 1.0  # set, not added
        nll_sum = -(w * logp).sum()
        n = sum(len(ys) for _, _, ys in rows)
    elif side == "collab":
        preds = predictions(rows)
        hp = torch.stack([h[r, t] for r, t, _ in preds])
        logits = hp @ own_i.T
        target = torch.tensor([y - BASE - U for _, _, y in preds])
        assert ((0 <= target) & (target < I)).all()
    else:
        preds = predictions(rows)
        hp = torch.stack([h[r, t] for r, t, _ in preds])
        logits = hp @ wte.T
        target = torch.tensor([y for _, _, y in preds])
        assert (target < BASE).all()
    if case != "rec":
        nll_sum = -torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).sum()
        n = len(preds)
    reg = logits.new_zeros(())
    for toks, *_ in rows:
        for x in toks:
            if BASE <= x < BASE + U:
                reg = reg + ((own_u[x - BASE] - oth_u[x - BASE]) ** 2).sum()
            elif x >= BASE + U:
                reg = reg + ((own_i[x - BASE - U] - oth_i[x - BASE - U]) ** 2).sum()
    loss = (nll_sum + LAMBDA_C / 2 * reg) / n
    params = dict(model.named_parameters())
    for p in list(params.values()) + list(tables.values()):
        p.grad = None
    loss.backward()
    grads = {}
    for name, p in params.items():
        grads["transformer." + name] = p.grad.detach().clone()
    for name in TABLES:
        t = tables[name]
        grads[name] = torch.zeros_like(t) if t.grad is None else t.grad.detach().clone()
    return loss.detach(), nll_sum.detach(), n, h.detach(), grads


def numpy_loss(hidden, wte, tables, case, rows):
    """Second route: the loss in float64 numpy from the stored hidden states and tables."""
    side = side_of(case)
    other = "content" if side == "collab" else "collab"
    h = hidden.astype(np.float64)
    head = tables[side + "_items"] if side == "collab" else wte
    head = head.astype(np.float64)
    nll = 0.0
    if case == "rec":
        n = 0
        for r, (toks, _, ys) in enumerate(rows):
            z = h[r, len(toks) - 1] @ head.T
            m = z.max()
            lse = m + np.log(np.exp(z - m).sum())
            for y in sorted(set(ys)):  # each distinct target once
                nll += lse - z[y]
            n += len(ys)  # repeats counted
    else:
        preds = predictions(rows)
        n = len(preds)
        for r, t, y in preds:
            z = h[r, t] @ head.T
            m = z.max()
            lse = m + np.log(np.exp(z - m).sum())
            idx = y - BASE - U if side == "collab" else y
            nll += lse - z[idx]
    reg = 0.0
    for toks, *_ in rows:
        for x in toks:
            if x >= BASE:
                kind, j = ("_users", x - BASE) if x < BASE + U else ("_items", x - BASE - U)
                d = tables[side + kind][j].astype(np.float64) - tables[other + kind][j].astype(np.float64)
                reg += (d * d).sum()
    return (nll + LAMBDA_C / 2 * reg) / n, nll


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model, keys = load_model(torch.float32)
    tables0 = make_tables()
    model64, _ = load_model(torch.float64)

    os.makedirs(OUT, exist_ok=True)
    save_file({n: tables0[n].contiguous() for n in TABLES}, os.path.join(OUT, "tables.safetensors"))
    cases = {"base": BASE, "users": U, "items": I, "lambda_c": LAMBDA_C,
             "padding": "right-padded; padding positions hold wte[0] + wpe[t] and attention_mask 0 "
                        "(only affects the padding positions of `hidden`)"}
    ok = True
    for case in CASES:
        side = side_of(case)
        rows = BATCHES[case]
        tables = {n: t.clone().requires_grad_(True) for n, t in tables0.items()}
        loss, nll, n, hidden, grads = compute(model, tables, case, rows)
        assert sorted(k for k in grads if k.startswith("transformer.")) == keys

        # second route: numpy from the hidden states
        wte_np = model.wte.weight.detach().numpy()
        np_loss, np_nll = numpy_loss(hidden.numpy(), wte_np, {k: v.numpy() for k, v in tables0.items()}, case, rows)
        print(f"{case}: loss {loss.item():.9g} (numpy {np_loss:.9g}), nll_sum {nll.item():.9g} "
              f"(numpy {np_nll:.9g}), n_predictions {n}")
        ok &= abs(np_loss - loss.item()) < 1e-5 * max(1, abs(np_loss)) and abs(np_nll - nll.item()) < 1e-4 * max(1, abs(np_nll))

        # float64 autograd vs float32 grads
        tables64 = {k: v.double().clone().requires_grad_(True) for k, v in tables0.items()}
        loss64, _, _, _, grads64 = compute(model64, tables64, case, rows)
        worst = 0.0
        for k in grads:
            g32, g64 = grads[k].double(), grads64[k]
            err = ((g32 - g64).abs().max() / (g64.abs().max() + 1e-12)).item() if g64.abs().max() > 0 else g32.abs().max().item()
            worst = max(worst, err)
        print(f"  float64 loss {loss64.item():.12g}; worst relative (to max |g|) grad diff f32 vs f64: {worst:.2e}")
        ok &= worst < 1e-4 and abs(loss64.item() - loss.item()) < 1e-5
        zero = [k for k in TABLES if not grads[k].any()]
        print(f"  tables with zero grad: {zero}")
        ok &= zero == [k for k in TABLES if not k.startswith(side)]

        # float64 central finite differences on a few entries
        params64 = {"transformer." + k: v for k, v in model64.named_parameters()}
        params64.update(tables64)
        checks = [("transformer.h.0.attn.c_attn.weight", (3, 50)), ("transformer.wte.weight", (10, 5)),
                  ("transformer.wpe.weight", (2, 7)), ("transformer.ln_f.weight", (4,)),
                  ("transformer.h.1.mlp.c_fc.weight", (6, 17)),
                  (side + "_items", (2, 7)), (side + "_users", (0, 3))]
        if side == "content":
            checks.append(("transformer.wte.weight", (300, 1)))  # reached through the tied head only
        if case == "rec":
            checks.append(("collab_items", (3, 11)))  # the repeated target's row
        eps = 1e-5
        for k, idx in checks:
            p = params64[k]
            with torch.no_grad():
                orig = p[idx].item()
                p[idx] = orig + eps
                lp = compute_loss_only(model64, tables64, case, rows)
                p[idx] = orig - eps
                lm = compute_loss_only(model64, tables64, case, rows)
                p[idx] = orig
            fd = (lp - lm) / (2 * eps)
            an = grads64[k][idx].item()
            rel = abs(fd - an) / max(abs(an), 1e-8)
            print(f"  fd {k}{list(idx)}: finite diff {fd:.10e} autograd f64 {an:.10e} f32 {grads[k][idx].item():.10e} rel {rel:.1e}")
            ok &= rel < 1e-5 or abs(fd - an) < 1e-9

        out = {"grad." + k: v.contiguous() for k, v in grads.items()}
        out["hidden"] = hidden.contiguous()
        save_file(out, os.path.join(OUT, case + ".safetensors"))
        if case == "rec":
            json_rows = [{"tokens": t, "prompt_len": p, "targets": y} for t, p, y in rows]
        else:
            json_rows = [{"tokens": t, "prompt_len": p} for t, p in rows]
        cases[case] = {"rows": json_rows,
                       "loss": float(loss.item()), "nll_sum": float(nll.item()), "n_predictions": n}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    for name in sorted(os.listdir(OUT)):
        path = os.path.join(OUT, name)
        print(f"{name} {os.path.getsize(path)} bytes sha256 {hashlib.sha256(open(path, 'rb').read()).hexdigest()[:16]}")
    if not ok:
        sys.exit("a sanity check failed")
    print("all checks passed")


def compute_loss_only(model, tables, case, rows):
    with torch.enable_grad():
        loss, _, _, _, _ = compute(model, tables, case, rows)
    return loss.item()


if __name__ == "__main__":
    main()
