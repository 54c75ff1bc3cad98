//! GPT-2's causal multi-head self-attention (`attn`).

use crate::model::backend::attention;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use super::params::Builder;
use super::{Gpt2Config, Gpt2Error};

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
    pub fn forward(&self, x: Tensor<3>, pad: Option<Tensor<4, Bool>>) -> Tensor<3> {
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
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let context = attention(q, k, v, mask, None, options); // [batch, n_head, seq, head_dim]
        let context = context.swap_dims(1, 2).reshape([batch, seq, d]); // [batch, seq, d]
        self.c_proj.forward(context)
    }
}
