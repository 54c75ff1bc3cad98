//! Model FLOPs: the compute of a training or scoring pass counted in its matrix products, the
//! one measure of compute that is the same on every machine (the budget study,
//! `sweeps/budget.yaml`, plots Recall@20 against it). The convention is PyTorch's
//! `torch.utils.flop_counter.FlopCounterMode`, against which `tests/reference/flops.py` checks
//! these counts:
//!
//! - 2 FLOPs per multiply-add of every matrix product; attention's two products over the full
//!   T x T scores (a causal mask saves nothing there);
//! - a backward pass computes what autodiff needs: each product's gradient with respect to an
//!   input that needs one, and with respect to its weight when the weight is trained (so a
//!   frozen backbone's linear maps cost one product backward, not two);
//! - element-wise work, softmaxes, normalisations, embedding lookups, the regularizer and the
//!   optimiser step are not counted; sequences are counted unpadded, and a sparse product
//!   (Multi-VAE's input layer, LightGCN's propagation) counts its non-zeros.

use crate::model::backbone::Backbone;

/// What one token costs in a decoder backbone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderCost {
    pub layers: usize,
    /// Multiply-adds of one token through one layer's linear maps (their weights' sizes).
    pub linear: usize,
    /// Attention's width: query heads x head size.
    pub attn: usize,
    /// The hidden state's width, which the output heads read.
    pub width: usize,
    /// Whether the backbone's weights are trained (they get gradients).
    pub trained: bool,
}

fn weight_size(l: &burn::nn::Linear) -> usize {
    l.weight.val().dims().iter().product()
}

impl DecoderCost {
    pub fn of(backbone: &Backbone, trained: bool) -> DecoderCost {
        let width = backbone.wte_weight().dims()[1];
        let (layers, linear, attn) = match backbone {
            Backbone::Gpt2(m) => (
                m.h.len(),
                m.h.first().map_or(0, |b| {
                    weight_size(&b.attn.c_attn)
                        + weight_size(&b.attn.c_proj)
                        + weight_size(&b.mlp.c_fc)
                        + weight_size(&b.mlp.c_proj)
                }),
                width,
            ),
            Backbone::Llama(m) => (
                m.layers.len(),
                m.layers.first().map_or(0, |l| {
                    let (a, f) = (&l.self_attn, &l.mlp);
                    [
                        &a.q_proj,
                        &a.k_proj,
                        &a.v_proj,
                        &a.o_proj,
                        &f.gate_proj,
                        &f.up_proj,
                        &f.down_proj,
                    ]
                    .into_iter()
                    .map(weight_size)
                    .sum()
                }),
                m.layers
                    .first()
                    .map_or(0, |l| l.self_attn.heads * l.self_attn.head_dim),
            ),
        };
        DecoderCost {
            layers,
            linear,
            attn,
            width,
            trained,
        }
    }

    /// A sequence of `t` tokens through the backbone.
    pub fn forward(&self, t: usize) -> f64 {
        let t = t as f64;
        self.layers as f64 * (2.0 * t * self.linear as f64 + 4.0 * t * t * self.attn as f64)
    }

    /// Its backward pass: the linear maps' input gradients, their weights' when trained, and
    /// both operands of attention's products.
    pub fn backward(&self, t: usize) -> f64 {
        let tf = t as f64;
        let linear = 2.0 * tf * self.linear as f64;
        let weights = if self.trained { linear } else { 0.0 };
        self.layers as f64 * (linear + weights + 8.0 * tf * tf * self.attn as f64)
    }

    /// An output head of `rows` outputs (items or words) read at `positions` hidden states:
    /// forward only (`train: None`), or forward and backward with the head's weight trained
    /// or not.
    pub fn head(&self, positions: usize, rows: usize, train: Option<bool>) -> f64 {
        let f = 2.0 * positions as f64 * self.width as f64 * rows as f64;
        match train {
            None => f,
            Some(false) => 2.0 * f,
            Some(true) => 3.0 * f,
        }
    }
}

/// Multi-VAE (items -> hidden -> 2 x latent, latent -> hidden -> items) on a batch of `rows`
/// users whose inputs hold `nnz` items in all: the encoder's first product is sparse. With
/// `train`, the backward pass too (every weight trained; the input needs no gradient).
pub fn multivae(
    items: usize,
    hidden: usize,
    latent: usize,
    rows: usize,
    nnz: usize,
    train: bool,
) -> f64 {
    let (i, h, z, r) = (items as f64, hidden as f64, latent as f64, rows as f64);
    let first = 2.0 * nnz as f64 * h;
    let dense = 2.0 * r * (h * 2.0 * z + z * h + h * i);
    if !train {
        return first + dense;
    }
    // the first layer: its weight's gradient only; the others: input and weight gradients,
    // except the decoder's first, whose input (z) needs one for the encoder behind it
    first * 2.0 + dense * 3.0
}

/// LightGCN's propagation: `layers` products of the normalised adjacency (`edges` non-zeros,
/// each interaction twice) with a `[nodes, dim]` table. A training batch propagates forward
/// and its gradient back (twice this); BPR's per-triple dot products are element-wise work
/// (as in PyTorch's LightGCN), not counted.
pub fn lightgcn_propagation(edges: usize, dim: usize, layers: usize) -> f64 {
    2.0 * edges as f64 * dim as f64 * layers as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_backbone_saves_the_weight_gradients_only() {
        let c = DecoderCost {
            layers: 2,
            linear: 12 * 64 * 64,
            attn: 64,
            width: 64,
            trained: true,
        };
        let frozen = DecoderCost {
            trained: false,
            ..c
        };
        let t = 10.0;
        let linear = 2.0 * 2.0 * t * 12.0 * 4096.0;
        let attn = 2.0 * 4.0 * t * t * 64.0;
        assert_eq!(c.forward(10), linear + attn);
        assert_eq!(c.backward(10), 2.0 * linear + 2.0 * attn);
        assert_eq!(frozen.backward(10), linear + 2.0 * attn);
        assert_eq!(c.head(3, 100, None), 2.0 * 3.0 * 64.0 * 100.0);
        assert_eq!(c.head(3, 100, Some(true)), 3.0 * c.head(3, 100, None));
    }
}
