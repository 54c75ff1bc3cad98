//! Layer normalisation with the checkpoint's parameter names (`weight`, `bias`; burn's own
//! `LayerNorm` calls them `gamma`, `beta`).

use burn::module::{Module, Param};
use burn::tensor::module::layer_norm;
use burn::tensor::Tensor;

use super::params::{Builder, Init};
use super::Gpt2Error;

/// `y = (x - mean) / sqrt(var + epsilon) * weight + bias` over the last axis, with the biased
/// variance (as `torch.nn.LayerNorm`).
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale, [d].
    pub weight: Param<Tensor<1>>,
    /// Shift, [d].
    pub bias: Param<Tensor<1>>,
    /// Added to the variance (GPT-2: 1e-5).
    pub epsilon: f64,
}

impl LayerNorm {
    pub(crate) fn build(
        b: &mut Builder,
        name: &str,
        d: usize,
        epsilon: f64,
    ) -> Result<LayerNorm, Gpt2Error> {
        b.scope(name, |b| {
            Ok(LayerNorm {
                weight: b.param("weight", [d], Init::Ones)?,
                bias: b.param("bias", [d], Init::Zeros)?,
                epsilon,
            })
        })
    }

    /// # Shapes
    ///
    /// - input: `[..., d]`
    /// - output: `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.val(), Some(self.bias.val()), self.epsilon)
    }
}
