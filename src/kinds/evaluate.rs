//! The `evaluate` kind: score all items for every user with held-out items, drop the user's
//! training items (after a `cold-items` split, rank only the held-out items), and report
//! Recall@K and NDCG@K (metrics.json, per_user.csv).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::eval::scorer::{MostPopular, Scorer};
use crate::eval::{EvalSplit, UserMetrics};
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, Slot, StageContext, StageError, StageKind,
    TypedParams,
};

crate::choice! {
    /// Which held-out split `evaluate` scores.
    EvalOn { Test = "test", Valid = "valid" }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {
    pub split: EvalOn,
    pub recall_at: Vec<usize>,
    pub ndcg_at: Vec<usize>,
    /// Users scored at once.
    pub batch_size: usize,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        EvaluateParams {
            split: EvalOn::Test,
            recall_at: vec![20, 40],
            ndcg_at: vec![100],
            batch_size: 256,
        }
    }
}

impl TypedParams for EvaluateParams {
    fn check(&self) -> Result<(), ParamError> {
        if self.recall_at.iter().chain(&self.ndcg_at).any(|&k| k == 0)
            || self.recall_at.is_empty() && self.ndcg_at.is_empty()
        {
            return Err((
                "recall_at".into(),
                "cut-offs must be positive, and there must be at least one".into(),
            ));
        }
        if self.batch_size == 0 {
            return Err(("batch_size".into(), "`batch_size` must be positive".into()));
        }
        Ok(())
    }
}

/// The kinds whose output `evaluate` scores.
const MODELS: &[&str] = &["finetune", "pretrain", "popular", "multivae", "lightgcn"];

/// What made the evaluated model, beside its metrics: `{"flops", "valid"}`, the model FLOPs
/// of its training from the start (`model::flops`) and its kept epoch's validation metrics
/// (null where it kept none), as its model.json says them. Written only for a model that
/// counts its FLOPs (the trainers' outputs; not most-popular, nor a command stage's model
/// unless its model.json says `flops`).
pub const COMPUTE_JSON: &str = "compute.json";

fn compute_of(model: &std::path::Path) -> Option<Json> {
    let text = std::fs::read_to_string(model.join("model.json")).ok()?;
    let info: Json = serde_json::from_str(&text).ok()?;
    let flops = info.get("flops")?.as_f64()?;
    Some(serde_json::json!({
        "flops": flops,
        "valid": info.get("valid").cloned().unwrap_or(Json::Null),
    }))
}

/// The kind of model a `command` stage wrote: the one whose `model.json` names the same model.
fn model_of_command(dir: &std::path::Path) -> Result<&'static str, String> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "a `command` model needs a model.json: {}: {e}",
            path.display()
        )
    })?;
    let v: Json = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match v["model"].as_str() {
        Some("most-popular") => Ok("popular"),
        Some("cllm4rec") => Ok("finetune"),
        Some("multi-vae") => Ok("multivae"),
        Some("lightgcn") => Ok("lightgcn"),
        other => Err(format!(
            "{}: `model` is {}, not one of `most-popular`, `cllm4rec`, `multi-vae`, `lightgcn`",
            path.display(),
            other.map_or("missing".to_owned(), |m| format!("`{m}`"))
        )),
    }
}

pub struct Evaluate;

impl StageKind for Evaluate {
    fn name(&self) -> &'static str {
        "evaluate"
    }

    fn version(&self) -> u32 {
        // 2: CLLM4Rec with a GPT-2 on the CPU backend scores with the fused CPU code (scores
        // differ from version 1's in the last bits); 3: tied scores are ranked in a scrambled
        // order of the item ids, not by id (`eval::metrics::top_k`), and after a `cold-items`
        // split only the held-out items are ranked. (Finetuning's and the baselines'
        // validation rank with the same code; their continuous scores do not tie in practice,
        // so their versions stay.)
        3
    }

    fn computes_on_backend(&self) -> bool {
        true
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<EvaluateParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<EvaluateParams>()
    }

    fn needs(&self) -> Needs {
        Needs::Slots(&[
            Slot {
                role: "ingest",
                kinds: &["ingest"],
                required: true,
                many: false,
            },
            Slot {
                role: "model",
                kinds: MODELS,
                required: true,
                many: false,
            },
            Slot {
                role: "tokenize",
                kinds: &["tokenize"],
                required: false,
                many: false,
            },
        ])
    }

    fn check_needs(&self, filled: &[(&'static str, &'static str)]) -> Result<(), String> {
        let model = filled.iter().find(|(r, _)| *r == "model").map(|(_, k)| *k);
        let tokenize = filled.iter().any(|(r, _)| *r == "tokenize");
        match model {
            Some(m @ ("pretrain" | "finetune")) if !tokenize => Err(format!(
                "evaluating a `{m}` model (CLLM4Rec) needs its `tokenize` stage among the `needs`"
            )),
            _ => Ok(()),
        }
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &EvaluateParams = ctx.params();
        let fail = StageError::Failed;
        let (_, ingest) = ctx.input("ingest")?;
        let (model_kind, model) = ctx.input("model")?;
        let model_kind = match model_kind {
            "command" => model_of_command(model).map_err(fail)?,
            k => k,
        };
        let split = EvalSplit::read(ingest, p.split.as_str()).map_err(fail)?;
        if model_kind != "popular" {
            crate::model::backend::check_available().map_err(fail)?;
        }
        let mut scorer: Box<dyn Scorer> = match model_kind {
            "popular" => Box::new(MostPopular::load(model).map_err(fail)?),
            "pretrain" | "finetune" => {
                let (_, tokens) = ctx.input("tokenize")?;
                Box::new(
                    crate::model::cllm4rec::scorer::Cllm4RecScorer::load(
                        model,
                        tokens,
                        ctx.instance.seed,
                    )
                    .map_err(fail)?,
                )
            }
            "multivae" => Box::new(
                crate::model::baselines::scorer::MultiVaeScorer::load(model).map_err(fail)?,
            ),
            "lightgcn" => Box::new(
                crate::model::baselines::scorer::LightGcnScorer::load(model).map_err(fail)?,
            ),
            other => unreachable!("`{other}` is not among the model kinds {MODELS:?}"),
        };
        let users = split.eval_users();
        let mut m = UserMetrics::new(&p.recall_at, &p.ndcg_at);
        for batch in users.chunks(p.batch_size) {
            if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StageError::Cancelled);
            }
            let scores = scorer.score(batch, &split).map_err(fail)?;
            m.add_batch(&split, batch, &scores);
        }
        let summary = m.summary(&scorer.model(), p.split.as_str());
        let w = |name: &str, text: String| {
            std::fs::write(ctx.out.join(name), text)
                .map_err(|e| StageError::Failed(format!("cannot write {name}: {e}")))
        };
        w(
            "metrics.json",
            serde_json::to_string_pretty(&summary).expect("plain data") + "\n",
        )?;
        w("per_user.csv", m.per_user_csv())?;
        if let Some(c) = compute_of(model) {
            w(
                COMPUTE_JSON,
                serde_json::to_string_pretty(&c).expect("plain data") + "\n",
            )?;
        }
        Ok(())
    }
}
