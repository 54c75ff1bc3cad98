//! The GGUF reader (`crate::gguf`) against gguf-py 0.19 (an independent reader and
//! de-quantizer): a small fixture with every metadata value type and one tensor of each
//! supported ggml type (`tests/reference/make_gguf_fixture.py`), corrupted copies of it, and
//! the real SmolLM2-135M Q4_1 file when present (`tests/reference/make_smollm2_gguf_values.py`).
//!
//! De-quantized values are compared exactly (bit for bit, `to_bits`): the kernels follow
//! ggml's operation order, and gguf-py's numpy code performs the same f32 operations.

#[path = "../common/smollm2.rs"]
mod common_smollm2;
mod corrupt;
mod fixture;
mod smollm2;

use common_smollm2::smollm2_gguf;
use std::path::{Path, PathBuf};

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

pub fn small_gguf() -> PathBuf {
    fixture_dir().join("small.gguf")
}

pub fn small_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_dir().join("small.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Asserts `ours` equals gguf-py's `expected` bit for bit (after the f64 -> f32 cast, which
/// is exact: the JSON holds f32 values written with a round-tripping repr).
pub fn assert_same_values(what: &str, ours: &[f32], expected: &[serde_json::Value]) {
    assert_eq!(ours.len(), expected.len(), "{what}: element count");
    for (i, (a, e)) in ours.iter().zip(expected).enumerate() {
        let e = e
            .as_f64()
            .unwrap_or_else(|| panic!("{what}[{i}]: {e} is not a number"));
        assert_eq!(
            a.to_bits(),
            (e as f32).to_bits(),
            "{what}[{i}]: ours {a:e}, gguf-py {e:e}"
        );
    }
}
