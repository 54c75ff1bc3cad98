//! Multi-VAE and LightGCN against reference numbers computed in float64 with numpy by
//! `tests/reference/baselines_reference.py` (forward passes written from the papers, gradients
//! by finite differences), on tiny fixed-weight models.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::lightgcn::{Graph, LightGcn};
use super::multivae::{MultiVae, SparseRows};
use crate::data::rng::Rng;
use crate::model::backend::train_device;

/// 0.5 sin(0.37 k + c) for the k-th value, as in the Python script.
fn fill(n: usize, c: f64) -> Vec<f32> {
    (0..n)
        .map(|k| (0.5 * (0.37 * k as f64 + c).sin()) as f32)
        .collect()
}

fn p2(rows: usize, cols: usize, c: f64, d: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(fill(rows * cols, c), [rows, cols]),
        d,
    ))
}

fn p1(n: usize, c: f64, d: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(fill(n, c), [n]), d))
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32")
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{k}]: got {g}, want {w}"
        );
    }
}

fn tiny_vae(d: &Device) -> MultiVae {
    let (items, hidden, latent) = (5, 3, 2);
    MultiVae {
        enc_w1: p2(items, hidden, 0.1, d),
        enc_b1: p1(hidden, 0.2, d),
        enc_w2: p2(hidden, 2 * latent, 0.3, d),
        enc_b2: p1(2 * latent, 0.4, d),
        dec_w1: p2(latent, hidden, 0.5, d),
        dec_b1: p1(hidden, 0.6, d),
        dec_w2: p2(hidden, items, 0.7, d),
        dec_b2: p1(items, 0.8, d),
    }
}

#[test]
fn multivae_loss_scores_and_gradients_match_numpy() {
    let d = train_device();
    let m = tiny_vae(&d);
    let users: [&[u32]; 2] = [&[0, 2, 3], &[1, 4]];
    let x = SparseRows::normalised(&users, 0.0, &mut Rng::new(0));
    let eps = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, -0.5, 1.2, 0.1], [2, 2]), &d);
    let loss = m.loss(&x, &users, eps, 0.3);
    assert!(
        (loss.nll - 4.044616908664314).abs() < 1e-5,
        "nll {}",
        loss.nll
    );
    assert!(
        (loss.kl - 0.27604549288245295).abs() < 1e-5,
        "kl {}",
        loss.kl
    );
    assert_close(
        &values(loss.value.clone()),
        &[4.12743055652905],
        1e-5,
        "loss",
    );
    let grads = loss.value.backward();
    let g = |p: &Param<Tensor<2>>| values(p.val().grad(&grads).expect("a gradient"));
    let g1 = |p: &Param<Tensor<1>>| values(p.val().grad(&grads).expect("a gradient"));
    #[rustfmt::skip]
    let enc_w1 = [0.039137797891442005, 0.03570745965575384, -0.029620616182057802, 0.04480207715928941, 0.04577647061410062, -0.030109898130348256, 0.039137797891442005, 0.03570745965575384, -0.029620616182057802, 0.039137797891442005, 0.03570745965575384, -0.029620616182057802, 0.04480207715928941, 0.04577647061410062, -0.030109898130348256];
    assert_close(&g(&m.enc_w1), &enc_w1, 1e-4, "d loss / d enc_w1");
    #[rustfmt::skip]
    let dec_b2 = [0.01980404951140713, 0.03508174284405641, 0.02287875489059843, -0.013366901807643217, -0.06439764499432954];
    assert_close(&g1(&m.dec_b2), &dec_b2, 1e-4, "d loss / d dec_b2");
    #[rustfmt::skip]
    let enc_b2 = [0.10151262586077792, 0.12538779348147955, 0.09153279689755323, 0.086647719221844];
    assert_close(&g1(&m.enc_b2), &enc_b2, 1e-4, "d loss / d enc_b2");
    #[rustfmt::skip]
    let scores = [0.3906479346022985, 0.43008265559794584, 0.4113077067673557, 0.33686418935748197, 0.21682768421942364, 0.3821413407041902, 0.42384977321236605, 0.4081921272854196, 0.3372875918462256, 0.2207327631382664];
    assert_close(&values(m.scores(&x)), &scores, 1e-5, "scores");
}

#[test]
fn multivae_dropout_keeps_about_half_and_rescales() {
    let row: Vec<u32> = (0..10_000).collect();
    let x = SparseRows::normalised(&[&row], 0.5, &mut Rng::new(7));
    let kept = x.val.len() as f64 / row.len() as f64;
    assert!((kept - 0.5).abs() < 0.02, "kept {kept}");
    let v = 1.0 / (row.len() as f64).sqrt() / 0.5;
    assert!(x.val.iter().all(|&a| (a as f64 - v).abs() < 1e-7));
    let y = SparseRows::normalised(&[&row], 0.5, &mut Rng::new(7));
    assert_eq!(x.col, y.col, "dropout is deterministic from the seed");
}

#[test]
fn multivae_init_is_deterministic_from_the_seed() {
    let d = train_device();
    let a = crate::model::cllm4rec::checkpoint::to_bytes(&MultiVae::new(30, 8, 4, 3, &d));
    let b = crate::model::cllm4rec::checkpoint::to_bytes(&MultiVae::new(30, 8, 4, 3, &d));
    let c = crate::model::cllm4rec::checkpoint::to_bytes(&MultiVae::new(30, 8, 4, 4, &d));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn lightgcn_propagation_loss_and_gradient_match_numpy() {
    let d = train_device();
    let train = vec![vec![0u32, 1], vec![1, 2, 3], vec![0]];
    let g = Graph::new(&train, 4);
    let m = LightGcn {
        ego: p2(7, 2, 0.9, &d),
    };
    #[rustfmt::skip]
    let fin = [0.11040079423974924, 0.06185289991386926, -0.059664572355492426, -0.06644831743262587, 0.1528032250578341, 0.04138794238065656, 0.20153831253185098, 0.08760413969559472, 0.033901205798576556, -0.00786588432588553, -0.07520129925148422, -0.0760419633983203, -0.052169005853128586, -0.02295566834530828];
    assert_close(&values(m.embeddings(&g, 3)), &fin, 1e-5, "final embeddings");
    let loss = m.bpr_loss(&g, 3, &[(0, 1, 2), (1, 3, 0), (2, 0, 3)], 0.1);
    assert!(
        (loss.bpr - 0.6795760517676014).abs() < 1e-5,
        "bpr {}",
        loss.bpr
    );
    assert!(
        (loss.reg - 0.38480101050723436).abs() < 1e-5,
        "reg {}",
        loss.reg
    );
    assert!(
        (loss.value - 0.7180561528183248).abs() < 1e-5,
        "loss {}",
        loss.value
    );
    #[rustfmt::skip]
    let ego = [-0.00615856476926524, 0.005296155125567026, 0.04412606319226242, 0.027623731690962217, -0.017162119059221936, -0.007322563055911502, -0.03186293540125007, -0.027691931137052705, -0.013178137137082047, -0.017117606720962186, 0.001874328636741751, -0.00734680782876751, -0.004420953048089871, -0.007438714755281239];
    assert_close(&values(loss.grad), &ego, 1e-4, "d loss / d ego");
}

#[test]
fn lightgcn_graph_has_both_directions_and_inverse_square_root_degrees() {
    // user 0 has items 0 and 1, user 1 item 0: nodes are users 0, 1 and items 2, 3
    let g = Graph::new(&[vec![0, 1], vec![0]], 3);
    assert_eq!(g.offsets, vec![0, 2, 3, 5, 6, 6]);
    assert_eq!(g.neighbours, vec![2, 3, 2, 0, 1, 0]);
    let r = 1.0 / 2f32.sqrt();
    assert_eq!(g.norm, vec![r, 1.0, r, 1.0, 0.0], "item 2 has no edges");
}

/// Multi-VAE's model FLOPs are what PyTorch's FlopCounterMode counts for RecBole's layout
/// (tests/reference/make_flops.py; its input is dense, so the sparse product's non-zeros are
/// all of it).
#[test]
fn multivae_flops_match_pytorch() {
    let text = std::fs::read_to_string("tests/fixtures/flops.json").unwrap();
    let f: serde_json::Value = serde_json::from_str(&text).unwrap();
    let m = &f["multivae"];
    let n = |k: &str| m[k].as_u64().unwrap() as usize;
    let (items, hidden, latent, rows) = (n("items"), n("hidden"), n("latent"), n("rows"));
    for (train, key) in [(true, "train"), (false, "score")] {
        let ours = crate::model::flops::multivae(items, hidden, latent, rows, rows * items, train);
        assert_eq!(ours, m[key].as_f64().unwrap(), "{key}");
    }
}
