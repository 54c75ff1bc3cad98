//! A GPT-2 transformer block (`h.N`) and its feed-forward network (`mlp`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::gelu_approximate;
use burn::tensor::{Bool, Tensor};

use super::attention::{dropped, Attention};
use super::layer_norm::LayerNorm;
use super::params::Builder;
use super::{Gpt2Config, Gpt2Error};
use crate::model::dropout::{Dropout, Site};

/// A pre-LN block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct Block {
    /// Normalisation before attention.
    pub ln_1: LayerNorm,
    /// Causal self-attention.
    pub attn: Attention,
    /// Normalisation before the feed-forward network.
    pub ln_2: LayerNorm,
    /// Feed-forward network.
    pub mlp: Mlp,
}

impl Block {
    pub(crate) fn build(b: &mut Builder, config: &Gpt2Config) -> Result<Block, Gpt2Error> {
        let (d, eps) = (config.n_embd, config.layer_norm_epsilon);
        Ok(Block {
            ln_1: LayerNorm::build(b, "ln_1", d, eps)?,
            attn: Attention::build(b, config)?,
            ln_2: LayerNorm::build(b, "ln_2", d, eps)?,
            mlp: Mlp::build(b, config)?,
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - pad: `[batch, 1, 1, seq]`, `true` where the key is padding
    /// - output: `[batch, seq, d]`
    ///
    /// With `drop` (a training batch's dropout and this block's layer), the attention
    /// probabilities and both branches' outputs are dropped before they are added.
    pub fn forward(
        &self,
        x: Tensor<3>,
        pad: Option<Tensor<4, Bool>>,
        drop: Option<(Dropout, usize)>,
    ) -> Tensor<3> {
        let a = self.attn.forward(self.ln_1.forward(x.clone()), pad, drop);
        let x = x + dropped(a, Site::AttentionOut, drop);
        let m = self.mlp.forward(self.ln_2.forward(x.clone()));
        x + dropped(m, Site::MlpOut, drop)
    }
}

/// `c_proj(gelu_new(c_fc(x)))`, with `gelu_new` the tanh approximation of GELU.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Expansion: weight [d, d_inner], bias [d_inner].
    pub c_fc: Linear,
    /// Projection back: weight [d_inner, d], bias [d].
    pub c_proj: Linear,
}

impl Mlp {
    pub(crate) fn build(b: &mut Builder, config: &Gpt2Config) -> Result<Mlp, Gpt2Error> {
        let (d, inner) = (config.n_embd, config.d_inner());
        b.scope("mlp", |b| {
            Ok(Mlp {
                c_fc: b.conv1d("c_fc", d, inner, config.initializer_range)?,
                c_proj: b.conv1d("c_proj", inner, d, config.residual_std())?,
            })
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - output: `[batch, seq, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.c_proj.forward(gelu_new(self.c_fc.forward(x))) // via [batch, seq, d_inner]
    }
}

/// GPT-2's activation `gelu_new`, the tanh approximation of GELU:
/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`. It differs from the exact (erf) GELU by
/// up to about 4e-4, too little for the tiny fixture's outputs to tell them apart, so it has
/// its own test.
pub fn gelu_new<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    gelu_approximate(x)
}
