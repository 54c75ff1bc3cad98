//! The tiny Hugging Face checkpoints (config.json + model.safetensors) and the safetensors
//! loader's errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cllm4rec_pipe::model::backend::infer_device;
use cllm4rec_pipe::model::llama::RopeScaling;
use cllm4rec_pipe::model::{Llama, LlamaConfig, LlamaError};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde_json::Value;

use crate::{
    check_against_transformers, fixture, int_tensor, reference, row_error, to_vec3, TOLERANCE,
};

#[test]
fn logits_and_hidden_states_match_transformers() {
    let model = Llama::from_pretrained(&fixture("llama-tiny"), &infer_device()).unwrap();
    check_against_transformers(&model, "llama-tiny");
}

#[test]
fn linear_rope_scaling_head_dim_and_an_untied_head_match_transformers() {
    let model = Llama::from_pretrained(&fixture("llama-tiny-linear"), &infer_device()).unwrap();
    check_against_transformers(&model, "llama-tiny-linear");
}

#[test]
fn the_lone_padded_row_gives_the_same_outputs() {
    // Row 1 alone, cut to its 7 real tokens and without a mask, is the same computation.
    let reference = reference("llama-tiny");
    let model = Llama::from_pretrained(&fixture("llama-tiny"), &infer_device()).unwrap();
    let (_, hidden) = model.forward(int_tensor(&[reference.ids[1][..7].to_vec()]), None);
    let (rel, _) = row_error(&to_vec3(hidden), &reference.hidden[1..], &[1; 7], 0);
    assert!(rel < TOLERANCE, "relative error {rel:e}");
}

#[test]
fn config_json_gives_the_presets_shape() {
    let config = LlamaConfig::from_hf_json(&fixture("llama-tiny").join("config.json")).unwrap();
    assert_eq!(config, LlamaConfig::tiny().with_head_dim(Some(8)));
    let linear =
        LlamaConfig::from_hf_json(&fixture("llama-tiny-linear").join("config.json")).unwrap();
    assert_eq!(linear.rope_scaling, RopeScaling::Linear { factor: 2.5 });
    assert_eq!((linear.rope_theta, linear.head_dim()), (500.0, 16));
    assert!(!linear.tie_word_embeddings);
}

#[test]
fn transformers_4_rope_fields_and_unsupported_options_are_read_or_refused_by_name() {
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("llama-tiny").join("config.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let read = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = base.as_object().unwrap().clone();
        edit(&mut v);
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        LlamaConfig::from_hf_json(&path)
    };
    let v4 = read(&|v| {
        v.remove("rope_parameters");
        v.insert("rope_theta".into(), 20000.0.into());
        v.insert(
            "rope_scaling".into(),
            serde_json::json!({"type": "linear", "factor": 4.0}),
        );
    })
    .unwrap();
    assert_eq!(v4.rope_theta, 20000.0);
    assert_eq!(v4.rope_scaling, RopeScaling::Linear { factor: 4.0 });
    let llama3 = read(&|v| {
        v.insert(
            "rope_parameters".into(),
            serde_json::json!({"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}),
        );
    })
    .unwrap_err()
    .to_string();
    assert!(
        llama3.contains("`rope_parameters.rope_type` = \"llama3\" is not supported"),
        "{llama3}"
    );
    assert!(llama3.contains("config.json"), "{llama3}");
    let yarn = read(&|v| {
        v.remove("rope_parameters");
        v.insert(
            "rope_scaling".into(),
            serde_json::json!({"rope_type": "yarn", "factor": 2.0}),
        );
    })
    .unwrap_err()
    .to_string();
    assert!(
        yarn.contains("`rope_scaling.rope_type` = \"yarn\""),
        "{yarn}"
    );
    let gelu = read(&|v| {
        v.insert("hidden_act".into(), "gelu".into());
    })
    .unwrap_err()
    .to_string();
    assert!(gelu.contains("`hidden_act` = \"gelu\""), "{gelu}");
    let mistral = read(&|v| {
        v.insert("model_type".into(), "mistral".into());
    })
    .unwrap_err()
    .to_string();
    assert!(mistral.contains("`model_type` = \"mistral\""), "{mistral}");
}

/// The fixture's tensors under other names: `rename` maps a key to its new name (None drops
/// it), `extra` adds tensors. Written to a temporary folder.
fn variant(
    rename: impl Fn(&str) -> Option<String>,
    extra: Vec<(String, Vec<usize>, Vec<u8>)>,
) -> (tempfile::TempDir, PathBuf) {
    let bytes = std::fs::read(fixture("llama-tiny").join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut views: HashMap<String, TensorView> = HashMap::new();
    for (name, view) in file.tensors() {
        if let Some(new) = rename(&name) {
            views.insert(new, view);
        }
    }
    for (name, shape, data) in &extra {
        views.insert(
            name.clone(),
            TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    (dir, path)
}

fn load(path: &Path) -> Result<Llama, LlamaError> {
    Llama::from_safetensors(&LlamaConfig::tiny(), path, &infer_device())
}

fn first_logits(model: &Llama) -> Vec<f32> {
    let ids = int_tensor(&[vec![1, 2, 3]]);
    let logits = model.forward(ids, None).0;
    logits.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn keys_without_the_model_prefix_and_with_buffers_load_the_same() {
    let embed = SafeTensors::deserialize(
        &std::fs::read(fixture("llama-tiny").join("model.safetensors")).unwrap(),
    )
    .unwrap()
    .tensor("model.embed_tokens.weight")
    .unwrap()
    .data()
    .to_vec();
    let inv_freq: Vec<u8> = [1.0f32, 0.1, 0.01, 0.001]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let extra = vec![
        (
            "layers.0.self_attn.rotary_emb.inv_freq".into(),
            vec![4],
            inv_freq,
        ),
        ("lm_head.weight".into(), vec![256, 32], embed),
    ];
    let (_dir, path) = variant(
        |k| Some(k.strip_prefix("model.").unwrap_or(k).to_string()),
        extra,
    );
    let plain = load(&path).unwrap();
    let original = Llama::from_pretrained(&fixture("llama-tiny"), &infer_device()).unwrap();
    assert_eq!(first_logits(&plain), first_logits(&original));
}

#[test]
fn missing_misshaped_unknown_and_duplicate_tensors_are_named() {
    let (_dir, path) = variant(
        |k| (k != "model.layers.1.mlp.up_proj.weight").then(|| k.to_string()),
        vec![],
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("missing tensor `layers.1.mlp.up_proj.weight`"),
        "{msg}"
    );
    assert!(msg.contains("[64, 32]"), "{msg}");

    let (_dir, path) = variant(
        |k| (k != "model.layers.0.self_attn.k_proj.weight").then(|| k.to_string()),
        vec![(
            "model.layers.0.self_attn.k_proj.weight".into(),
            vec![32, 16],
            vec![0u8; 32 * 16 * 4],
        )],
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains(
            "`model.layers.0.self_attn.k_proj.weight` has shape [32, 16], expected [16, 32]"
        ),
        "{msg}"
    );

    let (_dir, path) = variant(
        |k| Some(k.to_string()),
        vec![(
            "model.layers.2.input_layernorm.weight".into(),
            vec![32],
            vec![0u8; 128],
        )],
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("unexpected tensor `model.layers.2.input_layernorm.weight`"),
        "{msg}"
    );

    let (_dir, path) = variant(
        |k| Some(k.to_string()),
        vec![("norm.weight".into(), vec![32], vec![0u8; 128])],
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("`norm.weight` appears both with and without"),
        "{msg}"
    );

    let (_dir, path) = variant(
        |k| Some(k.to_string()),
        vec![(
            "lm_head.weight".into(),
            vec![256, 32],
            vec![0u8; 256 * 32 * 4],
        )],
    );
    let err = load(&path).unwrap_err();
    assert!(matches!(err, LlamaError::UntiedHead { .. }), "{err}");
}
