//! Padded batches of token sequences, with the positions whose next token is predicted.
//! Pure data: converted to tensors by the model.

/// One sequence: `tokens[..prompt_len]` is the prompt, the rest the main text.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq {
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
}

/// A right-padded batch, row-major `[rows, len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub rows: usize,
    pub len: usize,
    /// Token ids, padding 0.
    pub ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<i64>,
    /// Flat positions (row * len + t) whose next token is a main-text token, ...
    pub pred_pos: Vec<i64>,
    /// ... and that token.
    pub targets: Vec<u32>,
    /// Flat position of each row's last real token.
    pub last_pos: Vec<i64>,
    /// The dropout of a training step (`None`: none, as in scoring).
    pub dropout: Option<crate::model::dropout::Dropout>,
}

impl Batch {
    /// Pad `seqs` to the longest; every main-text token is a prediction target of the token
    /// before it (the last prompt token predicts the first main token).
    pub fn new(seqs: &[Seq]) -> Batch {
        let rows = seqs.len();
        let len = seqs
            .iter()
            .map(|s| s.tokens.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut b = Batch {
            rows,
            len,
            ids: vec![0; rows * len],
            mask: vec![0; rows * len],
            pred_pos: Vec::new(),
            targets: Vec::new(),
            last_pos: Vec::new(),
            dropout: None,
        };
        for (r, s) in seqs.iter().enumerate() {
            for (t, &tok) in s.tokens.iter().enumerate() {
                b.ids[r * len + t] = tok as i64;
                b.mask[r * len + t] = 1;
            }
            for t in s.prompt_len.max(1)..s.tokens.len() {
                b.pred_pos.push((r * len + t - 1) as i64);
                b.targets.push(s.tokens[t]);
            }
            b.last_pos
                .push((r * len + s.tokens.len().max(1) - 1) as i64);
        }
        b
    }

    /// Every id in the batch that falls in `lo..hi`, minus `lo` (occurrences, in order).
    pub fn ids_in(&self, lo: u32, hi: u32) -> Vec<i64> {
        self.ids
            .iter()
            .zip(&self.mask)
            .filter(|(&id, &m)| m == 1 && id >= lo as i64 && id < hi as i64)
            .map(|(&id, _)| id - lo as i64)
            .collect()
    }
}

/// Fit a sequence into `max` tokens by dropping main-text tokens from the front (for item
/// lists, the oldest) and, if the prompt alone is too long, the prompt's first tokens after its
/// first (which names the user).
pub fn fit(mut s: Seq, max: usize) -> Seq {
    if s.tokens.len() <= max {
        return s;
    }
    let main = s.tokens.len() - s.prompt_len;
    let cut_main = (s.tokens.len() - max).min(main.saturating_sub(1));
    s.tokens.drain(s.prompt_len..s.prompt_len + cut_main);
    if s.tokens.len() > max {
        let cut = s.tokens.len() - max;
        s.tokens.drain(1..1 + cut);
        s.prompt_len = s.prompt_len.saturating_sub(cut).max(1);
    }
    s
}

/// The item tokens of `s` (ids at or above `item_offset`) in a random order, in place; every
/// other token keeps its position.
pub fn shuffle_items(s: &mut Seq, item_offset: u32, rng: &mut crate::data::rng::Rng) {
    let at: Vec<usize> = (0..s.tokens.len())
        .filter(|&t| s.tokens[t] >= item_offset)
        .collect();
    let mut items: Vec<u32> = at.iter().map(|&t| s.tokens[t]).collect();
    rng.shuffle(&mut items);
    for (&t, x) in at.iter().zip(items) {
        s.tokens[t] = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_items_keep_their_set_and_the_other_tokens_their_places() {
        // user 600, words 1 and 2, items 700..706
        let s = Seq {
            tokens: vec![600, 1, 2, 700, 701, 702, 703, 704, 705, 706],
            prompt_len: 10,
        };
        let mut orders = std::collections::BTreeSet::new();
        for seed in 0..8 {
            let mut t = s.clone();
            shuffle_items(&mut t, 700, &mut crate::data::rng::Rng::new(seed));
            assert_eq!(t.tokens[..3], [600, 1, 2]);
            let mut items = t.tokens[3..].to_vec();
            orders.insert(items.clone());
            items.sort_unstable();
            assert_eq!(items, s.tokens[3..]);
            let mut again = s.clone();
            shuffle_items(&mut again, 700, &mut crate::data::rng::Rng::new(seed));
            assert_eq!(again.tokens, t.tokens, "the same seed, the same order");
        }
        assert!(orders.len() > 4, "seeds give different orders: {orders:?}");
    }

    #[test]
    fn targets_follow_the_prompt_and_padding_is_masked() {
        let b = Batch::new(&[
            Seq {
                tokens: vec![7, 8, 100, 101],
                prompt_len: 2,
            },
            Seq {
                tokens: vec![9, 102],
                prompt_len: 1,
            },
        ]);
        assert_eq!((b.rows, b.len), (2, 4));
        assert_eq!(b.ids, vec![7, 8, 100, 101, 9, 102, 0, 0]);
        assert_eq!(b.mask, vec![1, 1, 1, 1, 1, 1, 0, 0]);
        // row 0: position 1 predicts 100, position 2 predicts 101; row 1: position 4 predicts 102
        assert_eq!(b.pred_pos, vec![1, 2, 4]);
        assert_eq!(b.targets, vec![100, 101, 102]);
        assert_eq!(b.last_pos, vec![3, 5]);
        assert_eq!(b.ids_in(100, 102), vec![0, 1]);
    }

    #[test]
    fn fit_drops_oldest_main_tokens_first() {
        let s = fit(
            Seq {
                tokens: vec![1, 2, 10, 11, 12, 13],
                prompt_len: 2,
            },
            4,
        );
        assert_eq!(
            s,
            Seq {
                tokens: vec![1, 2, 12, 13],
                prompt_len: 2
            }
        );
        // a prompt-only sequence (a recommendation prompt) keeps its first and last tokens
        let s = fit(
            Seq {
                tokens: vec![1, 2, 3, 4, 5, 6],
                prompt_len: 6,
            },
            4,
        );
        assert_eq!(
            s,
            Seq {
                tokens: vec![1, 4, 5, 6],
                prompt_len: 4
            }
        );
    }
}
