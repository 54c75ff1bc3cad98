//! Loading Hugging Face GPT-2 checkpoints (`config.json`, `model.safetensors`).
//!
//! The module tree uses the checkpoint's names, so a key maps to a parameter by these rules
//! alone:
//!
//! - a leading `transformer.` is dropped (`GPT2LMHeadModel` writes it, `GPT2Model` and the
//!   original `gpt2` upload do not); a key present in both forms is an error;
//! - `h.N.attn.bias` and `h.N.attn.masked_bias` are skipped: they are the causal mask and its
//!   fill value, buffers rather than weights;
//! - `lm_head.weight` is skipped if it equals `wte.weight` (the head is tied), an error if not;
//! - any other key the model does not use is an error, as is a missing or mis-shaped tensor.
//!
//! `Conv1D` weights (`c_attn`, `c_proj`, `c_fc`) are stored [in, out], the layout of burn's
//! `Linear`, so they are copied as they are. Only F32 tensors are read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::params::{Init, ParamSource};
use super::{Gpt2, Gpt2Config, Gpt2Error};

/// The prefix `GPT2LMHeadModel` puts before the backbone's keys.
const PREFIX: &str = "transformer.";

/// The fields of Hugging Face's `config.json` that this port reads; other fields are ignored.
#[derive(Deserialize)]
struct HfConfig {
    vocab_size: usize,
    n_positions: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    #[serde(default)]
    n_inner: Option<usize>,
    #[serde(default = "default_activation")]
    activation_function: String,
    #[serde(default = "default_epsilon")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_initializer_range")]
    initializer_range: f64,
    #[serde(default = "yes")]
    scale_attn_weights: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    add_cross_attention: bool,
    #[serde(default = "yes")]
    tie_word_embeddings: bool,
}

fn default_activation() -> String {
    "gelu_new".into()
}
fn default_epsilon() -> f64 {
    1e-5
}
fn default_initializer_range() -> f64 {
    0.02
}
fn yes() -> bool {
    true
}

pub(crate) fn read_hf_config(path: &Path) -> Result<Gpt2Config, Gpt2Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Gpt2Error::Io {
        path: path.into(),
        source,
    })?;
    let hf: HfConfig = serde_json::from_str(&text).map_err(|source| Gpt2Error::ConfigJson {
        path: path.into(),
        source,
    })?;
    let unsupported = |field, value: String, hint| {
        Err(Gpt2Error::Unsupported {
            path: path.into(),
            field,
            value,
            hint,
        })
    };
    // `gelu_pytorch_tanh` is the same function as `gelu_new`.
    if !matches!(
        hf.activation_function.as_str(),
        "gelu_new" | "gelu_pytorch_tanh"
    ) {
        return unsupported(
            "activation_function",
            format!("{:?}", hf.activation_function),
            "only the tanh approximation `gelu_new` is implemented",
        );
    }
    if !hf.scale_attn_weights {
        return unsupported(
            "scale_attn_weights",
            "false".into(),
            "scores are always scaled",
        );
    }
    if hf.scale_attn_by_inverse_layer_idx {
        return unsupported(
            "scale_attn_by_inverse_layer_idx",
            "true".into(),
            "not implemented",
        );
    }
    if hf.add_cross_attention {
        return unsupported("add_cross_attention", "true".into(), "a decoder-only model");
    }
    if !hf.tie_word_embeddings {
        return unsupported(
            "tie_word_embeddings",
            "false".into(),
            "the LM head is tied to `wte`",
        );
    }
    let config = Gpt2Config {
        vocab_size: hf.vocab_size,
        n_positions: hf.n_positions,
        n_embd: hf.n_embd,
        n_layer: hf.n_layer,
        n_head: hf.n_head,
        n_inner: hf.n_inner,
        layer_norm_epsilon: hf.layer_norm_epsilon,
        initializer_range: hf.initializer_range,
    };
    config.check()?;
    Ok(config)
}

pub(crate) fn load_safetensors(
    config: &Gpt2Config,
    path: &Path,
    device: &Device,
) -> Result<Gpt2, Gpt2Error> {
    let bytes = std::fs::read(path).map_err(|source| Gpt2Error::Io {
        path: path.into(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|source| Gpt2Error::Safetensors {
        path: path.into(),
        source,
    })?;
    let mut source = Checkpoint::new(&file, path)?;
    let model = Gpt2::build(config, &mut source, device)?;
    source.finish(config)?;
    Ok(model)
}

/// A safetensors file as a [`ParamSource`], remembering which keys it handed out.
struct Checkpoint<'a> {
    path: PathBuf,
    /// Name without `transformer.` -> the file's own key.
    keys: BTreeMap<String, String>,
    file: &'a SafeTensors<'a>,
    used: BTreeSet<String>,
}

impl<'a> Checkpoint<'a> {
    fn new(file: &'a SafeTensors<'a>, path: &Path) -> Result<Checkpoint<'a>, Gpt2Error> {
        let mut keys = BTreeMap::new();
        for raw in file.names() {
            let name = raw.strip_prefix(PREFIX).unwrap_or(raw);
            if keys.insert(name.to_string(), raw.to_string()).is_some() {
                return Err(Gpt2Error::Duplicate {
                    path: path.into(),
                    key: name.into(),
                });
            }
        }
        Ok(Checkpoint {
            path: path.into(),
            keys,
            file,
            used: BTreeSet::new(),
        })
    }

    /// Checks that every key was used or may be skipped.
    fn finish(self, config: &Gpt2Config) -> Result<(), Gpt2Error> {
        if let Some(raw) = self.keys.get("lm_head.weight") {
            let head = self.view(raw)?;
            let wte = self.view(&self.keys["wte.weight"])?;
            if head.dtype() != wte.dtype()
                || head.shape() != wte.shape()
                || head.data() != wte.data()
            {
                return Err(Gpt2Error::UntiedHead { path: self.path });
            }
        }
        let unexpected: Vec<&String> = self
            .keys
            .iter()
            .filter(|(name, _)| !self.used.contains(*name) && !skipped(name))
            .map(|(_, raw)| raw)
            .collect();
        match unexpected.split_first() {
            None => Ok(()),
            Some((first, rest)) => Err(Gpt2Error::Unexpected {
                path: self.path,
                key: first.to_string(),
                more: match rest.len() {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                },
                n_layer: config.n_layer,
            }),
        }
    }

    fn view(&self, raw: &str) -> Result<safetensors::tensor::TensorView<'a>, Gpt2Error> {
        self.file
            .tensor(raw)
            .map_err(|source| Gpt2Error::Safetensors {
                path: self.path.clone(),
                source,
            })
    }
}

/// Keys that hold no weight of the model: the attention buffers, and the tied LM head (checked
/// in [`Checkpoint::finish`]).
fn skipped(name: &str) -> bool {
    name == "lm_head.weight"
        || name
            .strip_prefix("h.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(layer, rest)| {
                layer.parse::<usize>().is_ok() && matches!(rest, "attn.bias" | "attn.masked_bias")
            })
}

impl ParamSource<Gpt2Error> for Checkpoint<'_> {
    fn take(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>, Gpt2Error> {
        let path = || self.path.clone();
        let Some(raw) = self.keys.get(name) else {
            return Err(Gpt2Error::Missing {
                path: path(),
                key: name.into(),
                expected: shape.into(),
            });
        };
        let view = self.view(raw)?;
        if view.shape() != shape {
            let transposed = view.shape().len() == 2
                && shape.len() == 2
                && view.shape()[0] == shape[1]
                && view.shape()[1] == shape[0];
            return Err(Gpt2Error::Shape {
                path: path(),
                key: raw.clone(),
                found: view.shape().into(),
                expected: shape.into(),
                hint: if transposed {
                    " (transposed? GPT-2 Conv1D weights are stored [in, out])"
                } else {
                    ""
                },
            });
        }
        if view.dtype() != Dtype::F32 {
            return Err(Gpt2Error::Dtype {
                path: path(),
                key: raw.clone(),
                dtype: format!("{:?}", view.dtype()),
            });
        }
        self.used.insert(name.to_string());
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}
