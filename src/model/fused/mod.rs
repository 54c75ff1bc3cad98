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
mod model;
mod train;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::backbone::Backbone;
use crate::model::cllm4rec::batch::Seq;
pub use crate::model::cllm4rec::loss::ContentVocab;
use crate::model::cllm4rec::{Cllm4Rec, Side};
use crate::model::dropout::Dropout;
use kernels::Heads;
pub use model::{Grads, StepLoss};
pub use train::{epoch, Adam};

crate::choice! {
    /// How CLLM4Rec trains and scores: `auto` (this code where it applies) or `burn` (the burn
    /// model always). `pretrain` and `finetune` take it as a param and record it in model.json,
    /// whose scorer (finetuning's validation, `evaluate`) then uses the same.
    #[derive(Default)]
    Engine { #[default] Auto = "auto", Burn = "burn" }
}

impl Engine {
    pub fn is_auto(&self) -> bool {
        *self == Engine::Auto
    }

    /// The one rule of which code computes: the model's parameters for this code when the
    /// engine is `auto`, the build computes on the default CPU backend and the backbone is a
    /// GPT-2; `None`: the burn model computes.
    pub fn fused(self, m: &Cllm4Rec, train_backbone: bool) -> Option<Params> {
        (self == Engine::Auto && crate::model::backend::KEY.is_none())
            .then(|| Params::from_model(m, train_backbone))
            .flatten()
    }
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
    /// Next word over the words (all of them, or the corpus's only), user/item tokens from
    /// the content tables.
    Content(&'a ContentVocab),
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

pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
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

    /// The user and item tables of `side`, `[rows, d]` row-major.
    pub fn tables(&self, side: Side) -> [Vec<f32>; 2] {
        let (u, i) = match side {
            Side::Collab => (COLLAB_USERS, COLLAB_ITEMS),
            Side::Content => (CONTENT_USERS, CONTENT_ITEMS),
        };
        [self.t[u].clone(), self.t[i].clone()]
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
    /// The dropout of a training step (`None`: none, as in scoring).
    pub dropout: Option<Dropout>,
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
            dropout: None,
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

#[cfg(test)]
mod tests;
