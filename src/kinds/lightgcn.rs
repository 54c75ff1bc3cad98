//! The `lightgcn` kind: LightGCN (He et al., SIGIR 2020) trained with BPR on an `ingest`
//! output's train split, keeping the epoch with the best validation NDCG@100.

use std::io::Write;

use burn::optim::{AdamConfig, GradientsParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::data::rng::Rng;
use crate::kinds::multivae::{ingest_input, INGEST};
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, StageContext, StageError, StageKind, TypedParams,
};
use crate::model::backend::train_device;
use crate::model::baselines::lightgcn::{Graph, LightGcn};
use crate::model::baselines::scorer::{BaselineInfo, Embeddings, LightGcnScorer};
use crate::model::baselines::{train_lists, validate};
use crate::model::cllm4rec::{checkpoint, files::write_json};
use crate::model::flops;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightGcnParams {
    pub dim: usize,
    pub layers: usize,
    pub lr: f64,
    pub l2: f64,
    pub init_std: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub eval_every: usize,
}

impl Default for LightGcnParams {
    fn default() -> Self {
        LightGcnParams {
            dim: 64,
            layers: 3,
            lr: 1e-3,
            l2: 1e-4,
            init_std: 0.1,
            batch_size: 2048,
            epochs: 100,
            eval_every: 1,
        }
    }
}

impl TypedParams for LightGcnParams {
    fn check(&self) -> Result<(), ParamError> {
        let p = self;
        for (name, v) in [
            ("dim", p.dim),
            ("batch_size", p.batch_size),
            ("eval_every", p.eval_every),
        ] {
            if v == 0 {
                return Err((name.into(), format!("`{name}` must be positive")));
            }
        }
        for (name, v) in [("lr", p.lr), ("init_std", p.init_std)] {
            // NaN fails too
            if v.is_nan() || v <= 0.0 {
                return Err((name.into(), format!("`{name}` must be positive")));
            }
        }
        if p.l2.is_nan() || p.l2 < 0.0 {
            return Err(("l2".into(), "`l2` must be >= 0".into()));
        }
        Ok(())
    }
}

pub struct LightGcnKind;

impl StageKind for LightGcnKind {
    fn name(&self) -> &'static str {
        "lightgcn"
    }

    fn version(&self) -> u32 {
        // 2: propagation by a CSR product (src/model/baselines/lightgcn.rs), whose sums run in
        // another order than the scatter-add of version 1: the last bits of results differ;
        // 3: model.json counts the model FLOPs and holds the kept epoch's validation metrics
        // (the weights are version 2's)
        3
    }

    fn computes_on_backend(&self) -> bool {
        true
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<LightGcnParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<LightGcnParams>()
    }

    fn needs(&self) -> Needs {
        INGEST
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &LightGcnParams = ctx.params();
        let fail = StageError::Failed;
        let split = ingest_input(ctx)?;
        let lists = train_lists(&split);
        let (users, items) = (lists.len(), split.items);
        let seed = ctx.instance.seed;
        crate::model::backend::check_available().map_err(StageError::Failed)?;
        let device = train_device();
        let graph = Graph::new(&lists, items);
        let mut model = LightGcn::new(users, items, p.dim, p.init_std, seed, &device);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut rng = Rng::new(seed);
        let mut pairs: Vec<(u32, u32)> = lists
            .iter()
            .enumerate()
            .flat_map(|(u, l)| l.iter().map(move |&i| (u as u32, i)))
            .collect();
        let mut log = ctx.log;
        let mut history = Vec::new();
        let mut best: Option<(f64, usize, Embeddings, Vec<u8>, Json)> = None;
        // model FLOPs: each batch propagates the whole graph forward and its gradient back;
        // each validation propagates once and scores every eval user against every item
        let propagation = flops::lightgcn_propagation(graph.neighbours.len(), p.dim, p.layers);
        let valid_flops = propagation + 2.0 * (split.eval_users().len() * items * p.dim) as f64;
        let mut flops = 0.0;
        let n_batches = pairs.len().div_ceil(p.batch_size);
        let final_of = |m: &LightGcn| Embeddings::from_nodes(m.embeddings(&graph, p.layers), users);
        for e in 1..=p.epochs {
            rng.shuffle(&mut pairs);
            let (mut bpr_sum, mut reg_sum, mut n) = (0.0, 0.0, 0usize);
            for (k, chunk) in pairs.chunks(p.batch_size).enumerate() {
                if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(crate::kinds::StageError::Cancelled);
                }
                let triples: Vec<(u32, u32, u32)> = chunk
                    .iter()
                    .map(|&(u, i)| (u, i, negative(&split.train[u as usize], items, &mut rng)))
                    .collect();
                flops += 2.0 * propagation;
                let loss = model.bpr_loss(&graph, p.layers, &triples, p.l2);
                let value = loss.value;
                if !value.is_finite() {
                    return Err(fail(format!(
                        "non-finite loss ({value}) in lightgcn epoch {e}, batch {}",
                        k + 1
                    )));
                }
                let mut grads = GradientsParams::new();
                grads.register(model.ego.id, loss.grad);
                model = optim.step(p.lr, model, grads);
                bpr_sum += loss.bpr * chunk.len() as f64;
                reg_sum += loss.reg * chunk.len() as f64;
                n += chunk.len();
                ctx.progress(&format!(
                    "epoch {e}/{} batch {}/{n_batches} bpr {:.4}",
                    p.epochs,
                    k + 1,
                    bpr_sum / n as f64
                ));
            }
            let nf = n.max(1) as f64;
            let mut entry = json!({"epoch": e, "bpr": bpr_sum / nf, "reg": reg_sum / nf});
            if e % p.eval_every == 0 || e == p.epochs {
                let mut scorer = LightGcnScorer {
                    emb: final_of(&model),
                };
                let (metrics, ndcg) = validate(&mut scorer, &split, 1024).map_err(fail)?;
                flops += valid_flops;
                let _ = writeln!(
                    log,
                    "epoch {e}: bpr {:.4} reg {:.4} valid {metrics}",
                    bpr_sum / nf,
                    reg_sum / nf
                );
                if best.as_ref().is_none_or(|b| ndcg > b.0) {
                    let bytes = checkpoint::to_bytes(&model).map_err(fail)?;
                    best = Some((ndcg, e, scorer.emb, bytes, metrics.clone()));
                }
                entry["valid"] = metrics;
            }
            ctx.epoch(&entry);
            history.push(entry);
        }
        let (ndcg, best_epoch, emb, bytes, valid) = match best {
            Some((n, e, emb, b, v)) => (n, e, emb, b, Some(v)),
            None => (
                0.0,
                0,
                final_of(&model),
                checkpoint::to_bytes(&model).map_err(fail)?,
                None,
            ),
        };
        let _ = if best_epoch == 0 {
            writeln!(log, "no epoch trained: kept the initial model")
        } else {
            writeln!(log, "kept epoch {best_epoch} (valid NDCG@100 {ndcg:.4})")
        };
        let w = |name: &str, bytes: Vec<u8>| {
            std::fs::write(ctx.out.join(name), bytes)
                .map_err(|e| fail(format!("cannot write {name}: {e}")))
        };
        w("checkpoint.safetensors", bytes)?;
        w(
            "embeddings.safetensors",
            checkpoint::to_bytes(&emb).map_err(fail)?,
        )?;
        let info = BaselineInfo {
            model: "lightgcn".into(),
            users,
            items,
            dims: vec![p.dim],
            layers: p.layers,
            best_epoch,
            flops: Some(flops),
            valid,
        };
        write_json(
            ctx.out,
            "model.json",
            &serde_json::to_value(info).expect("plain data"),
        )
        .map_err(fail)?;
        write_json(ctx.out, "history.json", &json!(history)).map_err(fail)
    }
}

/// A uniformly drawn item the user has not interacted with in training (any item, if the
/// user has them all).
fn negative(train: &std::collections::HashSet<u32>, items: usize, rng: &mut Rng) -> u32 {
    if train.len() >= items {
        return rng.below(items as u64) as u32;
    }
    loop {
        let j = rng.below(items as u64) as u32;
        if !train.contains(&j) {
            return j;
        }
    }
}
