//! SmolLM2-135M-Instruct's tokenizer, read from its GGUF, against Hugging Face:
//! `tests/fixtures/smollm2-135m/tokenizer_cases.json` holds 63 strings with their ids by
//! `tokenizers` with SmolLM2's own pre-tokenizer (Digits then ByteLevel: `ids`) and by
//! transformers 5.24's GGUF loader (ByteLevel alone: `ids_transformers`), and transformers'
//! decode (`tests/reference/make_smollm2_tokens.py`). `reference.json` holds the two prompts of
//! the backbone's reference logits with their input ids.
//!
//! The GGUF (98 MB) is not in the repository: `CLLM4REC_SMOLLM2_GGUF`, else
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf`; without it these tests print why and pass.

#[path = "common/smollm2.rs"]
mod common_smollm2;

use std::path::Path;

use common_smollm2::smollm2_gguf;

use cllm4rec_pipe::text::bpe::Bpe;
use cllm4rec_pipe::text::Tokenizer;
use serde_json::Value;

fn tokenizer() -> Option<Bpe> {
    let path = smollm2_gguf()?;
    Some(cllm4rec_pipe::text::gguf_vocab::from_gguf(&path).unwrap())
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2-135m")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Whether a run of two or more whitespace characters precedes a digit: the only place
/// where SmolLM2's Digits pre-tokenizer changes GPT-2's words (its vocabulary has no token
/// with a digit beside another character).
fn whitespace_run_before_digit(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    c.windows(3)
        .any(|w| w[0].is_whitespace() && w[1].is_whitespace() && w[2].is_numeric())
}

#[test]
fn cases_match_hugging_face() {
    let Some(tok) = tokenizer() else { return };
    let doc = fixture("tokenizer_cases.json");
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 60);
    let mut differ_from_transformers = 0;
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        let got = tok.encode(text);
        assert_eq!(got, want, "ids of {text:?}");
        let decoded = c["decoded"].as_str().unwrap();
        assert_eq!(tok.decode(&got), decoded, "decode of {text:?}");
        // decode inverts encode, but for the bytes the vocabulary has no token for
        if decoded != text {
            assert_eq!(text.replace('\u{4}', ""), decoded);
        }
        let t = ids(&c["ids_transformers"]);
        if t != want {
            differ_from_transformers += 1;
            assert!(whitespace_run_before_digit(text), "{text:?}: {t:?}");
            assert_eq!(tok.decode(&t), text);
        }
        // control tokens (<|endoftext|>, <|im_start|>, ...: ids 0..17) never come from text
        assert!(got.iter().all(|&i| i >= 17), "{text:?}: {got:?}");
    }
    // "year  1995", "gap\n\n2001", "  42"
    assert_eq!(differ_from_transformers, 3);
    assert!(cases.iter().any(|c| c["text"] != c["decoded"]));
}

#[test]
fn reference_prompts_ids() {
    let Some(tok) = tokenizer() else { return };
    let doc = fixture("reference.json");
    for p in doc["prompts"].as_array().unwrap() {
        let text = p["text"].as_str().unwrap();
        assert_eq!(tok.encode(text), ids(&p["input_ids"]), "{text:?}");
    }
}

#[test]
fn vocabulary_facts() {
    let Some(tok) = tokenizer() else { return };
    assert_eq!(tok.name(), "gguf-smollm");
    assert_eq!(tok.vocab_size(), 49152);
    // tokenizer.ggml.eos_token_id of the Instruct model: <|im_end|>
    assert_eq!(tok.eos(), Some(2));
    assert_eq!(tok.decode(&[2]), "<|im_end|>");
}

/// Every title, genre list and tag of the embedded ml-latest-small (the texts of the tokenize
/// stage's content corpus): ids equal Hugging Face's (an FNV-1a digest of all 155,926 of
/// them), decode back to the text and hold no control token; prints the encoding time
/// beside GPT-2's.
#[test]
fn ml_latest_small_round_trips() {
    let Some(tok) = tokenizer() else { return };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-latest-small");
    let mut texts = Vec::new();
    for (file, cols) in [("movies.csv", &[1, 2][..]), ("tags.csv", &[2][..])] {
        let mut r = csv::Reader::from_path(data.join(file)).unwrap();
        for rec in r.records() {
            let rec = rec.unwrap();
            for &c in cols {
                texts.push(format!(" {}", rec.get(c).unwrap()));
            }
        }
    }
    assert!(texts.len() > 19_000, "{}", texts.len());
    let t0 = std::time::Instant::now();
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t)).collect();
    let ours = t0.elapsed();
    let want = &fixture("tokenizer_cases.json")["ml_latest_small"];
    assert_eq!(want["texts"], texts.len());
    assert_eq!(want["tokens"], ids.iter().map(Vec::len).sum::<usize>());
    let mut h = 0xcbf29ce484222325u64;
    for i in &ids {
        for x in std::iter::once(i.len() as u32).chain(i.iter().copied()) {
            for b in x.to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100000001b3);
            }
        }
    }
    assert_eq!(want["fnv1a64"], format!("{h:016x}"));
    for (t, i) in texts.iter().zip(&ids) {
        assert_eq!(&tok.decode(i), t);
        assert!(i.iter().all(|&x| (17..49152).contains(&x)), "{t:?}");
    }
    let gpt2 = cllm4rec_pipe::text::gpt2::Gpt2::new();
    let t0 = std::time::Instant::now();
    let n: usize = texts.iter().map(|t| gpt2.encode(t).len()).sum();
    let theirs = t0.elapsed();
    eprintln!(
        "{} texts: gguf-smollm {} tokens in {ours:?}, gpt2 {n} tokens in {theirs:?}",
        texts.len(),
        ids.iter().map(Vec::len).sum::<usize>()
    );
}
