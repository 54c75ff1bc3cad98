//! A fused CPU trainer for CLLM4Rec (pretraining and RecLLM finetuning) with a GPT-2
//! backbone: the forward and backward passes written out by hand (as llm.c does for GPT-2)
//! over packed sequences, so no padding is computed, attention runs per sequence and keeps
//! only each query row's log-denominator for the backward pass, and the softmax heads never
//! hold all logits at once (blocks of rows compute logits, loss and gradients together).
//!
//! It computes the same function as the burn model (`cllm4rec::loss::{collab, content, rec}`,
//! then burn's Adam): tests check its losses and gradients against PyTorch's
//! (`tests/fixtures/cllm4rec-grads`, made by `tests/reference/make_cllm4rec_grads.py`) and
//! against the burn model's. Results differ from burn's in the last bits of floating point.
//! The `pretrain` and `finetune` stages train with it, and the CLLM4Rec scorer scores with it
//! (validation, `evaluate`), for GPT-2 backbones on the default CPU backend (parameter
//! `engine`); Llama backbones and the other backends use the burn model.

pub mod kernels;

use std::collections::HashMap;
use std::time::Instant;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::backbone::Backbone;
use crate::model::cllm4rec::batch::Seq;
use crate::model::cllm4rec::train::{EpochStats, NonFinite};
use crate::model::cllm4rec::Cllm4Rec;
use kernels::{Heads, NormStats};

/// Checks the `engine` param of `pretrain` and `finetune`: `auto` (this trainer where it
/// applies) or `burn` (the burn model always).
pub fn check_engine(engine: &str) -> Result<(), (String, String)> {
    if engine == "auto" || engine == "burn" {
        Ok(())
    } else {
        Err((
            "engine".into(),
            format!("`engine` is `auto` or `burn`, not `{engine}`"),
        ))
    }
}

/// The model's parameters for this trainer, when `engine` is `auto`, the build computes on the
/// default CPU backend and the backbone is a GPT-2; `None`: train with the burn model. Writes
/// which one to `log`.
pub fn for_stage(
    engine: &str,
    m: &Cllm4Rec,
    train_backbone: bool,
    log: &mut dyn std::io::Write,
) -> Option<(Params, Adam)> {
    let fused = (engine == "auto" && crate::model::backend::KEY.is_none())
        .then(|| Params::from_model(m, train_backbone))
        .flatten()
        .map(|p| (p, Adam::new(1e-8)));
    let name = if fused.is_some() {
        "fused CPU (model::fused)"
    } else {
        "burn model"
    };
    let _ = writeln!(log, "trainer: {name}");
    fused
}

/// The sizes of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Words (GPT-2's vocabulary); user `u` is token `vocab + u`, item `i` `vocab + users + i`.
    pub vocab: usize,
    pub positions: usize,
    pub d: usize,
    pub layers: usize,
    pub heads: usize,
    pub inner: usize,
    pub users: usize,
    pub items: usize,
    pub eps: f32,
}

// Where each tensor sits in `Params::t` (and in gradients and optimizer state).
const WTE: usize = 0;
const WPE: usize = 1;
const COLLAB_USERS: usize = 2;
const COLLAB_ITEMS: usize = 3;
const CONTENT_USERS: usize = 4;
const CONTENT_ITEMS: usize = 5;
const LNF_G: usize = 6;
const LNF_B: usize = 7;
const LAYER0: usize = 8;
const PER_LAYER: usize = 12;
// offsets inside a layer
const LN1_G: usize = 0;
const LN1_B: usize = 1;
const ATTN_W: usize = 2;
const ATTN_B: usize = 3;
const PROJ_W: usize = 4;
const PROJ_B: usize = 5;
const LN2_G: usize = 6;
const LN2_B: usize = 7;
const FC_W: usize = 8;
const FC_B: usize = 9;
const FCP_W: usize = 10;
const FCP_B: usize = 11;

fn layer(l: usize, k: usize) -> usize {
    LAYER0 + l * PER_LAYER + k
}

/// Which LLM a batch trains.
pub enum Objective<'a> {
    /// Next item over the items, user/item tokens from the collaborative tables.
    Collab,
    /// Next word over the words, user/item tokens from the content tables; `Some(ids)`: the
    /// softmax runs over these word ids only (sorted), with each id's index among them.
    Content(Option<(&'a [i64], &'a HashMap<u32, i64>)>),
    /// RecLLM finetuning: each row's last token predicts the row's target items (indices among
    /// the items) with a multinomial likelihood over all items; collaborative tables.
    Rec(&'a [Vec<u32>]),
}

impl Objective<'_> {
    fn tables(&self) -> (usize, usize, usize, usize) {
        match self {
            Objective::Collab | Objective::Rec(_) => {
                (COLLAB_USERS, COLLAB_ITEMS, CONTENT_USERS, CONTENT_ITEMS)
            }
            Objective::Content(_) => (CONTENT_USERS, CONTENT_ITEMS, COLLAB_USERS, COLLAB_ITEMS),
        }
    }
}

/// All parameters as flat row-major vectors, in the order of the constants above; weights of
/// linear layers `[in, out]` as burn's `Linear` stores them.
#[derive(Clone)]
pub struct Params {
    pub shape: Shape,
    pub t: Vec<Vec<f32>>,
    /// Whether the backbone is trained (a pretrained one is frozen).
    pub train_backbone: bool,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensor")
}

impl Params {
    /// The model's parameters, if its backbone is a GPT-2.
    pub fn from_model(m: &Cllm4Rec, train_backbone: bool) -> Option<Params> {
        let Backbone::Gpt2(g) = &m.backbone else {
            return None;
        };
        let [vocab, d] = g.wte.weight.val().dims();
        let first = g.h.first()?;
        let shape = Shape {
            vocab,
            positions: g.n_positions(),
            d,
            layers: g.h.len(),
            heads: first.attn.n_head,
            inner: first.mlp.c_fc.weight.val().dims()[1],
            users: m.collab_users.val().dims()[0],
            items: m.collab_items.val().dims()[0],
            eps: g.ln_f.epsilon as f32,
        };
        let mut t = vec![
            values(g.wte.weight.val()),
            values(g.wpe.weight.val()),
            values(m.collab_users.val()),
            values(m.collab_items.val()),
            values(m.content_users.val()),
            values(m.content_items.val()),
            values(g.ln_f.weight.val()),
            values(g.ln_f.bias.val()),
        ];
        for b in &g.h {
            let bias = |l: &burn::nn::Linear| l.bias.as_ref().map(|b| values(b.val()));
            t.push(values(b.ln_1.weight.val()));
            t.push(values(b.ln_1.bias.val()));
            t.push(values(b.attn.c_attn.weight.val()));
            t.push(bias(&b.attn.c_attn)?);
            t.push(values(b.attn.c_proj.weight.val()));
            t.push(bias(&b.attn.c_proj)?);
            t.push(values(b.ln_2.weight.val()));
            t.push(values(b.ln_2.bias.val()));
            t.push(values(b.mlp.c_fc.weight.val()));
            t.push(bias(&b.mlp.c_fc)?);
            t.push(values(b.mlp.c_proj.weight.val()));
            t.push(bias(&b.mlp.c_proj)?);
        }
        Some(Params {
            shape,
            t,
            train_backbone,
        })
    }

    /// Writes the values back into `m` (the model they were read from).
    pub fn into_model(self, mut m: Cllm4Rec, device: &Device) -> Cllm4Rec {
        let s = self.shape;
        let mut f = Feed {
            t: self.t.into_iter(),
            device,
        };
        let wte = f.two(s.vocab, s.d);
        let wpe = f.two(s.positions, s.d);
        m.collab_users = f.two(s.users, s.d);
        m.collab_items = f.two(s.items, s.d);
        m.content_users = f.two(s.users, s.d);
        m.content_items = f.two(s.items, s.d);
        let Backbone::Gpt2(g) = &mut m.backbone else {
            unreachable!("Params come from a GPT-2 backbone");
        };
        g.wte.weight = wte;
        g.wpe.weight = wpe;
        g.ln_f.weight = f.one(s.d);
        g.ln_f.bias = f.one(s.d);
        for b in &mut g.h {
            b.ln_1.weight = f.one(s.d);
            b.ln_1.bias = f.one(s.d);
            b.attn.c_attn.weight = f.two(s.d, 3 * s.d);
            b.attn.c_attn.bias = Some(f.one(3 * s.d));
            b.attn.c_proj.weight = f.two(s.d, s.d);
            b.attn.c_proj.bias = Some(f.one(s.d));
            b.ln_2.weight = f.one(s.d);
            b.ln_2.bias = f.one(s.d);
            b.mlp.c_fc.weight = f.two(s.d, s.inner);
            b.mlp.c_fc.bias = Some(f.one(s.inner));
            b.mlp.c_proj.weight = f.two(s.inner, s.d);
            b.mlp.c_proj.bias = Some(f.one(s.d));
        }
        m.backbone = m.backbone.frozen(!self.train_backbone);
        m
    }

    fn heads(&self) -> Heads {
        Heads {
            n: self.shape.heads,
            dim: self.shape.d / self.shape.heads,
        }
    }
}

/// Hands out the parameter vectors in order as burn parameters.
struct Feed<'a> {
    t: std::vec::IntoIter<Vec<f32>>,
    device: &'a Device,
}

impl Feed<'_> {
    fn next(&mut self) -> Vec<f32> {
        self.t.next().expect("one vector per parameter")
    }

    fn two(&mut self, rows: usize, cols: usize) -> Param<Tensor<2>> {
        let v = self.next();
        Param::from_tensor(Tensor::from_data(
            TensorData::new(v, [rows, cols]),
            self.device,
        ))
    }

    fn one(&mut self, n: usize) -> Param<Tensor<1>> {
        let v = self.next();
        Param::from_tensor(Tensor::from_data(TensorData::new(v, [n]), self.device))
    }
}

/// A batch of sequences packed one after the other, without padding.
pub struct Packed {
    pub tokens: Vec<u32>,
    pub lens: Vec<usize>,
    /// Packed index of each predicting position, ...
    pub pred: Vec<usize>,
    /// ... and the token it predicts.
    pub targets: Vec<u32>,
}

impl Packed {
    /// Every main-text token is predicted by the token before it (the last prompt token
    /// predicts the first main token), as `cllm4rec::batch::Batch` does.
    pub fn new(seqs: &[Seq]) -> Packed {
        let mut p = Packed {
            tokens: Vec::new(),
            lens: Vec::new(),
            pred: Vec::new(),
            targets: Vec::new(),
        };
        for s in seqs {
            let start = p.tokens.len();
            p.tokens.extend_from_slice(&s.tokens);
            p.lens.push(s.tokens.len());
            for t in s.prompt_len.max(1)..s.tokens.len() {
                p.pred.push(start + t - 1);
                p.targets.push(s.tokens[t]);
            }
        }
        p
    }
}

struct LayerActs {
    x: Vec<f32>,
    ln1: Vec<f32>,
    ln1_stats: NormStats,
    qkv: Vec<f32>,
    /// Per sequence, each query row's log softmax denominator `[heads, len]`.
    lse: Vec<Vec<f32>>,
    att: Vec<f32>,
    x_mid: Vec<f32>,
    ln2: Vec<f32>,
    ln2_stats: NormStats,
    fc: Vec<f32>,
    act: Vec<f32>,
}

/// What the forward pass keeps for the backward pass.
struct Acts {
    layers: Vec<LayerActs>,
    x_last: Vec<f32>,
    lnf_stats: NormStats,
    hidden: Vec<f32>,
}

/// A batch's loss and its parts.
#[derive(Debug, Clone, Copy)]
pub struct StepLoss {
    /// (sum of NLL + lambda_c / 2 * regularizer) / predictions.
    pub loss: f64,
    pub nll: f64,
    pub predictions: usize,
}

/// Gradients, one per parameter (`None`: the parameter takes no part, or is frozen).
pub type Grads = Vec<Option<Vec<f32>>>;

impl Params {
    /// Input embeddings plus position embeddings, `[tokens, d]`.
    fn embed(&self, b: &Packed, users: usize, items: usize) -> Vec<f32> {
        let s = &self.shape;
        let d = s.d;
        let mut x = vec![0f32; b.tokens.len() * d];
        let mut k = 0;
        for &len in &b.lens {
            for pos in 0..len {
                let row = self.token_row(b.tokens[k], users, items);
                let wpe = &self.t[WPE][pos * d..(pos + 1) * d];
                for ((x, r), p) in x[k * d..(k + 1) * d].iter_mut().zip(row).zip(wpe) {
                    *x = r + p;
                }
                k += 1;
            }
        }
        x
    }

    /// (tensor, row) that embeds `tok`.
    fn token_ref(&self, tok: u32, users: usize, items: usize) -> (usize, usize) {
        let s = &self.shape;
        let tok = tok as usize;
        if tok < s.vocab {
            (WTE, tok)
        } else if tok < s.vocab + s.users {
            (users, tok - s.vocab)
        } else {
            (items, tok - s.vocab - s.users)
        }
    }

    fn token_row(&self, tok: u32, users: usize, items: usize) -> &[f32] {
        let d = self.shape.d;
        let (t, r) = self.token_ref(tok, users, items);
        &self.t[t][r * d..(r + 1) * d]
    }

    fn forward(&self, b: &Packed, users: usize, items: usize) -> Acts {
        let s = &self.shape;
        let d = s.d;
        let mut x = self.embed(b, users, items);
        let mut layers = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let p = |k| &self.t[layer(l, k)];
            let (ln1, ln1_stats) = kernels::layer_norm(&x, p(LN1_G), p(LN1_B), d, s.eps);
            let qkv = kernels::linear(&ln1, p(ATTN_W), p(ATTN_B), d, 3 * d);
            let (att, lse) = kernels::attention(&qkv, &b.lens, self.heads());
            let proj = kernels::linear(&att, p(PROJ_W), p(PROJ_B), d, d);
            let x_mid: Vec<f32> = x.iter().zip(&proj).map(|(a, b)| a + b).collect();
            let (ln2, ln2_stats) = kernels::layer_norm(&x_mid, p(LN2_G), p(LN2_B), d, s.eps);
            let fc = kernels::linear(&ln2, p(FC_W), p(FC_B), d, s.inner);
            let act = kernels::gelu(&fc);
            let mlp = kernels::linear(&act, p(FCP_W), p(FCP_B), s.inner, d);
            let x_out: Vec<f32> = x_mid.iter().zip(&mlp).map(|(a, b)| a + b).collect();
            layers.push(LayerActs {
                x: std::mem::replace(&mut x, x_out),
                ln1,
                ln1_stats,
                qkv,
                lse,
                att,
                x_mid,
                ln2,
                ln2_stats,
                fc,
                act,
            });
        }
        let (hidden, lnf_stats) = kernels::layer_norm(&x, &self.t[LNF_G], &self.t[LNF_B], d, s.eps);
        Acts {
            layers,
            x_last: x,
            lnf_stats,
            hidden,
        }
    }

    /// The last hidden state `[tokens, d]` of a packed batch, user/item tokens embedded with
    /// the objective's tables (for tests).
    pub fn hidden(&self, b: &Packed, objective: &Objective) -> Vec<f32> {
        let (u, i, _, _) = objective.tables();
        self.forward(b, u, i).hidden
    }

    /// Recommendation scores: each sequence's last hidden state times the collaborative item
    /// table, `[sequences, items]` (what `Cllm4Rec::rec_logits` computes).
    pub fn rec_scores(&self, seqs: &[Seq]) -> Vec<f32> {
        use rayon::prelude::*;
        let (d, items) = (self.shape.d, self.shape.items);
        let b = Packed::new(seqs);
        let hidden = self.forward(&b, COLLAB_USERS, COLLAB_ITEMS).hidden;
        let mut last = vec![0f32; seqs.len() * d];
        let mut at = 0;
        for (r, &len) in b.lens.iter().enumerate() {
            at += len;
            if len > 0 {
                last[r * d..(r + 1) * d].copy_from_slice(&hidden[(at - 1) * d..at * d]);
            }
        }
        let table = &self.t[COLLAB_ITEMS];
        let mut scores = vec![0f32; seqs.len() * items];
        scores
            .par_chunks_mut(8 * items)
            .zip(last.par_chunks(8 * d))
            .for_each(|(out, h)| {
                let rows = h.len() / d;
                kernels::gemm(
                    (rows, d, items),
                    h,
                    (d, 1),
                    table,
                    (1, d),
                    0.0,
                    out,
                    (items, 1),
                );
            });
        scores
    }

    /// The batch's loss and the gradients of every parameter that takes part: the backbone's
    /// (unless frozen) and the objective's user/item tables.
    pub fn loss_and_grads(
        &self,
        b: &Packed,
        objective: &Objective,
        lambda_c: f64,
    ) -> (StepLoss, Grads) {
        let s = self.shape;
        let d = s.d;
        let (own_u, own_i, other_u, other_i) = objective.tables();
        let acts = self.forward(b, own_u, own_i);
        let n_next = b.targets.len();
        let mut grads: Grads = vec![None; self.t.len()];
        let train = self.train_backbone;
        let zeros = |k: usize| Some(vec![0f32; self.t[k].len()]);
        if train {
            for (k, g) in grads.iter_mut().enumerate() {
                if !(COLLAB_USERS..=CONTENT_ITEMS).contains(&k) {
                    *g = zeros(k);
                }
            }
        }
        grads[own_u] = zeros(own_u);
        grads[own_i] = zeros(own_i);

        // the head: which rows predict what
        let (pos, starts, flat, n) = match objective {
            Objective::Rec(targets) => {
                // the last token of each row; a repeated target counts once in the loss (as
                // burn's multinomial weights) but every time in the number of predictions
                let mut at = 0;
                let (mut pos, mut starts, mut flat, mut n) = (Vec::new(), vec![0], Vec::new(), 0);
                for (&len, ts) in b.lens.iter().zip(targets.iter()) {
                    at += len;
                    pos.push(at - 1);
                    let mut uniq: Vec<usize> = ts.iter().map(|&t| t as usize).collect();
                    uniq.sort_unstable();
                    uniq.dedup();
                    flat.extend(uniq);
                    starts.push(flat.len());
                    n += ts.len();
                }
                (pos, starts, flat, n)
            }
            Objective::Collab => {
                let flat = b
                    .targets
                    .iter()
                    .map(|&t| t as usize - s.vocab - s.users)
                    .collect();
                (b.pred.clone(), (0..=n_next).collect(), flat, n_next)
            }
            Objective::Content(None) => {
                let flat = b.targets.iter().map(|&t| t as usize).collect();
                (b.pred.clone(), (0..=n_next).collect(), flat, n_next)
            }
            Objective::Content(Some((_, index))) => {
                let flat = b
                    .targets
                    .iter()
                    .map(|t| index.get(t).copied().unwrap_or(0) as usize)
                    .collect();
                (b.pred.clone(), (0..=n_next).collect(), flat, n_next)
            }
        };
        let scale = 1.0 / n.max(1) as f32;
        let mut h_sel = vec![0f32; pos.len() * d];
        for (r, &p) in pos.iter().enumerate() {
            h_sel[r * d..(r + 1) * d].copy_from_slice(&acts.hidden[p * d..(p + 1) * d]);
        }
        let targets = (starts.as_slice(), flat.as_slice());
        let head = match objective {
            Objective::Collab | Objective::Rec(_) => {
                let out = kernels::softmax_head(&h_sel, &self.t[own_i], targets, d, scale, true);
                add(
                    grads[own_i].as_mut().expect("own table"),
                    out.dw.as_ref().expect("asked"),
                );
                out
            }
            Objective::Content(None) => {
                let out = kernels::softmax_head(&h_sel, &self.t[WTE], targets, d, scale, train);
                if let (Some(g), Some(dw)) = (grads[WTE].as_mut(), out.dw.as_ref()) {
                    add(g, dw);
                }
                out
            }
            Objective::Content(Some((ids, _))) => {
                let mut w = vec![0f32; ids.len() * d];
                for (r, &id) in ids.iter().enumerate() {
                    let id = id as usize;
                    w[r * d..(r + 1) * d].copy_from_slice(&self.t[WTE][id * d..(id + 1) * d]);
                }
                let out = kernels::softmax_head(&h_sel, &w, targets, d, scale, train);
                if let (Some(g), Some(dw)) = (grads[WTE].as_mut(), out.dw.as_ref()) {
                    for (r, &id) in ids.iter().enumerate() {
                        let id = id as usize;
                        add(&mut g[id * d..(id + 1) * d], &dw[r * d..(r + 1) * d]);
                    }
                }
                out
            }
        };
        let mut dhidden = vec![0f32; b.tokens.len() * d];
        for (r, &p) in pos.iter().enumerate() {
            dhidden[p * d..(p + 1) * d].copy_from_slice(&head.dh[r * d..(r + 1) * d]);
        }

        // mutual regularization of every user/item token occurrence
        let mut reg = 0f64;
        if lambda_c != 0.0 {
            let coef = (lambda_c as f32) * scale;
            for &tok in &b.tokens {
                let (t, row) = self.token_ref(tok, own_u, own_i);
                if t == WTE {
                    continue;
                }
                let other = if t == own_u { other_u } else { other_i };
                let own = &self.t[t][row * d..(row + 1) * d];
                let oth = &self.t[other][row * d..(row + 1) * d];
                let g = &mut grads[t].as_mut().expect("own table")[row * d..(row + 1) * d];
                let mut sq = 0f32;
                for ((g, a), o) in g.iter_mut().zip(own).zip(oth) {
                    let diff = a - o;
                    sq += diff * diff;
                    *g += coef * diff;
                }
                reg += sq as f64;
            }
        }

        // backward through ln_f and the blocks
        let (dg, db) = two(&mut grads, LNF_G, LNF_B);
        let mut dx = kernels::layer_norm_backward(
            &acts.x_last,
            &acts.lnf_stats,
            &self.t[LNF_G],
            &dhidden,
            d,
            dg.zip(db),
        );
        drop(dhidden);
        for l in (0..s.layers).rev() {
            let a = &acts.layers[l];
            let p = |k| &self.t[layer(l, k)];
            // x_out = x_mid + c_proj(gelu(c_fc(ln_2(x_mid))))
            let (dw, dbias) = two(&mut grads, layer(l, FCP_W), layer(l, FCP_B));
            let dact = kernels::linear_backward(&a.act, p(FCP_W), &dx, (s.inner, d), dw.zip(dbias));
            let dfc = kernels::gelu_backward(&a.fc, &dact);
            drop(dact);
            let (dw, dbias) = two(&mut grads, layer(l, FC_W), layer(l, FC_B));
            let dln2 = kernels::linear_backward(&a.ln2, p(FC_W), &dfc, (d, s.inner), dw.zip(dbias));
            drop(dfc);
            let (dg, db) = two(&mut grads, layer(l, LN2_G), layer(l, LN2_B));
            let dmid = kernels::layer_norm_backward(
                &a.x_mid,
                &a.ln2_stats,
                p(LN2_G),
                &dln2,
                d,
                dg.zip(db),
            );
            add(&mut dx, &dmid);
            drop(dmid);
            // x_mid = x + c_proj(attention(c_attn(ln_1(x))))
            let (dw, dbias) = two(&mut grads, layer(l, PROJ_W), layer(l, PROJ_B));
            let datt = kernels::linear_backward(&a.att, p(PROJ_W), &dx, (d, d), dw.zip(dbias));
            let dqkv = kernels::attention_backward(&a.qkv, &a.lse, &datt, &b.lens, self.heads());
            drop(datt);
            let (dw, dbias) = two(&mut grads, layer(l, ATTN_W), layer(l, ATTN_B));
            let dln1 =
                kernels::linear_backward(&a.ln1, p(ATTN_W), &dqkv, (d, 3 * d), dw.zip(dbias));
            drop(dqkv);
            let (dg, db) = two(&mut grads, layer(l, LN1_G), layer(l, LN1_B));
            let dxin =
                kernels::layer_norm_backward(&a.x, &a.ln1_stats, p(LN1_G), &dln1, d, dg.zip(db));
            add(&mut dx, &dxin);
        }

        // the embeddings: positions, words (if trained) and the objective's tables
        let mut k = 0;
        for &len in &b.lens {
            for pos in 0..len {
                let g = &dx[k * d..(k + 1) * d];
                if let Some(wpe) = grads[WPE].as_mut() {
                    add(&mut wpe[pos * d..(pos + 1) * d], g);
                }
                let (t, row) = self.token_ref(b.tokens[k], own_u, own_i);
                if let Some(table) = grads[t].as_mut() {
                    add(&mut table[row * d..(row + 1) * d], g);
                }
                k += 1;
            }
        }
        let loss = (head.nll + lambda_c / 2.0 * reg) / n.max(1) as f64;
        (
            StepLoss {
                loss,
                nll: head.nll,
                predictions: n,
            },
            grads,
        )
    }
}

/// `a += b`, elementwise.
fn add(a: &mut [f32], b: &[f32]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// Two different gradients, mutably.
fn two(g: &mut Grads, i: usize, j: usize) -> (Option<&mut [f32]>, Option<&mut [f32]>) {
    assert!(i < j);
    let (lo, hi) = g.split_at_mut(j);
    (lo[i].as_deref_mut(), hi[0].as_deref_mut())
}

/// Adam as burn 0.22 computes it (`burn::optim::Adam`: betas 0.9 and 0.999, no weight decay):
/// per tensor a step counter that advances only when the tensor gets a gradient, and
/// `update = m * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps * sqrt(1 - b2^t))`.
pub struct Adam {
    pub eps: f32,
    state: Vec<Option<Moments>>,
}

/// One tensor's optimizer state: steps taken, first and second moments.
type Moments = (usize, Vec<f32>, Vec<f32>);

impl Adam {
    pub fn new(eps: f32) -> Adam {
        Adam {
            eps,
            state: Vec::new(),
        }
    }

    /// One step on `tensors` (in a fixed order from call to call) with their gradients.
    pub fn step(&mut self, tensors: &mut [Vec<f32>], grads: &Grads, lr: f64) {
        use rayon::prelude::*;
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.state.resize_with(tensors.len(), || None);
        let lr = lr as f32;
        let eps = self.eps;
        for ((p, g), st) in tensors.iter_mut().zip(grads).zip(&mut self.state) {
            let Some(g) = g else { continue };
            let (time, m, v) =
                st.get_or_insert_with(|| (0, vec![0f32; g.len()], vec![0f32; g.len()]));
            let first = *time == 0;
            *time += 1;
            let t = *time as i32;
            let bc2 = (1.0 - B2.powi(t)).sqrt();
            let factor = bc2 / (1.0 - B1.powi(t));
            let eps = eps * bc2;
            const PIECE: usize = 1 << 14;
            p.par_chunks_mut(PIECE)
                .zip(g.par_chunks(PIECE))
                .zip(m.par_chunks_mut(PIECE).zip(v.par_chunks_mut(PIECE)))
                .for_each(|((p, g), (m, v))| {
                    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                        if first {
                            *m = g * (1.0 - B1);
                            *v = g * g * (1.0 - B2);
                        } else {
                            *m = *m * B1 + g * (1.0 - B1);
                            *v = *v * B2 + g * g * (1.0 - B2);
                        }
                        let update = *m * factor / (v.sqrt() + eps);
                        *p -= update * lr;
                    }
                });
        }
    }
}

/// One epoch over `seqs` in batches of `batch_size`: loss, gradients and an Adam step per
/// batch, as `cllm4rec::train::epoch` does with the burn model. With `targets` (one list per
/// sequence) the objective is RecLLM's ([`Objective::Rec`]) whatever `objective` says.
#[allow(clippy::too_many_arguments)]
pub fn epoch(
    params: &mut Params,
    adam: &mut Adam,
    seqs: &[Seq],
    targets: Option<&[Vec<u32>]>,
    batch_size: usize,
    lr: f64,
    lambda_c: f64,
    objective: &Objective,
    (phase, epoch_no): (&str, usize),
    progress: &mut dyn FnMut(&str),
) -> Result<EpochStats, NonFinite> {
    let t0 = Instant::now();
    let (mut loss_sum, mut nll_sum, mut preds, mut tokens) = (0.0, 0.0, 0usize, 0usize);
    let batch_size = batch_size.max(1);
    let n_batches = seqs.len().div_ceil(batch_size);
    for (k, chunk) in seqs.chunks(batch_size).enumerate() {
        let b = Packed::new(chunk);
        let rec;
        let objective = match targets {
            Some(t) => {
                rec = Objective::Rec(&t[k * batch_size..k * batch_size + chunk.len()]);
                &rec
            }
            None => objective,
        };
        let (loss, grads) = params.loss_and_grads(&b, objective, lambda_c);
        if !loss.loss.is_finite() {
            return Err(NonFinite {
                phase: phase.to_owned(),
                epoch: epoch_no,
                batch: k + 1,
                value: loss.loss,
            });
        }
        adam.step(&mut params.t, &grads, lr);
        loss_sum += loss.loss * loss.predictions as f64;
        nll_sum += loss.nll;
        preds += loss.predictions;
        tokens += b.tokens.len();
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        progress(&format!(
            "{phase} epoch {epoch_no} batch {}/{n_batches} loss {:.4} {:.0} tok/s",
            k + 1,
            loss_sum / preds.max(1) as f64,
            tokens as f64 / secs
        ));
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(EpochStats {
        epoch: epoch_no,
        phase: phase.to_owned(),
        loss: loss_sum / preds.max(1) as f64,
        nll: nll_sum / preds.max(1) as f64,
        tokens,
        tokens_per_s: tokens as f64 / seconds.max(1e-9),
        seconds,
    })
}

#[cfg(test)]
mod tests;
