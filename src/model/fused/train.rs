//! The fused trainer's optimizer (burn's Adam, by hand) and its epoch.

use rayon::prelude::*;

use super::model::Grads;
use super::{Objective, Packed, Params};
use crate::model::cllm4rec::batch::Seq;
use crate::model::cllm4rec::loss::Reg;
use crate::model::cllm4rec::train::{EpochStats, Meter, NonFinite};
use crate::model::dropout::Dropout;

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
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.state.resize_with(tensors.len(), || None);
        let lr = lr as f32;
        let eps = self.eps;
        for ((p, g), st) in tensors.iter_mut().zip(grads).zip(&mut self.state) {
            let Some(g) = g else { continue };
            let (time, m, v) =
                st.get_or_insert_with(|| (0, vec![0f32; g.len()], vec![0f32; g.len()]));
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
                        // from zero moments this is burn's first step exactly
                        *m = *m * B1 + g * (1.0 - B1);
                        *v = *v * B2 + g * g * (1.0 - B2);
                        let update = *m * factor / (v.sqrt() + eps);
                        *p -= update * lr;
                    }
                });
        }
    }
}

/// One epoch over `seqs` in batches of `batch_size`: loss, gradients and an Adam step per
/// batch, as `cllm4rec::train::epoch` does with the burn model. With `targets` (one list per
/// sequence) the objective is RecLLM's ([`Objective::Rec`]) whatever `objective` says. With
/// `dropout`, batch `k` drops with `dropout.batch(k)`.
#[allow(clippy::too_many_arguments)]
pub fn epoch(
    params: &mut Params,
    adam: &mut Adam,
    seqs: &[Seq],
    targets: Option<&[Vec<u32>]>,
    batch_size: usize,
    lr: f64,
    reg: Reg,
    objective: &Objective,
    dropout: Option<Dropout>,
    (phase, epoch_no): (&str, usize),
    progress: &mut dyn FnMut(&str),
) -> Result<EpochStats, NonFinite> {
    let batch_size = batch_size.max(1);
    let mut meter = Meter::new(phase, epoch_no, seqs.len().div_ceil(batch_size));
    for (k, chunk) in seqs.chunks(batch_size).enumerate() {
        let mut b = Packed::new(chunk);
        b.dropout = dropout.map(|dr| dr.batch(k));
        let rec;
        let objective = match targets {
            Some(t) => {
                rec = Objective::Rec(&t[k * batch_size..k * batch_size + chunk.len()]);
                &rec
            }
            None => objective,
        };
        let (loss, grads) = params.loss_and_grads(&b, objective, reg);
        meter.check(k + 1, loss.loss)?;
        adam.step(&mut params.t, &grads, lr);
        progress(&meter.add(k + 1, loss.loss, loss.nll, loss.predictions, b.tokens.len()));
    }
    Ok(meter.finish())
}
