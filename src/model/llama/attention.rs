//! Llama's causal grouped-query self-attention (`self_attn`).

use crate::model::backend::attention;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use super::params::Builder;
use super::rope::Rope;
use super::{LlamaConfig, LlamaError};

/// Grouped-query attention: `num_attention_heads` query heads share `num_key_value_heads`
/// key/value heads (query head `h` uses key/value head `h / group`, as Hugging Face's
/// `repeat_kv`), rotary position embeddings on queries and keys, projections without bias.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection: weight [d, heads · head_dim].
    pub q_proj: Linear,
    /// Key projection: weight [d, kv_heads · head_dim].
    pub k_proj: Linear,
    /// Value projection: weight [d, kv_heads · head_dim].
    pub v_proj: Linear,
    /// Output projection: weight [heads · head_dim, d].
    pub o_proj: Linear,
    /// Number of query heads.
    pub heads: usize,
    /// Number of key/value heads; divides `heads`.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Attention {
    pub(crate) fn build(b: &mut Builder, config: &LlamaConfig) -> Result<Attention, LlamaError> {
        let (d, hd, std) = (
            config.hidden_size,
            config.head_dim(),
            config.initializer_range,
        );
        let (heads, kv_heads) = (config.num_attention_heads, config.num_key_value_heads);
        b.scope("self_attn", |b| {
            Ok(Attention {
                q_proj: b.linear("q_proj", d, heads * hd, std)?,
                k_proj: b.linear("k_proj", d, kv_heads * hd, std)?,
                v_proj: b.linear("v_proj", d, kv_heads * hd, std)?,
                o_proj: b.linear("o_proj", heads * hd, d, std)?,
                heads,
                kv_heads,
                head_dim: hd,
            })
        })
    }

    /// Attention of every position to itself and the earlier positions, except masked keys.
    /// The key/value heads are not copied per query head: the `group` query heads that share
    /// one are stacked along the sequence axis (`[batch, kv_heads, group · seq, head_dim]`), so
    /// one product per key/value head serves them all, and `mask` repeats the causal pattern
    /// for each of them. Scores are scaled by `1/sqrt(head_dim)`; a query row with every key
    /// masked gives zeros (not NaN).
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - cos, sin: `[1, seq, 1, head_dim / 2]` (from [`Rope::tables`])
    /// - mask: `[batch, kv_heads, group · seq, seq]`, `true` where the key is hidden (later
    ///   position or padding); from [`attention_mask`]
    /// - output: `[batch, seq, d]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: Tensor<4, Bool>,
    ) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let (heads, kv_heads, hd) = (self.heads, self.kv_heads, self.head_dim);
        let group = heads / kv_heads;
        let q = self
            .q_proj
            .forward(x.clone())
            .reshape([batch, seq, heads, hd]);
        let k = self
            .k_proj
            .forward(x.clone())
            .reshape([batch, seq, kv_heads, hd]);
        let v = self.v_proj.forward(x).reshape([batch, seq, kv_heads, hd]);
        let q = Rope::apply(q, cos, sin)
            .swap_dims(1, 2) // [batch, heads, seq, hd]
            .reshape([batch, kv_heads, group * seq, hd]); // query heads of a group stacked
        let k = Rope::apply(k, cos, sin).swap_dims(1, 2); // [batch, kv_heads, seq, hd]
        let v = v.swap_dims(1, 2); // [batch, kv_heads, seq, hd]
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false, // in `mask`, which knows the stacking
        };
        let context = attention(q, k, v, Some(mask), None, options) // [batch, kv_heads, group * seq, hd]
            .reshape([batch, heads, seq, hd])
            .swap_dims(1, 2) // [batch, seq, heads, hd]
            .reshape([batch, seq, heads * hd]);
        self.o_proj.forward(context)
    }
}

/// The attention mask of [`Attention::forward`]: key `j` is hidden from query row `r` (the
/// position `r % seq` of a stacked group) when `j > r % seq` or `j` is padding.
///
/// # Shapes
///
/// - pad: `[batch, seq]`, `true` at padding
/// - output: `[batch, kv_heads, group · seq, seq]`
pub(crate) fn attention_mask(
    pad: Option<Tensor<2, Bool>>,
    batch: usize,
    seq: usize,
    kv_heads: usize,
    group: usize,
    device: &burn::tensor::Device,
) -> Tensor<4, Bool> {
    let rows = Tensor::<1, burn::tensor::Int>::arange(0..seq as i64, device)
        .reshape([1, seq, 1])
        .repeat_dim(0, group)
        .reshape([group * seq, 1]); // position of each stacked row
    let cols = Tensor::<1, burn::tensor::Int>::arange(0..seq as i64, device).reshape([1, seq]);
    let causal = cols.greater(rows).reshape([1, 1, group * seq, seq]); // [1, 1, group*seq, seq]
    let shape = [batch, kv_heads, group * seq, seq];
    match pad {
        None => causal.expand(shape),
        Some(pad) => causal
            .expand(shape)
            .bool_or(pad.reshape([batch, 1, 1, seq]).expand(shape)),
    }
}
