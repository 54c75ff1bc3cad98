//! CLLM4Rec (Zhu et al., WWW 2024): a GPT-2 whose vocabulary is extended with one token per
//! user and per item. Two LLMs share the backbone: the collaborative LLM (user/item tokens
//! from the collaborative tables; softmax over item tokens, head tied to the collaborative item
//! table) and the content LLM (user/item tokens from the content tables; softmax over words,
//! head tied to the backbone's word embeddings). Mutual regularization pulls each side's
//! user/item embeddings toward the other side's (detached).

pub mod batch;
pub mod checkpoint;
pub mod files;
pub mod loss;
pub mod scorer;
pub mod train;

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::rng::Rng;
use crate::model::backbone::Backbone;
use batch::Batch;

/// Which user/item tables a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Collab,
    Content,
}

#[derive(Module, Debug)]
pub struct Cllm4Rec {
    pub backbone: Backbone,
    /// [users, d]
    pub collab_users: Param<Tensor<2>>,
    /// [items, d]; also the collaborative LLM's output head
    pub collab_items: Param<Tensor<2>>,
    /// [users, d]
    pub content_users: Param<Tensor<2>>,
    /// [items, d]
    pub content_items: Param<Tensor<2>>,
}

/// N(0, std) values from a seeded stable RNG (Box-Muller), so that initial weights do not
/// depend on a backend's RNG.
pub fn normal(rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt() * std;
        out.push((r * (2.0 * std::f64::consts::PI * u2).cos()) as f32);
        out.push((r * (2.0 * std::f64::consts::PI * u2).sin()) as f32);
    }
    out.truncate(n);
    out
}

fn table(rng: &mut Rng, rows: usize, d: usize, device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(normal(rng, rows * d, 0.02), [rows, d]),
        device,
    ))
}

impl Cllm4Rec {
    /// Fresh user/item tables, N(0, 0.02), around `backbone`.
    pub fn new(
        backbone: Backbone,
        users: usize,
        items: usize,
        seed: u64,
        device: &Device,
    ) -> Cllm4Rec {
        let d = backbone.wte_weight().dims()[1];
        let mut rng = Rng::new(seed ^ 0x636c_6c6d_3472_6563);
        Cllm4Rec {
            backbone,
            collab_users: table(&mut rng, users, d, device),
            collab_items: table(&mut rng, items, d, device),
            content_users: table(&mut rng, users, d, device),
            content_items: table(&mut rng, items, d, device),
        }
    }

    /// (base vocabulary, users, items): user u is token `base + u`, item i `base + users + i`.
    pub fn layout(&self) -> (usize, usize, usize) {
        (
            self.backbone.wte_weight().dims()[0],
            self.collab_users.val().dims()[0],
            self.collab_items.val().dims()[0],
        )
    }

    /// Replaces the user and item tables of `side` (`[rows, d]` row-major, the shapes they
    /// have).
    pub fn set_tables(&mut self, side: Side, [u, i]: [Vec<f32>; 2]) {
        let (users, items) = match side {
            Side::Collab => (&mut self.collab_users, &mut self.collab_items),
            Side::Content => (&mut self.content_users, &mut self.content_items),
        };
        for (p, v) in [(users, u), (items, i)] {
            let t = p.val();
            let (shape, device) = (t.dims(), t.device());
            *p = Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), &device));
        }
    }

    pub fn tables(&self, side: Side) -> (Tensor<2>, Tensor<2>) {
        match side {
            Side::Collab => (self.collab_users.val(), self.collab_items.val()),
            Side::Content => (self.content_users.val(), self.content_items.val()),
        }
    }

    /// Input embeddings: words from the backbone, users and items from `side`'s tables.
    ///
    /// # Shapes
    /// - ids: `[batch, seq]` in the extended vocabulary
    /// - output: `[batch, seq, d]`
    pub fn embed(&self, ids: Tensor<2, Int>, side: Side) -> Tensor<3> {
        let (base, nu, ni) = self.layout();
        let (base, nu, ni) = (base as i64, nu as i64, ni as i64);
        let is_word = ids.clone().lower_elem(base).float().unsqueeze_dim::<3>(2); // [b, s, 1]
        let is_item = ids
            .clone()
            .greater_equal_elem(base + nu)
            .float()
            .unsqueeze_dim::<3>(2);
        let is_user = (is_word.ones_like() - is_word.clone() - is_item.clone()).clamp(0.0, 1.0);
        let words = self.backbone.embed_tokens(ids.clone().clamp(0, base - 1)); // [b, s, d]
        let (users, items) = self.tables(side);
        let u = embedding(users, (ids.clone() - base).clamp(0, nu - 1)); // [b, s, d]
        let i = embedding(items, (ids - base - nu).clamp(0, ni - 1)); // [b, s, d]
        words * is_word + u * is_user + i * is_item
    }

    /// The backbone's last hidden state for a batch.
    ///
    /// # Shapes
    /// - output: `[rows * len, d]` (flattened, so positions index it directly)
    pub fn hidden(&self, b: &Batch, side: Side, device: &Device) -> Tensor<2> {
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(b.ids.clone(), [b.rows, b.len]), device);
        let mask =
            Tensor::<2, Int>::from_data(TensorData::new(b.mask.clone(), [b.rows, b.len]), device);
        let h = self
            .backbone
            .forward_embeds(self.embed(ids, side), Some(mask), b.dropout); // [rows, len, d]
        let d = h.dims()[2];
        h.reshape([b.rows * b.len, d])
    }

    /// Scores of every item for the last token of each row (the recommendation head: hidden
    /// state times the collaborative item table).
    ///
    /// # Shapes
    /// - output: `[rows, items]`
    pub fn rec_logits(&self, b: &Batch, device: &Device) -> Tensor<2> {
        let h = self.hidden(b, Side::Collab, device);
        let last =
            Tensor::<1, Int>::from_data(TensorData::new(b.last_pos.clone(), [b.rows]), device);
        h.select(0, last)
            .matmul(self.collab_items.val().transpose()) // [rows, d] x [d, items]
    }
}
