//! The backbone a `pretrain` stage trains around: its params (a random GPT-2 of a given
//! shape, a Hugging Face GPT-2 folder or a GGUF file) and how they are built.

use std::path::{Path, PathBuf};

use crate::gguf::Gguf;
use crate::model::backbone::Backbone;
use crate::model::gpt2::{Gpt2, Gpt2Config};
use crate::model::llama::{Llama, LlamaConfig};

crate::choice! {
    /// For a backbone folder or file: its `pretrained` weights, or its shape only, `random`ly
    /// initialised from the seed (the LLM-Scratch ablation).
    Init { Pretrained = "pretrained", Random = "random" }
}

/// The backbone: a random GPT-2 of the given shape, a Hugging Face GPT-2 folder or a GGUF file.
#[derive(Debug, Clone)]
pub struct BackboneParams {
    /// `random`, or a folder with config.json and model.safetensors, or a `.gguf` file
    /// (relative to the pipeline).
    pub backbone: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub n_positions: usize,
    /// Default: frozen when pretrained (the paper), trained when random.
    pub freeze: Option<bool>,
    pub init: Init,
}

impl BackboneParams {
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.backbone == "random" {
            if self.n_embd == 0 || self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
                return Err((
                    "n_embd".into(),
                    format!(
                        "`n_embd` ({}) must be a positive multiple of `n_head` ({})",
                        self.n_embd, self.n_head
                    ),
                ));
            }
            if self.n_layer == 0 || self.n_positions < 8 {
                return Err((
                    "n_layer".into(),
                    "the backbone needs at least one layer and 8 positions".into(),
                ));
            }
        }
        Ok(())
    }

    /// Build the backbone for a vocabulary of `base` words.
    pub fn build(
        &self,
        base: usize,
        seed: u64,
        workdir: &Path,
        device: &burn::tensor::Device,
    ) -> Result<BuiltBackbone, String> {
        let pretrained = self.backbone != "random" && self.init == Init::Pretrained;
        let path = workdir.join(&self.backbone);
        let named = |e: &dyn std::fmt::Display| format!("backbone `{}`: {e}", path.display());
        let mut llama = None;
        let backbone = if self.backbone == "random" {
            Backbone::from(
                Gpt2Config::new(
                    base,
                    self.n_positions,
                    self.n_embd,
                    self.n_layer,
                    self.n_head,
                )
                .init(seed, device),
            )
        } else if is_gguf(&self.backbone) {
            // A Llama-family GGUF (SmolLM2): its shape, and its weights unless `init: random`;
            // rotary tables only as long as the longest sequence used.
            let file = Gguf::open(&path).map_err(|e| e.to_string())?;
            let mut config = LlamaConfig::from_gguf(&file).map_err(|e| named(&e))?;
            config.max_position_embeddings = config.max_position_embeddings.min(self.n_positions);
            let model = if pretrained {
                Llama::from_gguf_file(&config, &file, device).map_err(|e| named(&e))?
            } else {
                config.check().map_err(|e| named(&e))?;
                config.init(seed, device)
            };
            llama = Some(config);
            Backbone::from(model)
        } else if pretrained {
            Backbone::from(Gpt2::from_pretrained(&path, device).map_err(|e| named(&e))?)
        } else {
            let config =
                Gpt2Config::from_hf_json(&path.join("config.json")).map_err(|e| named(&e))?;
            config.check().map_err(|e| named(&e))?;
            Backbone::from(config.init(seed, device))
        };
        let vocab = backbone.wte_weight().dims()[0];
        if vocab != base {
            return Err(format!(
                "the backbone has {vocab} word embeddings but the tokenizer {base} words \
                 (a GGUF backbone needs `tokenizer: gguf` with the same file)"
            ));
        }
        let frozen = self.freeze.unwrap_or(pretrained);
        Ok(BuiltBackbone {
            backbone: backbone.frozen(frozen),
            frozen,
            file: (pretrained && frozen && llama.is_some()).then_some(path),
            max_len: self.n_positions,
            llama,
        })
    }
}

/// Whether a backbone path names a GGUF file (by its extension).
pub(super) fn is_gguf(backbone: &str) -> bool {
    Path::new(backbone)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A backbone ready for training, with what the outputs record of it.
pub struct BuiltBackbone {
    pub backbone: Backbone,
    pub frozen: bool,
    /// A frozen pretrained file to store beside the checkpoint instead of its weights.
    pub file: Option<PathBuf>,
    /// The longest sequence: `n_positions`, at most the backbone's own.
    pub max_len: usize,
    /// The shape of a Llama backbone.
    pub llama: Option<LlamaConfig>,
}
