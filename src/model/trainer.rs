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
use crate::model::cllm4rec::loss::{self, Reg};
use crate::model::cllm4rec::scorer::Scoring;
use crate::model::cllm4rec::train::{epoch, EpochStats, NonFinite};
use crate::model::cllm4rec::Cllm4Rec;
use crate::model::fused::{self, Engine, Objective, Params};

pub enum Trainer {
    Fused {
        params: Params,
        adam: fused::Adam,
        /// The model the parameters were read from; it receives them at the end.
        model: Cllm4Rec,
    },
    Burn {
        /// `None` only while an epoch has it.
        model: Option<Cllm4Rec>,
        optim: ModuleOptimizer,
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
        let t = match engine.fused(&model, train_backbone) {
            Some(params) => Trainer::Fused {
                params,
                adam: fused::Adam::new(1e-8),
                model,
            },
            None => Trainer::Burn {
                model: Some(model),
                optim: AdamConfig::new().with_epsilon(1e-8).init(),
            },
        };
        let name = match t {
            Trainer::Fused { .. } => "fused CPU (model::fused)",
            Trainer::Burn { .. } => "burn model",
        };
        let _ = writeln!(log, "trainer: {name}");
        t
    }

    /// One epoch over `seqs` in batches of `batch_size` (in the given order): loss, gradients
    /// and an Adam step per batch. With `targets` (one list per sequence) the objective is
    /// RecLLM's, whatever `objective` says.
    #[allow(clippy::too_many_arguments)]
    pub fn epoch(
        &mut self,
        seqs: &[Seq],
        targets: Option<&[Vec<u32>]>,
        batch_size: usize,
        lr: f64,
        reg: Reg,
        objective: &Objective,
        tag: (&str, usize),
        progress: &mut dyn FnMut(&str),
    ) -> Result<EpochStats, NonFinite> {
        match self {
            Trainer::Fused { params, adam, .. } => fused::epoch(
                params, adam, seqs, targets, batch_size, lr, reg, objective, tag, progress,
            ),
            Trainer::Burn { model, optim } => {
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
                let (m, stats) = epoch(m, optim, seqs, targets, batch_size, lr, tag, &f, progress)?;
                *model = Some(m);
                Ok(stats)
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
