//! Ranking metrics with the Multi-VAE definitions (Liang et al., WWW 2018), as CLLM4Rec uses:
//! Recall@K = hits in the top K / min(K, number of held-out items);
//! NDCG@K = DCG@K / IDCG@K, DCG@K = sum over ranks r < K of hit_r / log2(r + 2), and IDCG over
//! min(K, number of held-out items) hits.

use std::collections::HashSet;

use crate::data::rng::splitmix64;

/// Recall@k of a ranking (best first) against the held-out set.
pub fn recall_at(ranking: &[u32], truth: &HashSet<u32>, k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let hits = ranking.iter().take(k).filter(|i| truth.contains(i)).count();
    hits as f64 / k.min(truth.len()) as f64
}

/// NDCG@k of a ranking (best first) against the held-out set.
pub fn ndcg_at(ranking: &[u32], truth: &HashSet<u32>, k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| truth.contains(i))
        .map(|(r, _)| 1.0 / (r as f64 + 2.0).log2())
        .sum();
    let idcg: f64 = (0..k.min(truth.len()))
        .map(|r| 1.0 / (r as f64 + 2.0).log2())
        .sum();
    dcg / idcg
}

/// The `k` best items by score among those `ranked` admits. Ties go in a fixed scrambled order
/// of the item ids (`splitmix64` of the id), not in id order: ingest numbers items as they
/// first appear in the data, so that low ids are the popular ones, and a scorer that ties
/// (most-popular among items without training interactions) would otherwise rank by the
/// whole data's popularity, held-out interactions included.
pub fn top_k(scores: &[f32], ranked: impl Fn(u32) -> bool, k: usize) -> Vec<u32> {
    let better = |a: &u32, b: &u32| {
        let (sa, sb) = (scores[*a as usize], scores[*b as usize]);
        sb.partial_cmp(&sa)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| splitmix64(*a as u64).cmp(&splitmix64(*b as u64)))
    };
    let mut cand: Vec<u32> = (0..scores.len() as u32)
        .filter(|&i| ranked(i) && !scores[i as usize].is_nan())
        .collect();
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, better);
        cand.truncate(k);
    }
    cand.sort_by(better);
    cand
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> HashSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn hand_computed_values() {
        // ranking 5,3,9,1 ; truth {3, 1, 7}
        let r = [5, 3, 9, 1];
        let t = set(&[3, 1, 7]);
        // Recall@2: 1 hit / min(2, 3) = 0.5 ; Recall@4: 2 hits / 3
        assert_eq!(recall_at(&r, &t, 2), 0.5);
        assert!((recall_at(&r, &t, 4) - 2.0 / 3.0).abs() < 1e-12);
        // NDCG@4: DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
        //         IDCG = 1 + 1/log2(3) + 1/log2(4) = 1 + 0.630930 + 0.5 = 2.130930
        assert!((ndcg_at(&r, &t, 4) - 1.061606 / 2.130930).abs() < 1e-6);
        // K beyond the list: IDCG stops at |truth|
        assert!((ndcg_at(&[3, 1, 7], &t, 100) - 1.0).abs() < 1e-12);
        assert_eq!(recall_at(&[3, 1, 7], &t, 100), 1.0);
    }

    #[test]
    fn top_k_admits_and_breaks_ties_in_a_scrambled_order() {
        let s = [0.5, 0.9, 0.9, 0.1, 0.7];
        // items 1 and 2 tie: splitmix64(1) = 0x910a2dec89025cc1 < splitmix64(2) = 0x975835de1c9756ce
        assert_eq!(top_k(&s, |_| true, 3), vec![1, 2, 4]);
        assert_eq!(top_k(&s, |i| i != 1, 3), vec![2, 4, 0]);
        assert_eq!(top_k(&s, |_| true, 10), vec![1, 2, 4, 0, 3]);
        // fewer admitted than k: only those
        assert_eq!(top_k(&s, |i| i == 0 || i == 3, 3), vec![0, 3]);
        // all tied: the scrambled order, the same every time (values from Python's splitmix64)
        let tied = [0.0f32; 6];
        assert_eq!(top_k(&tied, |_| true, 6), vec![3, 5, 4, 1, 2, 0]);
    }
}
