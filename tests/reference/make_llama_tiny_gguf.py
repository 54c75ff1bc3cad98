"""Writes the tiny Llama fixtures (tests/fixtures/llama-tiny*, made by make_llama_tiny.py) as
GGUF files the way llama.cpp's convert_hf_to_gguf.py does for a Llama: `llama.*` metadata,
llama.cpp tensor names, F32 tensors, and the rows of attn_q / attn_k permuted for llama.cpp's
interleaved RoPE (`LlamaModel.permute`, copied below). Then loads each GGUF back with
transformers (which un-permutes them) and checks that it reproduces reference.json, so the
files are known to be what a real converter would write.

Run: python3 tests/reference/make_llama_tiny_gguf.py tests/fixtures   (needs torch,
transformers, safetensors, gguf, numpy)
"""
import json, sys, pathlib
import numpy as np
import torch
import gguf
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM


def permute(weights, n_head, n_head_kv):
    # llama.cpp convert_hf_to_gguf.py, LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
for name in ["llama-tiny", "llama-tiny-linear"]:
    d = root / name
    cfg = json.loads((d / "config.json").read_text())
    rope = cfg["rope_parameters"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w = gguf.GGUFWriter(str(d / "model.gguf"), "llama")
    w.add_name(name)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_rope_dimension_count(head_dim)
    if head_dim != cfg["hidden_size"] // heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if rope["rope_type"] == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rope["factor"])
    tensors = load_file(str(d / "model.safetensors"))
    for key, t in sorted(tensors.items()):
        t = t.astype(np.float32)
        if key == "model.embed_tokens.weight":
            out = "token_embd.weight"
        elif key == "model.norm.weight":
            out = "output_norm.weight"
        elif key == "lm_head.weight":
            out = "output.weight"
        else:
            _, _, layer, rest = key.split(".", 3)
            module = rest.rsplit(".", 1)[0]
            out = f"blk.{layer}.{NAMES[module]}.weight"
            if module == "self_attn.q_proj":
                t = permute(t, heads, heads)
            elif module == "self_attn.k_proj":
                t = permute(t, heads, kv)
        w.add_tensor(out, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # transformers reads the weights back (un-permuting attn_q / attn_k) to the same function.
    # Its GGUF loader ignores `llama.rope.scaling.*`, so the weights go into a model built
    # from config.json.
    ref = json.loads((d / "reference.json").read_text())
    loaded = AutoModelForCausalLM.from_pretrained(d, gguf_file="model.gguf",
                                                  dtype=torch.float32)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(d)).eval()
    model.load_state_dict(loaded.state_dict())
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ref["input_ids"]),
                       attention_mask=torch.tensor(ref["attention_mask"])).logits
    expected = torch.tensor(ref["logits"])
    mask = torch.tensor(ref["attention_mask"]).bool()
    err = (logits - expected)[mask].abs().max().item()
    print("wrote", d / "model.gguf", "transformers from the GGUF: max |logit error|", err)
    assert err < 1e-5, err
