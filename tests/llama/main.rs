//! The Llama port (`model::llama`) against Hugging Face transformers 5.24:
//!
//! - `tiny`: two tiny random Llamas saved by `LlamaForCausalLM` (`tests/fixtures/llama-tiny`:
//!   vocab 256, width 32, 2 layers, 4 query and 2 key/value heads, rope_theta 10000, tied
//!   head; `tests/fixtures/llama-tiny-linear`: the same with head_dim 16, rope_theta 500,
//!   linear rope scaling by 2.5 and an untied head), with their logits and last hidden state
//!   on two rows of 12 tokens, the second right-padded after 7
//!   (`tests/reference/make_llama_tiny.py`); also the safetensors loader's errors;
//! - `gguf`: the same two models written as GGUF files the way llama.cpp's converter writes
//!   them, attn_q / attn_k rows permuted (`tests/reference/make_llama_tiny_gguf.py`, which
//!   checks that transformers reads them back to the same outputs); also the GGUF loader's
//!   errors;
//! - `smollm2`: the real SmolLM2-135M-Instruct Q4_1 GGUF, when present.
//!
//! Error measure of the tiny models: for each row, over its real positions (mask 1) and all
//! features, `max |ours - ref| / max |ref|`, the infinity-norm relative error, and
//! `max |ours - ref|`.

#[path = "../common/smollm2.rs"]
mod common_smollm2;
mod gguf;
mod smollm2;
mod tiny;

use common_smollm2::smollm2_gguf;
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use cllm4rec_pipe::model::backend::infer_device;
use cllm4rec_pipe::model::Llama;
use serde_json::Value;

pub const TOLERANCE: f64 = 1e-4;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct Reference {
    pub ids: Vec<Vec<i64>>,
    pub mask: Vec<Vec<i64>>,
    pub logits: Vec<Vec<Vec<f64>>>,
    pub hidden: Vec<Vec<Vec<f64>>>,
}

pub fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    fn get<T: serde::de::DeserializeOwned>(v: &Value, k: &str) -> T {
        serde_json::from_value(v[k].clone()).unwrap_or_else(|e| panic!("{k}: {e}"))
    }
    Reference {
        ids: get(&v, "input_ids"),
        mask: get(&v, "attention_mask"),
        logits: get(&v, "logits"),
        hidden: get(&v, "last_hidden_state"),
    }
}

pub fn int_tensor(rows: &[Vec<i64>]) -> Tensor<2, Int> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), &infer_device())
}

pub fn to_vec3(t: Tensor<3>) -> (Vec<f32>, [usize; 3]) {
    let dims = t.dims();
    (t.into_data().try_to_vec::<f32>().unwrap(), dims)
}

/// max |ours - ref| / max |ref| over the real positions of row `b`; also max |ours - ref|.
pub fn row_error(
    ours: &(Vec<f32>, [usize; 3]),
    reference: &[Vec<Vec<f64>>],
    mask: &[i64],
    b: usize,
) -> (f64, f64) {
    let (data, [_, seq, width]) = ours;
    let (mut max_diff, mut max_ref) = (0f64, 0f64);
    for t in (0..*seq).filter(|&t| mask[t] == 1) {
        for j in 0..*width {
            let a = data[(b * seq + t) * width + j] as f64;
            let r = reference[b][t][j];
            max_diff = max_diff.max((a - r).abs());
            max_ref = max_ref.max(r.abs());
        }
    }
    (max_diff / max_ref.max(1e-6), max_diff)
}

/// Runs `model` on the fixture `name`'s two rows and checks logits and last hidden states
/// against transformers'.
pub fn check_against_transformers(model: &Llama, name: &str) {
    let reference = reference(name);
    let (logits, hidden) = model.forward(
        int_tensor(&reference.ids),
        Some(int_tensor(&reference.mask)),
    );
    let logits = to_vec3(logits);
    let hidden = to_vec3(hidden);
    assert_eq!(logits.1, [2, 12, 256]);
    assert_eq!(hidden.1, [2, 12, 32]);
    for b in 0..2 {
        let mask = &reference.mask[b];
        let real = mask.iter().filter(|&&m| m == 1).count();
        for (what, ours, theirs) in [
            ("logits", &logits, &reference.logits),
            ("hidden", &hidden, &reference.hidden),
        ] {
            let (rel, abs) = row_error(ours, theirs, mask, b);
            println!(
                "{name} row {b} ({real} real positions) {what}: max rel error {rel:.3e} \
                 (max abs {abs:.3e})"
            );
            assert!(
                rel < TOLERANCE,
                "{name} row {b} {what}: relative error {rel:e} >= {TOLERANCE:e}"
            );
        }
    }
}
