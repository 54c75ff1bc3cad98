//! CLLM4Rec as a recommender: each user's recommendation prompt (all training items) through
//! the backbone; the last token's hidden state times the collaborative item table scores
//! every item. It computes with the code its model trained with (model.json's `engine`, the
//! rule of `Engine::fused`): the fused CPU code (`model::fused`: a GPT-2 on the default CPU
//! backend, `engine: auto`) or the burn model.

use std::path::Path;

use burn::tensor::Device;

use crate::data::rng::Rng;
use crate::eval::scorer::Scorer;
use crate::eval::EvalSplit;
use crate::model::backend::infer_device;
use crate::model::cllm4rec::batch::{fit, shuffle_items, Batch, Seq};
use crate::model::cllm4rec::{files, Cllm4Rec};
use crate::model::flops::DecoderCost;
use crate::model::fused::{Engine, Params};
use crate::text::binfmt::Corpus;

/// Users scored in one forward pass.
const SUB_BATCH: usize = 32;

crate::choice! {
    /// The order of a user's items in the recommendation prompts of finetuning and scoring
    /// (docs/fidelity.md, 9d).
    #[derive(Default)]
    PromptOrder {
        /// Time order, oldest first, as tokenized (the default).
        #[default]
        Time = "time",
        /// Shuffled, as the authors' code does (unseeded there): a new order each finetuning
        /// epoch; for validation and test one order per user, drawn from the stage's seed and
        /// the user. Shuffled before a long prompt is cut, so the cut keeps a random subset.
        Shuffle = "shuffle",
    }
}

impl PromptOrder {
    pub fn is_time(&self) -> bool {
        *self == PromptOrder::Time
    }
}

/// A model to score with, in the code that computes.
#[allow(clippy::large_enum_variant)] // one per scorer, built once per model or epoch
pub enum Scoring {
    /// The fused CPU code's parameters.
    Fused(Params),
    /// The burn model, without autodiff.
    Burn(Cllm4Rec),
}

impl Scoring {
    /// `model` for the code `engine` picks.
    pub fn new(engine: Engine, model: Cllm4Rec) -> Scoring {
        match engine.fused(&model, false) {
            Some(p) => Scoring::Fused(p),
            None => Scoring::Burn(model),
        }
    }

    fn n_positions(&self) -> usize {
        match self {
            Scoring::Fused(p) => p.shape.positions,
            Scoring::Burn(m) => m.backbone.n_positions(),
        }
    }
}

pub struct Cllm4RecScorer {
    model: Option<Scoring>,
    /// The recommendation prompt of each user, if the user has one.
    prompts: Vec<Option<Seq>>,
    items: usize,
    /// The first item token's id.
    item_offset: u32,
    /// The longest prompt the model was trained with (model.json's `n_positions`): longer
    /// prompts keep their most recent items.
    max_len: usize,
    device: Device,
}

impl Cllm4RecScorer {
    /// Prompts from a `tokenize` output, the model set later.
    pub fn prompts(tokens: &Path) -> Result<Cllm4RecScorer, String> {
        let (base, users, items) = files::vocab(tokens)?;
        let rec = Corpus::read(&tokens.join("rec.tok")).map_err(|e| e.to_string())?;
        let mut prompts = vec![None; users];
        for d in 0..rec.len() {
            let (p, m) = rec.doc(d);
            if rec.user[d] >= 0 {
                prompts[rec.user[d] as usize] = Some(Seq {
                    tokens: p.iter().chain(m).copied().collect(),
                    prompt_len: p.len() + m.len(),
                });
            }
        }
        Ok(Cllm4RecScorer {
            model: None,
            prompts,
            items,
            item_offset: (base + users) as u32,
            max_len: usize::MAX,
            device: infer_device(),
        })
    }

    /// A finetune (or pretrain) output with the prompts of a `tokenize` output, in the order
    /// the model was finetuned with (model.json's `prompt_order`; shuffled ones from `seed`).
    pub fn load(model_dir: &Path, tokens: &Path, seed: u64) -> Result<Cllm4RecScorer, String> {
        let mut s = Self::prompts(tokens)?;
        let (model, info) = files::read(model_dir, &s.device)?;
        if info.items != s.items || info.users != s.prompts.len() {
            return Err(format!(
                "the model has {} users and {} items, the tokenized data {} and {}",
                info.users,
                info.items,
                s.prompts.len(),
                s.items
            ));
        }
        s.set_model(Scoring::new(info.engine, model));
        s.max_len = info.n_positions;
        if info.prompt_order == PromptOrder::Shuffle {
            s.shuffle_prompts(seed);
        }
        Ok(s)
    }

    /// Each user's prompt items in an order drawn from `seed` and the user, from now on.
    pub fn shuffle_prompts(&mut self, seed: u64) {
        for (u, p) in self.prompts.iter_mut().enumerate() {
            if let Some(s) = p {
                let mut rng =
                    Rng::new(seed ^ 0x7072_6f6d ^ (u as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                shuffle_items(s, self.item_offset, &mut rng);
            }
        }
    }

    /// Score with this model from now on.
    pub fn set_model(&mut self, model: Scoring) {
        if let Scoring::Burn(m) = &model {
            self.device = m.collab_items.val().device();
        }
        self.model = Some(model);
    }

    /// Prompts longer than `max_len` tokens keep their most recent items from now on.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// The model FLOPs of scoring `users` (`model::flops`): each one's prompt, as
    /// [`Scorer::score`] fits it, forward through a backbone of cost `cost` and the item head.
    pub fn flops(&self, cost: &DecoderCost, users: &[u32]) -> f64 {
        let max_len = self
            .max_len
            .min(self.model.as_ref().map_or(usize::MAX, |m| m.n_positions()));
        users
            .iter()
            .filter_map(|&u| self.prompts.get(u as usize).cloned().flatten())
            .map(|s| {
                let t = fit(s, max_len).tokens.len();
                cost.forward(t) + cost.head(1, self.items, None)
            })
            .sum()
    }

    /// (user, prompt) of every user with a prompt, fitted to the longest prompt.
    pub fn prompt_seqs(&self) -> Vec<(u32, Seq)> {
        self.prompts
            .iter()
            .enumerate()
            .filter_map(|(u, p)| p.clone().map(|p| (u as u32, fit(p, self.max_len))))
            .collect()
    }
}

impl Scorer for Cllm4RecScorer {
    fn model(&self) -> String {
        "cllm4rec".into()
    }

    fn score(&mut self, users: &[u32], _: &EvalSplit) -> Result<Vec<Vec<f32>>, String> {
        let model = self.model.as_ref().ok_or("no model loaded")?;
        let max_len = self.max_len.min(model.n_positions());
        let with: Vec<(usize, Seq)> = users
            .iter()
            .enumerate()
            .filter_map(|(k, &u)| {
                self.prompts
                    .get(u as usize)
                    .cloned()
                    .flatten()
                    .map(|s| (k, fit(s, max_len)))
            })
            .collect();
        let mut out = vec![vec![0f32; self.items]; users.len()];
        if with.is_empty() {
            return Ok(out);
        }
        // Score in sub-batches of similar length, to pad little.
        let mut order: Vec<usize> = (0..with.len()).collect();
        order.sort_by_key(|&r| (with[r].1.tokens.len(), r));
        for chunk in order.chunks(SUB_BATCH) {
            let seqs: Vec<Seq> = chunk.iter().map(|&r| with[r].1.clone()).collect();
            let values: Vec<f32> = match model {
                Scoring::Fused(p) => p.rec_scores(&seqs),
                Scoring::Burn(m) => m
                    .rec_logits(&Batch::new(&seqs), &self.device) // [rows, items]
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| format!("{e:?}"))?,
            };
            for (row, &r) in chunk.iter().enumerate() {
                out[with[r].0].copy_from_slice(&values[row * self.items..(row + 1) * self.items]);
            }
        }
        Ok(out)
    }
}
