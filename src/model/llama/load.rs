//! Loading Hugging Face Llama checkpoints (`config.json`, `model.safetensors`).
//!
//! The module tree uses the checkpoint's names, so a key maps to a parameter by these rules
//! alone:
//!
//! - a leading `model.` is dropped (`LlamaForCausalLM` writes it before everything but
//!   `lm_head.weight`, `LlamaModel` does not); a key present in both forms is an error;
//! - `layers.N.self_attn.rotary_emb.inv_freq` is skipped: older checkpoints saved the rotary
//!   frequencies, a buffer that this port recomputes from the config;
//! - with a tied head, `lm_head.weight` is skipped if it equals `embed_tokens.weight`, an
//!   error if not;
//! - any other key the model does not use is an error, as is a missing or mis-shaped tensor.
//!
//! `nn.Linear` weights are stored [out, in]; burn's `Linear` holds [in, out], so they are
//! transposed while the model is built. F32, F16 and BF16 tensors are read (as f32).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16, Device};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use serde_json::Value;

use super::params::{Init, ParamSource};
use super::{Llama, LlamaConfig, LlamaError, RopeScaling};

/// The prefix `LlamaForCausalLM` puts before the backbone's keys.
const PREFIX: &str = "model.";

/// The fields of Hugging Face's `config.json` that this port reads; other fields are ignored.
#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    max_position_embeddings: usize,
    #[serde(default = "default_epsilon")]
    rms_norm_eps: f64,
    /// transformers 4.
    #[serde(default)]
    rope_theta: Option<f64>,
    /// transformers 4.
    #[serde(default)]
    rope_scaling: Option<Value>,
    /// transformers 5: `rope_type`, `rope_theta` and the type's own fields.
    #[serde(default)]
    rope_parameters: Option<Value>,
    #[serde(default = "default_activation")]
    hidden_act: String,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "default_initializer_range")]
    initializer_range: f64,
}

fn default_epsilon() -> f64 {
    1e-6
}
fn default_activation() -> String {
    "silu".into()
}
fn default_initializer_range() -> f64 {
    0.02
}

pub(crate) fn read_hf_config(path: &Path) -> Result<LlamaConfig, LlamaError> {
    let text = std::fs::read_to_string(path).map_err(|source| LlamaError::Io {
        path: path.into(),
        source,
    })?;
    let hf: HfConfig = serde_json::from_str(&text).map_err(|source| LlamaError::ConfigJson {
        path: path.into(),
        source,
    })?;
    let unsupported = |field: &str, value: String, hint| {
        Err(LlamaError::Unsupported {
            path: path.into(),
            field: field.into(),
            value,
            hint,
        })
    };
    if let Some(t) = hf.model_type.as_deref().filter(|t| *t != "llama") {
        return unsupported(
            "model_type",
            format!("{t:?}"),
            "only `llama` is implemented",
        );
    }
    if hf.hidden_act != "silu" {
        return unsupported(
            "hidden_act",
            format!("{:?}", hf.hidden_act),
            "only `silu` (SwiGLU) is implemented",
        );
    }
    if hf.attention_bias {
        return unsupported("attention_bias", "true".into(), "projections have no bias");
    }
    if hf.mlp_bias {
        return unsupported("mlp_bias", "true".into(), "projections have no bias");
    }
    let (theta, scaling) = match (&hf.rope_parameters, &hf.rope_scaling) {
        (Some(params), _) => {
            let theta = params.get("rope_theta").and_then(Value::as_f64);
            (theta, rope_scaling(path, "rope_parameters", params)?)
        }
        (None, Some(Value::Null)) | (None, None) => (None, RopeScaling::None),
        (None, Some(s)) => (None, rope_scaling(path, "rope_scaling", s)?),
    };
    let config = LlamaConfig {
        vocab_size: hf.vocab_size,
        hidden_size: hf.hidden_size,
        intermediate_size: hf.intermediate_size,
        num_hidden_layers: hf.num_hidden_layers,
        num_attention_heads: hf.num_attention_heads,
        num_key_value_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
        max_position_embeddings: hf.max_position_embeddings,
        head_dim: hf.head_dim,
        rms_norm_eps: hf.rms_norm_eps,
        rope_theta: theta.or(hf.rope_theta).unwrap_or(10000.0),
        rope_scaling: scaling,
        tie_word_embeddings: hf.tie_word_embeddings,
        initializer_range: hf.initializer_range,
    };
    config.check()?;
    Ok(config)
}

/// A `rope_scaling` / `rope_parameters` object: `rope_type` (or the older `type`) `default`
/// or `linear` with its `factor`; other types are refused by name.
fn rope_scaling(path: &Path, field: &str, v: &Value) -> Result<RopeScaling, LlamaError> {
    let unsupported = |field: String, value: String, hint| LlamaError::Unsupported {
        path: path.into(),
        field,
        value,
        hint,
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => match v.get("factor").and_then(Value::as_f64) {
            Some(factor) => Ok(RopeScaling::Linear { factor }),
            None => Err(unsupported(
                format!("{field}.factor"),
                v.get("factor").map_or("missing".into(), Value::to_string),
                "linear scaling needs a number",
            )),
        },
        other => Err(unsupported(
            format!("{field}.rope_type"),
            format!("{other:?}"),
            "only `default` and `linear` rotary scaling are implemented",
        )),
    }
}

pub(crate) fn load_safetensors(
    config: &LlamaConfig,
    path: &Path,
    device: &Device,
) -> Result<Llama, LlamaError> {
    let bytes = std::fs::read(path).map_err(|source| LlamaError::Io {
        path: path.into(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|source| LlamaError::Safetensors {
        path: path.into(),
        source,
    })?;
    let mut source = Checkpoint::new(&file, path)?;
    let model = Llama::build(config, &mut source, device)?;
    source.finish(config)?;
    Ok(model)
}

/// A safetensors file as a [`ParamSource`], remembering which keys it handed out.
struct Checkpoint<'a> {
    path: PathBuf,
    /// Name without `model.` -> the file's own key.
    keys: BTreeMap<String, String>,
    file: &'a SafeTensors<'a>,
    used: BTreeSet<String>,
}

impl<'a> Checkpoint<'a> {
    fn new(file: &'a SafeTensors<'a>, path: &Path) -> Result<Checkpoint<'a>, LlamaError> {
        let mut keys = BTreeMap::new();
        for raw in file.names() {
            let name = raw.strip_prefix(PREFIX).unwrap_or(raw);
            if keys.insert(name.to_string(), raw.to_string()).is_some() {
                return Err(LlamaError::Duplicate {
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

    fn values(&self, raw: &str) -> Result<Vec<f32>, LlamaError> {
        let view = self
            .file
            .tensor(raw)
            .map_err(|source| LlamaError::Safetensors {
                path: self.path.clone(),
                source,
            })?;
        let data = view.data();
        Ok(match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(LlamaError::Dtype {
                    path: self.path.clone(),
                    key: raw.into(),
                    dtype: format!("{other:?}"),
                })
            }
        })
    }

    /// Checks that every key was used or may be skipped.
    fn finish(self, config: &LlamaConfig) -> Result<(), LlamaError> {
        let mut allowed = BTreeSet::new();
        if config.tie_word_embeddings {
            if let Some(raw) = self.keys.get("lm_head.weight") {
                let embed = &self.keys["embed_tokens.weight"];
                if self.values(raw)? != self.values(embed)? {
                    return Err(LlamaError::UntiedHead { path: self.path });
                }
                allowed.insert("lm_head.weight");
            }
        }
        let unexpected: Vec<&String> = self
            .keys
            .iter()
            .filter(|(name, _)| {
                !self.used.contains(*name)
                    && !allowed.contains(name.as_str())
                    && !name.ends_with(".rotary_emb.inv_freq")
            })
            .map(|(_, raw)| raw)
            .collect();
        match unexpected.split_first() {
            None => Ok(()),
            Some((first, rest)) => Err(LlamaError::Unexpected {
                path: self.path,
                key: (*first).clone(),
                more: if rest.is_empty() {
                    String::new()
                } else {
                    format!(" and {} more", rest.len())
                },
                layers: config.num_hidden_layers,
            }),
        }
    }
}

impl ParamSource<LlamaError> for Checkpoint<'_> {
    fn take(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>, LlamaError> {
        let Some(raw) = self.keys.get(name).cloned() else {
            return Err(LlamaError::Missing {
                path: self.path.clone(),
                key: name.into(),
                expected: shape.into(),
            });
        };
        let found = self
            .file
            .tensor(&raw)
            .map_err(|source| LlamaError::Safetensors {
                path: self.path.clone(),
                source,
            })?
            .shape()
            .to_vec();
        if found != shape {
            return Err(LlamaError::Shape {
                path: self.path.clone(),
                key: raw,
                found,
                expected: shape.into(),
            });
        }
        let values = self.values(&raw)?;
        self.used.insert(name.to_string());
        Ok(values)
    }
}
