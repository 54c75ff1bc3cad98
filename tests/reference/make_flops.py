"""Reference model FLOPs for src/model/flops.rs, counted by PyTorch's FlopCounterMode
(torch.utils.flop_counter) on transformers' own models: writes tests/fixtures/flops.json,
which `model::flops` tests (src/model/trainer.rs, src/model/baselines/tests.rs) compare with
the counts the trainers add up.

Each case is CLLM4Rec's computation on one sequence at a time (no padding): input embeddings
that need a gradient (the user/item tokens are trained), the backbone (GPT-2 or Llama, eager
attention), an output head at the predicted positions (the item table, trained; or the word
table, trained with the backbone), a softmax loss, and its backward pass; with the backbone
trained or frozen (requires_grad off). The sequences and shapes are those of the Rust tests:
the tiny GPT-2 (Gpt2Config::tiny(): 512 words, 32 wide, 2 layers, 4 heads) and the tiny
Llama (LlamaConfig::tiny(): 256 words, 32 wide, 64 inner, 2 layers, 4 heads, 2 key/value
heads), 4 users and 6 items. The products that compute Llama's rotary angles are left out (ours
reads them from a table). Multi-VAE: RecBole's layout (items -> 600 -> 2 x 200, 200 -> 600
-> items, tanh), dense input, one training step and one scoring pass.

  python3 tests/reference/make_flops.py   # torch and transformers
"""
import json, os

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel

torch.manual_seed(0)
USERS, ITEMS = 4, 6


def counted(f):
    with FlopCounterMode(display=False) as m:
        f()
    # transformers' Llama computes its rotary angles as a matrix product (inv_freq x
    # positions) on every forward pass; ours reads them from a table: not model compute
    rotary = sum(sum(ops.values()) for name, ops in m.get_flop_counts().items()
                 if name.endswith("rotary_emb"))
    return m.get_total_flops() - rotary


def collab_seqs(base):
    # the Rust tests' collaborative documents: <user> 10 20 | four items
    return [([base + u, 10, 20] + [base + USERS + (u + k * 5) % ITEMS for k in range(4)], 3)
            for u in range(USERS)]


def content_seqs(base):
    return [([base + USERS + i, 40, 41, 100 + i, 200, 30 + i], 3) for i in range(USERS)]


def rec_seqs(base):
    # a recommendation prompt per user: <user> 10 20 and two items; one prediction per row
    return [([base + u, 10, 20, base + USERS + u, base + USERS + (u + 1) % ITEMS], 5)
            for u in range(USERS)]


def case(model, width, vocab, seqs, objective, trained, corpus=None):
    model.requires_grad_(trained)
    items = torch.randn(ITEMS, width, requires_grad=True)
    total = 0
    for tokens, prompt_len in seqs:
        t = len(tokens)
        emb = torch.randn(1, t, width, requires_grad=True)

        def step():
            h = model(inputs_embeds=emb).last_hidden_state[0]
            if objective == "rec":
                logits = h[t - 1:t] @ items.T
            else:
                pos = list(range(max(prompt_len, 1) - 1, t - 1))
                if objective == "collab":
                    head = items
                else:
                    w = model.get_input_embeddings().weight
                    head = w if corpus is None else w[torch.tensor(corpus)]
                logits = h[pos] @ head.T
            torch.logsumexp(logits, 1).sum().backward()

        total += counted(step)
    return total


def gpt2():
    cfg = GPT2Config(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0)
    return GPT2Model(cfg).eval(), 32, 512


def llama():
    cfg = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      attn_implementation="eager", tie_word_embeddings=True)
    return LlamaModel(cfg).eval(), 32, 256


def multivae(items=50, hidden=600, latent=200, rows=7):
    enc = [torch.nn.Linear(items, hidden), torch.nn.Linear(hidden, 2 * latent)]
    dec = [torch.nn.Linear(latent, hidden), torch.nn.Linear(hidden, items)]
    x = torch.rand(rows, items)

    def forward():
        h = torch.tanh(enc[0](x))
        mu, logvar = enc[1](h).chunk(2, 1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return dec[1](torch.tanh(dec[0](z))), mu, logvar

    def train():
        logits, mu, logvar = forward()
        loss = -(torch.log_softmax(logits, 1) * x).sum() + (mu * mu + logvar.exp()).sum()
        loss.backward()

    def score():
        with torch.no_grad():
            forward()

    return {"items": items, "hidden": hidden, "latent": latent, "rows": rows,
            "train": counted(train), "score": counted(score)}


out = {"cases": []}
for name, make in [("gpt2", gpt2), ("llama", llama)]:
    model, width, vocab = make()
    base = vocab
    for objective, seqs in [("collab", collab_seqs(base)), ("content", content_seqs(base)),
                            ("rec", rec_seqs(base))]:
        for trained in [True, False]:
            corpus = None
            if objective == "content":
                corpus = list(range(0, 40, 3))  # a corpus vocabulary of 14 words
            out["cases"].append({
                "backbone": name, "objective": objective, "trained": trained,
                "seqs": [{"tokens": s, "prompt_len": p} for s, p in seqs],
                "corpus": corpus,
                "flops": case(model, width, vocab, seqs, objective, trained, corpus),
            })
out["multivae"] = multivae()
path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "flops.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(json.dumps([(c["backbone"], c["objective"], c["trained"], c["flops"]) for c in out["cases"]]))
print(out["multivae"])
