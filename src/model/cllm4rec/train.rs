//! One epoch of training over a list of sequences, shared by pretraining and finetuning.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use serde::Serialize;

use crate::model::cllm4rec::batch::{Batch, Seq};
use crate::model::cllm4rec::loss::Loss;
use crate::model::cllm4rec::Cllm4Rec;
use crate::model::dropout::Dropout;

/// A batch's loss: (model, batch, per-row targets for finetuning).
pub type LossFn<'a> = dyn Fn(&Cllm4Rec, &Batch, Option<&[Vec<u32>]>) -> Loss + 'a;

/// What an epoch did, for history.json and the log.
#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub phase: String,
    /// Mean training loss per prediction (regularization included).
    pub loss: f64,
    /// Mean negative log-likelihood per prediction.
    pub nll: f64,
    pub tokens: usize,
    /// Model FLOPs of the epoch's training steps (`model::flops`).
    pub flops: f64,
    /// Timings go to the log, not to history.json: outputs stay byte-identical across runs.
    #[serde(skip)]
    pub tokens_per_s: f64,
    #[serde(skip)]
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("non-finite loss ({value}) in {phase} epoch {epoch}, batch {batch}")]
pub struct NonFinite {
    pub phase: String,
    pub epoch: usize,
    pub batch: usize,
    pub value: f64,
}

/// An epoch in progress: its sums, the progress line after each batch, and its
/// [`EpochStats`] at the end. Shared by the burn model's epochs and the fused trainer's.
pub struct Meter {
    t0: Instant,
    phase: String,
    epoch: usize,
    batches: usize,
    loss_sum: f64,
    nll_sum: f64,
    preds: usize,
    tokens: usize,
}

impl Meter {
    pub fn new(phase: &str, epoch: usize, batches: usize) -> Meter {
        Meter {
            t0: Instant::now(),
            phase: phase.to_owned(),
            epoch,
            batches,
            loss_sum: 0.0,
            nll_sum: 0.0,
            preds: 0,
            tokens: 0,
        }
    }

    /// An error if batch `batch` (from 1) has a non-finite loss.
    pub fn check(&self, batch: usize, value: f64) -> Result<(), NonFinite> {
        if value.is_finite() {
            return Ok(());
        }
        Err(NonFinite {
            phase: self.phase.clone(),
            epoch: self.epoch,
            batch,
            value,
        })
    }

    /// Counts batch `batch` (from 1): its mean loss per prediction, summed negative
    /// log-likelihood, predictions and tokens. Returns the progress line.
    pub fn add(
        &mut self,
        batch: usize,
        loss: f64,
        nll: f64,
        preds: usize,
        tokens: usize,
    ) -> String {
        self.loss_sum += loss * preds as f64;
        self.nll_sum += nll;
        self.preds += preds;
        self.tokens += tokens;
        let secs = self.t0.elapsed().as_secs_f64().max(1e-9);
        format!(
            "{} epoch {} batch {batch}/{} loss {:.4} {:.0} tok/s",
            self.phase,
            self.epoch,
            self.batches,
            self.loss_sum / self.preds.max(1) as f64,
            self.tokens as f64 / secs
        )
    }

    pub fn finish(self) -> EpochStats {
        let seconds = self.t0.elapsed().as_secs_f64();
        let preds = self.preds.max(1) as f64;
        EpochStats {
            epoch: self.epoch,
            phase: self.phase,
            loss: self.loss_sum / preds,
            nll: self.nll_sum / preds,
            tokens: self.tokens,
            flops: 0.0,
            tokens_per_s: self.tokens as f64 / seconds.max(1e-9),
            seconds,
        }
    }
}

/// Train on `seqs` in batches of `batch_size` (in the given order): for each batch, the loss
/// `f`, a backward pass and an optimizer step. With `dropout`, batch `k` drops with
/// `dropout.batch(k)`. `progress` hears about every batch.
#[allow(clippy::too_many_arguments)]
pub fn epoch(
    mut model: Cllm4Rec,
    optim: &mut ModuleOptimizer,
    seqs: &[Seq],
    targets: Option<&[Vec<u32>]>,
    batch_size: usize,
    lr: f64,
    dropout: Option<Dropout>,
    (phase, epoch_no): (&str, usize),
    f: &LossFn<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Cllm4Rec, EpochStats), NonFinite> {
    let mut meter = Meter::new(phase, epoch_no, seqs.len().div_ceil(batch_size.max(1)));
    for (k, chunk) in seqs.chunks(batch_size.max(1)).enumerate() {
        let mut b = Batch::new(chunk);
        b.dropout = dropout.map(|dr| dr.batch(k));
        let t = targets.map(|t| &t[k * batch_size..k * batch_size + chunk.len()]);
        let loss = f(&model, &b, t);
        let value = loss.value.clone().into_scalar::<f32>() as f64;
        meter.check(k + 1, value)?;
        let grads = GradientsParams::from_grads(loss.value.backward(), &model);
        model = optim.step(lr, model, grads);
        let tokens = b.mask.iter().filter(|&&m| m == 1).count();
        progress(&meter.add(k + 1, value, loss.nll, loss.predictions, tokens));
    }
    Ok((model, meter.finish()))
}

/// The model without autodiff, for scoring.
pub fn for_inference(model: &Cllm4Rec) -> Cllm4Rec {
    model.valid()
}
