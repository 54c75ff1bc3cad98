//! Properties of the port that need no reference numbers: seeded initialisation, the padding
//! mask, and gradients through a frozen backbone. Agreement with Hugging Face is tested in
//! `tests/gpt2_reference.rs`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Int, Tensor, TensorData};

use super::{gelu_new, Gpt2, Gpt2Config};
use crate::model::backend::{infer_device, train_device};

/// Every float parameter's values, in visiting order.
fn weights(model: &Gpt2) -> Vec<Vec<f32>> {
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
    let config = Gpt2Config::tiny();
    let a = weights(&config.init(7, &infer_device()));
    let b = weights(&config.init(7, &infer_device()));
    let c = weights(&config.init(8, &infer_device()));
    // wte, wpe, 2 x (ln_1 2, c_attn 2, c_proj 2, ln_2 2, c_fc 2, c_proj 2), ln_f 2.
    assert_eq!(a.len(), 2 + 2 * 12 + 2);
    assert_eq!(a, b);
    assert_ne!(a[0], c[0]);
    // Random tensors differ; constant ones (biases, layer norms) agree.
    let differ = a.iter().zip(&c).filter(|(x, y)| x != y).count();
    assert_eq!(
        differ,
        2 + 2 * 4,
        "wte, wpe and the four weight matrices of each block"
    );
}

#[test]
fn the_initialisation_follows_hugging_face() {
    let config = Gpt2Config::tiny();
    let model = config.init(0, &infer_device());
    let std = |v: &[f32]| {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    let wte = model.wte_weight().into_data().try_to_vec::<f32>().unwrap();
    assert!((std(&wte) - 0.02).abs() < 0.001, "wte std {}", std(&wte)); // 16384 draws
    let c_proj = model.h[0]
        .mlp
        .c_proj
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        (std(&c_proj) - 0.01).abs() < 0.001,
        "c_proj std {}",
        std(&c_proj)
    ); // 0.02/sqrt(4)
    let ln = model.h[1]
        .ln_2
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(ln.iter().all(|&x| x == 1.0));
    let bias = model.h[1].attn.c_attn.bias.as_ref().unwrap().val();
    assert!(bias
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .all(|&x| x == 0.0));
}

#[test]
fn padded_tokens_are_not_attended_to() {
    let model = Gpt2Config::tiny().init(3, &infer_device());
    // Positions 2 and 3 are padding, in the middle of the row so that later real tokens could
    // see them; row 2 is left-padded, so its first query has no key at all.
    let mask = ids(&[&[1, 1, 0, 0, 1, 1], &[0, 0, 1, 1, 1, 1]]);
    let a = ids(&[&[5, 6, 7, 8, 9, 10], &[5, 6, 7, 8, 9, 10]]);
    let b = ids(&[&[5, 6, 400, 401, 9, 10], &[300, 301, 7, 8, 9, 10]]);
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
    // Without the mask the padding tokens do change the real positions: the test can fail.
    let (_, ua) = model.forward(a, None);
    let (_, ub) = model.forward(b, None);
    assert_ne!(real(values(ua)), real(values(ub)));
}

#[test]
fn forward_is_forward_embeds_on_the_token_embeddings() {
    let model = Gpt2Config::tiny().init(4, &infer_device());
    let tokens = ids(&[&[1, 2, 3, 4]]);
    let (logits, hidden) = model.forward(tokens.clone(), None);
    let direct = model.forward_embeds(model.embed_tokens(tokens), None);
    assert_eq!(values(hidden.clone()), values(direct));
    // The head is tied: logits[t] = hidden[t] . wte[v].
    let wte = model.wte_weight().into_data().try_to_vec::<f32>().unwrap();
    let (h, l) = (values(hidden), values(logits));
    let dot: f32 = (0..32).map(|j| h[32 * 3 + j] * wte[32 * 100 + j]).sum();
    assert!(
        (l[512 * 3 + 100] - dot).abs() < 1e-5,
        "{} vs {dot}",
        l[512 * 3 + 100]
    );
}

#[test]
fn a_frozen_backbone_passes_gradients_to_the_input_embeddings_only() {
    let device = train_device();
    for frozen in [true, false] {
        let model = Gpt2Config::tiny().init(5, &device).frozen(frozen);
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
        let wte = model.wte.weight.val().grad(&grads);
        let c_fc = model.h[0].mlp.c_fc.weight.val().grad(&grads);
        assert_eq!(wte.is_some(), !frozen, "wte gradient, frozen = {frozen}");
        assert_eq!(c_fc.is_some(), !frozen, "c_fc gradient, frozen = {frozen}");
    }
}

#[test]
fn gelu_new_is_the_tanh_approximation() {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated in Python's float64 `math`.
    // The exact GELU differs by 4.1e-4, 1.5e-4, 1.7e-5, 1.5e-4, 9.8e-5 at these points.
    let x = [-3.0f32, -1.0, 0.5, 1.0, 2.0];
    let expected = [
        -0.0036373920817729943,
        -0.15880800939172324,
        0.34571400982514394,
        0.8411919906082768,
        1.954597694087775,
    ];
    let got = gelu_new(Tensor::<1>::from_floats(x, &infer_device()))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for (g, e) in got.iter().zip(expected) {
        assert!((*g as f64 - e).abs() < 2e-6, "{g} vs {e}");
    }
}

#[test]
fn gradients_are_bit_identical_when_repeated() {
    // Pipeline outputs are content-hashed, so training must be bit-reproducible. Wide enough
    // that the matrix products are split across threads.
    let device = train_device();
    let config = Gpt2Config {
        n_embd: 128,
        vocab_size: 1024,
        ..Gpt2Config::tiny()
    };
    let run = || {
        let model = config.init(1, &device);
        let ids: Vec<i64> = (0..8 * 64).map(|i| i * 37 % 1024).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [8, 64]), &device);
        let grads = model.forward(ids, None).0.powi_scalar(2).mean().backward();
        struct Grads<'a>(&'a burn::tensor::Gradients, Vec<Vec<f32>>);
        impl ModuleVisitor for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let g = param
                    .val()
                    .grad(self.0)
                    .expect("every parameter has a gradient");
                self.1.push(g.into_data().try_to_vec::<f32>().unwrap());
            }
        }
        let mut collect = Grads(&grads, Vec::new());
        model.visit(&mut collect);
        collect.1
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 28);
    assert!(a == b, "two identical backward passes differ");
}
