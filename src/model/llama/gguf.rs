//! Loading a Llama from a GGUF file (llama.cpp's format): the `llama.*` metadata gives the
//! config, the tensors are de-quantized to f32 by [`crate::gguf`].
//!
//! The one renaming table, Hugging Face name (without `model.`) -> GGUF name, `N` the layer:
//!
//! | Hugging Face                           | GGUF                   |
//! |----------------------------------------|------------------------|
//! | `embed_tokens.weight`                  | `token_embd.weight`    |
//! | `layers.N.input_layernorm.weight`      | `blk.N.attn_norm.weight` |
//! | `layers.N.self_attn.q_proj.weight`     | `blk.N.attn_q.weight` (rows permuted, see below) |
//! | `layers.N.self_attn.k_proj.weight`     | `blk.N.attn_k.weight` (rows permuted) |
//! | `layers.N.self_attn.v_proj.weight`     | `blk.N.attn_v.weight`  |
//! | `layers.N.self_attn.o_proj.weight`     | `blk.N.attn_output.weight` |
//! | `layers.N.post_attention_layernorm.weight` | `blk.N.ffn_norm.weight` |
//! | `layers.N.mlp.gate_proj.weight`        | `blk.N.ffn_gate.weight` |
//! | `layers.N.mlp.up_proj.weight`          | `blk.N.ffn_up.weight`  |
//! | `layers.N.mlp.down_proj.weight`        | `blk.N.ffn_down.weight` |
//! | `norm.weight`                          | `output_norm.weight`   |
//! | `lm_head.weight`                       | `output.weight` (absent: the head is tied) |
//!
//! A ggml matrix `[ne0 = in, ne1 = out]` de-quantizes to `[out, in]`, the `nn.Linear` layout,
//! so shapes compare directly. llama.cpp's converter permutes the rows of `attn_q` and
//! `attn_k` within each head so that its RoPE can rotate adjacent pairs `(2i, 2i+1)`; this
//! port rotates Hugging Face's pairs `(i, i + head_dim/2)`, so the rows are put back here
//! (transformers' `reverse_permute_weights`): GGUF row `h·hd + 2i + j` becomes row
//! `h·hd + j·hd/2 + i`. Every tensor of the file must be used.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::params::{Init, ParamSource};
use super::{Llama, LlamaConfig, LlamaError, RopeScaling};
use crate::gguf::Gguf;

impl LlamaConfig {
    /// The config of a GGUF file's model, from its `general.architecture` (must be `llama`)
    /// and `llama.*` metadata: `block_count`, `embedding_length`, `feed_forward_length`,
    /// `attention.head_count`, `attention.head_count_kv` (default: `head_count`),
    /// `attention.key_length` (default: width / heads), `attention.layer_norm_rms_epsilon`,
    /// `rope.freq_base` (default 10000), `rope.dimension_count` (must be the head width),
    /// `rope.scaling.type` (`none` or `linear`) and `rope.scaling.factor`, `context_length`,
    /// `vocab_size` (default: the rows of `token_embd.weight`); the head is tied when there is
    /// no `output.weight`.
    pub fn from_gguf(file: &Gguf) -> Result<LlamaConfig, LlamaError> {
        let path = file.path();
        let unsupported = |field: &str, value: String, hint| LlamaError::Unsupported {
            path: path.into(),
            field: field.into(),
            value,
            hint,
        };
        let arch = file.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(unsupported(
                "general.architecture",
                format!("{arch:?}"),
                "only `llama` is implemented",
            ));
        }
        let size = |key: &str| -> Result<usize, LlamaError> {
            let v = file.get_u64(key)?;
            usize::try_from(v).map_err(|_| unsupported(key, v.to_string(), "too large"))
        };
        let optional = |key: &str| -> Result<Option<usize>, LlamaError> {
            match file.get(key) {
                None => Ok(None),
                Some(_) => size(key).map(Some),
            }
        };
        let heads = size("llama.attention.head_count")?;
        let hidden = size("llama.embedding_length")?;
        let vocab = match optional("llama.vocab_size")? {
            Some(v) => v,
            None => match file.tensor("token_embd.weight") {
                Some(t) if t.dims.len() == 2 => t.dims[1],
                _ => {
                    return Err(LlamaError::Missing {
                        path: path.into(),
                        key: "token_embd.weight".into(),
                        expected: vec![],
                    })
                }
            },
        };
        let head_dim = optional("llama.attention.key_length")?;
        let scaling = match file.get("llama.rope.scaling.type") {
            None => RopeScaling::None,
            Some(_) => match file.get_str("llama.rope.scaling.type")? {
                "none" => RopeScaling::None,
                "linear" => RopeScaling::Linear {
                    factor: file.get_f64("llama.rope.scaling.factor")?,
                },
                other => {
                    return Err(unsupported(
                        "llama.rope.scaling.type",
                        format!("{other:?}"),
                        "only `none` and `linear` rotary scaling are implemented",
                    ))
                }
            },
        };
        let float = |key: &str, default: f64| -> Result<f64, LlamaError> {
            match file.get(key) {
                None => Ok(default),
                Some(_) => Ok(file.get_f64(key)?),
            }
        };
        let config = LlamaConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: size("llama.feed_forward_length")?,
            num_hidden_layers: size("llama.block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: optional("llama.attention.head_count_kv")?.unwrap_or(heads),
            max_position_embeddings: size("llama.context_length")?,
            head_dim: Some(head_dim.unwrap_or(hidden / heads.max(1))),
            rms_norm_eps: file.get_f64("llama.attention.layer_norm_rms_epsilon")?,
            rope_theta: float("llama.rope.freq_base", 10000.0)?,
            rope_scaling: scaling,
            tie_word_embeddings: file.tensor("output.weight").is_none(),
            initializer_range: 0.02,
        };
        if let Some(rotary) = optional("llama.rope.dimension_count")? {
            if rotary != config.head_dim() {
                return Err(unsupported(
                    "llama.rope.dimension_count",
                    rotary.to_string(),
                    "partial rotary embeddings are not implemented; it must be the head width",
                ));
            }
        }
        config.check().map_err(|e| match e {
            LlamaError::InvalidConfig(m) => {
                LlamaError::InvalidConfig(format!("`{}`: {m}", path.display()))
            }
            other => other,
        })?;
        Ok(config)
    }
}

impl Llama {
    /// Loads a Llama from a GGUF file: the config from its metadata
    /// ([`LlamaConfig::from_gguf`]), the weights de-quantized to f32. The parameters require
    /// gradients (on an autodiff device); call [`Llama::frozen`] to freeze them.
    pub fn from_gguf(path: &Path, device: &Device) -> Result<Llama, LlamaError> {
        let file = Gguf::open(path)?;
        let config = LlamaConfig::from_gguf(&file)?;
        Llama::from_gguf_file(&config, &file, device)
    }

    /// Loads the weights of a Llama of shape `config` from an opened GGUF file.
    pub fn from_gguf_file(
        config: &LlamaConfig,
        file: &Gguf,
        device: &Device,
    ) -> Result<Llama, LlamaError> {
        config.check()?;
        let mut source = GgufSource {
            file,
            path: file.path().into(),
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim(),
            used: BTreeSet::new(),
        };
        let model = Llama::build(config, &mut source, device)?;
        source.finish(config)?;
        Ok(model)
    }
}

/// The GGUF name of a Hugging Face parameter name (without `model.`), by the module table.
fn gguf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "embed_tokens.weight" => Some("token_embd.weight"),
        "norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.into());
    }
    let rest = name.strip_prefix("layers.")?;
    let (layer, param) = rest.split_once('.')?;
    let tensor = match param {
        "input_layernorm.weight" => "attn_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "post_attention_layernorm.weight" => "ffn_norm",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{tensor}.weight"))
}

/// Undoes llama.cpp's row permutation of a query or key matrix `[heads·hd, cols]`: GGUF row
/// `h·hd + 2i + j` goes to row `h·hd + j·hd/2 + i`.
fn unpermute(values: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let from = (h * head_dim + 2 * i + j) * cols;
                let to = (h * head_dim + j * half + i) * cols;
                out[to..to + cols].copy_from_slice(&values[from..from + cols]);
            }
        }
    }
    out
}

/// A GGUF file as a [`ParamSource`], remembering which tensors it handed out.
struct GgufSource<'a> {
    file: &'a Gguf,
    path: PathBuf,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    used: BTreeSet<String>,
}

impl GgufSource<'_> {
    /// Checks that every tensor of the file was used.
    fn finish(self, config: &LlamaConfig) -> Result<(), LlamaError> {
        let unexpected: Vec<&str> = (self.file.tensors().iter())
            .map(|t| t.name.as_str())
            .filter(|n| !self.used.contains(*n))
            .collect();
        match unexpected.split_first() {
            None => Ok(()),
            Some((first, rest)) => Err(LlamaError::Unexpected {
                path: self.path,
                key: (*first).into(),
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

impl ParamSource<LlamaError> for GgufSource<'_> {
    fn take(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>, LlamaError> {
        let Some(key) = gguf_name(name) else {
            unreachable!("the model asks for `{name}`, which the GGUF table does not name");
        };
        if self.file.tensor(&key).is_none() {
            return Err(LlamaError::Missing {
                path: self.path.clone(),
                key,
                expected: shape.into(),
            });
        }
        let (found, values) = self.file.dequantize(&key)?;
        if found != shape {
            return Err(LlamaError::Shape {
                path: self.path.clone(),
                key,
                found,
                expected: shape.into(),
            });
        }
        let values = if name.ends_with("q_proj.weight") {
            unpermute(&values, self.heads, self.head_dim, shape[1])
        } else if name.ends_with("k_proj.weight") {
            unpermute(&values, self.kv_heads, self.head_dim, shape[1])
        } else {
            values
        };
        self.used.insert(key);
        Ok(values)
    }
}
