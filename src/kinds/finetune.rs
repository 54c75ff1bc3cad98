//! The `finetune` kind: RecLLM. Each epoch, every user's recommendation prompt loses a share of
//! its training items, and the last prompt token's hidden state, through the tied item head,
//! predicts them with a multinomial likelihood over all items (or all of the user's training
//! items, as in the authors' code). Mutual regularization toward the content embeddings goes
//! on. The epoch with the best validation Recall@20 + Recall@40 + NDCG@100 is kept. With
//! `content_epochs` (the authors' code), each epoch ends with a content LM epoch regularized
//! toward the RecLLM's tables, with its own Adam.

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::data::rng::Rng;
use crate::eval::scorer::Scorer;
use crate::eval::{EvalSplit, UserMetrics};
use crate::kinds::pretrain::{content_vocab, in_batch_order, seqs, Batching, ContentVocabChoice};
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, Slot, StageContext, StageError, StageKind,
    TypedParams,
};
use crate::model::backend::train_device;
use crate::model::cllm4rec::batch::shuffle_items;
use crate::model::cllm4rec::batch::Seq;
use crate::model::cllm4rec::files::{self, ModelInfo};
use crate::model::cllm4rec::loss::{Reg, RegScale};
use crate::model::cllm4rec::scorer::{Cllm4RecScorer, PromptOrder};
use crate::model::dropout::{self, Dropout};
use crate::model::fused::{Engine, Objective};
use crate::model::trainer::{Optimizer, Trainer};

crate::choice! {
    /// What finetuning predicts: the `masked` items (the paper) or `all` of a user's training
    /// items (the authors' code).
    Targets { Masked = "masked", All = "all" }
}

crate::choice! {
    /// How many of a user's n training items are masked: `floor`, floor(mask_ratio n) (the
    /// authors' code), or `nearest`, round(mask_ratio n); at least 1 either way.
    MaskRounding { Floor = "floor", Nearest = "nearest" }
}

impl MaskRounding {
    fn count(self, ratio: f64, n: usize) -> usize {
        let x = ratio * n as f64;
        let k = match self {
            MaskRounding::Floor => x.floor(),
            MaskRounding::Nearest => x.round(),
        };
        (k as usize).clamp(1, n)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneParams {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    /// Share of a user's training items masked out of the prompt each epoch.
    pub mask_ratio: f64,
    /// How that share of n items is rounded (docs/fidelity.md, 9a).
    pub mask_rounding: MaskRounding,
    pub targets: Targets,
    pub lambda_c: f64,
    /// How lambda_c weighs the regularizer against the likelihood (docs/fidelity.md, 6).
    pub reg_scale: RegScale,
    /// The order of a user's items in the prompts (docs/fidelity.md, 9d).
    pub prompt_order: PromptOrder,
    /// A content LM epoch after each RecLLM epoch (docs/fidelity.md, 9e).
    pub content_epochs: bool,
    pub content_vocab: ContentVocabChoice,
    /// How an epoch's prompts (and content documents) are cut into batches
    /// (docs/fidelity.md, 17).
    pub batching: Batching,
    /// Dropout in training steps; null: the backbone's own (`model::dropout::rate`).
    pub dropout: Option<f64>,
    pub engine: Engine,
}

impl Default for FinetuneParams {
    fn default() -> Self {
        FinetuneParams {
            epochs: 150,
            lr: 1e-4,
            batch_size: 64,
            mask_ratio: 0.2,
            mask_rounding: MaskRounding::Floor,
            targets: Targets::Masked,
            lambda_c: 1.0,
            reg_scale: RegScale::Map,
            prompt_order: PromptOrder::Time,
            content_epochs: true,
            content_vocab: ContentVocabChoice::Full,
            batching: Batching::Sequential,
            dropout: None,
            engine: Engine::Auto,
        }
    }
}

impl TypedParams for FinetuneParams {
    fn added() -> Vec<(&'static str, Json)> {
        vec![("dropout", json!(0.0))]
    }

    fn check(&self) -> Result<(), ParamError> {
        let p = self;
        if !(p.mask_ratio > 0.0 && p.mask_ratio < 1.0) {
            return Err((
                "mask_ratio".into(),
                "`mask_ratio` must be between 0 and 1".into(),
            ));
        }
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
        // the range; whether the backbone has dropout is known when the stage runs
        dropout::rate(p.dropout, "gpt2").map_err(|m| ("dropout".to_owned(), m))?;
        Ok(())
    }
}

pub struct Finetune;

/// The stage's inputs: the pretrained model, the tokenized corpora and the split.
struct Inputs<'a> {
    model: &'a std::path::Path,
    tokens: &'a std::path::Path,
    ingest: &'a std::path::Path,
}

fn inputs<'a>(ctx: &'a StageContext) -> Result<Inputs<'a>, StageError> {
    Ok(Inputs {
        model: ctx.input("model")?.1,
        tokens: ctx.input("tokenize")?.1,
        ingest: ctx.input("ingest")?.1,
    })
}

/// One epoch's masked prompts: for each user, the prompt without a random `ratio` of its
/// items, rounded by `rounding` (the rest in a new random order with `shuffle`), and the
/// targets.
fn masked_prompts(
    prompts: &[(u32, Seq)],
    item_offset: u32,
    (ratio, rounding): (f64, MaskRounding),
    all: bool,
    shuffle: bool,
    rng: &mut Rng,
) -> Vec<(Seq, Vec<u32>)> {
    let mut out = Vec::new();
    for (_, s) in prompts {
        let items: Vec<usize> = (0..s.tokens.len())
            .filter(|&t| s.tokens[t] >= item_offset)
            .collect();
        if items.is_empty() {
            continue;
        }
        let k = rounding.count(ratio, items.len());
        let mut pick = items.clone();
        rng.shuffle(&mut pick);
        let drop: std::collections::HashSet<usize> = pick[..k].iter().copied().collect();
        let tokens: Vec<u32> = s
            .tokens
            .iter()
            .enumerate()
            .filter(|(t, _)| !drop.contains(t))
            .map(|(_, &x)| x)
            .collect();
        let targets: Vec<u32> = if all {
            items.iter().map(|&t| s.tokens[t] - item_offset).collect()
        } else {
            pick[..k]
                .iter()
                .map(|&t| s.tokens[t] - item_offset)
                .collect()
        };
        let mut seq = Seq {
            prompt_len: tokens.len(),
            tokens,
        };
        if shuffle {
            shuffle_items(&mut seq, item_offset, rng);
        }
        out.push((seq, targets));
    }
    out
}

impl StageKind for Finetune {
    fn name(&self) -> &'static str {
        "finetune"
    }

    fn version(&self) -> u32 {
        // 2: GPT-2 backbones train with the fused CPU trainer (results differ from version 1's
        // in the last bits); 3: validation scores with the code that trains (it was the fused
        // code for a GPT-2 on the CPU also under `engine: burn`), and model.json records a
        // non-default engine (`auto` outputs are byte-identical to version 2's); 4: content
        // LM epochs (`content_epochs`, on by default) and `mask_rounding` (default `floor`);
        // with `content_epochs: false` and `mask_rounding: nearest`, version 3's outputs;
        // then the param `batching` (default `sequential`; `bucket` gives the outputs before it);
        // 5: history.json and model.json count the model FLOPs, and model.json holds the kept
        // epoch's validation metrics (the weights are version 4's)
        5
    }

    fn computes_on_backend(&self) -> bool {
        true
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<FinetuneParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<FinetuneParams>()
    }

    fn needs(&self) -> Needs {
        Needs::Slots(&[
            Slot {
                role: "model",
                kinds: &["pretrain"],
                required: true,
                many: false,
            },
            Slot {
                role: "tokenize",
                kinds: &["tokenize"],
                required: true,
                many: false,
            },
            Slot {
                role: "ingest",
                kinds: &["ingest"],
                required: true,
                many: false,
            },
        ])
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &FinetuneParams = ctx.params();
        let fail = StageError::Failed;
        let inp = inputs(ctx)?;
        crate::model::backend::check_available().map_err(StageError::Failed)?;
        let device = train_device();
        let (model, info) = files::read(inp.model, &device).map_err(fail)?;
        let valid = EvalSplit::read(inp.ingest, "valid").map_err(fail)?;
        let seed = ctx.instance.seed;
        let mut scorer = Cllm4RecScorer::prompts(inp.tokens).map_err(fail)?;
        scorer.set_max_len(info.n_positions);
        let shuffle = p.prompt_order == PromptOrder::Shuffle;
        if shuffle {
            // validation's order, and the items a long training prompt keeps
            scorer.shuffle_prompts(seed);
        }
        let prompts = scorer.prompt_seqs();
        let item_offset = (info.vocab_size + info.users) as u32;
        let mut rng = Rng::new(seed ^ 0x6674);
        let mut log = ctx.log;
        let rate = dropout::rate(p.dropout, model.backbone.arch()).map_err(fail)?;
        let mut trainer = Trainer::new(p.engine, model, !info.frozen, &mut log);
        // the model FLOPs of this stage: its epochs, and its validation scoring (once before
        // the first epoch and after each)
        let mut train_flops = 0.0;
        let valid_flops =
            scorer.flops(&trainer.cost(), &valid.eval_users()) * (p.epochs + 1) as f64;
        // validation scores with the code that trains (the fused parameters or the burn model)
        let mut validate = |t: &Trainer| -> Result<(f64, serde_json::Value), String> {
            scorer.set_model(t.scoring());
            let mut um = UserMetrics::new(&[20, 40], &[100]);
            for batch in valid.eval_users().chunks(256) {
                let s = scorer.score(batch, &valid)?;
                um.add_batch(&valid, batch, &s);
            }
            Ok((um.criterion(), um.summary("cllm4rec", "valid")))
        };
        let (mut best, first) = validate(&trainer).map_err(fail)?;
        let mut kept_valid = first.clone();
        // A frozen backbone stored as a file never changes: keep only what is trained.
        let skip = info.backbone_file.as_ref().map(|_| "backbone");
        let mut kept = trainer.snapshot(skip).map_err(fail)?;
        let mut best_epoch = 0;
        let mut history = vec![json!({"epoch": 0, "valid": first})];
        let _ = writeln!(log, "epoch 0 (pretrained): valid {first}");
        let mut progress = |s: &str| ctx.progress(s);
        let reg = Reg {
            lambda_c: p.lambda_c,
            scale: p.reg_scale,
        };
        // The content LM's documents and softmax, for `content_epochs`.
        let content = if p.content_epochs {
            let corpus = files::corpus(inp.tokens, "content.tok").map_err(fail)?;
            let vocab = content_vocab(p.content_vocab, &corpus, info.vocab_size);
            Some((seqs(&corpus, info.n_positions), vocab)).filter(|(d, _)| !d.is_empty())
        } else {
            None
        };
        for e in 1..=p.epochs {
            if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StageError::Cancelled);
            }
            let pairs = masked_prompts(
                &prompts,
                item_offset,
                (p.mask_ratio, p.mask_rounding),
                p.targets == Targets::All,
                shuffle,
                &mut rng,
            );
            let (seqs, targets): (Vec<Seq>, Vec<Vec<u32>>) = in_batch_order(
                &pairs,
                |(s, _)| s.tokens.len(),
                (p.batch_size, p.batching),
                &mut rng,
            )
            .into_iter()
            .unzip();
            let stats = trainer
                .epoch(
                    &seqs,
                    Some(&targets),
                    p.batch_size,
                    p.lr,
                    reg,
                    &Objective::Collab,
                    Optimizer::Main,
                    Dropout::for_epoch(rate, seed, ("finetune", e)),
                    ("finetune", e),
                    &mut progress,
                )
                .map_err(|e| fail(e.to_string()))?;
            let mut trained = stats.flops;
            let (crit, v) = validate(&trainer).map_err(fail)?;
            let _ = writeln!(
                log,
                "epoch {e}: loss {:.4} ({:.0} tokens/s), valid {v}",
                stats.loss, stats.tokens_per_s
            );
            let mut entry = json!({"epoch": e, "train": stats, "valid": v});
            if crit > best {
                best = crit;
                best_epoch = e;
                kept = trainer.snapshot(skip).map_err(fail)?;
                kept_valid = v.clone();
            }
            if let Some((docs, vocab)) = &content {
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
                        reg,
                        &Objective::Content(vocab),
                        Optimizer::Content,
                        // none in content epochs: the code's `rec_model.eval()` for validation
                        // turns the shared backbone's dropout off until the next RecLLM epoch
                        None,
                        ("content", e),
                        &mut progress,
                    )
                    .map_err(|e| fail(e.to_string()))?;
                let _ = writeln!(
                    log,
                    "content epoch {e}: loss {:.4} nll {:.4} ({:.0} tokens/s)",
                    stats.loss, stats.nll, stats.tokens_per_s
                );
                trained += stats.flops;
                entry["content"] = json!(stats);
            }
            train_flops += trained;
            ctx.epoch(&entry);
            history.push(entry);
        }
        trainer.restore(kept, skip).map_err(fail)?;
        let model = trainer.into_model();
        let info = ModelInfo {
            stage: "finetune".into(),
            best_epoch: Some(best_epoch),
            engine: p.engine,
            prompt_order: p.prompt_order,
            flops: info.flops.map(|f| f + train_flops + valid_flops),
            valid: Some(kept_valid),
            ..info
        };
        let _ = writeln!(
            log,
            "kept epoch {best_epoch} (valid Recall@20 + Recall@40 + NDCG@100 = {best:.4})"
        );
        let backbone_src = info.backbone_file.as_ref().map(|f| inp.model.join(f));
        files::write(
            ctx.out,
            &model,
            &info,
            &json!(history),
            backbone_src.as_deref(),
        )
        .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_prompts_keep_time_order_unless_shuffled() {
        // user 600, word 1, items 700..709 in time order
        let tokens: Vec<u32> = [600, 1].into_iter().chain(700..710).collect();
        let prompts = vec![(
            0u32,
            Seq {
                prompt_len: tokens.len(),
                tokens,
            },
        )];
        let visible = |shuffle: bool, seed: u64| {
            let out = masked_prompts(
                &prompts,
                700,
                (0.2, MaskRounding::Floor),
                false,
                shuffle,
                &mut Rng::new(seed),
            );
            assert_eq!(out[0].0.tokens[..2], [600, 1]);
            assert_eq!(out[0].1.len(), 2, "0.2 * 10 targets");
            out[0].0.tokens[2..].to_vec()
        };
        let increasing = |t: &[u32]| t.windows(2).all(|w| w[0] < w[1]);
        for seed in 0..6 {
            let (time, shuffled) = (visible(false, seed), visible(true, seed));
            assert_eq!(time.len(), 8);
            assert!(increasing(&time), "time order: {time:?}");
            let mut sorted = shuffled.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, time, "the same items are masked; the rest shuffled");
        }
        assert!(
            (0..6).any(|seed| !increasing(&visible(true, seed))),
            "shuffled prompts leave time order"
        );
    }

    #[test]
    fn mask_rounding_floors_as_the_code_or_rounds() {
        let k = |r: MaskRounding, n: usize| r.count(0.2, n);
        // n = 8: 1.6 items
        assert_eq!(
            (k(MaskRounding::Floor, 8), k(MaskRounding::Nearest, 8)),
            (1, 2)
        );
        // n = 10: 2 either way; n = 2: 0.4, but at least one
        assert_eq!(
            (k(MaskRounding::Floor, 10), k(MaskRounding::Nearest, 10)),
            (2, 2)
        );
        assert_eq!(
            (k(MaskRounding::Floor, 2), k(MaskRounding::Nearest, 2)),
            (1, 1)
        );
        // n = 1: the one item
        assert_eq!(k(MaskRounding::Nearest, 1), 1);
        assert_eq!(MaskRounding::Floor.count(0.9, 1), 1);
    }
}
