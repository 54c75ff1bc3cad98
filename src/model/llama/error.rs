//! Errors of configuring or loading a Llama.

use std::path::PathBuf;

/// Why a Llama could not be configured or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    #[error("invalid Llama config: {0}")]
    InvalidConfig(String),

    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not a Llama config.json: {source}")]
    ConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("`{path}`: `{field}` = {value} is not supported ({hint})")]
    Unsupported {
        path: PathBuf,
        field: String,
        value: String,
        hint: &'static str,
    },

    #[error("`{path}` is not a valid safetensors file: {source}")]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },

    #[error("`{path}`: missing tensor `{key}`, expected shape {expected:?}")]
    Missing {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
    },

    #[error("`{path}`: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },

    #[error("`{path}`: tensor `{key}` has dtype {dtype}, only F32 is supported")]
    Dtype {
        path: PathBuf,
        key: String,
        dtype: String,
    },

    #[error("`{path}`: tensor `{key}` appears both with and without the `model.` prefix")]
    Duplicate { path: PathBuf, key: String },

    #[error(
        "`{path}`: unexpected tensor `{key}`{more} (not part of a Llama with {layers} layers; \
         does the config belong to this checkpoint?)"
    )]
    Unexpected {
        path: PathBuf,
        key: String,
        more: String,
        layers: usize,
    },

    #[error(
        "`{path}`: `lm_head.weight` differs from `embed_tokens.weight` but the config ties \
         them (`tie_word_embeddings`)"
    )]
    UntiedHead { path: PathBuf },

    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}
