//! Text to token ids: tokenizers behind one trait, the documents of CLLM4Rec's soft+hard
//! prompting, and their compact binary storage.

pub mod binfmt;
pub mod docs;
pub mod gpt2;
// Byte-level BPE of GGUF vocabularies (issue 7).
pub mod bpe;
pub mod gguf_vocab;
pub mod pretok;

/// A base tokenizer. User and item tokens are appended after its vocabulary by `docs`, so
/// they are never split into sub-tokens.
pub trait Tokenizer: Send + Sync {
    /// A stable name, stored with the outputs (`gpt2-r50k_base`).
    fn name(&self) -> &str;
    /// Size of the base vocabulary; the first user token gets this id.
    fn vocab_size(&self) -> u32;
    /// Token ids of plain text (no special tokens are recognised in it).
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Text of base token ids.
    fn decode(&self, ids: &[u32]) -> String;
    /// The end-of-text token, if the vocabulary has one.
    fn eos(&self) -> Option<u32>;
}

/// A tokenizer by name.
pub fn by_name(name: &str) -> Result<Box<dyn Tokenizer>, String> {
    match name {
        "gpt2" | "gpt2-r50k_base" => Ok(Box::new(gpt2::Gpt2::new())),
        "gguf" => Err(
            "`tokenizer: gguf` needs `tokenizer_file`, the GGUF file whose vocabulary to use"
                .into(),
        ),
        other => Err(format!(
            "unknown tokenizer `{other}`: this build has `gpt2` and `gguf` (with `tokenizer_file`)"
        )),
    }
}

/// The tokenizer of a GGUF model file (`tokenizer: gguf`), or one by name.
pub fn load(name: &str, gguf_file: Option<&std::path::Path>) -> Result<Box<dyn Tokenizer>, String> {
    match (name, gguf_file) {
        ("gguf", Some(f)) => Ok(Box::new(gguf_vocab::from_gguf(f)?)),
        (_, None) => by_name(name),
        (_, Some(_)) => Err(format!(
            "`tokenizer_file` is only for `tokenizer: gguf`, not `{name}`"
        )),
    }
}
