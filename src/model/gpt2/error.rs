//! Errors of building or loading a GPT-2.

use std::path::PathBuf;

/// Why a GPT-2 could not be configured or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Gpt2Error {
    #[error("invalid GPT-2 config: {0}")]
    InvalidConfig(String),

    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not a GPT-2 config.json: {source}")]
    ConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("`{path}`: `{field}` = {value} is not supported ({hint})")]
    Unsupported {
        path: PathBuf,
        field: &'static str,
        value: String,
        hint: &'static str,
    },

    #[error("`{path}` is not a valid safetensors file: {source}")]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },

    #[error(
        "`{path}`: missing tensor `{key}` (nor `transformer.{key}`), expected shape {expected:?}"
    )]
    Missing {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
    },

    #[error("`{path}`: tensor `{key}` has shape {found:?}, expected {expected:?}{hint}")]
    Shape {
        path: PathBuf,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        hint: &'static str,
    },

    #[error("`{path}`: tensor `{key}` has dtype {dtype}, only F32 is supported")]
    Dtype {
        path: PathBuf,
        key: String,
        dtype: String,
    },

    #[error("`{path}`: tensor `{key}` appears both with and without the `transformer.` prefix")]
    Duplicate { path: PathBuf, key: String },

    #[error(
        "`{path}`: unexpected tensor `{key}`{more} (not part of a GPT-2 with {n_layer} layers; \
         does the config belong to this checkpoint?)"
    )]
    Unexpected {
        path: PathBuf,
        key: String,
        more: String,
        n_layer: usize,
    },

    #[error(
        "`{path}`: `lm_head.weight` differs from `wte.weight`; only a tied LM head is supported"
    )]
    UntiedHead { path: PathBuf },
}
