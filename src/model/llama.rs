//! Llama (Touvron et al. 2023), the architecture of SmolLM2, ported from Hugging Face
//! `transformers`' `LlamaForCausalLM`: token embeddings, pre-norm decoder layers (RMSNorm,
//! causal grouped-query attention with rotary position embeddings, a SwiGLU MLP), a final
//! RMSNorm and an LM head, tied to the token embeddings or not. No dropout, no biases.
//!
//! Field names follow the Hugging Face checkpoint without its `model.` prefix
//! (`embed_tokens`, `layers.N.self_attn.q_proj`, `layers.N.mlp.gate_proj`, `norm`, `lm_head`),
//! so the safetensors loader needs no renaming table; the GGUF loader's one table is in
//! `llama/gguf.rs`. The public interface is [`Gpt2`](super::Gpt2)'s, so CLLM4Rec can hold
//! either backbone.

mod attention;
mod block;
mod error;
mod gguf;
mod load;
mod params;
mod rms_norm;
mod rope;
#[cfg(test)]
mod tests;

pub use attention::Attention;
pub use block::{DecoderLayer, Mlp};
pub use error::LlamaError;
pub use rms_norm::RmsNorm;
pub use rope::{inverse_frequencies, Rope, RopeScaling};

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Embedding;
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor};

use params::{Builder, Init, ParamSource, RandomInit};

/// The shape of a Llama (the fields of Hugging Face's `LlamaConfig` that change the function).
#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Number of token embeddings (`vocab_size`; CLLM4Rec extends it with user/item tokens).
    pub vocab_size: usize,
    /// Width of the hidden states, `d` (`hidden_size`).
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer (`intermediate_size`).
    pub intermediate_size: usize,
    /// Number of decoder layers (`num_hidden_layers`).
    pub num_hidden_layers: usize,
    /// Number of query heads (`num_attention_heads`).
    pub num_attention_heads: usize,
    /// Number of key/value heads, dividing `num_attention_heads` (`num_key_value_heads`).
    pub num_key_value_heads: usize,
    /// Number of positions with rotary tables: the longest sequence (`max_position_embeddings`).
    pub max_position_embeddings: usize,
    /// Width of one head (`head_dim`), even; `None` means `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// Added to the mean square in every RMSNorm (`rms_norm_eps`).
    #[config(default = 1e-5)]
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies (`rope_theta`).
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Scaling of the rotary positions (`rope_scaling`; only `linear` is implemented).
    #[config(default = "RopeScaling::None")]
    pub rope_scaling: RopeScaling,
    /// Whether the LM head is the token embedding table (`tie_word_embeddings`).
    #[config(default = true)]
    pub tie_word_embeddings: bool,
    /// Standard deviation of the random initialisation (`initializer_range`).
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

impl LlamaConfig {
    /// SmolLM2-135M (`HuggingFaceTB/SmolLM2-135M-Instruct`, the numbers of its GGUF): 30
    /// layers, width 576, MLP 1536, 9 query and 3 key/value heads of 64, RMSNorm epsilon
    /// 1e-5, rope_theta 100000, 49152 tokens, 8192 positions, tied head.
    pub fn smollm2_135m() -> LlamaConfig {
        LlamaConfig::new(49152, 576, 1536, 30, 9, 3, 8192)
            .with_head_dim(Some(64))
            .with_rope_theta(100000.0)
    }

    /// A tiny Llama for tests, the shape of `tests/fixtures/llama-tiny`: 256 tokens, width 32,
    /// MLP 64, 2 layers, 4 query and 2 key/value heads, 64 positions, RMSNorm epsilon 1e-6.
    pub fn tiny() -> LlamaConfig {
        LlamaConfig::new(256, 32, 64, 2, 4, 2, 64).with_rms_norm_eps(1e-6)
    }

    /// Reads a Hugging Face `config.json` (transformers 4's `rope_theta`/`rope_scaling` or 5's
    /// `rope_parameters`), refusing options this port does not implement.
    pub fn from_hf_json(path: &Path) -> Result<LlamaConfig, LlamaError> {
        load::read_hf_config(path)
    }

    /// The width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Checks that the sizes are positive, that the key/value heads divide the query heads,
    /// that the head width is even and that the floats are positive and finite.
    pub fn check(&self) -> Result<(), LlamaError> {
        let invalid = |m: String| Err(LlamaError::InvalidConfig(m));
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("head_dim", self.head_dim()),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("`{name}` must be positive"));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return invalid(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return invalid(format!(
                "`hidden_size` ({}) must be a multiple of `num_attention_heads` ({}) when \
                 `head_dim` is not given",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return invalid(format!(
                "`head_dim` ({}) must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        let factor = match self.rope_scaling {
            RopeScaling::None => 1.0,
            RopeScaling::Linear { factor } => factor,
        };
        let floats = [
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
            ("rope_scaling.factor", factor),
        ];
        if let Some((name, v)) = floats.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return invalid(format!("`{name}` ({v}) must be positive and finite"));
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            return invalid(format!(
                "`initializer_range` ({}) must be finite and not negative",
                self.initializer_range
            ));
        }
        Ok(())
    }

    /// A randomly initialised Llama, like Hugging Face's `LlamaForCausalLM`: weights and
    /// embeddings normal with standard deviation `initializer_range`, RMSNorm scales 1. The
    /// same seed gives bit-identical weights on any machine. The parameters require gradients
    /// (on an autodiff device); call [`Llama::frozen`] to freeze them.
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`LlamaConfig::check`] first on user-given sizes.
    pub fn init(&self, seed: u64, device: &Device) -> Llama {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        match Llama::build(self, &mut RandomInit::new(seed), device) {
            Ok(model) => model,
            Err(e) => unreachable!("random initialisation cannot fail: {e}"),
        }
    }
}

/// An untied LM head (`lm_head`), weight [vocab, d] as the checkpoint stores it.
#[derive(Module, Debug)]
pub struct LmHead {
    /// [vocab, d]: `logits = hidden · weightᵀ`.
    pub weight: Param<Tensor<2>>,
}

/// A Llama causal language model.
#[derive(Module, Debug)]
pub struct Llama {
    /// Token embeddings, weight [vocab, d]; also the LM head when tied.
    pub embed_tokens: Embedding,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// The final RMSNorm.
    pub norm: RmsNorm,
    /// The LM head when it is not tied to `embed_tokens`.
    pub lm_head: Option<LmHead>,
    /// Rotary tables (not parameters).
    pub rope: Rope,
}

impl Llama {
    /// Builds the module tree, asking `source` for each parameter in a fixed order.
    fn build(
        config: &LlamaConfig,
        source: &mut dyn ParamSource<LlamaError>,
        device: &Device,
    ) -> Result<Llama, LlamaError> {
        let (d, std) = (config.hidden_size, config.initializer_range);
        let mut b = Builder::new(source, device);
        let embed_tokens = b.embedding("embed_tokens", config.vocab_size, d, std)?;
        let layers = b.scope("layers", |b| {
            (0..config.num_hidden_layers)
                .map(|i| b.scope(&i.to_string(), |b| DecoderLayer::build(b, config)))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let norm = RmsNorm::build(&mut b, "norm", d, config.rms_norm_eps)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(b.scope("lm_head", |b| {
                Ok(LmHead {
                    weight: b.param("weight", [config.vocab_size, d], Init::Normal(std))?,
                })
            })?)
        };
        let rope = Rope::new(
            config.max_position_embeddings,
            config.head_dim(),
            config.rope_theta,
            config.rope_scaling,
            b.device(),
        );
        Ok(Llama {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
        })
    }

    /// Loads a Hugging Face checkpoint folder: `config.json` and `model.safetensors`.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Llama, LlamaError> {
        let config = LlamaConfig::from_hf_json(&dir.join("config.json"))?;
        Llama::from_safetensors(&config, &dir.join("model.safetensors"), device)
    }

    /// Loads the weights of a Llama of shape `config` from a Hugging Face safetensors file
    /// (keys with or without the `model.` prefix; the rules are in `llama/load.rs`). The
    /// parameters require gradients (on an autodiff device); call [`Llama::frozen`] to freeze.
    pub fn from_safetensors(
        config: &LlamaConfig,
        path: &Path,
        device: &Device,
    ) -> Result<Llama, LlamaError> {
        config.check()?;
        load::load_safetensors(config, path, device)
    }

    /// Freezes (`true`: no parameter requires gradients, as CLLM4Rec does with its pretrained
    /// backbone; gradients still flow through it to the input embeddings) or unfreezes
    /// (`false`: every parameter is trained).
    pub fn frozen(self, frozen: bool) -> Llama {
        self.set_require_grad(!frozen)
    }

    /// The number of positions, the longest sequence it accepts.
    pub fn n_positions(&self) -> usize {
        self.rope.positions()
    }

    /// The token embedding table (the LM head's weight when tied).
    ///
    /// # Shapes
    ///
    /// - output: `[vocab, d]`
    pub fn wte_weight(&self) -> Tensor<2> {
        self.embed_tokens.weight.val()
    }

    /// The LM head's weight: the untied `lm_head`, else the token embedding table.
    ///
    /// # Shapes
    ///
    /// - output: `[vocab, d]`
    pub fn lm_head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.embed_tokens.weight.val(),
        }
    }

    /// Looks up token embeddings.
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq]`, each in `0..vocab`
    /// - output: `[batch, seq, d]`
    pub fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.embed_tokens.weight.val(), ids)
    }

    /// Runs the decoder on given input embeddings at positions `0..seq` (every row starts at
    /// position 0, as Hugging Face without `position_ids`), then the final norm. CLLM4Rec
    /// calls it with its own user/item embeddings placed at the user/item token positions.
    ///
    /// `attention_mask` is 1 for real tokens and 0 for padding; padding is never attended to.
    /// Rows are right-padded; outputs at padded positions are meaningless.
    ///
    /// # Shapes
    ///
    /// - inputs_embeds: `[batch, seq, d]`, `seq <= n_positions`
    /// - attention_mask: `[batch, seq]`
    /// - output: `[batch, seq, d]`, the last hidden state (after `norm`)
    ///
    /// # Panics
    ///
    /// If `seq > n_positions` or the mask's shape is not `[batch, seq]`.
    pub fn forward_embeds(
        &self,
        inputs_embeds: Tensor<3>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let [batch, seq, _] = inputs_embeds.dims();
        assert!(
            seq <= self.n_positions(),
            "sequence of {seq} tokens is longer than the model's {} positions",
            self.n_positions()
        );
        let device = inputs_embeds.device();
        let pad = attention_mask.map(|mask| {
            assert_eq!(
                mask.dims(),
                [batch, seq],
                "attention_mask must be [batch, seq]"
            );
            mask.equal_elem(0) // [batch, seq], true at padding
        });
        let (kv_heads, group) = match self.layers.first() {
            Some(l) => (
                l.self_attn.kv_heads,
                l.self_attn.heads / l.self_attn.kv_heads,
            ),
            None => (1, 1),
        };
        let mask = attention::attention_mask(pad, batch, seq, kv_heads, group, &device);
        let (cos, sin) = self.rope.tables(seq);
        let mut x = inputs_embeds;
        for layer in &self.layers {
            x = layer.forward(x, &cos, &sin, mask.clone());
        }
        self.norm.forward(x)
    }

    /// The LM head: `logits = hidden · Wᵀ`, `W` the untied `lm_head` or else `embed_tokens`.
    ///
    /// # Shapes
    ///
    /// - hidden: `[batch, seq, d]`
    /// - output: `[batch, seq, vocab]`
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, seq, d] = hidden.dims();
        let w = self.lm_head_weight(); // [vocab, d]
        let [vocab, _] = w.dims();
        hidden
            .reshape([batch * seq, d]) // [batch * seq, d]
            .matmul(w.transpose()) // [batch * seq, vocab]
            .reshape([batch, seq, vocab])
    }

    /// The language model on token ids: [`Llama::embed_tokens`], [`Llama::forward_embeds`],
    /// [`Llama::lm_logits`].
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq]`
    /// - attention_mask: `[batch, seq]`, 1 real, 0 padding
    /// - output: (logits `[batch, seq, vocab]`, last hidden state `[batch, seq, d]`)
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> (Tensor<3>, Tensor<3>) {
        let hidden = self.forward_embeds(self.embed_tokens(ids), attention_mask);
        (self.lm_logits(hidden.clone()), hidden)
    }
}
