//! The training documents of `pretrain` and `finetune`: corpus documents as sequences that
//! fit the backbone, the content LM's vocabulary, and the order in which they are batched.

use crate::data::rng::Rng;
use crate::model::cllm4rec::batch::{fit, Seq};
use crate::model::cllm4rec::loss::ContentVocab;
use crate::text::binfmt::Corpus;

crate::choice! {
    /// The content LM's softmax: over the `full` word vocabulary (the paper), or over the
    /// words of the content `corpus` only (much cheaper when the corpus is small).
    ContentVocabChoice { Full = "full", Corpus = "corpus" }
}

crate::choice! {
    /// How an epoch's documents are cut into batches (docs/fidelity.md, 17): `sequential`, in
    /// the order they were tokenized (users in id order), as the authors' code's unshuffled
    /// loaders (the default: the paper does not say); `bucket`, of similar length, the
    /// batches in random order (less padding for the burn model; the fused trainer packs
    /// without padding either way).
    #[derive(Default)]
    Batching {
        #[default]
        Sequential = "sequential",
        Bucket = "bucket",
    }
}

/// Documents of a corpus as sequences that fit the backbone.
pub fn seqs(c: &Corpus, max_len: usize) -> Vec<Seq> {
    (0..c.len())
        .map(|d| {
            let (p, m) = c.doc(d);
            fit(
                Seq {
                    tokens: p.iter().chain(m).copied().collect(),
                    prompt_len: p.len(),
                },
                max_len,
            )
        })
        .collect()
}

/// The content LM's softmax for `choice`: the whole word vocabulary (`base` words), or the
/// words that occur in `corpus`.
pub fn content_vocab(choice: ContentVocabChoice, corpus: &Corpus, base: usize) -> ContentVocab {
    match choice {
        ContentVocabChoice::Full => ContentVocab::Full,
        ContentVocabChoice::Corpus => ContentVocab::corpus(
            corpus
                .tokens
                .iter()
                .copied()
                .filter(|&t| (t as usize) < base),
        ),
    }
}

/// An order of sequences (given their lengths) that makes batches of similar length, the
/// batches in random order: shuffle, sort by length (stable), cut into batches, shuffle them.
pub fn bucket_order(lens: &[usize], batch: usize, rng: &mut Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lens.len()).collect();
    rng.shuffle(&mut idx);
    idx.sort_by_key(|&i| lens[i]);
    let mut batches: Vec<Vec<usize>> = idx.chunks(batch.max(1)).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches.into_iter().flatten().collect()
}

/// `items` in the order `batching` gives them: the [`bucket_order`] of their lengths `len`,
/// or as they are.
pub fn in_batch_order<T: Clone>(
    items: &[T],
    len: impl Fn(&T) -> usize,
    (batch, batching): (usize, Batching),
    rng: &mut Rng,
) -> Vec<T> {
    match batching {
        Batching::Sequential => items.to_vec(),
        Batching::Bucket => {
            let lens: Vec<usize> = items.iter().map(len).collect();
            bucket_order(&lens, batch, rng)
                .into_iter()
                .map(|i| items[i].clone())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_batching_keeps_the_order_and_draws_nothing() {
        let items = [5usize, 1, 4, 2, 3];
        let mut rng = Rng::new(7);
        let out = in_batch_order(&items, |&x| x, (2, Batching::Sequential), &mut rng);
        assert_eq!(out, items);
        assert_eq!(rng.next_u64(), Rng::new(7).next_u64());
        let mut rng = Rng::new(7);
        let b = in_batch_order(&items, |&x| x, (2, Batching::Bucket), &mut rng);
        let mut sorted = b.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 2, 3, 4, 5]);
    }
}
