//! The backbone CLLM4Rec extends with user and item tokens: a GPT-2 or a Llama-family decoder
//! (SmolLM2, read from a GGUF file). Both offer the same few operations, so the CLLM4Rec model, its losses and its
//! scorer never ask which one they hold.
//!
//! In checkpoints the variant name does not appear in parameter paths (`backbone.wte.weight`,
//! not `backbone.Gpt2.wte.weight`; see `cllm4rec/checkpoint.rs`), so checkpoints of GPT-2
//! backbones read the same as before the enum existed.

use burn::module::Module;
use burn::tensor::{Int, Tensor};

use crate::model::dropout::Dropout;

use crate::model::gpt2::Gpt2;
use crate::model::llama::Llama;

// One backbone per model, never in a collection: the variants' size difference (a Llama's
// rotary tables sit inline) costs nothing worth a Box through burn's Module derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    Gpt2(Gpt2),
    Llama(Llama),
}

impl Backbone {
    /// `gpt2` or `llama`: what model.json records as `arch`.
    pub fn arch(&self) -> &'static str {
        match self {
            Backbone::Gpt2(_) => "gpt2",
            Backbone::Llama(_) => "llama",
        }
    }

    /// Freezes (`true`) or unfreezes every backbone parameter.
    pub fn frozen(self, frozen: bool) -> Backbone {
        match self {
            Backbone::Gpt2(m) => Backbone::Gpt2(m.frozen(frozen)),
            Backbone::Llama(m) => Backbone::Llama(m.frozen(frozen)),
        }
    }

    /// The longest sequence the backbone accepts.
    pub fn n_positions(&self) -> usize {
        match self {
            Backbone::Gpt2(m) => m.n_positions(),
            Backbone::Llama(m) => m.n_positions(),
        }
    }

    /// The word embedding table, `[vocab, d]`.
    pub fn wte_weight(&self) -> Tensor<2> {
        match self {
            Backbone::Gpt2(m) => m.wte_weight(),
            Backbone::Llama(m) => m.wte_weight(),
        }
    }

    /// The word output head, `[vocab, d]`: the content LLM's softmax weights (the word
    /// embedding table when tied, as in GPT-2 and SmolLM2).
    pub fn word_head_weight(&self) -> Tensor<2> {
        match self {
            Backbone::Gpt2(m) => m.wte_weight(),
            Backbone::Llama(m) => m.lm_head_weight(),
        }
    }

    /// Word embeddings of `ids` `[batch, seq]` -> `[batch, seq, d]`.
    pub fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Backbone::Gpt2(m) => m.embed_tokens(ids),
            Backbone::Llama(m) => m.embed_tokens(ids),
        }
    }

    /// The last hidden state `[batch, seq, d]` of given input embeddings; `attention_mask` is 1
    /// for real tokens and 0 for (right) padding. `dropout`: a training batch's, GPT-2's
    /// only (the stages refuse it for a Llama backbone, whose architecture has none).
    pub fn forward_embeds(
        &self,
        inputs_embeds: Tensor<3>,
        attention_mask: Option<Tensor<2, Int>>,
        dropout: Option<Dropout>,
    ) -> Tensor<3> {
        match self {
            Backbone::Gpt2(m) => m.forward_embeds_dropout(inputs_embeds, attention_mask, dropout),
            Backbone::Llama(m) => {
                assert!(dropout.is_none(), "a Llama backbone has no dropout");
                m.forward_embeds(inputs_embeds, attention_mask)
            }
        }
    }

    /// (layers, heads) for model.json.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Backbone::Gpt2(m) => (m.h.len(), m.h.first().map(|b| b.attn.n_head).unwrap_or(1)),
            Backbone::Llama(m) => (
                m.layers.len(),
                m.layers.first().map(|l| l.self_attn.heads).unwrap_or(1),
            ),
        }
    }
}

impl From<Gpt2> for Backbone {
    fn from(m: Gpt2) -> Backbone {
        Backbone::Gpt2(m)
    }
}

impl From<Llama> for Backbone {
    fn from(m: Llama) -> Backbone {
        Backbone::Llama(m)
    }
}
