"""Builds two tiny randomly initialised Llama checkpoints in the Hugging Face layout, with
reference outputs computed by transformers' LlamaForCausalLM, so that the Llama port can prove
that it loads weights and computes the same function:

- llama-tiny: vocab 256, hidden 32, 2 layers, 4 heads, 2 KV heads (grouped-query attention),
  intermediate 64, rope_theta 10000, tied LM head;
- llama-tiny-linear: the same shape with linear RoPE scaling (factor 2.5), rope_theta 500,
  an explicit head_dim of 16 (heads * head_dim != hidden) and an untied LM head.

RMSNorm weights are given non-trivial values so that a loader that skips them fails.

Run: python3 tests/reference/make_llama_tiny.py tests/fixtures   (needs torch, transformers)
"""
import json, sys, pathlib
import torch
from transformers import LlamaConfig, LlamaForCausalLM

def f32(t):
    """Nested lists of the float32 values, each written with the 9 significant digits that
    round-trip a float32 (not the 17 of its float64 widening)."""
    return json.loads(json.dumps(t.tolist(), default=None), parse_float=lambda x: float(f"{float(x):.9g}"))


root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
common = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
              rms_norm_eps=1e-6, attention_dropout=0.0)
variants = {
    "llama-tiny": dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       tie_word_embeddings=True),
    "llama-tiny-linear": dict(rope_parameters={"rope_type": "linear", "rope_theta": 500.0,
                                               "factor": 2.5},
                              head_dim=16, tie_word_embeddings=False),
}
for seed, (name, extra) in enumerate(variants.items()):
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(4242 + seed)
    cfg = LlamaConfig(**common, **extra)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                # HF's init (std 0.02) gives near-uniform attention; larger weights make
                # positional and head-mapping mistakes visible in the outputs.
                p.mul_(10.0)
    model.save_pretrained(out, safe_serialization=True)

    g = torch.Generator().manual_seed(7 + seed)
    input_ids = torch.randint(0, cfg.vocab_size, (2, 12), generator=g)
    # The second row is right-padded: only its first 7 positions are real.
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    ref = {
        "config": cfg.to_dict(),
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "note": "logits[b][t] for every position; rows of padded positions (mask 0) are not "
                "meaningful; last_hidden_state is after the final norm",
        "logits": f32(logits),
        "last_hidden_state": f32(hidden),
        "transformers_version": __import__("transformers").__version__,
        "torch_version": torch.__version__,
    }
    (out / "reference.json").write_text(json.dumps(ref))
    print("wrote", out, "logits", tuple(logits.shape), "max |logit|", float(logits.abs().max()))
