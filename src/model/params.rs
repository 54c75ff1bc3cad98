//! Where parameter values come from while a backbone (GPT-2, Llama) is built: a seeded random
//! initialisation or a checkpoint (safetensors, GGUF). A model's constructors ask a
//! [`ParamSource`] for every tensor by its checkpoint name (`h.0.attn.c_attn.weight`,
//! `layers.0.self_attn.q_proj.weight`) and shape, so every source shares one list of names and
//! shapes: the module tree itself. `E` is the model's error type; each model adds its own layer
//! constructors (`conv1d` for GPT-2, the transposed `linear` for Llama) in its `params.rs`.

use burn::module::Param;
use burn::nn::Embedding;
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::rng::Rng;

/// How Hugging Face initialises a parameter (`*PreTrainedModel._init_weights`); a checkpoint
/// source ignores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// All zeros (biases, layer-norm shifts).
    Zeros,
    /// All ones (layer-norm and RMSNorm scales).
    Ones,
}

/// A supplier of parameter values, asked once per parameter in a fixed order.
pub(crate) trait ParamSource<E> {
    /// The values of parameter `name` (checkpoint naming, without the model's prefix),
    /// row-major, `shape.iter().product()` of them, in the checkpoint's layout.
    fn take(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, E>;
}

/// Builds parameters on one device from a [`ParamSource`], tracking the name prefix of the
/// module being built.
pub(crate) struct Builder<'a, E> {
    source: &'a mut dyn ParamSource<E>,
    device: &'a Device,
    prefix: String,
}

impl<'a, E> Builder<'a, E> {
    pub(crate) fn new(source: &'a mut dyn ParamSource<E>, device: &'a Device) -> Builder<'a, E> {
        Builder {
            source,
            device,
            prefix: String::new(),
        }
    }

    /// The device the parameters are created on.
    pub(crate) fn device(&self) -> &'a Device {
        self.device
    }

    /// Runs `f` with `name.` appended to the prefix (`h` then `0` gives `h.0.`).
    pub(crate) fn scope<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Builder<'a, E>) -> Result<T, E>,
    ) -> Result<T, E> {
        let len = self.prefix.len();
        self.prefix.push_str(name);
        self.prefix.push('.');
        let out = f(self);
        self.prefix.truncate(len);
        out
    }

    /// The values of parameter `name` under the current prefix, as the source stores them.
    pub(crate) fn values(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<Vec<f32>, E> {
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
    ) -> Result<Param<Tensor<D>>, E> {
        let values = self.values(name, &shape, init)?;
        let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), self.device);
        Ok(Param::from_tensor(tensor))
    }

    /// An embedding table `name.weight` [n, d].
    pub(crate) fn embedding(
        &mut self,
        name: &str,
        n: usize,
        d: usize,
        std: f64,
    ) -> Result<Embedding, E> {
        self.scope(name, |b| {
            Ok(Embedding {
                weight: b.param("weight", [n, d], Init::Normal(std))?,
            })
        })
    }
}

/// Deterministic random initialisation: the same seed gives bit-identical weights on every
/// machine and backend, because the values are drawn here (xoshiro256** from
/// [`crate::data::rng`], Box-Muller normals), in the fixed order the model asks for them, and
/// not by the backend's global RNG.
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

impl<E> ParamSource<E> for RandomInit {
    fn take(&mut self, _name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, E> {
        let n = shape.iter().product::<usize>();
        Ok(match init {
            Init::Zeros => vec![0.0; n],
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
