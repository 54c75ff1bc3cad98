//! Llama's side of the shared parameter builder ([`crate::model::params`]): its error type and
//! the bias-free `nn.Linear` layer, whose checkpoint weights are transposed into burn's layout.
//! Sources (random, Hugging Face safetensors, GGUF) name parameters as Hugging Face does,
//! without `model.` (`layers.0.self_attn.q_proj.weight`), with `nn.Linear` weights [out, in].

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};

use super::LlamaError;
pub(crate) use crate::model::params::{Init, ParamSource, RandomInit};

/// The shared builder with Llama's error type.
pub(crate) type Builder<'a> = crate::model::params::Builder<'a, LlamaError>;

impl Builder<'_> {
    /// A bias-free `nn.Linear` (`name.weight`, stored [d_out, d_in]) as a burn [`Linear`],
    /// whose weight is [d_in, d_out] (`y = x W`): the values are transposed here.
    pub(crate) fn linear(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
        std: f64,
    ) -> Result<Linear, LlamaError> {
        self.scope(name, |b| {
            let stored = b.values("weight", &[d_out, d_in], Init::Normal(std))?;
            let mut values = vec![0f32; stored.len()];
            for (o, row) in stored.chunks_exact(d_in).enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    values[i * d_out + o] = v;
                }
            }
            let tensor = Tensor::<2>::from_data(TensorData::new(values, [d_in, d_out]), b.device());
            Ok(Linear {
                weight: Param::from_tensor(tensor),
                bias: None,
            })
        })
    }
}
