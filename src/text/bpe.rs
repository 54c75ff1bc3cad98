//! Byte-level BPE from a vocabulary and a ranked merge list, as GGUF files carry them
//! (`tokenizer.ggml.model` = `gpt2`): text is cut into words by a pre-tokenizer, each word's
//! UTF-8 bytes become GPT-2's printable stand-in characters (`Ġ` for a space), and the
//! adjacent pair of lowest merge rank is merged until none is left (Hugging Face `tokenizers`'
//! BPE model, llama.cpp's `llm_tokenizer_bpe`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use crate::text::pretok::PreTokenizer;
use crate::text::Tokenizer;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpeError {
    #[error("token {id} `{text}` appears twice in the vocabulary (first at {first})")]
    DuplicateToken { id: usize, text: String, first: u32 },
    #[error("merge {rank} `{merge}` is not two tokens separated by one space")]
    BadMerge { rank: usize, merge: String },
    #[error("merge {rank} `{merge}`: `{token}` is not in the vocabulary")]
    UnknownMergeToken {
        rank: usize,
        merge: String,
        token: String,
    },
    #[error("the end-of-text token {0} is outside the vocabulary")]
    BadEos(u32),
    #[error("{0}")]
    PreTokenizer(String),
    #[error("the vocabulary has {0} tokens, more than token ids hold")]
    TooLarge(usize),
}

/// GPT-2's byte -> character table: printable bytes stand for themselves, the others
/// (controls, space, 0x7f-0xa0, 0xad) become U+0100 onwards in byte order.
pub fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
        let code = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).expect("below U+0200");
    }
    table
}

/// Words seen before and their ids; cleared when it grows past this many words.
const CACHE_WORDS: usize = 1 << 16;
/// Words of more bytes than this merge through a heap rather than by scanning all pairs.
const LONG_WORD: usize = 48;

pub struct Bpe {
    name: String,
    /// The bytes each token stands for.
    bytes: Vec<Vec<u8>>,
    /// The token of each single byte; a byte without one is dropped from the text, as
    /// Hugging Face's BPE without an unknown token and llama.cpp drop it (SmolLM2 has none
    /// for 21 bytes: six control characters and bytes rare or invalid in UTF-8).
    byte_ids: [Option<u32>; 256],
    /// (left, right) -> (rank, merged token).
    merges: HashMap<(u32, u32), (u32, u32)>,
    pre: PreTokenizer,
    eos: Option<u32>,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl Bpe {
    /// A tokenizer of `tokens` (id = index), `merges` (`"left right"`, rank = index), the
    /// pre-tokenizer named `pre` (`smollm`, `gpt2`) and the end-of-text token. Its name is
    /// `bpe-<pre>` until [`Bpe::with_name`].
    pub fn new<S: AsRef<str>, M: AsRef<str>>(
        tokens: &[S],
        merges: &[M],
        pre: &str,
        eos: Option<u32>,
    ) -> Result<Bpe, BpeError> {
        let pre_tok = PreTokenizer::by_name(pre).map_err(BpeError::PreTokenizer)?;
        if u32::try_from(tokens.len()).is_err() {
            return Err(BpeError::TooLarge(tokens.len()));
        }
        let chars = byte_chars();
        let mut char_bytes: HashMap<char, u8> = HashMap::with_capacity(256);
        for (b, &c) in chars.iter().enumerate() {
            char_bytes.insert(c, b as u8);
        }
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(tokens.len());
        let mut bytes = Vec::with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            let t = t.as_ref();
            if let Some(&first) = ids.get(t) {
                return Err(BpeError::DuplicateToken {
                    id,
                    text: t.to_owned(),
                    first,
                });
            }
            ids.insert(t, id as u32);
            // A character outside the table (an added token's text) stands for its own UTF-8
            // bytes, as Hugging Face's ByteLevel decoder reads it.
            let mut b = Vec::with_capacity(t.len());
            for c in t.chars() {
                match char_bytes.get(&c) {
                    Some(&x) => b.push(x),
                    None => b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            bytes.push(b);
        }
        let mut byte_ids = [None; 256];
        for (slot, &c) in byte_ids.iter_mut().zip(chars.iter()) {
            *slot = ids.get(c.encode_utf8(&mut [0; 4]) as &str).copied();
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let m = m.as_ref();
            let bad = || BpeError::BadMerge {
                rank,
                merge: m.to_owned(),
            };
            let (l, r) = m.split_once(' ').ok_or_else(bad)?;
            if l.is_empty() || r.is_empty() || r.contains(' ') {
                return Err(bad());
            }
            let id = |t: &str| {
                ids.get(t)
                    .copied()
                    .ok_or_else(|| BpeError::UnknownMergeToken {
                        rank,
                        merge: m.to_owned(),
                        token: t.to_owned(),
                    })
            };
            let pair = (id(l)?, id(r)?);
            let merged = id(&format!("{l}{r}"))?;
            // A pair listed twice keeps its first (lowest) rank.
            merge_map.entry(pair).or_insert((rank as u32, merged));
        }
        if let Some(e) = eos {
            if e as usize >= tokens.len() {
                return Err(BpeError::BadEos(e));
            }
        }
        Ok(Bpe {
            name: format!("bpe-{pre}"),
            bytes,
            byte_ids,
            merges: merge_map,
            pre: pre_tok,
            eos,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The same tokenizer under another stable name (stored with the outputs).
    pub fn with_name(mut self, name: impl Into<String>) -> Bpe {
        self.name = name.into();
        self
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// The ids of one word: its bytes' tokens, then merges by rank, leftmost first on ties.
    fn merge_word(&self, word: &str) -> Vec<u32> {
        let syms: Vec<u32> = word
            .bytes()
            .filter_map(|b| self.byte_ids[b as usize])
            .collect();
        if syms.len() > LONG_WORD {
            self.merge_long(syms)
        } else {
            self.merge_short(syms)
        }
    }

    /// Scans all pairs for each merge: quadratic, fastest on short words.
    fn merge_short(&self, mut syms: Vec<u32>) -> Vec<u32> {
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for (i, pair) in syms.windows(2).enumerate() {
                if let Some(&(rank, merged)) = self.merges.get(&(pair[0], pair[1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((_, i, merged)) = best else {
                return syms;
            };
            syms[i] = merged;
            syms.remove(i + 1);
        }
    }

    /// The same merges in O(n log n): candidate pairs in a heap by (rank, position), symbols
    /// in a linked list; a candidate whose symbols changed since it was pushed is skipped.
    fn merge_long(&self, ids: Vec<u32>) -> Vec<u32> {
        const NONE: usize = usize::MAX;
        let n = ids.len();
        let mut id = ids;
        let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        prev[0] = NONE;
        let mut alive = vec![true; n];
        // (rank, left position, left id, right id), smallest first
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Reverse<(u32, usize, u32, u32)>>,
                    l: usize,
                    r: usize,
                    id: &[u32]| {
            if let Some(&(rank, _)) = self.merges.get(&(id[l], id[r])) {
                heap.push(Reverse((rank, l, id[l], id[r])));
            }
        };
        for i in 1..n {
            push(&mut heap, i - 1, i, &id);
        }
        while let Some(Reverse((_, l, lid, rid))) = heap.pop() {
            let r = next[l];
            if !alive[l] || r == NONE || id[l] != lid || id[r] != rid {
                continue;
            }
            id[l] = self.merges[&(lid, rid)].1;
            alive[r] = false;
            next[l] = next[r];
            if next[r] != NONE {
                prev[next[r]] = l;
            }
            if prev[l] != NONE {
                push(&mut heap, prev[l], l, &id);
            }
            if next[l] != NONE {
                push(&mut heap, l, next[l], &id);
            }
        }
        (0..n).filter(|&i| alive[i]).map(|i| id[i]).collect()
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if let Some(ids) = self.cache.lock().ok().as_ref().and_then(|c| c.get(word)) {
            out.extend_from_slice(ids);
            return;
        }
        let ids = self.merge_word(word);
        out.extend_from_slice(&ids);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_WORDS {
                c.clear();
            }
            c.insert(word.to_owned(), ids);
        }
    }
}

impl Tokenizer for Bpe {
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> u32 {
        self.bytes.len() as u32
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.pre.split(text, |w| self.encode_word(w, &mut out));
        out
    }
    fn decode(&self, ids: &[u32]) -> String {
        // Ids outside the vocabulary are skipped; token boundaries may split a UTF-8
        // sequence: decode bytes, then lossily.
        let bytes: Vec<u8> = ids
            .iter()
            .filter_map(|&i| self.bytes.get(i as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn eos(&self) -> Option<u32> {
        self.eos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 256 byte tokens, then `extra` (in GPT-2's characters).
    fn vocab(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn id(v: &[String], t: &str) -> u32 {
        v.iter().position(|x| x == t).unwrap() as u32
    }

    #[test]
    fn byte_table_is_gpt2s() {
        let t = byte_chars();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'\t' as usize], 'ĉ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xad], 'Ń');
        assert_eq!(t[0xff], 'ÿ');
        let mut sorted = t.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
    }

    #[test]
    fn merges_by_rank_not_by_position() {
        // "a b" ranks before "b c": "abc" -> "ab" "c"; "bc" has its own merge.
        let v = vocab(&["ab", "bc", "abc", "Ġa", "aa"]);
        let merges = ["a b", "b c", "Ġ a", "ab c", "a a"];
        let t = Bpe::new(&v, &merges, "gpt2", None).unwrap();
        assert_eq!(t.encode("abc"), [id(&v, "abc")]);
        assert_eq!(t.encode("bc"), [id(&v, "bc")]);
        // "b c" ranks before "ab c" would need "ab" first: "abc" goes a+b -> ab, ab+c -> abc;
        // "xbc" only has "b c".
        assert_eq!(t.encode("xbc"), [id(&v, "x"), id(&v, "bc")]);
        // " a" is one word and merges; "aaa" merges leftmost first
        assert_eq!(t.encode(" a"), [id(&v, "Ġa")]);
        assert_eq!(t.encode("aaa"), [id(&v, "aa"), id(&v, "a")]);
        assert_eq!(t.vocab_size(), 261);
        assert_eq!(t.name(), "bpe-gpt2");
    }

    #[test]
    fn lower_rank_wins_over_leftmost() {
        // "b c" (rank 0) before "a b" (rank 1): "abc" -> "a" "bc"
        let v = vocab(&["ab", "bc"]);
        let t = Bpe::new(&v, &["b c", "a b"], "gpt2", None).unwrap();
        assert_eq!(t.encode("abc"), [id(&v, "a"), id(&v, "bc")]);
    }

    #[test]
    fn round_trips_any_text() {
        let v = vocab(&["Ġt", "he", "Ġthe"]);
        let t = Bpe::new(&v, &["Ġ t", "h e", "Ġt he"], "smollm", Some(0)).unwrap();
        for s in [
            "the the  the\n\t",
            "Amélie (2001) 卧虎藏龙 🎬",
            "",
            "  \n ",
            "<|endoftext|>",
        ] {
            assert_eq!(t.decode(&t.encode(s)), s, "{s:?}");
        }
        assert_eq!(t.encode(" the"), [id(&v, "Ġthe")]);
        // smollm: digits one by one, the space before them its own word
        assert_eq!(t.encode(" 12"), [id(&v, "Ġ"), id(&v, "1"), id(&v, "2")]);
        // the cache gives the same ids the second time
        assert_eq!(t.encode("the the"), t.encode("the the"));
        assert_eq!(t.eos(), Some(0));
        // ids outside the vocabulary are skipped
        assert_eq!(t.decode(&[id(&v, "Ġthe"), 100_000]), " the");
    }

    /// The heap merge equals the scanning one, on words built to have many competing and
    /// overlapping pairs.
    #[test]
    fn long_words_merge_as_short_ones() {
        let v = vocab(&["ab", "ba", "aa", "aab", "bab", "abab", "ĠĠ", "ĠĠĠĠ", "aaaa"]);
        let merges = [
            "a b",
            "b a",
            "a a",
            "aa b",
            "b ab",
            "ab ab",
            "Ġ Ġ",
            "ĠĠ ĠĠ",
            "aa aa",
        ];
        let t = Bpe::new(&v, &merges, "gpt2", None).unwrap();
        let mut seed = 7u64;
        for len in [2, 3, 5, 17, 49, 200, 1000] {
            for _ in 0..20 {
                let w: String = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ['a', 'b', ' '][(seed >> 33) as usize % 3]
                    })
                    .collect();
                let syms: Vec<u32> = w.bytes().map(|b| t.byte_ids[b as usize].unwrap()).collect();
                let short = t.merge_short(syms.clone());
                assert_eq!(t.merge_long(syms), short, "{w:?}");
                assert_eq!(t.decode(&short), w);
            }
        }
        // one word of 100,000 spaces: merged in well under a second
        let spaces = " ".repeat(100_000);
        let ids = t.encode(&spaces);
        assert_eq!(ids, vec![id(&v, "ĠĠĠĠ"); 25_000]);
    }

    #[test]
    fn drops_bytes_without_a_token() {
        // no token for byte 0x04 (`Ą`): dropped (a word of its own: a control character is
        // neither a letter, a digit nor white space)
        let v: Vec<String> = vocab(&["ab"]).into_iter().filter(|t| t != "Ą").collect();
        let t = Bpe::new(&v, &["a b"], "gpt2", None).unwrap();
        assert_eq!(t.encode("a\u{4}b"), [id(&v, "a"), id(&v, "b")]);
        assert!(t.encode("\u{4}").is_empty());
        assert_eq!(t.encode("ab"), [id(&v, "ab")]);
        assert_eq!(t.decode(&t.encode("x\u{4}y")), "xy");
    }

    #[test]
    fn refuses_bad_vocabularies() {
        let v = vocab(&["ab"]);
        let e = |r: Result<Bpe, BpeError>| r.err().unwrap().to_string();
        assert_eq!(
            e(Bpe::new(&v, &["a  b"], "gpt2", None)),
            "merge 0 `a  b` is not two tokens separated by one space"
        );
        assert_eq!(
            e(Bpe::new(&v, &["ab"], "gpt2", None)),
            "merge 0 `ab` is not two tokens separated by one space"
        );
        assert_eq!(
            e(Bpe::new(&v, &["a b", "b c"], "gpt2", None)),
            "merge 1 `b c`: `bc` is not in the vocabulary"
        );
        let mut dup = v.clone();
        dup.push("ab".into());
        assert_eq!(
            e(Bpe::new(&dup, &[] as &[&str], "gpt2", None)),
            "token 257 `ab` appears twice in the vocabulary (first at 256)"
        );
        assert_eq!(
            e(Bpe::new(&v, &[] as &[&str], "gpt2", Some(257))),
            "the end-of-text token 257 is outside the vocabulary"
        );
        assert!(e(Bpe::new(&v, &[] as &[&str], "default", None)).contains("`default`"));
    }
}
