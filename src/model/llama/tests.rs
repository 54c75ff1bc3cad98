//! Properties of the port that need no reference numbers: seeded initialisation, the padding
//! mask, the grouped-query mask, gradients through a frozen backbone and what checkpoints see.
//! Agreement with Hugging Face is tested in `tests/llama_reference.rs` and, on the real
//! SmolLM2 GGUF, `tests/smollm2_reference.rs`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Int, Tensor, TensorData};

use super::{Llama, LlamaConfig, RopeScaling};
use crate::model::backend::{infer_device, train_device};

/// Every float parameter's values, in visiting order.
fn weights(model: &Llama) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .push(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

fn ids(rows: &[&[i64]]) -> Tensor<2, Int> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), &infer_device())
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn the_same_seed_gives_identical_weights_and_another_seed_different_ones() {
    let config = LlamaConfig::tiny();
    let a = weights(&config.init(7, &infer_device()));
    let b = weights(&config.init(7, &infer_device()));
    let c = weights(&config.init(8, &infer_device()));
    // embed_tokens, 2 x (input_layernorm, q, k, v, o, post_attention_layernorm, gate, up,
    // down), norm; tied, so no lm_head.
    assert_eq!(a.len(), 1 + 2 * 9 + 1);
    assert_eq!(a, b);
    let differ = a.iter().zip(&c).filter(|(x, y)| x != y).count();
    assert_eq!(
        differ,
        1 + 2 * 7,
        "embeddings and the seven matrices per layer"
    );
    let untied = weights(
        &LlamaConfig::tiny()
            .with_tie_word_embeddings(false)
            .init(7, &infer_device()),
    );
    assert_eq!(untied.len(), a.len() + 1, "an untied head is a parameter");
}

#[test]
fn the_initialisation_follows_hugging_face() {
    let model = LlamaConfig::tiny().init(0, &infer_device());
    let std = |v: &[f32]| {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    let embed = model.wte_weight().into_data().try_to_vec::<f32>().unwrap();
    assert!((std(&embed) - 0.02).abs() < 0.001, "std {}", std(&embed)); // 8192 draws
    let down = model.layers[1].mlp.down_proj.weight.val();
    assert_eq!(down.dims(), [64, 32], "burn's Linear holds [in, out]");
    let down = down.into_data().try_to_vec::<f32>().unwrap();
    assert!((std(&down) - 0.02).abs() < 0.002, "std {}", std(&down)); // 2048 draws
    let norm = model.layers[0].post_attention_layernorm.weight.val();
    let norm = norm.into_data().try_to_vec::<f32>().unwrap();
    assert!(norm.iter().all(|&x| x == 1.0));
}

#[test]
fn rotary_tables_are_not_parameters_and_checkpoints_do_not_hold_them() {
    let model = LlamaConfig::tiny().init(1, &infer_device());
    let bytes = crate::model::cllm4rec::checkpoint::to_bytes(&model).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(names.len(), 20, "{names:?}");
    assert!(names.iter().all(|n| !n.contains("rope")), "{names:?}");
    assert!(names.contains(&"layers.1.self_attn.k_proj.weight".to_string()));
    // A round trip keeps the function (the tables are rebuilt by `init`, not loaded).
    let other = LlamaConfig::tiny().init(2, &infer_device());
    let restored = crate::model::cllm4rec::checkpoint::from_bytes(other, &bytes).unwrap();
    let tokens = ids(&[&[3, 1, 4, 1, 5]]);
    assert_eq!(
        values(model.forward(tokens.clone(), None).0),
        values(restored.forward(tokens, None).0)
    );
}

#[test]
fn padded_tokens_are_not_attended_to() {
    let model = LlamaConfig::tiny().init(3, &infer_device());
    // Positions 2 and 3 are padding, in the middle of the row so that later real tokens could
    // see them; row 2 is left-padded, so its first query has no key at all.
    let mask = ids(&[&[1, 1, 0, 0, 1, 1], &[0, 0, 1, 1, 1, 1]]);
    let a = ids(&[&[5, 6, 7, 8, 9, 10], &[5, 6, 7, 8, 9, 10]]);
    let b = ids(&[&[5, 6, 200, 201, 9, 10], &[100, 101, 7, 8, 9, 10]]);
    let real = |v: Vec<f32>| -> Vec<f32> {
        let keep = [[1, 1, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]];
        v.chunks(32)
            .enumerate()
            .filter(|(i, _)| keep[i / 6][i % 6] == 1)
            .flat_map(|(_, c)| c.to_vec())
            .collect()
    };
    let (_, ha) = model.forward(a.clone(), Some(mask.clone()));
    let (_, hb) = model.forward(b.clone(), Some(mask));
    let ha = values(ha);
    assert!(
        ha.iter().all(|x| x.is_finite()),
        "a fully masked query gives no NaN"
    );
    assert_eq!(real(ha), real(values(hb)));
    let (_, ua) = model.forward(a, None);
    let (_, ub) = model.forward(b, None);
    assert_ne!(real(values(ua)), real(values(ub)));
}

#[test]
fn later_tokens_do_not_change_earlier_positions() {
    // The causal mask, repeated for each query head of a group: without it (or with the
    // stacked rows' positions wrong) the prefix's outputs would depend on the suffix.
    let model = LlamaConfig::tiny().init(4, &infer_device());
    let (_, a) = model.forward(ids(&[&[9, 8, 7, 6, 5, 4]]), None);
    let (_, b) = model.forward(ids(&[&[9, 8, 7, 60, 50, 40]]), None);
    let (a, b) = (values(a), values(b));
    assert_eq!(a[..3 * 32], b[..3 * 32]);
    assert_ne!(a[3 * 32..], b[3 * 32..]);
}

#[test]
fn forward_is_forward_embeds_on_the_token_embeddings_and_the_head_is_tied() {
    let model = LlamaConfig::tiny().init(4, &infer_device());
    let tokens = ids(&[&[1, 2, 3, 4]]);
    let (logits, hidden) = model.forward(tokens.clone(), None);
    let direct = model.forward_embeds(model.embed_tokens(tokens), None);
    assert_eq!(values(hidden.clone()), values(direct));
    let embed = model.wte_weight().into_data().try_to_vec::<f32>().unwrap();
    let (h, l) = (values(hidden), values(logits));
    let dot: f32 = (0..32).map(|j| h[32 * 3 + j] * embed[32 * 100 + j]).sum();
    assert!(
        (l[256 * 3 + 100] - dot).abs() < 1e-5,
        "{} vs {dot}",
        l[256 * 3 + 100]
    );
}

#[test]
fn an_untied_head_uses_lm_head() {
    let model = LlamaConfig::tiny()
        .with_tie_word_embeddings(false)
        .init(4, &infer_device());
    let (logits, hidden) = model.forward(ids(&[&[1, 2]]), None);
    let head = model.lm_head.as_ref().unwrap().weight.val();
    assert_eq!(
        model.lm_head_weight().into_data(),
        head.clone().into_data(),
        "lm_head_weight is the untied head"
    );
    assert_ne!(
        model.lm_head_weight().into_data(),
        model.wte_weight().into_data()
    );
    let head = head.into_data().try_to_vec::<f32>().unwrap();
    let (h, l) = (values(hidden), values(logits));
    let dot: f32 = (0..32).map(|j| h[32 + j] * head[32 * 7 + j]).sum();
    assert!((l[256 + 7] - dot).abs() < 1e-5, "{} vs {dot}", l[256 + 7]);
}

#[test]
fn a_frozen_backbone_passes_gradients_to_the_input_embeddings_only() {
    let device = train_device();
    for frozen in [true, false] {
        let model = LlamaConfig::tiny().init(5, &device).frozen(frozen);
        let embeds =
            Tensor::<3>::random([2, 5, 32], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let mask = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 5]),
            &device,
        );
        let loss = model
            .lm_logits(model.forward_embeds(embeds.clone(), Some(mask)))
            .powi_scalar(2)
            .mean();
        let grads = loss.backward();
        let g = embeds
            .grad(&grads)
            .expect("input embeddings get a gradient");
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
        let embed = model.embed_tokens.weight.val().grad(&grads);
        let q = model.layers[0].self_attn.q_proj.weight.val().grad(&grads);
        let norm = model.norm.weight.val().grad(&grads);
        assert_eq!(
            embed.is_some(),
            !frozen,
            "embed_tokens gradient, frozen = {frozen}"
        );
        assert_eq!(q.is_some(), !frozen, "q_proj gradient, frozen = {frozen}");
        assert_eq!(norm.is_some(), !frozen, "norm gradient, frozen = {frozen}");
    }
}

#[test]
fn inverse_frequencies_follow_hugging_face() {
    // transformers 5.24 `ROPE_INIT_FUNCTIONS` on head_dim 8, theta 10000 (default) and theta
    // 500 with linear factor 2.5, printed as float32.
    let default = super::inverse_frequencies(8, 10000.0, RopeScaling::None);
    assert_eq!(default, [1.0, 0.1, 0.01, 0.001]);
    let linear = super::inverse_frequencies(8, 500.0, RopeScaling::Linear { factor: 2.5 });
    let expected = [0.4f32, 0.084_589_7, 0.017_888_544, 0.003_782_966_4];
    for (g, e) in linear.iter().zip(expected) {
        assert_eq!(*g, e, "linear scaling");
    }
}

#[test]
fn invalid_configs_are_refused_by_field() {
    let bad = [
        (
            LlamaConfig {
                vocab_size: 0,
                ..LlamaConfig::tiny()
            },
            "`vocab_size`",
        ),
        (
            LlamaConfig {
                num_key_value_heads: 3,
                ..LlamaConfig::tiny()
            },
            "`num_key_value_heads`",
        ),
        (LlamaConfig::tiny().with_head_dim(Some(7)), "`head_dim` (7)"),
        (
            LlamaConfig::tiny().with_rope_theta(f64::NAN),
            "`rope_theta`",
        ),
        (
            LlamaConfig::tiny().with_rope_scaling(RopeScaling::Linear { factor: 0.0 }),
            "`rope_scaling.factor`",
        ),
    ];
    for (config, field) in bad {
        let msg = config.check().unwrap_err().to_string();
        assert!(msg.contains(field), "{msg}");
    }
    LlamaConfig::smollm2_135m().check().unwrap();
}
