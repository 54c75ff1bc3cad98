//! Where parameter values come from while a [`Llama`](super::Llama) is built: a seeded random
//! initialisation, a Hugging Face safetensors file or a GGUF file. The model's constructors
//! ask a [`ParamSource`] for every tensor by its Hugging Face name without the `model.` prefix
//! (`layers.0.self_attn.q_proj.weight`) and shape (`nn.Linear` weights [out, in]), so every
//! source shares one list of names and shapes: the module tree itself.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use super::LlamaError;
use crate::data::rng::Rng;

/// How Hugging Face initialises a parameter (`LlamaPreTrainedModel._init_weights`); a
/// checkpoint source ignores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// All ones (RMSNorm scales).
    Ones,
}

/// A supplier of parameter values, asked once per parameter in a fixed order.
pub(crate) trait ParamSource {
    /// The values of parameter `name` (Hugging Face naming, without `model.`), row-major,
    /// `shape.iter().product()` of them, in the checkpoint's layout (`nn.Linear`: [out, in]).
    fn take(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, LlamaError>;
}

/// Builds parameters on one device from a [`ParamSource`], tracking the name prefix of the
/// module being built.
pub(crate) struct Builder<'a> {
    source: &'a mut dyn ParamSource,
    device: &'a Device,
    prefix: String,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(source: &'a mut dyn ParamSource, device: &'a Device) -> Builder<'a> {
        Builder {
            source,
            device,
            prefix: String::new(),
        }
    }

    /// The device the parameters are created on.
    pub(crate) fn device(&self) -> &Device {
        self.device
    }

    /// Runs `f` with `name.` appended to the prefix (`layers` then `0` gives `layers.0.`).
    pub(crate) fn scope<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Builder<'a>) -> Result<T, LlamaError>,
    ) -> Result<T, LlamaError> {
        let len = self.prefix.len();
        self.prefix.push_str(name);
        self.prefix.push('.');
        let out = f(self);
        self.prefix.truncate(len);
        out
    }

    fn values(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, LlamaError> {
        let full = format!("{}{name}", self.prefix);
        let values = self.source.take(&full, shape, init)?;
        debug_assert_eq!(values.len(), shape.iter().product::<usize>(), "{full}");
        Ok(values)
    }

    /// A parameter of any rank, stored as the checkpoint stores it.
    pub(crate) fn param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Param<Tensor<D>>, LlamaError> {
        let values = self.values(name, &shape, init)?;
        let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), self.device);
        Ok(Param::from_tensor(tensor))
    }

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
            let tensor = Tensor::<2>::from_data(TensorData::new(values, [d_in, d_out]), b.device);
            Ok(Linear {
                weight: Param::from_tensor(tensor),
                bias: None,
            })
        })
    }

    /// An embedding table `name.weight` [n, d].
    pub(crate) fn embedding(
        &mut self,
        name: &str,
        n: usize,
        d: usize,
        std: f64,
    ) -> Result<Embedding, LlamaError> {
        self.scope(name, |b| {
            Ok(Embedding {
                weight: b.param("weight", [n, d], Init::Normal(std))?,
            })
        })
    }
}

/// Deterministic random initialisation: the same seed gives bit-identical weights on every
/// machine and backend, because the values are drawn here (xoshiro256** from
/// [`crate::data::rng`], Box-Muller normals, the scheme of GPT-2's initialisation), in the
/// fixed order the model asks for them, and not by the backend's global RNG.
pub(crate) struct RandomInit {
    rng: Rng,
}

impl RandomInit {
    pub(crate) fn new(seed: u64) -> RandomInit {
        RandomInit {
            rng: Rng::new(seed),
        }
    }

    /// Uniform in (0, 1]: 53 random bits, never 0 (so that `ln` is finite).
    fn unit(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl ParamSource for RandomInit {
    fn take(&mut self, _name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, LlamaError> {
        let n = shape.iter().product::<usize>();
        Ok(match init {
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => {
                let mut out = Vec::with_capacity(n + 1);
                while out.len() < n {
                    // Box-Muller: two independent standard normals from two uniforms.
                    let r = (-2.0 * self.unit().ln()).sqrt();
                    let theta = std::f64::consts::TAU * self.unit();
                    out.push((std * r * theta.cos()) as f32);
                    out.push((std * r * theta.sin()) as f32);
                }
                out.truncate(n);
                out
            }
        })
    }
}
