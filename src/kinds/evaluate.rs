//! The `evaluate` kind: score all items for every user with held-out items, drop the user's
//! training items, and report Recall@K and NDCG@K (metrics.json, per_user.csv).

use serde::Deserialize;

use crate::eval::scorer::{find_inputs, MostPopular, Scorer};
use crate::eval::{EvalSplit, UserMetrics};
use crate::kinds::{params_of, StageContext, StageError, StageKind};
use crate::pipeline::Instance;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// `test` or `valid`.
    #[serde(default = "test")]
    pub split: String,
    #[serde(default = "recall")]
    pub recall_at: Vec<usize>,
    #[serde(default = "ndcg")]
    pub ndcg_at: Vec<usize>,
    /// Users scored at once.
    #[serde(default = "batch")]
    pub batch_size: usize,
}

fn test() -> String {
    "test".into()
}
fn recall() -> Vec<usize> {
    vec![20, 40]
}
fn ndcg() -> Vec<usize> {
    vec![100]
}
fn batch() -> usize {
    256
}

pub struct Evaluate;

impl StageKind for Evaluate {
    fn name(&self) -> &'static str {
        "evaluate"
    }

    fn version(&self) -> u32 {
        // 2: CLLM4Rec with a GPT-2 on the CPU backend scores with the fused CPU code (scores
        // differ from version 1's in the last bits)
        2
    }

    fn computes_on_backend(&self) -> bool {
        true
    }

    fn check_instance(&self, inst: &Instance) -> Result<(), (String, String)> {
        let p: EvaluateParams = params_of(inst)?;
        if p.split != "test" && p.split != "valid" {
            return Err((
                "split".into(),
                format!("`split` is `test` or `valid`, not `{}`", p.split),
            ));
        }
        if p.recall_at.iter().chain(&p.ndcg_at).any(|&k| k == 0)
            || p.recall_at.is_empty() && p.ndcg_at.is_empty()
        {
            return Err((
                "recall_at".into(),
                "cut-offs must be positive, and there must be at least one".into(),
            ));
        }
        if p.batch_size == 0 {
            return Err(("batch_size".into(), "`batch_size` must be positive".into()));
        }
        Ok(())
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: EvaluateParams = params_of(ctx.instance).map_err(|(_, m)| StageError::Failed(m))?;
        let fail = StageError::Failed;
        let inputs = find_inputs(ctx.inputs).map_err(fail)?;
        let split = EvalSplit::read(&inputs.ingest, &p.split).map_err(fail)?;
        if inputs.model_kind != "most-popular" {
            crate::model::backend::check_available().map_err(fail)?;
        }
        let mut scorer: Box<dyn Scorer> = match inputs.model_kind.as_str() {
            "most-popular" => Box::new(MostPopular::load(&inputs.model).map_err(fail)?),
            "cllm4rec" => {
                let tokens = ctx
                    .inputs
                    .values()
                    .find(|d| d.join("rec.tok").is_file())
                    .ok_or_else(|| {
                        fail(
                            "evaluating CLLM4Rec needs its `tokenize` stage among the inputs"
                                .into(),
                        )
                    })?;
                Box::new(
                    crate::model::cllm4rec::scorer::Cllm4RecScorer::load(&inputs.model, tokens)
                        .map_err(fail)?,
                )
            }
            "multi-vae" => Box::new(
                crate::model::baselines::scorer::MultiVaeScorer::load(&inputs.model)
                    .map_err(fail)?,
            ),
            "lightgcn" => Box::new(
                crate::model::baselines::scorer::LightGcnScorer::load(&inputs.model)
                    .map_err(fail)?,
            ),
            other => {
                return Err(StageError::Failed(format!(
                    "cannot evaluate a `{other}` model"
                )))
            }
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
        let summary = m.summary(&scorer.model(), &p.split);
        let w = |name: &str, text: String| {
            std::fs::write(ctx.out.join(name), text)
                .map_err(|e| StageError::Failed(format!("cannot write {name}: {e}")))
        };
        w(
            "metrics.json",
            serde_json::to_string_pretty(&summary).expect("plain data") + "\n",
        )?;
        w("per_user.csv", m.per_user_csv())?;
        Ok(())
    }
}
