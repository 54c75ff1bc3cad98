//! Errors of the GGUF reader.

use std::path::PathBuf;

use super::types::GgmlType;

/// Anything that goes wrong opening a GGUF file, reading its metadata or de-quantizing a
/// tensor. Every variant names the file; format errors also name the byte offset and what
/// was being read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read GGUF file `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file does not follow the GGUF format.
    #[error("GGUF file `{path}`, byte {offset}: {what}: {problem}")]
    Malformed {
        path: PathBuf,
        /// Where the offending field starts.
        offset: u64,
        /// What was being read, e.g. "metadata key 12 `tokenizer.ggml.merges`, element 3".
        what: String,
        problem: String,
    },
    #[error("GGUF file `{path}`: no metadata key `{key}`")]
    MissingKey { path: PathBuf, key: String },
    #[error("GGUF file `{path}`: metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        /// The value's type, and the value itself when short.
        found: String,
    },
    #[error("GGUF file `{path}`: no tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error(
        "GGUF file `{path}`: tensor `{tensor}` has ggml type {ggml_type}, which cannot be \
         de-quantized (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
    )]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        ggml_type: GgmlType,
    },
}
