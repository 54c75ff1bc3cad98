//! The tokenizer a GGUF model file carries: byte-level BPE (`tokenizer.ggml.model` = `gpt2`)
//! from `tokenizer.ggml.tokens`, `tokenizer.ggml.merges` (rank = index) and the pre-tokenizer
//! `tokenizer.ggml.pre`, with `tokenizer.ggml.eos_token_id` as its end-of-text token.
//! Plain text only: no BOS is added and special tokens (`<|im_start|>`) are not recognised in
//! text, so `tokenizer.ggml.add_bos_token` and `tokenizer.ggml.token_type` are not used.

use std::path::Path;

use crate::gguf::Gguf;
use crate::text::bpe::Bpe;

/// Reads the tokenizer of the GGUF file at `path`; its name is `gguf-<pre>` (`gguf-smollm`).
/// Errors name the file and the metadata key.
pub fn from_gguf(path: &Path) -> Result<Bpe, String> {
    let g = Gguf::open(path).map_err(|e| e.to_string())?;
    from_metadata(&g)
}

/// The tokenizer of an opened GGUF file.
pub fn from_metadata(g: &Gguf) -> Result<Bpe, String> {
    let at = |key: &str, m: &dyn std::fmt::Display| {
        format!("GGUF file `{}`: `{key}`: {m}", g.path().display())
    };
    let model = g
        .get_str("tokenizer.ggml.model")
        .map_err(|e| e.to_string())?;
    if model != "gpt2" {
        return Err(at(
            "tokenizer.ggml.model",
            &format!("the tokenizer is `{model}`; only `gpt2` (byte-level BPE) is supported"),
        ));
    }
    let pre = g.get_str("tokenizer.ggml.pre").map_err(|e| e.to_string())?;
    let tokens = g
        .get_str_array("tokenizer.ggml.tokens")
        .map_err(|e| e.to_string())?;
    let merges = g
        .get_str_array("tokenizer.ggml.merges")
        .map_err(|e| e.to_string())?;
    let eos = match g.get("tokenizer.ggml.eos_token_id") {
        None => None,
        Some(_) => {
            let e = g
                .get_u64("tokenizer.ggml.eos_token_id")
                .map_err(|e| e.to_string())?;
            Some(u32::try_from(e).map_err(|_| {
                at(
                    "tokenizer.ggml.eos_token_id",
                    &format!("{e} is not a token id"),
                )
            })?)
        }
    };
    let bpe = Bpe::new(&tokens, &merges, pre, eos).map_err(|e| {
        use crate::text::bpe::BpeError::*;
        let key = match e {
            PreTokenizer(_) => "tokenizer.ggml.pre",
            BadMerge { .. } | UnknownMergeToken { .. } => "tokenizer.ggml.merges",
            BadEos(_) => "tokenizer.ggml.eos_token_id",
            DuplicateToken { .. } | TooLarge(_) => "tokenizer.ggml.tokens",
        };
        at(key, &e)
    })?;
    Ok(bpe.with_name(format!("gguf-{pre}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Tokenizer;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gguf-bpe")
            .join(name)
    }

    /// The first 1,024 tokens and 772 merges of SmolLM2's vocabulary, against Hugging Face
    /// `tokenizers` (tests/reference/make_tiny_bpe_gguf.py).
    #[test]
    fn tiny_smollm_matches_tokenizers() {
        let tok = from_gguf(&fixture("tiny-smollm.gguf")).unwrap();
        assert_eq!(tok.name(), "gguf-smollm");
        assert_eq!(tok.vocab_size(), 1024);
        assert_eq!(tok.eos(), Some(2));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("tiny_cases.json")).unwrap())
                .unwrap();
        for c in doc["cases"].as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
            assert_eq!(tok.encode(text), want, "{text:?}");
            assert_eq!(tok.decode(&want), text);
        }
    }

    #[test]
    fn refusals_name_the_file_and_key() {
        let err = |name: &str| from_gguf(&fixture(name)).err().unwrap();
        let e = err("bad-model.gguf");
        assert!(
            e.contains("bad-model.gguf")
                && e.contains("`tokenizer.ggml.model`: the tokenizer is `llama`"),
            "{e}"
        );
        let e = err("bad-pre.gguf");
        assert!(
            e.contains("bad-pre.gguf")
                && e.contains("`tokenizer.ggml.pre`: pre-tokenizer `qwen2` is not supported"),
            "{e}"
        );
        let e = err("no-merges.gguf");
        assert!(
            e.contains("no-merges.gguf") && e.contains("no metadata key `tokenizer.ggml.merges`"),
            "{e}"
        );
        let e = err("absent.gguf");
        assert!(
            e.contains("cannot read GGUF file") && e.contains("absent.gguf"),
            "{e}"
        );
        // not a GGUF file
        let e = from_gguf(&fixture("tiny_cases.json")).err().unwrap();
        assert!(e.contains("tiny_cases.json"), "{e}");
    }
}
