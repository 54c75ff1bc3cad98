"""PyTorch + transformers reference for the pretrain benchmarks (benches/pretrain.sh,
benches/backbone.sh).

Trains the same model on the same documents as one collaborative pretraining epoch of the
`pretrain` stage: a backbone whose input embeddings at user/item positions come from trainable
user/item tables (fed through `inputs_embeds`), next-item prediction over the item tokens with
the head tied to the item table, mutual regularization toward (fixed) content tables, Adam.
Batches as the Rust stage makes them (length-sorted). Prints tokens/s and peak memory (max RSS)
as JSON. The backbone is either
  - a randomly initialised GPT-2 (transformers' GPT2Model) of the given shape, trained (the
    default), or
  - `--backbone FILE.gguf`: a Llama-architecture model (SmolLM2-135M) loaded from the GGUF by
    transformers (de-quantized to float32), frozen as the stage freezes a pretrained backbone
    (`--train-backbone` trains it too); the documents must have been tokenized with that
    GGUF's tokenizer (its vocabulary size is checked).

Not run by CI. Needs torch and transformers (pip install torch transformers; gguf too for a
GGUF backbone).
  python3 benches/pretrain_torch.py TOKENIZE_OUTPUT_DIR --n-layer 2 --n-head 4 --n-embd 64 \
      --n-positions 512 --batch-size 32 --epochs 1 --threads 2
  python3 benches/pretrain_torch.py TOKENIZE_OUTPUT_DIR --backbone SmolLM2-135M-Instruct.Q4_1.gguf \
      --n-positions 512 --batch-size 32 --epochs 1 --threads 2
"""
import argparse, json, os, resource, struct, sys, time

import numpy as np
import torch
from transformers import GPT2Config, GPT2Model


def read_corpus(path):
    b = open(path, "rb").read()
    assert b[:8] == b"CLTOK001", "not a token file"
    n, t = struct.unpack_from("<QQ", b, 8)
    at = 24
    offsets = np.frombuffer(b, "<u8", n + 1, at); at += 8 * (n + 1)
    prompt = np.frombuffer(b, "<u4", n, at); at += 4 * n
    at += 8 * n  # user, item
    tokens = np.frombuffer(b, "<u4", t, at)
    return [(tokens[offsets[d]:offsets[d + 1]].astype(np.int64), int(prompt[d])) for d in range(n)]


def load_gguf(path, base):
    """The decoder (transformers' LlamaModel, whose output is after the final norm) of a GGUF
    Llama, de-quantized to float32; its token embedding; its width."""
    from transformers import AutoModelForCausalLM
    path = os.path.abspath(path)
    lm = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                              torch_dtype=torch.float32)
    model = lm.model
    if model.config.vocab_size != base:
        sys.exit(f"error: {path} has a vocabulary of {model.config.vocab_size} tokens but the documents "
                 f"were tokenized with {base}: tokenize with that GGUF's tokenizer")
    return model, model.embed_tokens, model.config.hidden_size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokens")
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=64)
    ap.add_argument("--n-positions", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lambda-c", type=float, default=1.0)
    ap.add_argument("--backbone", default="random", help="`random` (GPT-2 of the shape given) or a .gguf file")
    ap.add_argument("--train-backbone", action="store_true", help="with a .gguf backbone: train it too (default frozen)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab = json.load(open(f"{a.tokens}/vocab.json"))
    base, nu, ni = vocab["base_vocab"], vocab["users"], vocab["items"]
    docs = [(tok[-a.n_positions:], p) for tok, p in read_corpus(f"{a.tokens}/collab.tok")]
    if a.backbone == "random":
        cfg = GPT2Config(vocab_size=base, n_positions=a.n_positions, n_embd=a.n_embd, n_layer=a.n_layer,
                         n_head=a.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = GPT2Model(cfg)
        wte, d, trained = model.wte, a.n_embd, list(model.parameters())
        backbone = "gpt2-random"
    else:
        model, wte, d = load_gguf(a.backbone, base)
        model.requires_grad_(a.train_backbone)
        trained = list(model.parameters()) if a.train_backbone else []
        backbone = os.path.basename(a.backbone) + (" (trained)" if a.train_backbone else " (frozen)")
    users = torch.nn.Parameter(torch.randn(nu, d) * 0.02)
    items = torch.nn.Parameter(torch.randn(ni, d) * 0.02)
    content_users, content_items = torch.randn(nu, d) * 0.02, torch.randn(ni, d) * 0.02
    opt = torch.optim.Adam(trained + [users, items], lr=1e-3, eps=1e-8)
    order = sorted(range(len(docs)), key=lambda i: len(docs[i][0]))
    batches = [order[i:i + a.batch_size] for i in range(0, len(order), a.batch_size)]
    tokens, loss_sum, preds = 0, 0.0, 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        for bi in batches:
            L = max(len(docs[i][0]) for i in bi)
            ids = torch.zeros(len(bi), L, dtype=torch.long)
            mask = torch.zeros(len(bi), L, dtype=torch.long)
            pos, tgt = [], []
            for r, i in enumerate(bi):
                tok, p = docs[i]
                ids[r, :len(tok)] = torch.from_numpy(tok)
                mask[r, :len(tok)] = 1
                for t in range(max(p, 1), len(tok)):
                    pos.append(r * L + t - 1)
                    tgt.append(int(tok[t]) - base - nu)
            is_word = ids < base
            is_item = ids >= base + nu
            is_user = ~is_word & ~is_item
            emb = (wte(ids.clamp(0, base - 1)) * is_word[..., None]
                   + users[(ids - base).clamp(0, nu - 1)] * is_user[..., None]
                   + items[(ids - base - nu).clamp(0, ni - 1)] * is_item[..., None])
            h = model(inputs_embeds=emb, attention_mask=mask, use_cache=False).last_hidden_state.reshape(-1, d)
            logits = h[torch.tensor(pos)] @ items.T
            nll = torch.nn.functional.cross_entropy(logits, torch.tensor(tgt), reduction="sum")
            u_ids, i_ids = (ids - base)[is_user & (mask == 1)], (ids - base - nu)[is_item & (mask == 1)]
            reg = ((users[u_ids] - content_users[u_ids]) ** 2).sum() + ((items[i_ids] - content_items[i_ids]) ** 2).sum()
            loss = (nll + a.lambda_c / 2 * reg) / len(tgt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tokens += int(mask.sum())
            loss_sum, preds = loss_sum + loss.item() * len(tgt), preds + len(tgt)
    secs = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens": tokens, "seconds": secs, "tokens_per_s": tokens / secs, "peak_rss_mib": peak_mib,
                      "loss": loss_sum / preds, "torch": torch.__version__, "threads": a.threads, "backbone": backbone}))


if __name__ == "__main__":
    sys.exit(main())
