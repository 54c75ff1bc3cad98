//! Root-mean-square layer normalisation (`LlamaRMSNorm`).

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::params::{Builder, Init};
use super::LlamaError;

/// `y = x / sqrt(mean(x²) + epsilon) * weight` over the last axis: no centring, no shift.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Scale, [d].
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square (`rms_norm_eps`).
    pub epsilon: f64,
}

impl RmsNorm {
    pub(crate) fn build(
        b: &mut Builder,
        name: &str,
        d: usize,
        epsilon: f64,
    ) -> Result<RmsNorm, LlamaError> {
        b.scope(name, |b| {
            Ok(RmsNorm {
                weight: b.param("weight", [d], Init::Ones)?,
                epsilon,
            })
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - output: `[batch, seq, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let d = x.dims()[2];
        let inv_rms = x
            .clone()
            .powi_scalar(2)
            .mean_dim(2) // [batch, seq, 1]
            .add_scalar(self.epsilon)
            .sqrt()
            .recip();
        x * inv_rms * self.weight.val().reshape([1, 1, d])
    }
}
