//! Dropout in training steps, as GPT-2 has it (`embd_pdrop`, `attn_pdrop`, `resid_pdrop`;
//! the authors' code keeps 0.1, docs/fidelity.md 16): each site zeroes an element with
//! probability `p` and scales the others by `1 / (1 - p)`.
//!
//! Which elements are zeroed is a pure function of the batch's key and the element's place
//! (site, layer, row of the batch, position, column), not of a random stream: the burn model
//! (padded rows) and the fused CPU trainer (packed rows, masks recomputed in the backward
//! pass instead of stored) drop the same elements, and a run is the same whatever the order
//! of its threads.

use crate::data::rng::splitmix64;

/// Where an element is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The input embeddings plus positions (GPT-2's `drop`), `[position, d]`.
    Embedding = 1,
    /// The attention probabilities (`attn_dropout`), `[head << 16 | query, key]`.
    Attention = 2,
    /// The attention's output projection (`resid_dropout`), `[position, d]`.
    AttentionOut = 3,
    /// The MLP's output projection (`mlp.dropout`), `[position, d]`.
    MlpOut = 4,
}

/// The dropout of one training batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// The probability of dropping an element, in `[0, 1)`.
    pub p: f32,
    /// Decides the masks; different for every batch of a run.
    pub key: u64,
}

impl Dropout {
    /// Dropout with probability `p` and masks decided by `key`; `None` when `p` is 0.
    pub fn new(p: f32, key: u64) -> Option<Dropout> {
        (p > 0.0).then_some(Dropout { p, key })
    }

    /// Dropout with probability `p` for the batches of epoch `tag` (phase and number) of a
    /// run with seed `seed`; `None` when `p` is 0. Its masks come from these alone, never from
    /// the run's random stream, so a run's other draws are the same with and without it.
    pub fn for_epoch(p: f64, seed: u64, (phase, epoch): (&str, usize)) -> Option<Dropout> {
        let mut key = splitmix64(seed ^ 0x0d40_9047);
        for b in phase.bytes() {
            key = splitmix64(key ^ b as u64);
        }
        Dropout::new(p as f32, splitmix64(key ^ epoch as u64))
    }

    /// The dropout of the epoch's batch `k`.
    pub fn batch(self, k: usize) -> Dropout {
        Dropout {
            key: splitmix64(self.key ^ splitmix64(k as u64 + 1)),
            ..self
        }
    }

    /// What a kept element is multiplied by.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    /// The factor of element (`a`, `b`) of `site` in `layer` for batch row `row`: 0 if
    /// dropped, else [`Dropout::scale`].
    pub fn factor(&self, site: Site, layer: usize, row: usize, a: usize, b: usize) -> f32 {
        let place = (site as u64) << 56 | (layer as u64) << 40 | row as u64;
        let h =
            splitmix64(splitmix64(self.key ^ splitmix64(place)) ^ ((a as u64) << 32 | b as u64));
        // the top 24 bits as a uniform number in [0, 1)
        let u = (h >> 40) as f32 / (1u64 << 24) as f32;
        if u < self.p {
            0.0
        } else {
            self.scale()
        }
    }

    /// Multiplies the packed rows `v` (`lens` tokens each, `width` columns; no padding) by
    /// the factors of a `[position, column]` site: its forward, and its backward too.
    pub fn apply_packed(
        &self,
        site: Site,
        layer: usize,
        lens: &[usize],
        width: usize,
        v: &mut [f32],
    ) {
        let mut k = 0;
        for (r, &len) in lens.iter().enumerate() {
            for t in 0..len {
                for (c, x) in v[k * width..(k + 1) * width].iter_mut().enumerate() {
                    *x *= self.factor(site, layer, r, t, c);
                }
                k += 1;
            }
        }
    }

    /// The factors of `[rows, len, width]` (row-major) for a `[position, column]` site.
    pub fn hidden_mask(
        &self,
        site: Site,
        layer: usize,
        rows: usize,
        len: usize,
        width: usize,
    ) -> Vec<f32> {
        let mut m = Vec::with_capacity(rows * len * width);
        for r in 0..rows {
            for t in 0..len {
                for c in 0..width {
                    m.push(self.factor(site, layer, r, t, c));
                }
            }
        }
        m
    }

    /// The factor of head `head`'s probability of query `i` for key `j` in `layer`, batch row
    /// `row` ([`Site::Attention`]).
    pub fn attention_factor(
        &self,
        layer: usize,
        row: usize,
        head: usize,
        i: usize,
        j: usize,
    ) -> f32 {
        self.factor(Site::Attention, layer, row, head << 16 | i, j)
    }

    /// The attention probabilities' factors, `[rows, heads, len, len]` (row-major).
    pub fn attention_mask(&self, layer: usize, rows: usize, heads: usize, len: usize) -> Vec<f32> {
        let mut m = Vec::with_capacity(rows * heads * len * len);
        for r in 0..rows {
            for h in 0..heads {
                for i in 0..len {
                    for j in 0..len {
                        m.push(self.attention_factor(layer, r, h, i, j));
                    }
                }
            }
        }
        m
    }
}

/// The `dropout` param of `pretrain` and `finetune` (docs/fidelity.md, 16): `None` (null)
/// is the backbone's own, GPT-2's 0.1 (`embd_pdrop`, `attn_pdrop`, `resid_pdrop` of every
/// released GPT-2 and of the authors' code) and none for a Llama (SmolLM2's `attention_dropout`
/// is 0; this port has no dropout there). Refuses a rate outside `[0, 1)` and a non-zero rate
/// for a Llama backbone.
pub fn rate(param: Option<f64>, arch: &str) -> Result<f64, String> {
    let llama = arch == "llama";
    match param {
        None => Ok(backbone_rate(arch)),
        Some(p) if !(0.0..1.0).contains(&p) => Err(format!(
            "`dropout` must be at least 0 and below 1, found {p}"
        )),
        Some(p) if llama && p > 0.0 => Err(format!(
            "`dropout: {p}`: a Llama backbone has no dropout here (SmolLM2's is 0); set \
             `dropout: 0` or leave it null"
        )),
        Some(p) => Ok(p),
    }
}

/// The backbone's own rate (`dropout: null`): GPT-2's 0.1, none for a Llama.
pub fn backbone_rate(arch: &str) -> f64 {
    if arch == "llama" {
        0.0
    } else {
        0.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About `p` of the elements are dropped, the others scaled so that the mean is kept; the
    /// masks depend on the key, the batch and the place, and nothing else.
    #[test]
    fn masks_drop_p_of_the_elements_and_keep_the_mean() {
        let d = Dropout::new(0.1, 7).unwrap();
        let m = d.batch(0).hidden_mask(Site::Embedding, 0, 8, 64, 64);
        let dropped = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len() as f64;
        assert!((dropped - 0.1).abs() < 0.005, "{dropped}");
        let mean = m.iter().map(|&x| x as f64).sum::<f64>() / m.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert_eq!(m, d.batch(0).hidden_mask(Site::Embedding, 0, 8, 64, 64));
        assert_ne!(m, d.batch(1).hidden_mask(Site::Embedding, 0, 8, 64, 64));
        assert_ne!(m, d.batch(0).hidden_mask(Site::MlpOut, 0, 8, 64, 64));
        assert_ne!(m, d.batch(0).hidden_mask(Site::Embedding, 1, 8, 64, 64));
        assert_ne!(
            m,
            Dropout::new(0.1, 8)
                .unwrap()
                .batch(0)
                .hidden_mask(Site::Embedding, 0, 8, 64, 64)
        );
        assert_eq!(Dropout::new(0.0, 7), None);
        // the attention mask is the same function, laid out per head
        let a = d.attention_mask(1, 2, 3, 5);
        assert_eq!(
            a[((3 + 2) * 5 + 4) * 5 + 3],
            d.attention_factor(1, 1, 2, 4, 3)
        );
        // a row's factors do not depend on the batch's padded length
        assert_eq!(a[..5], d.attention_mask(1, 2, 3, 9)[..5]);
    }
}
