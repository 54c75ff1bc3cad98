"""PyTorch + transformers reference for the pretrain benchmarks (benches/pretrain.sh,
benches/backbone.sh).

Trains the same model on the same documents as one collaborative pretraining epoch of the
`pretrain` stage: a backbone whose input embeddings at user/item positions come from trainable
user/item tables (fed through `inputs_embeds`), next-item prediction over the item tokens with
the head tied to the item table, mutual regularization toward (fixed) content tables, Adam.
Batches as the Rust stage makes them (length-sorted). Prints tokens/s and peak memory (max RSS)
as JSON, with each epoch's tokens and seconds. `--device cuda` trains on the GPU (benches/gpu.sh):
each epoch is timed after `torch.cuda.synchronize()`, and the JSON adds the peak memory that
PyTorch's allocator reserved and allocated on the device. The backbone is either
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
    Llama, de-quantized to float32 by gguf-py; its token embedding; its width.

    Read with gguf-py alone (the `gguf` package), not transformers' GGUF loader, which also
    needs `accelerate`: the config from the `llama.*` metadata, each tensor de-quantized and
    renamed, and llama.cpp's permutation of the query/key rows undone, as transformers does.
    `--check-loader FILE.gguf` compares it with transformers' loader."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from transformers import LlamaConfig, LlamaModel
    r = GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if k.startswith(("llama.", "general.architecture"))}
    if meta.get("general.architecture") != "llama":
        sys.exit(f"error: {path} is a {meta.get('general.architecture')!r} model, not llama")
    heads, kv = meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]
    cfg = LlamaConfig(
        vocab_size=meta.get("llama.vocab_size", base), hidden_size=meta["llama.embedding_length"],
        intermediate_size=meta["llama.feed_forward_length"], num_hidden_layers=meta["llama.block_count"],
        num_attention_heads=heads, num_key_value_heads=kv,
        max_position_embeddings=meta["llama.context_length"], rms_norm_eps=meta["llama.attention.layer_norm_rms_epsilon"],
        rope_theta=meta.get("llama.rope.freq_base", 10000.0), tie_word_embeddings=True, attention_bias=False,
        mlp_bias=False)
    if cfg.vocab_size != base:
        sys.exit(f"error: {path} has a vocabulary of {cfg.vocab_size} tokens but the documents "
                 f"were tokenized with {base}: tokenize with that GGUF's tokenizer")
    names = {"token_embd": "embed_tokens", "output_norm": "norm"}
    blk = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
           "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}

    def unpermute(w, n):  # llama.cpp's convert interleaves each head's rotary halves
        return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    state = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).reshape(tuple(int(d) for d in reversed(t.shape))).astype(np.float32)
        stem, _, kind = t.name.rpartition(".")
        if stem == "output":
            continue  # a separate head; the model here is the decoder only
        if stem.startswith("blk."):
            _, i, part = stem.split(".", 2)
            if part == "attn_q":
                w = unpermute(w, heads)
            elif part == "attn_k":
                w = unpermute(w, kv)
            key = f"layers.{i}.{blk[part]}.{kind}"
        else:
            key = f"{names[stem]}.{kind}"
        state[key] = torch.from_numpy(np.ascontiguousarray(w))
    model = LlamaModel(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    if missing or unexpected:
        sys.exit(f"error: {path}: tensors missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.float(), model.embed_tokens, cfg.hidden_size


def check_loader(path):
    """Compare load_gguf with transformers' own GGUF loader (needs accelerate) on one input."""
    from transformers import AutoModelForCausalLM
    from gguf import GGUFReader
    ours, _, _ = load_gguf(path, int(GGUFReader(path).fields["llama.vocab_size"].contents()))
    path = os.path.abspath(path)
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                               torch_dtype=torch.float32).model
    ids = torch.arange(1, 40)[None] * 97 % 49152
    with torch.no_grad():
        a = ours(input_ids=ids).last_hidden_state
        b = ref(input_ids=ids).last_hidden_state
    err = ((a - b).abs().max() / b.abs().max()).item()
    print(json.dumps({"max_rel_diff": err}))
    return 0 if err < 1e-5 else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-loader":
        return check_loader(sys.argv[2])
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
    ap.add_argument("--device", default="cpu", help="`cpu` (default) or `cuda`")
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is false")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab = json.load(open(f"{a.tokens}/vocab.json"))
    base, nu, ni = vocab["base_vocab"], vocab["users"], vocab["items"]
    docs = [(tok[-a.n_positions:], p) for tok, p in read_corpus(f"{a.tokens}/collab.tok")]
    if a.backbone == "random":
        cfg = GPT2Config(vocab_size=base, n_positions=a.n_positions, n_embd=a.n_embd, n_layer=a.n_layer,
                         n_head=a.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = GPT2Model(cfg).to(dev)
        wte, d, trained = model.wte, a.n_embd, list(model.parameters())
        backbone = "gpt2-random"
    else:
        model, wte, d = load_gguf(a.backbone, base)
        model = model.to(dev)
        model.requires_grad_(a.train_backbone)
        trained = list(model.parameters()) if a.train_backbone else []
        backbone = os.path.basename(a.backbone) + (" (trained)" if a.train_backbone else " (frozen)")
    users = torch.nn.Parameter((torch.randn(nu, d) * 0.02).to(dev))
    items = torch.nn.Parameter((torch.randn(ni, d) * 0.02).to(dev))
    content_users, content_items = (torch.randn(nu, d) * 0.02).to(dev), (torch.randn(ni, d) * 0.02).to(dev)
    opt = torch.optim.Adam(trained + [users, items], lr=1e-3, eps=1e-8)
    order = sorted(range(len(docs)), key=lambda i: len(docs[i][0]))
    batches = [order[i:i + a.batch_size] for i in range(0, len(order), a.batch_size)]
    tokens, loss_sum, preds = 0, 0.0, 0
    epochs = []
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        e_t0, e_tokens = time.perf_counter(), tokens
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
            ids, mask = ids.to(dev), mask.to(dev)
            is_word = ids < base
            is_item = ids >= base + nu
            is_user = ~is_word & ~is_item
            emb = (wte(ids.clamp(0, base - 1)) * is_word[..., None]
                   + users[(ids - base).clamp(0, nu - 1)] * is_user[..., None]
                   + items[(ids - base - nu).clamp(0, ni - 1)] * is_item[..., None])
            h = model(inputs_embeds=emb, attention_mask=mask, use_cache=False).last_hidden_state.reshape(-1, d)
            logits = h[torch.tensor(pos, device=dev)] @ items.T
            nll = torch.nn.functional.cross_entropy(logits, torch.tensor(tgt, device=dev), reduction="sum")
            u_ids, i_ids = (ids - base)[is_user & (mask == 1)], (ids - base - nu)[is_item & (mask == 1)]
            reg = ((users[u_ids] - content_users[u_ids]) ** 2).sum() + ((items[i_ids] - content_items[i_ids]) ** 2).sum()
            loss = (nll + a.lambda_c / 2 * reg) / len(tgt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tokens += int(mask.sum())
            loss_sum, preds = loss_sum + loss.item() * len(tgt), preds + len(tgt)
        if cuda:
            torch.cuda.synchronize()
        e_secs = time.perf_counter() - e_t0
        epochs.append({"tokens": tokens - e_tokens, "seconds": e_secs, "tokens_per_s": (tokens - e_tokens) / e_secs})
    secs = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"tokens": tokens, "seconds": secs, "tokens_per_s": tokens / secs, "peak_rss_mib": peak_mib,
           "loss": loss_sum / preds, "torch": torch.__version__, "threads": a.threads, "backbone": backbone,
           "device": a.device, "epochs": epochs}
    if cuda:
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["peak_gpu_reserved_mib"] = torch.cuda.max_memory_reserved(dev) / 2**20
        out["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
