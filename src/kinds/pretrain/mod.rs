//! The `pretrain` kind: CLLM4Rec's mutually regularized pretraining of the collaborative and
//! content LLMs on a `tokenize` output.

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::data::rng::Rng;
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, Slot, StageContext, StageError, StageKind,
    TypedParams,
};
use crate::model::backend::train_device;
use crate::model::cllm4rec::batch::Seq;
use crate::model::cllm4rec::files::{self, ModelInfo};
use crate::model::cllm4rec::loss::{Reg, RegScale};
use crate::model::cllm4rec::scorer::PromptOrder;
use crate::model::cllm4rec::{Cllm4Rec, Side};
use crate::model::dropout::{self, Dropout};
use crate::model::fused::{Engine, Objective};
use crate::model::trainer::{Optimizer, Trainer};
use crate::pipeline::Instance;

mod backbone;
mod docs;

pub use backbone::{BackboneParams, BuiltBackbone, Init};
pub use docs::{content_vocab, in_batch_order, seqs, Batching, ContentVocabChoice};

crate::choice! {
    /// The items of a collaborative document: in a new random order each epoch (`shuffle`,
    /// the paper) or as tokenized (`fixed`, the authors' code).
    ItemOrder { Shuffle = "shuffle", Fixed = "fixed" }
}

crate::choice! {
    /// Which user/item tables pretraining writes (docs/fidelity.md, 8): those of the `last`
    /// epoch, or each side's from the epoch where that side's LM had its `lowest-loss` (mean
    /// training loss per prediction, regularizer included), as the authors' code saves them.
    /// The backbone is the last epoch's either way.
    #[derive(Default)]
    Keep { #[default] Last = "last", LowestLoss = "lowest-loss" }
}

/// The params of a `pretrain` stage (stages/pretrain.yaml documents each).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainParams {
    pub backbone: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub n_positions: usize,
    pub init: Init,
    pub freeze: Option<bool>,
    /// Rounds of (collaborative epoch, content epoch).
    pub epochs: usize,
    /// Content-only epochs before the first round.
    pub content_warmup: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub lambda_c: f64,
    /// How lambda_c weighs the regularizer against the likelihood (docs/fidelity.md, 6).
    pub reg_scale: RegScale,
    pub item_order: ItemOrder,
    /// Whether a document's first main-text token is a target (false: as the authors' code,
    /// whose shift happens inside the main text; docs/fidelity.md, 4).
    pub first_target: bool,
    pub batching: Batching,
    /// Train the content LLM (false: the collaborative-LM-only ablation).
    pub content: bool,
    pub content_vocab: ContentVocabChoice,
    /// Dropout in training steps; null: the backbone's own (`model::dropout::rate`).
    pub dropout: Option<f64>,
    pub keep: Keep,
    pub engine: Engine,
}

impl Default for PretrainParams {
    fn default() -> Self {
        PretrainParams {
            backbone: "random".into(),
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            n_positions: 1024,
            init: Init::Pretrained,
            freeze: None,
            epochs: 100,
            content_warmup: 10,
            lr: 1e-3,
            batch_size: 32,
            lambda_c: 1.0,
            reg_scale: RegScale::Map,
            item_order: ItemOrder::Shuffle,
            first_target: true,
            batching: Batching::Sequential,
            content: true,
            content_vocab: ContentVocabChoice::Full,
            dropout: None,
            keep: Keep::Last,
            engine: Engine::Auto,
        }
    }
}

impl PretrainParams {
    /// The backbone's architecture as model.json will record it: a `.gguf` file is a Llama.
    fn arch(&self) -> &'static str {
        if backbone::is_gguf(&self.backbone) {
            "llama"
        } else {
            "gpt2"
        }
    }

    pub fn backbone(&self) -> BackboneParams {
        BackboneParams {
            backbone: self.backbone.clone(),
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            n_positions: self.n_positions,
            freeze: self.freeze,
            init: self.init,
        }
    }
}

impl TypedParams for PretrainParams {
    fn added() -> Vec<(&'static str, Json)> {
        vec![("dropout", json!(0.0)), ("keep", json!("last"))]
    }

    /// `dropout: null` is the backbone's own rate, known from `backbone` here.
    fn normalize(&mut self) {
        if self.dropout.is_none() {
            self.dropout = Some(dropout::backbone_rate(self.arch()));
        }
    }

    fn check(&self) -> Result<(), ParamError> {
        let p = self;
        p.backbone().check()?;
        dropout::rate(p.dropout, p.arch()).map_err(|m| ("dropout".to_owned(), m))?;
        if p.lr.is_nan()
            || p.lr <= 0.0
            || p.batch_size == 0
            || p.lambda_c.is_nan()
            || p.lambda_c < 0.0
        {
            return Err((
                "lr".into(),
                "`lr` and `batch_size` must be positive and `lambda_c` non-negative".into(),
            ));
        }
        Ok(())
    }
}

/// The first main-text token of each document moved into its prompt, so that it is input but
/// no target (`first_target: false`, the authors' code).
fn without_first_target(docs: &mut [Seq]) {
    for s in docs {
        s.prompt_len = (s.prompt_len + 1).min(s.tokens.len());
    }
}

pub struct Pretrain;

impl StageKind for Pretrain {
    fn name(&self) -> &'static str {
        "pretrain"
    }

    fn version(&self) -> u32 {
        // 2: GPT-2 backbones train with the fused CPU trainer (results differ from version 1's
        // in the last bits); 3: model.json records a non-default engine, which its scorer then
        // uses (`auto` outputs are byte-identical to version 2's); 4: content warm-up epochs
        // are not regularized, and `content: false` has none (outputs with `content_warmup:
        // 0` are byte-identical to 3's); then the params `first_target` and `batching` (whose
        // default, `sequential`, changes the outputs; `batching: bucket` gives version 4's);
        // 5: history.json and model.json count the model FLOPs (the weights are version 4's)
        5
    }

    fn computes_on_backend(&self) -> bool {
        true
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<PretrainParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<PretrainParams>()
    }

    fn needs(&self) -> Needs {
        Needs::Slots(&[Slot {
            role: "tokenize",
            kinds: &["tokenize"],
            required: true,
            many: false,
        }])
    }

    fn implicit_deps(&self, inst: &Instance) -> Vec<(String, String)> {
        let p: &PretrainParams = inst.params_as();
        if p.backbone == "random" {
            Vec::new()
        } else {
            vec![("backbone".into(), p.backbone.clone())]
        }
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &PretrainParams = ctx.params();
        let fail = StageError::Failed;
        let (_, tok) = ctx.input("tokenize")?;
        let (base, users, items) = files::vocab(tok).map_err(fail)?;
        let seed = ctx.instance.seed;
        crate::model::backend::check_available().map_err(StageError::Failed)?;
        let device = train_device();
        let built = p
            .backbone()
            .build(base, seed, ctx.workdir, &device)
            .map_err(fail)?;
        let (backbone, frozen) = (built.backbone, built.frozen);
        let max_len = built.max_len.min(backbone.n_positions());
        let rate = dropout::rate(p.dropout, backbone.arch()).map_err(fail)?;
        let model = Cllm4Rec::new(backbone, users, items, seed, &device);
        let collab_docs = seqs(&files::corpus(tok, "collab.tok").map_err(fail)?, max_len);
        let content_corpus = files::corpus(tok, "content.tok").map_err(fail)?;
        let mut content_docs = seqs(&content_corpus, max_len);
        if !p.first_target {
            without_first_target(&mut content_docs);
        }
        let vocab = content_vocab(p.content_vocab, &content_corpus, base);
        let mut rng = Rng::new(seed);
        let mut history = Vec::new();
        let mut log = ctx.log;
        // Without the content LM (`content: false`) there is no content warm-up either.
        let warmup = if p.content { p.content_warmup } else { 0 };
        let mut phases: Vec<(&str, usize)> = (1..=warmup).map(|e| ("warmup", e)).collect();
        for e in 1..=p.epochs {
            phases.push(("collab", e));
            if p.content {
                phases.push(("content", e));
            }
        }
        let mut progress = |s: &str| ctx.progress(s);
        let mut trainer = Trainer::new(p.engine, model, !frozen, &mut log);
        type Kept<'a> = Option<(f64, (&'a str, usize), [Vec<f32>; 2])>;
        let mut kept: [Kept; 2] = [None, None];
        for (phase, e) in phases {
            if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StageError::Cancelled);
            }
            let shuffled;
            let (docs, objective) = if phase == "collab" {
                let mut docs = collab_docs.clone();
                if p.item_order == ItemOrder::Shuffle {
                    for s in &mut docs {
                        rng.shuffle(&mut s.tokens[s.prompt_len..]);
                    }
                }
                if !p.first_target {
                    without_first_target(&mut docs);
                }
                shuffled = docs;
                (&shuffled, Objective::Collab)
            } else {
                (&content_docs, Objective::Content(&vocab))
            };
            if docs.is_empty() {
                continue;
            }
            let docs = in_batch_order(
                docs,
                |s| s.tokens.len(),
                (p.batch_size, p.batching),
                &mut rng,
            );
            let stats = trainer
                .epoch(
                    &docs,
                    None,
                    p.batch_size,
                    p.lr,
                    Reg {
                        // the content warm-up trains the content LM alone, as the authors'
                        // code does: the collaborative tables are still at their random init
                        lambda_c: if phase == "warmup" { 0.0 } else { p.lambda_c },
                        scale: p.reg_scale,
                    },
                    &objective,
                    Optimizer::Main,
                    Dropout::for_epoch(rate, seed, (phase, e)),
                    (phase, e),
                    &mut progress,
                )
                .map_err(|e| fail(e.to_string()))?;
            let _ = writeln!(
                log,
                "{phase} epoch {e}: loss {:.4} nll {:.4} ({} tokens in {:.1} s, {:.0} tokens/s)",
                stats.loss, stats.nll, stats.tokens, stats.seconds, stats.tokens_per_s
            );
            // `keep: lowest-loss`: each side's tables at its LM's lowest epoch loss
            let side = if phase == "collab" {
                Side::Collab
            } else {
                Side::Content
            };
            let best = &mut kept[side as usize];
            if p.keep == Keep::LowestLoss && best.as_ref().is_none_or(|b| stats.loss < b.0) {
                *best = Some((stats.loss, (phase, e), trainer.tables(side)));
            }
            ctx.epoch(&json!(stats));
            history.push(stats);
        }
        let mut model = trainer.into_model();
        for (side, best) in [Side::Collab, Side::Content].into_iter().zip(kept) {
            if let Some((loss, (phase, e), tables)) = best {
                let _ = writeln!(
                    log,
                    "kept the {side:?} tables of {phase} epoch {e} (loss {loss:.4})"
                );
                model.set_tables(side, tables);
            }
        }
        let cfg = model.backbone.wte_weight().dims();
        let (n_layer, n_head) = model.backbone.shape();
        let info = ModelInfo {
            model: "cllm4rec".into(),
            stage: "pretrain".into(),
            vocab_size: cfg[0],
            n_positions: max_len,
            n_embd: cfg[1],
            n_layer,
            n_head,
            users,
            items,
            frozen,
            backbone: p.backbone.clone(),
            best_epoch: None,
            arch: model.backbone.arch().into(),
            backbone_file: built.file.as_ref().map(|_| "backbone.gguf".into()),
            llama: built.llama.clone(),
            engine: p.engine,
            prompt_order: PromptOrder::Time,
            flops: Some(history.iter().map(|s| s.flops).sum()),
            valid: None,
        };
        files::write(
            ctx.out,
            &model,
            &info,
            &json!(history),
            built.file.as_deref(),
        )
        .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cllm4rec::batch::Batch;

    #[test]
    fn without_first_target_the_first_main_token_is_input_only() {
        let mut docs = vec![
            Seq {
                tokens: vec![9, 10, 11, 12],
                prompt_len: 1,
            },
            Seq {
                tokens: vec![9, 8],
                prompt_len: 2,
            },
        ];
        assert_eq!(Batch::new(&docs).targets, [10, 11, 12]);
        without_first_target(&mut docs);
        let b = Batch::new(&docs);
        assert_eq!(b.targets, [11, 12]);
        assert_eq!(b.ids[..4], [9, 10, 11, 12]);
        assert_eq!(docs[1].prompt_len, 2, "no main text: nothing moves");
    }
}
