//! The GPT-2 port against Hugging Face: `tests/fixtures/gpt2-tiny` is a random GPT-2
//! (vocab 512, 64 positions, width 32, 2 layers, 4 heads; non-trivial biases and layer norms)
//! saved by `transformers` 5.24 `GPT2LMHeadModel`, with its logits and last hidden state on
//! two rows of 12 tokens, the second right-padded after 7 (built by
//! `shared/fixtures/make_gpt2_tiny.py`). Also the loader's errors.
//!
//! Error measure: for each row, over its real positions (mask 1) and all features,
//! `max |ours - ref| / max |ref|`, the infinity-norm relative error. It is scale-aware and,
//! unlike an element-wise relative error, not blown up by reference values near zero.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use cllm4rec_pipe::model::backend::infer_device;
use cllm4rec_pipe::model::{Gpt2, Gpt2Config, Gpt2Error};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde_json::Value;

const TOLERANCE: f64 = 1e-4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny")
}

struct Reference {
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
    logits: Vec<Vec<Vec<f64>>>,
    hidden: Vec<Vec<Vec<f64>>>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture().join("reference.json")).unwrap();
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

fn int_tensor(rows: &[Vec<i64>]) -> Tensor<2, Int> {
    let shape = [rows.len(), rows[0].len()];
    let flat: Vec<i64> = rows.concat();
    Tensor::from_data(TensorData::new(flat, shape), &infer_device())
}

fn to_vec3(t: Tensor<3>) -> (Vec<f32>, [usize; 3]) {
    let dims = t.dims();
    (t.into_data().try_to_vec::<f32>().unwrap(), dims)
}

/// max |ours - ref| / max |ref| over the real positions of row `b`; also max |ours - ref|.
fn row_error(
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

#[test]
fn logits_and_hidden_states_match_transformers() {
    let reference = reference();
    let model = Gpt2::from_pretrained(&fixture(), &infer_device()).unwrap();
    let (logits, hidden) = model.forward(
        int_tensor(&reference.ids),
        Some(int_tensor(&reference.mask)),
    );
    let logits = to_vec3(logits);
    let hidden = to_vec3(hidden);
    assert_eq!(logits.1, [2, 12, 512]);
    assert_eq!(hidden.1, [2, 12, 32]);
    for b in 0..2 {
        let mask = &reference.mask[b];
        let real = mask.iter().filter(|&&m| m == 1).count();
        for (what, ours, theirs) in [
            ("logits", &logits, &reference.logits),
            ("hidden", &hidden, &reference.hidden),
        ] {
            let (rel, abs) = row_error(ours, theirs, mask, b);
            println!("row {b} ({real} real positions) {what}: max rel error {rel:.3e} (max abs {abs:.3e})");
            assert!(
                rel < TOLERANCE,
                "row {b} {what}: relative error {rel:e} >= {TOLERANCE:e}"
            );
        }
    }
}

#[test]
fn the_lone_padded_row_gives_the_same_outputs() {
    // Row 1 alone, cut to its 7 real tokens and without a mask, is the same computation.
    let reference = reference();
    let model = Gpt2::from_pretrained(&fixture(), &infer_device()).unwrap();
    let (_, hidden) = model.forward(int_tensor(&[reference.ids[1][..7].to_vec()]), None);
    let hidden = to_vec3(hidden);
    let (rel, _) = row_error(&hidden, &reference.hidden[1..], &[1; 7], 0);
    assert!(rel < TOLERANCE, "relative error {rel:e}");
}

/// The fixture's tensors under other names: `rename` maps a key to its new name (None drops
/// it), `extra` adds tensors. Written to a temporary folder next to the fixture's config.
fn variant(
    rename: impl Fn(&str) -> Option<String>,
    extra: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
) -> (tempfile::TempDir, PathBuf) {
    let bytes = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut views: HashMap<String, TensorView> = HashMap::new();
    for (name, view) in file.tensors() {
        if let Some(new) = rename(&name) {
            views.insert(new, view);
        }
    }
    for (name, dtype, shape, data) in &extra {
        views.insert(
            name.clone(),
            TensorView::new(*dtype, shape.clone(), data).unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    (dir, path)
}

fn load(path: &Path) -> Result<Gpt2, Gpt2Error> {
    let config = Gpt2Config::from_hf_json(&fixture().join("config.json")).unwrap();
    Gpt2::from_safetensors(&config, path, &infer_device())
}

fn first_logits(model: &Gpt2) -> Vec<f32> {
    let ids = int_tensor(&[vec![1, 2, 3]]);
    model
        .forward(ids, None)
        .0
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn config_json_gives_the_tiny_preset() {
    let config = Gpt2Config::from_hf_json(&fixture().join("config.json")).unwrap();
    assert_eq!(config, Gpt2Config::tiny());
}

#[test]
fn keys_without_the_transformer_prefix_and_with_buffers_load_the_same() {
    let wte =
        SafeTensors::deserialize(&std::fs::read(fixture().join("model.safetensors")).unwrap())
            .unwrap()
            .tensor("transformer.wte.weight")
            .unwrap()
            .data()
            .to_vec();
    let causal: Vec<u8> = (0..64 * 64).map(|i| u8::from(i % 64 <= i / 64)).collect();
    let extra = vec![
        (
            "h.0.attn.bias".into(),
            safetensors::Dtype::U8,
            vec![1, 1, 64, 64],
            causal.clone(),
        ),
        (
            "h.1.attn.masked_bias".into(),
            safetensors::Dtype::F32,
            vec![],
            (-1e4f32).to_le_bytes().to_vec(),
        ),
        (
            "lm_head.weight".into(),
            safetensors::Dtype::F32,
            vec![512, 32],
            wte,
        ),
    ];
    let (_dir, path) = variant(
        |k| Some(k.strip_prefix("transformer.").unwrap_or(k).to_string()),
        extra,
    );
    let plain = load(&path).unwrap();
    let original = Gpt2::from_pretrained(&fixture(), &infer_device()).unwrap();
    assert_eq!(first_logits(&plain), first_logits(&original));
}

#[test]
fn a_missing_tensor_is_named() {
    let (_dir, path) = variant(
        |k| (k != "transformer.h.1.mlp.c_fc.bias").then(|| k.to_string()),
        vec![],
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(msg.contains("missing tensor `h.1.mlp.c_fc.bias`"), "{msg}");
    assert!(msg.contains("[128]"), "{msg}");
}

#[test]
fn a_misshaped_tensor_is_named_with_both_shapes() {
    let zeros = vec![0u8; 96 * 32 * 4];
    let extra = vec![(
        "transformer.h.0.attn.c_attn.weight".into(),
        safetensors::Dtype::F32,
        vec![96, 32],
        zeros,
    )];
    let (_dir, path) = variant(
        |k| (k != "transformer.h.0.attn.c_attn.weight").then(|| k.to_string()),
        extra,
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("`transformer.h.0.attn.c_attn.weight` has shape [96, 32], expected [32, 96]"),
        "{msg}"
    );
    assert!(msg.contains("transposed?"), "{msg}");
}

#[test]
fn an_untied_head_and_unknown_tensors_are_refused() {
    let head = vec![(
        "lm_head.weight".into(),
        safetensors::Dtype::F32,
        vec![512, 32],
        vec![0u8; 512 * 32 * 4],
    )];
    let (_dir, path) = variant(|k| Some(k.to_string()), head);
    let err = load(&path).unwrap_err();
    assert!(matches!(err, Gpt2Error::UntiedHead { .. }), "{err}");

    let extra_layer = vec![(
        "transformer.h.2.ln_1.weight".into(),
        safetensors::Dtype::F32,
        vec![32],
        vec![0u8; 32 * 4],
    )];
    let (_dir, path) = variant(|k| Some(k.to_string()), extra_layer);
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("unexpected tensor `transformer.h.2.ln_1.weight`"),
        "{msg}"
    );

    let both = vec![(
        "wpe.weight".into(),
        safetensors::Dtype::F32,
        vec![64, 32],
        vec![0u8; 64 * 32 * 4],
    )];
    let (_dir, path) = variant(|k| Some(k.to_string()), both);
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("`wpe.weight` appears both with and without"),
        "{msg}"
    );
}

#[test]
fn a_config_of_another_shape_is_refused_by_name() {
    let config = Gpt2Config {
        n_layer: 3,
        ..Gpt2Config::tiny()
    };
    let err = Gpt2::from_safetensors(
        &config,
        &fixture().join("model.safetensors"),
        &infer_device(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("missing tensor `h.2.ln_1.weight`"),
        "{err}"
    );
}
