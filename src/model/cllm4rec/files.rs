//! What the pretrain and finetune stages write, and how later stages read it back:
//! `checkpoint.safetensors` (every parameter, the backbone's included unless it is a frozen
//! pretrained file kept as `backbone.gguf` beside it), `model.json` (shapes and provenance),
//! `history.json` (per-epoch statistics).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::gguf::Gguf;
use crate::model::backbone::Backbone;
use crate::model::cllm4rec::scorer::PromptOrder;
use crate::model::cllm4rec::{checkpoint, Cllm4Rec};
use crate::model::fused::Engine;
use crate::model::gpt2::Gpt2Config;
use crate::model::llama::{Llama, LlamaConfig};
use crate::text::binfmt::Corpus;
use burn::tensor::Device;

/// model.json of a CLLM4Rec stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Always `cllm4rec`.
    pub model: String,
    /// `pretrain` or `finetune`.
    pub stage: String,
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub users: usize,
    pub items: usize,
    /// Whether the backbone was frozen.
    pub frozen: bool,
    /// Where the backbone came from: `random` or the pretrained checkpoint's path.
    pub backbone: String,
    /// Finetuning only: the kept epoch (0: the pretrained model itself).
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// The backbone's architecture: `gpt2` (left out of model.json) or `llama`.
    #[serde(default = "gpt2", skip_serializing_if = "is_gpt2")]
    pub arch: String,
    /// A frozen pretrained backbone stored as this file of the output folder, unchanged from
    /// its source (`backbone.gguf`); its parameters are then left out of the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone_file: Option<String>,
    /// The Llama backbone's shape (`arch: llama` only; `max_position_embeddings` is the
    /// sequence cap the stage used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llama: Option<LlamaConfig>,
    /// The stage's `engine` (left out of model.json when `auto`): what the model's scorer
    /// computes with, as its training did.
    #[serde(default, skip_serializing_if = "Engine::is_auto")]
    pub engine: Engine,
    /// finetune's `prompt_order` (left out of model.json when `time`): the order of the items
    /// in the prompts its scorer builds.
    #[serde(default, skip_serializing_if = "PromptOrder::is_time")]
    pub prompt_order: PromptOrder,
    /// The model FLOPs that made the model (`model::flops`), from the start: pretraining's,
    /// and finetuning's on top, its validation scoring included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    /// Finetuning only: the kept epoch's validation metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<serde_json::Value>,
}

fn gpt2() -> String {
    "gpt2".into()
}

fn is_gpt2(arch: &str) -> bool {
    arch == "gpt2"
}

/// The module path of the backbone in the checkpoint, left out when it is stored as a file.
fn skipped(info: &ModelInfo) -> Option<&'static str> {
    info.backbone_file.as_ref().map(|_| "backbone")
}

impl ModelInfo {
    pub fn gpt2_config(&self) -> Gpt2Config {
        Gpt2Config::new(
            self.vocab_size,
            self.n_positions,
            self.n_embd,
            self.n_layer,
            self.n_head,
        )
    }
}

/// Writes a CLLM4Rec stage's output; `backbone_src` is the file to store as
/// `info.backbone_file` (the source GGUF, or the upstream stage's copy).
pub fn write(
    dir: &Path,
    model: &Cllm4Rec,
    info: &ModelInfo,
    history: &Json,
    backbone_src: Option<&Path>,
) -> Result<(), String> {
    match (&info.backbone_file, backbone_src) {
        (Some(name), Some(src)) => {
            std::fs::copy(src, dir.join(name))
                .map_err(|e| format!("cannot copy the backbone {}: {e}", src.display()))?;
        }
        (None, None) => {}
        _ => return Err("the backbone file and its source must be given together".into()),
    }
    let bytes = checkpoint::to_bytes_except(model, skipped(info))?;
    std::fs::write(dir.join("checkpoint.safetensors"), bytes)
        .map_err(|e| format!("cannot write the checkpoint: {e}"))?;
    write_json(
        dir,
        "model.json",
        &serde_json::to_value(info).expect("plain data"),
    )?;
    write_json(dir, "history.json", history)
}

pub fn write_json(dir: &Path, name: &str, v: &Json) -> Result<(), String> {
    std::fs::write(
        dir.join(name),
        serde_json::to_string_pretty(v).expect("plain data") + "\n",
    )
    .map_err(|e| format!("cannot write {name}: {e}"))
}

/// A CLLM4Rec stage's output, on `device`; parameters keep the frozen state recorded.
pub fn read(dir: &Path, device: &Device) -> Result<(Cllm4Rec, ModelInfo), String> {
    let info: ModelInfo = serde_json::from_str(
        &std::fs::read_to_string(dir.join("model.json"))
            .map_err(|e| format!("{}: {e}", dir.display()))?,
    )
    .map_err(|e| format!("model.json: {e}"))?;
    let backbone = match (info.arch.as_str(), &info.backbone_file) {
        ("gpt2", None) => Backbone::Gpt2(info.gpt2_config().init(0, device)),
        ("llama", file) => {
            let config = info
                .llama
                .as_ref()
                .ok_or("model.json: a `llama` backbone without its `llama` shape")?;
            config.check().map_err(|e| format!("model.json: {e}"))?;
            match file {
                // a frozen pretrained backbone, kept in its original file
                Some(f) => {
                    let path = dir.join(f);
                    let gguf = Gguf::open(&path).map_err(|e| e.to_string())?;
                    Backbone::Llama(
                        Llama::from_gguf_file(config, &gguf, device)
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                    )
                }
                // its weights are in the checkpoint
                None => Backbone::Llama(config.init(0, device)),
            }
        }
        (arch, file) => {
            return Err(format!(
                "model.json: a `{arch}` backbone{} cannot be read by this build",
                file.as_ref()
                    .map(|f| format!(" stored as `{f}`"))
                    .unwrap_or_default()
            ))
        }
    }
    .frozen(info.frozen);
    let model = Cllm4Rec::new(backbone, info.users, info.items, 0, device);
    let bytes = std::fs::read(dir.join("checkpoint.safetensors"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let model = checkpoint::from_bytes_except(model, &bytes, skipped(&info))
        .map_err(|e| format!("{}: {e}", dir.join("checkpoint.safetensors").display()))?;
    Ok((model, info))
}

/// The layout a `tokenize` output declares: (base vocabulary, users, items).
pub fn vocab(dir: &Path) -> Result<(usize, usize, usize), String> {
    let v: Json = serde_json::from_str(
        &std::fs::read_to_string(dir.join("vocab.json"))
            .map_err(|e| format!("{}: {e}", dir.display()))?,
    )
    .map_err(|e| format!("vocab.json: {e}"))?;
    let get = |k: &str| {
        v[k].as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| format!("vocab.json lacks `{k}`"))
    };
    Ok((get("base_vocab")?, get("users")?, get("items")?))
}

pub fn corpus(dir: &Path, name: &str) -> Result<Corpus, String> {
    Corpus::read(&dir.join(name)).map_err(|e| e.to_string())
}
