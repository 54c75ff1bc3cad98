//! Pre-tokenizers of byte-level BPE vocabularies: how text is cut into words before BPE
//! merges run inside each word. Named as GGUF's `tokenizer.ggml.pre` names them.

use std::sync::OnceLock;

use fancy_regex::Regex;

/// GPT-2's word pattern (Hugging Face `ByteLevel(use_regex=true)`, tiktoken's r50k_base).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

fn gpt2_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(GPT2_PATTERN).expect("the GPT-2 pattern is a valid regex"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's pattern over the whole text (`gpt2`, llama.cpp's `gpt-2`).
    Gpt2,
    /// Each digit a word of its own, then GPT-2's pattern over the text between digits:
    /// SmolLM's tokenizer.json (`Digits(individual_digits)` then `ByteLevel`) and llama.cpp's
    /// `smollm`.
    SmolLm,
}

impl PreTokenizer {
    /// The pre-tokenizer a GGUF names, or an error naming the value.
    pub fn by_name(name: &str) -> Result<PreTokenizer, String> {
        match name {
            "smollm" => Ok(PreTokenizer::SmolLm),
            "gpt2" | "gpt-2" => Ok(PreTokenizer::Gpt2),
            other => Err(format!(
                "pre-tokenizer `{other}` is not supported: this build has `smollm` and `gpt2` \
                 (llama.cpp's `default` is a different scheme from GPT-2's and is not implemented)"
            )),
        }
    }

    /// Calls `word` on each word of `text`, in order; the words concatenate to `text`.
    pub fn split<'t>(self, text: &'t str, mut word: impl FnMut(&'t str)) {
        match self {
            PreTokenizer::Gpt2 => gpt2_split(text, &mut word),
            PreTokenizer::SmolLm => {
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    // `char::is_numeric` is the general categories Nd, Nl, No: `\p{N}`, as
                    // Hugging Face's `Digits` pre-tokenizer tests it.
                    if c.is_numeric() {
                        if start < i {
                            gpt2_split(&text[start..i], &mut word);
                        }
                        let end = i + c.len_utf8();
                        word(&text[i..end]);
                        start = end;
                    }
                }
                if start < text.len() {
                    gpt2_split(&text[start..], &mut word);
                }
            }
        }
    }
}

fn gpt2_split<'t>(text: &'t str, word: &mut impl FnMut(&'t str)) {
    let mut end = 0;
    for m in gpt2_regex().find_iter(text) {
        match m {
            Ok(m) => {
                // The pattern matches any non-empty text, so matches tile it.
                word(m.as_str());
                end = m.end();
            }
            // fancy-regex gives up past its backtracking limit (a whitespace run of about a
            // million characters): the rest is one word, still encoded losslessly.
            Err(_) => break,
        }
    }
    if end < text.len() {
        word(&text[end..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(p: PreTokenizer, s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        p.split(s, |w| v.push(w));
        v
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "it's  a 1995 test!\n\nok "),
            ["it", "'s", " ", " a", " 1995", " test", "!", "\n", "\n", "ok", " "]
        );
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(
            words(PreTokenizer::SmolLm, "Heat (1995)  42"),
            ["Heat", " (", "1", "9", "9", "5", ")", "  ", "4", "2"]
        );
        // a whitespace run before a digit is one word here, two with GPT-2's pattern
        assert_eq!(words(PreTokenizer::Gpt2, "a  42"), ["a", " ", " 42"]);
    }

    #[test]
    fn names() {
        assert_eq!(PreTokenizer::by_name("smollm"), Ok(PreTokenizer::SmolLm));
        assert_eq!(PreTokenizer::by_name("gpt-2"), Ok(PreTokenizer::Gpt2));
        let e = PreTokenizer::by_name("llama-bpe").unwrap_err();
        assert!(e.contains("`llama-bpe`"), "{e}");
    }
}
