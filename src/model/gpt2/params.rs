//! GPT-2's side of the shared parameter builder ([`crate::model::params`]): its error type and
//! the Hugging Face `Conv1D` layer.

use burn::nn::Linear;

use super::Gpt2Error;
pub(crate) use crate::model::params::{Init, ParamSource, RandomInit};

/// The shared builder with GPT-2's error type.
pub(crate) type Builder<'a> = crate::model::params::Builder<'a, Gpt2Error>;

impl Builder<'_> {
    /// A Hugging Face `Conv1D` (`name.weight` [d_in, d_out], `name.bias` [d_out]) as a burn
    /// [`Linear`]. Both store the weight [in, out] (`y = x W + b`), so no transpose is needed;
    /// an `nn.Linear` checkpoint weight ([out, in]) would need one.
    pub(crate) fn conv1d(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
        weight_std: f64,
    ) -> Result<Linear, Gpt2Error> {
        self.scope(name, |b| {
            Ok(Linear {
                weight: b.param("weight", [d_in, d_out], Init::Normal(weight_std))?,
                bias: Some(b.param("bias", [d_out], Init::Zeros)?),
            })
        })
    }
}
