//! How a stage trains CLLM4Rec: the engine chosen once ([`Engine::fused`]), then one epoch
//! call, one snapshot of the kept epoch and one way to score, whichever code computes. The
//! `pretrain` and `finetune` stages each have one loop over [`Trainer::epoch`].
//!
//! - [`Trainer::Fused`]: the fused CPU code (`model::fused`: GPT-2 on the default backend).
//!   The burn model it came from stays as it was until [`Trainer::into_model`] writes the
//!   trained values into it once; validation scores the parameters themselves.
//! - [`Trainer::Burn`]: burn's autodiff model with burn's Adam.
//!
//! Both compute the same losses (`cllm4rec::loss` is the definition; the fused code is checked
//! against it) and burn's Adam with epsilon 1e-8.

use std::io::Write;

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};

use crate::model::cllm4rec::batch::{Batch, Seq};
use crate::model::cllm4rec::checkpoint;
use crate::model::cllm4rec::loss::{self, ContentVocab, Reg};
use crate::model::cllm4rec::scorer::Scoring;
use crate::model::cllm4rec::train::{epoch, EpochStats, NonFinite};
use crate::model::cllm4rec::{Cllm4Rec, Side};
use crate::model::dropout::Dropout;
use crate::model::flops::DecoderCost;
use crate::model::fused::{self, Engine, Objective, Params};

/// Which Adam state an epoch steps with. Pretraining steps both LMs with one; finetuning's
/// content epochs have their own, as in the authors' code (docs/fidelity.md, 9e).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    Main = 0,
    Content = 1,
}

pub enum Trainer {
    Fused {
        params: Params,
        adam: [fused::Adam; 2],
        /// The model the parameters were read from; it receives them at the end.
        model: Cllm4Rec,
        cost: DecoderCost,
    },
    Burn {
        /// `None` only while an epoch has it.
        model: Option<Cllm4Rec>,
        optim: [ModuleOptimizer; 2],
        cost: DecoderCost,
    },
}

/// A kept epoch: the fused parameters, or the burn model's checkpoint bytes.
pub enum Snapshot {
    Fused(Params),
    Burn(Vec<u8>),
}

impl Trainer {
    /// The trainer `engine` picks for `model` (a pretrained backbone stays frozen unless
    /// `train_backbone`); says which in `log`.
    pub fn new(
        engine: Engine,
        model: Cllm4Rec,
        train_backbone: bool,
        log: &mut dyn Write,
    ) -> Trainer {
        let cost = DecoderCost::of(&model.backbone, train_backbone);
        let t = match engine.fused(&model, train_backbone) {
            Some(params) => Trainer::Fused {
                params,
                adam: [fused::Adam::new(1e-8), fused::Adam::new(1e-8)],
                model,
                cost,
            },
            None => Trainer::Burn {
                model: Some(model),
                optim: [(); 2].map(|_| AdamConfig::new().with_epsilon(1e-8).init()),
                cost,
            },
        };
        let name = match t {
            Trainer::Fused { .. } => "fused CPU (model::fused)",
            Trainer::Burn { .. } => "burn model",
        };
        let _ = writeln!(log, "trainer: {name}");
        t
    }

    /// What the backbone costs per token ([`crate::model::flops`]).
    pub fn cost(&self) -> DecoderCost {
        match self {
            Trainer::Fused { cost, .. } | Trainer::Burn { cost, .. } => *cost,
        }
    }

    /// One epoch over `seqs` in batches of `batch_size` (in the given order): loss, gradients
    /// and a step of the `opt` Adam per batch. With `targets` (one list per sequence) the
    /// objective is RecLLM's, whatever `objective` says. With `dropout` (the epoch's), batch
    /// `k` drops with `dropout.batch(k)`. The stats count its model FLOPs.
    #[allow(clippy::too_many_arguments)]
    pub fn epoch(
        &mut self,
        seqs: &[Seq],
        targets: Option<&[Vec<u32>]>,
        batch_size: usize,
        lr: f64,
        reg: Reg,
        objective: &Objective,
        opt: Optimizer,
        dropout: Option<Dropout>,
        tag: (&str, usize),
        progress: &mut dyn FnMut(&str),
    ) -> Result<EpochStats, NonFinite> {
        let flops = self.epoch_flops(seqs, targets.is_some(), objective);
        let mut stats = match self {
            Trainer::Fused { params, adam, .. } => fused::epoch(
                params,
                &mut adam[opt as usize],
                seqs,
                targets,
                batch_size,
                lr,
                reg,
                objective,
                dropout,
                tag,
                progress,
            )?,
            Trainer::Burn { model, optim, .. } => {
                let f = |m: &Cllm4Rec, b: &Batch, t: Option<&[Vec<u32>]>| {
                    let device = m.collab_items.val().device();
                    match (t, objective) {
                        (Some(t), _) => loss::rec(m, b, t, reg, &device),
                        (None, Objective::Rec(t)) => loss::rec(m, b, t, reg, &device),
                        (None, Objective::Collab) => loss::collab(m, b, reg, &device),
                        (None, Objective::Content(vocab)) => {
                            loss::content(m, b, vocab, reg, &device)
                        }
                    }
                };
                let m = model.take().expect("the model is back after each epoch");
                let optim = &mut optim[opt as usize];
                let (m, stats) = epoch(
                    m, optim, seqs, targets, batch_size, lr, dropout, tag, &f, progress,
                )?;
                *model = Some(m);
                stats
            }
        };
        stats.flops = flops;
        Ok(stats)
    }

    /// The model FLOPs of an epoch over `seqs`: each sequence forward and backward through the
    /// backbone and the objective's head (the item table, trained; or the word head, trained
    /// with the backbone), at every prediction, or once per row for RecLLM (`rec`).
    fn epoch_flops(&self, seqs: &[Seq], rec: bool, objective: &Objective) -> f64 {
        let cost = self.cost();
        let model = match self {
            Trainer::Fused { model, .. } => model,
            Trainer::Burn { model, .. } => model.as_ref().expect("held"),
        };
        let (_, _, items) = model.layout();
        let rec = rec || matches!(objective, Objective::Rec(_));
        let (rows, head_trained) = match objective {
            // RecLLM's and the collaborative LM's head: the item table, trained
            _ if rec => (items, true),
            Objective::Collab | Objective::Rec(_) => (items, true),
            Objective::Content(ContentVocab::Full) => {
                (model.backbone.word_head_weight().dims()[0], cost.trained)
            }
            Objective::Content(ContentVocab::Corpus(ids, _)) => (ids.len(), cost.trained),
        };
        seqs.iter()
            .map(|s| {
                let t = s.tokens.len();
                let positions = if rec {
                    1
                } else {
                    t.saturating_sub(s.prompt_len.max(1))
                };
                cost.forward(t) + cost.backward(t) + cost.head(positions, rows, Some(head_trained))
            })
            .sum()
    }

    /// The user and item tables of `side` as they are now, `[rows, d]` row-major.
    pub fn tables(&self, side: Side) -> [Vec<f32>; 2] {
        match self {
            Trainer::Fused { params, .. } => params.tables(side),
            Trainer::Burn { model, .. } => {
                let (u, i) = model.as_ref().expect("held").tables(side);
                [fused::values(u), fused::values(i)]
            }
        }
    }

    /// The model as it is now, to score with (no autodiff).
    pub fn scoring(&self) -> Scoring {
        match self {
            Trainer::Fused { params, .. } => Scoring::Fused(params.clone()),
            Trainer::Burn { model, .. } => Scoring::Burn(model.as_ref().expect("held").valid()),
        }
    }

    /// The model as it is now, to restore with [`Trainer::restore`]; `skip` is a module path
    /// left out of the burn model's bytes (a frozen backbone kept as a file).
    pub fn snapshot(&self, skip: Option<&str>) -> Result<Snapshot, String> {
        Ok(match self {
            Trainer::Fused { params, .. } => Snapshot::Fused(params.clone()),
            Trainer::Burn { model, .. } => Snapshot::Burn(checkpoint::to_bytes_except(
                model.as_ref().expect("held"),
                skip,
            )?),
        })
    }

    /// Back to a [`Trainer::snapshot`] of this trainer.
    pub fn restore(&mut self, s: Snapshot, skip: Option<&str>) -> Result<(), String> {
        match (self, s) {
            (Trainer::Fused { params, .. }, Snapshot::Fused(p)) => *params = p,
            (Trainer::Burn { model, .. }, Snapshot::Burn(bytes)) => {
                let m = model.take().expect("held");
                *model = Some(checkpoint::from_bytes_except(m, &bytes, skip)?);
            }
            _ => unreachable!("a snapshot is restored into the trainer that took it"),
        }
        Ok(())
    }

    /// The trained model.
    pub fn into_model(self) -> Cllm4Rec {
        match self {
            Trainer::Fused { params, model, .. } => {
                let device = model.collab_items.val().device();
                params.into_model(model, &device)
            }
            Trainer::Burn { model, .. } => model.expect("held"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backbone::Backbone;
    use crate::model::backend::train_device;
    use crate::model::cllm4rec::loss::{ContentVocab, RegScale};
    use crate::model::gpt2::Gpt2Config;

    /// 4 users (tokens 512..515) and 6 items (516..521) on the tiny GPT-2's 512 words.
    fn model() -> Cllm4Rec {
        let device = train_device();
        let gpt2 = Gpt2Config::tiny().init(3, &device);
        Cllm4Rec::new(Backbone::from(gpt2), 4, 6, 11, &device)
    }

    fn collab() -> Vec<Seq> {
        (0..4)
            .map(|u| Seq {
                tokens: [512 + u, 10, 20]
                    .into_iter()
                    .chain((0..4).map(|k| 516 + (u + k * 5) % 6))
                    .collect(),
                prompt_len: 3,
            })
            .collect()
    }

    fn content() -> Vec<Seq> {
        (0..4)
            .map(|i| Seq {
                tokens: vec![516 + i, 40, 41, 100 + i, 200, 300 + i],
                prompt_len: 3,
            })
            .collect()
    }

    /// A collaborative epoch with the main Adam, then a content epoch with `opt`; or, with
    /// `fresh`, the content epoch in a new trainer (new Adam states) on the trained model.
    fn train(engine: Engine, opt: Optimizer, fresh: bool) -> Vec<Vec<f32>> {
        let reg = Reg {
            lambda_c: 1.0,
            scale: RegScale::Map,
        };
        let mut log = Vec::new();
        let mut t = Trainer::new(engine, model(), true, &mut log);
        let epoch = |t: &mut Trainer, seqs: &[Seq], o: &Objective, opt: Optimizer| {
            t.epoch(
                seqs,
                None,
                2,
                1e-2,
                reg,
                o,
                opt,
                None,
                ("t", 1),
                &mut |_| {},
            )
            .unwrap();
        };
        epoch(&mut t, &collab(), &Objective::Collab, Optimizer::Main);
        if fresh {
            t = Trainer::new(engine, t.into_model(), true, &mut log);
        }
        epoch(
            &mut t,
            &content(),
            &Objective::Content(&ContentVocab::Full),
            opt,
        );
        Params::from_model(&t.into_model(), true).unwrap().t
    }

    /// The model FLOPs an epoch counts are PyTorch's FlopCounterMode's on transformers' GPT-2
    /// and Llama (tests/reference/make_flops.py): every objective, the backbone trained and
    /// frozen, both engines.
    #[test]
    fn epochs_count_the_flops_pytorch_counts() {
        use crate::model::LlamaConfig;
        let text = std::fs::read_to_string("tests/fixtures/flops.json").unwrap();
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        let reg = Reg {
            lambda_c: 1.0,
            scale: RegScale::Map,
        };
        let device = train_device();
        let cases = fixture["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 12);
        for c in cases {
            let trained = c["trained"].as_bool().unwrap();
            let backbone = match c["backbone"].as_str().unwrap() {
                "gpt2" => Backbone::from(Gpt2Config::tiny().init(3, &device)),
                _ => Backbone::from(LlamaConfig::tiny().init(3, &device)),
            };
            let model = Cllm4Rec::new(backbone.frozen(!trained), 4, 6, 11, &device);
            let seqs: Vec<Seq> = c["seqs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Seq {
                    tokens: serde_json::from_value(s["tokens"].clone()).unwrap(),
                    prompt_len: s["prompt_len"].as_u64().unwrap() as usize,
                })
                .collect();
            let corpus = ContentVocab::corpus(
                c["corpus"]
                    .as_array()
                    .map(|a| a.iter().map(|w| w.as_u64().unwrap() as u32).collect())
                    .unwrap_or_else(Vec::new),
            );
            let targets: Vec<Vec<u32>> = (0..seqs.len() as u32).map(|u| vec![u]).collect();
            let (objective, targets) = match c["objective"].as_str().unwrap() {
                "collab" => (Objective::Collab, None),
                "content" => (Objective::Content(&corpus), None),
                _ => (Objective::Collab, Some(&targets[..])),
            };
            for engine in [Engine::Auto, Engine::Burn] {
                let mut log = Vec::new();
                let mut t = Trainer::new(engine, model.clone(), trained, &mut log);
                let stats = t
                    .epoch(
                        &seqs,
                        targets,
                        2,
                        1e-3,
                        reg,
                        &objective,
                        Optimizer::Main,
                        None,
                        ("t", 1),
                        &mut |_| {},
                    )
                    .unwrap();
                assert_eq!(stats.flops, c["flops"].as_f64().unwrap(), "{c} {engine}");
            }
        }
    }

    /// Finetuning's content epochs step with an Adam of their own (docs/fidelity.md, 9e): as
    /// a fresh Adam would, not with the moments of the RecLLM's steps.
    #[test]
    fn the_content_optimizer_keeps_its_own_state() {
        for engine in [Engine::Auto, Engine::Burn] {
            let own = train(engine, Optimizer::Content, false);
            assert!(own == train(engine, Optimizer::Content, true), "{engine}");
            assert!(own != train(engine, Optimizer::Main, false), "{engine}");
        }
    }
}
