//! GPT-2's causal multi-head self-attention (`attn`).

use crate::model::backend::attention;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorData};

use super::params::Builder;
use super::{Gpt2Config, Gpt2Error};
use crate::model::dropout::{Dropout, Site};

/// Causal self-attention: one fused query/key/value projection (`c_attn`, a `Conv1D` stored
/// [d, 3d]), scaled dot-product attention per head, output projection (`c_proj`, [d, d]).
#[derive(Module, Debug)]
pub struct Attention {
    /// Query, key and value projections side by side: weight [d, 3d], bias [3d].
    pub c_attn: Linear,
    /// Output projection: weight [d, d], bias [d].
    pub c_proj: Linear,
    /// Number of heads; `d` must be a multiple of it.
    pub n_head: usize,
}

impl Attention {
    pub(crate) fn build(b: &mut Builder, config: &Gpt2Config) -> Result<Attention, Gpt2Error> {
        let d = config.n_embd;
        b.scope("attn", |b| {
            Ok(Attention {
                c_attn: b.conv1d("c_attn", d, 3 * d, config.initializer_range)?,
                c_proj: b.conv1d("c_proj", d, d, config.residual_std())?,
                n_head: config.n_head,
            })
        })
    }

    /// Attention of every position to itself and the earlier positions, except keys that
    /// `pad` masks out. Scores are scaled by `1/sqrt(head_dim)`; a query row with every key
    /// masked gives zeros (not NaN).
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - pad: `[batch, 1, 1, seq]`, `true` where the key is padding
    /// - output: `[batch, seq, d]`
    ///
    /// With `drop` (a training batch's dropout and the layer), the probabilities are dropped
    /// ([`Site::Attention`]) before they weigh the values, written out instead of the fused
    /// attention op.
    pub fn forward(
        &self,
        x: Tensor<3>,
        pad: Option<Tensor<4, Bool>>,
        drop: Option<(Dropout, usize)>,
    ) -> Tensor<3> {
        let [batch, seq, d] = x.dims();
        let n_head = self.n_head;
        let head_dim = d / n_head;
        let qkv = self.c_attn.forward(x); // [batch, seq, 3d]
        let heads = |t: Tensor<3>| {
            t.reshape([batch, seq, n_head, head_dim]) // [batch, seq, n_head, head_dim]
                .swap_dims(1, 2) // [batch, n_head, seq, head_dim]
        };
        let q = heads(qkv.clone().narrow(2, 0, d));
        let k = heads(qkv.clone().narrow(2, d, d));
        let v = heads(qkv.narrow(2, 2 * d, d));
        let mask = pad.map(|m| m.expand([batch, n_head, seq, seq])); // [batch, n_head, seq, seq]
        let context = match drop {
            None => {
                let options = AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: true,
                };
                attention(q, k, v, mask, None, options) // [batch, n_head, seq, head_dim]
            }
            Some((dr, layer)) => {
                let device = q.device();
                let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt(); // [b, h, s, s]
                let causal = Tensor::<2, Bool>::tril_mask([seq, seq], 0, &device)
                    .reshape([1, 1, seq, seq])
                    .expand([batch, n_head, seq, seq]); // true above the diagonal
                let hidden = match mask {
                    Some(m) => causal.bool_or(m),
                    None => causal,
                };
                let p = softmax(scores.mask_fill(hidden, f32::NEG_INFINITY), 3);
                let factors = dr.attention_mask(layer, batch, n_head, seq);
                let factors = Tensor::<4>::from_data(
                    TensorData::new(factors, [batch, n_head, seq, seq]),
                    &device,
                );
                (p * factors).matmul(v)
            }
        };
        let context = context.swap_dims(1, 2).reshape([batch, seq, d]); // [batch, seq, d]
        self.c_proj.forward(context)
    }
}

/// `x` `[batch, seq, d]` times the dropout factors of `site` (its layer from `drop`), or `x`.
pub fn dropped(x: Tensor<3>, site: Site, drop: Option<(Dropout, usize)>) -> Tensor<3> {
    let Some((dr, layer)) = drop else { return x };
    let dims = x.dims();
    let [batch, seq, d] = dims;
    let factors = dr.hidden_mask(site, layer, batch, seq, d);
    let device = x.device();
    x * Tensor::<3>::from_data(TensorData::new(factors, dims), &device)
}
