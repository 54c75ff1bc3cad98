//! The `multivae` kind: Multi-VAE (Liang et al., WWW 2018) trained on an `ingest` output's
//! train split, keeping the epoch with the best validation NDCG@100.

use std::io::Write;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::data::rng::Rng;
use crate::eval::EvalSplit;
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, Slot, StageContext, StageError, StageKind,
    TypedParams,
};
use crate::model::backend::train_device;
use crate::model::baselines::multivae::{MultiVae, SparseRows};
use crate::model::baselines::scorer::{BaselineInfo, MultiVaeScorer};
use crate::model::baselines::{train_lists, validate};
use crate::model::cllm4rec::{checkpoint, files::write_json, normal};
use crate::model::flops;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiVaeParams {
    pub hidden: usize,
    pub latent: usize,
    pub dropout: f64,
    pub anneal_cap: f64,
    pub total_anneal_steps: u64,
    pub lr: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub eval_every: usize,
}

impl Default for MultiVaeParams {
    fn default() -> Self {
        MultiVaeParams {
            hidden: 600,
            latent: 200,
            dropout: 0.5,
            anneal_cap: 0.2,
            total_anneal_steps: 200_000,
            lr: 1e-3,
            batch_size: 500,
            epochs: 200,
            eval_every: 1,
        }
    }
}

impl TypedParams for MultiVaeParams {
    fn check(&self) -> Result<(), ParamError> {
        let p = self;
        for (name, v) in [
            ("hidden", p.hidden),
            ("latent", p.latent),
            ("batch_size", p.batch_size),
            ("eval_every", p.eval_every),
            ("total_anneal_steps", p.total_anneal_steps as usize),
        ] {
            if v == 0 {
                return Err((name.into(), format!("`{name}` must be positive")));
            }
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(("dropout".into(), "`dropout` must be in [0, 1)".into()));
        }
        if p.anneal_cap.is_nan() || p.anneal_cap < 0.0 {
            return Err(("anneal_cap".into(), "`anneal_cap` must be >= 0".into()));
        }
        if p.lr.is_nan() || p.lr <= 0.0 {
            return Err(("lr".into(), "`lr` must be positive".into()));
        }
        Ok(())
    }
}

/// A baseline's one input: the `ingest` output it trains on.
pub(crate) const INGEST: Needs = Needs::Slots(&[Slot {
    role: "ingest",
    kinds: &["ingest"],
    required: true,
    many: false,
}]);

/// The validation split of a baseline stage's `ingest` input.
pub(crate) fn ingest_input(ctx: &StageContext) -> Result<EvalSplit, StageError> {
    let (_, dir) = ctx.input("ingest")?;
    EvalSplit::read(dir, "valid").map_err(StageError::Failed)
}

pub struct MultiVaeKind;

impl StageKind for MultiVaeKind {
    fn name(&self) -> &'static str {
        "multivae"
    }

    fn version(&self) -> u32 {
        // 2: model.json counts the model FLOPs and holds the kept epoch's validation
        // metrics (the weights are version 1's)
        2
    }

    fn computes_on_backend(&self) -> bool {
        true
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<MultiVaeParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<MultiVaeParams>()
    }

    fn needs(&self) -> Needs {
        INGEST
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &MultiVaeParams = ctx.params();
        let fail = StageError::Failed;
        let split = ingest_input(ctx)?;
        let lists = train_lists(&split);
        let seed = ctx.instance.seed;
        crate::model::backend::check_available().map_err(StageError::Failed)?;
        let device = train_device();
        let mut model = MultiVae::new(split.items, p.hidden, p.latent, seed, &device);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut rng = Rng::new(seed);
        let mut order: Vec<usize> = (0..lists.len()).filter(|&u| !lists[u].is_empty()).collect();
        let mut log = ctx.log;
        let mut history = Vec::new();
        let mut best: Option<(f64, usize, Vec<u8>, Json)> = None;
        // model FLOPs: each update's, and each validation's (the eval users' training items in)
        let mut flops = 0.0;
        let valid_flops = {
            let users = split.eval_users();
            let nnz = users.iter().map(|&u| lists[u as usize].len()).sum();
            flops::multivae(split.items, p.hidden, p.latent, users.len(), nnz, false)
        };
        let mut step: u64 = 0;
        let n_batches = order.len().div_ceil(p.batch_size);
        for e in 1..=p.epochs {
            rng.shuffle(&mut order);
            let (mut nll_sum, mut kl_sum, mut rows) = (0.0, 0.0, 0usize);
            let mut beta = 0.0;
            for (k, chunk) in order.chunks(p.batch_size).enumerate() {
                if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(StageError::Cancelled);
                }
                let targets: Vec<&[u32]> = chunk.iter().map(|&u| lists[u].as_slice()).collect();
                let x = SparseRows::normalised(&targets, p.dropout, &mut rng);
                let eps = Tensor::<2>::from_data(
                    TensorData::new(
                        normal(&mut rng, chunk.len() * p.latent, 1.0),
                        [chunk.len(), p.latent],
                    ),
                    &device,
                );
                beta = p.anneal_cap.min(step as f64 / p.total_anneal_steps as f64);
                flops +=
                    flops::multivae(split.items, p.hidden, p.latent, x.rows, x.row.len(), true);
                let loss = model.loss(&x, &targets, eps, beta);
                let value = loss.nll + beta * loss.kl;
                if !value.is_finite() {
                    return Err(fail(format!(
                        "non-finite loss ({value}) in multivae epoch {e}, batch {}",
                        k + 1
                    )));
                }
                let grads = GradientsParams::from_grads(loss.value.backward(), &model);
                model = optim.step(p.lr, model, grads);
                step += 1;
                nll_sum += loss.nll * chunk.len() as f64;
                kl_sum += loss.kl * chunk.len() as f64;
                rows += chunk.len();
                ctx.progress(&format!(
                    "epoch {e}/{} batch {}/{n_batches} loss {:.4}",
                    p.epochs,
                    k + 1,
                    (nll_sum + beta * kl_sum) / rows as f64
                ));
            }
            let n = rows.max(1) as f64;
            let mut entry = json!({"epoch": e, "nll": nll_sum / n, "kl": kl_sum / n, "beta": beta});
            if e % p.eval_every == 0 || e == p.epochs {
                let mut scorer = MultiVaeScorer::new(model.valid());
                let (metrics, ndcg) = validate(&mut scorer, &split, p.batch_size).map_err(fail)?;
                flops += valid_flops;
                let _ = writeln!(
                    log,
                    "epoch {e}: nll {:.4} kl {:.4} beta {beta:.4} valid {metrics}",
                    nll_sum / n,
                    kl_sum / n
                );
                if best.as_ref().is_none_or(|b| ndcg > b.0) {
                    let bytes = checkpoint::to_bytes(&model).map_err(fail)?;
                    best = Some((ndcg, e, bytes, metrics.clone()));
                }
                entry["valid"] = metrics;
            }
            ctx.epoch(&entry);
            history.push(entry);
        }
        let (ndcg, best_epoch, bytes, valid) = match best {
            Some((n, e, b, v)) => (n, e, b, Some(v)),
            None => (0.0, 0, checkpoint::to_bytes(&model).map_err(fail)?, None),
        };
        let _ = if best_epoch == 0 {
            writeln!(log, "no epoch trained: kept the initial model")
        } else {
            writeln!(log, "kept epoch {best_epoch} (valid NDCG@100 {ndcg:.4})")
        };
        std::fs::write(ctx.out.join("checkpoint.safetensors"), bytes)
            .map_err(|e| fail(format!("cannot write the checkpoint: {e}")))?;
        let info = BaselineInfo {
            model: "multi-vae".into(),
            users: lists.len(),
            items: split.items,
            dims: vec![p.hidden, p.latent],
            layers: 0,
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
