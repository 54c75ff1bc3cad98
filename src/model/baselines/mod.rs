//! The ID-based baselines the paper compares with, trained on burn: Multi-VAE and LightGCN.
//! Their stages (`multivae`, `lightgcn`) write a model that the `evaluate` stage scores
//! through the same [`Scorer`](crate::eval::scorer::Scorer) path as every other model.

pub mod lightgcn;
pub mod multivae;
pub mod scorer;

use crate::eval::scorer::Scorer;
use crate::eval::{EvalSplit, UserMetrics};

/// Each user's training items, sorted (a `HashSet`'s order is not deterministic).
pub fn train_lists(split: &EvalSplit) -> Vec<Vec<u32>> {
    split
        .train
        .iter()
        .map(|s| {
            let mut v: Vec<u32> = s.iter().copied().collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// Recall@20, Recall@40 and NDCG@100 of `scorer` on `split`'s held-out items, computed by the
/// `evaluate` stage's code; returns the metrics and NDCG@100 (the model-selection criterion of
/// the Multi-VAE paper).
pub fn validate(
    scorer: &mut dyn Scorer,
    split: &EvalSplit,
    batch: usize,
) -> Result<(serde_json::Value, f64), String> {
    let mut m = UserMetrics::new(&[20, 40], &[100]);
    for users in split.eval_users().chunks(batch.max(1)) {
        let scores = scorer.score(users, split)?;
        m.add_batch(split, users, &scores);
    }
    let ndcg = m.means()[2];
    Ok((m.summary(&scorer.model(), "valid"), ndcg))
}

#[cfg(test)]
mod tests;
