//! One epoch of training over a list of sequences, shared by pretraining and finetuning.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use serde::Serialize;

use crate::model::cllm4rec::batch::{Batch, Seq};
use crate::model::cllm4rec::loss::Loss;
use crate::model::cllm4rec::Cllm4Rec;

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

/// Train on `seqs` in batches of `batch_size` (in the given order): for each batch, the loss
/// `f`, a backward pass and an optimizer step. `progress` hears about every batch.
#[allow(clippy::too_many_arguments)]
pub fn epoch(
    mut model: Cllm4Rec,
    optim: &mut ModuleOptimizer,
    seqs: &[Seq],
    targets: Option<&[Vec<u32>]>,
    batch_size: usize,
    lr: f64,
    (phase, epoch_no): (&str, usize),
    f: &LossFn<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Cllm4Rec, EpochStats), NonFinite> {
    let t0 = Instant::now();
    let (mut loss_sum, mut nll_sum, mut preds, mut tokens) = (0.0, 0.0, 0usize, 0usize);
    let n_batches = seqs.len().div_ceil(batch_size.max(1));
    for (k, chunk) in seqs.chunks(batch_size.max(1)).enumerate() {
        let b = Batch::new(chunk);
        let t = targets.map(|t| &t[k * batch_size..k * batch_size + chunk.len()]);
        let loss = f(&model, &b, t);
        let value = loss.value.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(NonFinite {
                phase: phase.to_owned(),
                epoch: epoch_no,
                batch: k + 1,
                value,
            });
        }
        let grads = GradientsParams::from_grads(loss.value.backward(), &model);
        model = optim.step(lr, model, grads);
        loss_sum += value * loss.predictions as f64;
        nll_sum += loss.nll;
        preds += loss.predictions;
        tokens += b.mask.iter().filter(|&&m| m == 1).count();
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        progress(&format!(
            "{phase} epoch {epoch_no} batch {}/{n_batches} loss {:.4} {:.0} tok/s",
            k + 1,
            loss_sum / preds.max(1) as f64,
            tokens as f64 / secs
        ));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let stats = EpochStats {
        epoch: epoch_no,
        phase: phase.to_owned(),
        loss: loss_sum / preds.max(1) as f64,
        nll: nll_sum / preds.max(1) as f64,
        tokens,
        tokens_per_s: tokens as f64 / seconds.max(1e-9),
        seconds,
    };
    Ok((model, stats))
}

/// The model without autodiff, for scoring.
pub fn for_inference(model: &Cllm4Rec) -> Cllm4Rec {
    model.valid()
}
