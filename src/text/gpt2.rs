//! GPT-2's byte-level BPE (r50k_base), offline from the tables shipped in tiktoken-rs.

use crate::text::Tokenizer;

pub struct Gpt2 {
    bpe: &'static tiktoken_rs::CoreBPE,
}

impl Gpt2 {
    pub fn new() -> Gpt2 {
        Gpt2 {
            bpe: tiktoken_rs::r50k_base_singleton(),
        }
    }
}

impl Default for Gpt2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer for Gpt2 {
    fn name(&self) -> &str {
        "gpt2-r50k_base"
    }
    fn vocab_size(&self) -> u32 {
        50257
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }
    fn decode(&self, ids: &[u32]) -> String {
        // Token boundaries may split a UTF-8 sequence: decode bytes, then lossily.
        self.bpe
            .decode_bytes(ids)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
    fn eos(&self) -> Option<u32> {
        Some(50256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_gpt2_ids() {
        let t = Gpt2::new();
        // From the GPT-2 vocabulary (encoder.json): "Hello" = 15496, " world" = 995.
        assert_eq!(t.encode("Hello world"), vec![15496, 995]);
        assert_eq!(t.decode(&[15496, 995]), "Hello world");
        // "<|endoftext|>" in plain text is not the special token
        assert!(!t.encode("<|endoftext|>").contains(&50256));
    }
}
