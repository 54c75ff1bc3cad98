"""Writes tests/fixtures/llama-tok/model.gguf: a tiny randomly initialised Llama (vocab 1,024,
width 32, 2 layers, 4 query / 2 key-value heads, MLP 64, tied head) that carries the 1,024-token
SmolLM2 tokenizer cut of tests/fixtures/gguf-bpe/tiny-smollm.gguf, so that one file serves as
both `tokenizer_file` and `backbone` in a pipeline — what a real GGUF such as SmolLM2 is, at
a size the CLI tests can pretrain, finetune and evaluate in seconds.

Run: python3 tests/reference/make_llama_tok_gguf.py   (needs gguf, numpy)
"""
import pathlib
import numpy as np
import gguf

root = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
src = gguf.GGUFReader(str(root / "gguf-bpe" / "tiny-smollm.gguf"))
vocab, d, layers, heads, kv, ff = 1024, 32, 2, 4, 2, 64
rng = np.random.default_rng(7)

w = gguf.GGUFWriter(str(root / "llama-tok" / "model.gguf"), "llama")
w.add_name("llama-tok")
w.add_vocab_size(vocab)
w.add_context_length(256)
w.add_embedding_length(d)
w.add_block_count(layers)
w.add_feed_forward_length(ff)
w.add_head_count(heads)
w.add_head_count_kv(kv)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_freq_base(10000.0)
w.add_rope_dimension_count(d // heads)
# the tokenizer, copied field by field
for key, field in src.fields.items():
    if not key.startswith("tokenizer."):
        continue
    value = field.contents()
    if key == "tokenizer.ggml.tokens":
        w.add_token_list(value)
    elif key == "tokenizer.ggml.merges":
        w.add_token_merges(value)
    elif key == "tokenizer.ggml.token_type":
        w.add_token_types(value)
    elif key == "tokenizer.ggml.model":
        w.add_tokenizer_model(value)
    elif key == "tokenizer.ggml.pre":
        w.add_tokenizer_pre(value)
    elif isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    else:
        raise SystemExit(f"unexpected tokenizer field {key}: {value!r}")


def normal(*shape):
    return (rng.standard_normal(shape) * 0.02).astype(np.float32)


hd = d // heads
w.add_tensor("token_embd.weight", normal(vocab, d))
for i in range(layers):
    w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
    w.add_tensor(f"blk.{i}.attn_q.weight", normal(heads * hd, d))
    w.add_tensor(f"blk.{i}.attn_k.weight", normal(kv * hd, d))
    w.add_tensor(f"blk.{i}.attn_v.weight", normal(kv * hd, d))
    w.add_tensor(f"blk.{i}.attn_output.weight", normal(d, heads * hd))
    w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
    w.add_tensor(f"blk.{i}.ffn_gate.weight", normal(ff, d))
    w.add_tensor(f"blk.{i}.ffn_up.weight", normal(ff, d))
    w.add_tensor(f"blk.{i}.ffn_down.weight", normal(d, ff))
w.add_tensor("output_norm.weight", np.ones(d, np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", root / "llama-tok" / "model.gguf")
