//! GPT-2 (Radford et al. 2019), the backbone of CLLM4Rec, ported from Hugging Face
//! `transformers`' `GPT2LMHeadModel`: learned position embeddings, pre-LN blocks with causal
//! attention and a `gelu_new` MLP, a final layer norm and an LM head tied to the token
//! embeddings. Dropout (`embd_pdrop`, `attn_pdrop`, `resid_pdrop`) only where a training step
//! asks for it ([`Gpt2::forward_embeds_dropout`], `model::dropout`).
//!
//! Field names follow the checkpoint (`wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn`,
//! `h.N.mlp.c_fc`, `ln_f`), so loading needs no renaming table (the few rules it has are in
//! `gpt2/load.rs`).

mod attention;
mod block;
mod error;
mod layer_norm;
mod load;
mod params;
#[cfg(test)]
mod tests;

pub use attention::Attention;
pub use block::{gelu_new, Block, Mlp};
pub use error::Gpt2Error;
pub use layer_norm::LayerNorm;

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor};

use crate::model::dropout::{Dropout, Site};
use params::{Builder, ParamSource, RandomInit};

/// The shape of a GPT-2 (the fields of Hugging Face's `GPT2Config` that change the function).
#[derive(Config, Debug, PartialEq)]
pub struct Gpt2Config {
    /// Number of token embeddings (`vocab_size`; CLLM4Rec extends it with user/item tokens).
    pub vocab_size: usize,
    /// Number of learned positions: the longest sequence (`n_positions`).
    pub n_positions: usize,
    /// Width of the hidden states, `d` (`n_embd`).
    pub n_embd: usize,
    /// Number of transformer blocks (`n_layer`).
    pub n_layer: usize,
    /// Number of attention heads; `n_embd` must be a multiple of it (`n_head`).
    pub n_head: usize,
    /// Width of the MLP's hidden layer (`n_inner`); `None` means `4 * n_embd`.
    pub n_inner: Option<usize>,
    /// Added to the variance in every layer norm (`layer_norm_epsilon`).
    #[config(default = 1e-5)]
    pub layer_norm_epsilon: f64,
    /// Standard deviation of the random initialisation (`initializer_range`).
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

impl Gpt2Config {
    /// GPT-2 small, the 124M-parameter model CLLM4Rec starts from (Hugging Face `gpt2`).
    pub fn small() -> Gpt2Config {
        Gpt2Config::new(50257, 1024, 768, 12, 12)
    }

    /// A tiny GPT-2 for tests, the shape of `tests/fixtures/gpt2-tiny`: 512 tokens, 64
    /// positions, width 32, 2 layers, 4 heads.
    pub fn tiny() -> Gpt2Config {
        Gpt2Config::new(512, 64, 32, 2, 4)
    }

    /// Reads a Hugging Face `config.json`, refusing options this port does not implement.
    pub fn from_hf_json(path: &Path) -> Result<Gpt2Config, Gpt2Error> {
        load::read_hf_config(path)
    }

    /// The MLP's hidden width.
    pub fn d_inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// The standard deviation of the residual projections' (`c_proj`) initialisation, scaled
    /// by `1/sqrt(2 n_layer)` as in GPT-2 and Hugging Face.
    pub(crate) fn residual_std(&self) -> f64 {
        self.initializer_range / (2.0 * self.n_layer.max(1) as f64).sqrt()
    }

    /// Checks that the sizes are positive and that the heads divide the width.
    pub fn check(&self) -> Result<(), Gpt2Error> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("n_inner", self.d_inner()),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Gpt2Error::InvalidConfig(format!(
                "`{name}` must be positive"
            )));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Gpt2Error::InvalidConfig(format!(
                "`n_embd` ({}) must be a multiple of `n_head` ({})",
                self.n_embd, self.n_head
            )));
        }
        Ok(())
    }

    /// A randomly initialised GPT-2, like Hugging Face's: weights and embeddings normal with
    /// standard deviation `initializer_range` (the residual projections `c_proj` scaled by
    /// `1/sqrt(2 n_layer)`), biases 0, layer-norm scales 1. The same seed gives bit-identical
    /// weights on any machine. The parameters require gradients (on an autodiff device); call
    /// [`Gpt2::frozen`] to freeze them.
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`Gpt2Config::check`] first on user-given sizes.
    pub fn init(&self, seed: u64, device: &Device) -> Gpt2 {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        match Gpt2::build(self, &mut RandomInit::new(seed), device) {
            Ok(model) => model,
            Err(e) => unreachable!("random initialisation cannot fail: {e}"),
        }
    }
}

/// GPT-2 with a tied LM head (the head's weight is `wte`'s).
#[derive(Module, Debug)]
pub struct Gpt2 {
    /// Token embeddings, weight [vocab, d]; also the LM head.
    pub wte: Embedding,
    /// Position embeddings, weight [n_positions, d].
    pub wpe: Embedding,
    /// The transformer blocks.
    pub h: Vec<Block>,
    /// The final layer norm.
    pub ln_f: LayerNorm,
}

impl Gpt2 {
    /// Builds the module tree, asking `source` for each parameter in a fixed order.
    fn build(
        config: &Gpt2Config,
        source: &mut dyn ParamSource<Gpt2Error>,
        device: &Device,
    ) -> Result<Gpt2, Gpt2Error> {
        let (d, std) = (config.n_embd, config.initializer_range);
        let mut b = Builder::new(source, device);
        let wte = b.embedding("wte", config.vocab_size, d, std)?;
        let wpe = b.embedding("wpe", config.n_positions, d, std)?;
        let h = b.scope("h", |b| {
            (0..config.n_layer)
                .map(|i| b.scope(&i.to_string(), |b| Block::build(b, config)))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let ln_f = LayerNorm::build(&mut b, "ln_f", d, config.layer_norm_epsilon)?;
        Ok(Gpt2 { wte, wpe, h, ln_f })
    }

    /// Loads a Hugging Face checkpoint folder: `config.json` and `model.safetensors`.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Gpt2, Gpt2Error> {
        let config = Gpt2Config::from_hf_json(&dir.join("config.json"))?;
        Gpt2::from_safetensors(&config, &dir.join("model.safetensors"), device)
    }

    /// Loads the weights of a GPT-2 of shape `config` from a Hugging Face safetensors file
    /// (keys with or without the `transformer.` prefix; the rules are in `gpt2/load.rs`). The
    /// parameters require gradients (on an autodiff device); call [`Gpt2::frozen`] to freeze.
    pub fn from_safetensors(
        config: &Gpt2Config,
        path: &Path,
        device: &Device,
    ) -> Result<Gpt2, Gpt2Error> {
        config.check()?;
        load::load_safetensors(config, path, device)
    }

    /// Freezes (`true`: no parameter requires gradients, as CLLM4Rec does with its pretrained
    /// backbone; gradients still flow through it to the input embeddings) or unfreezes
    /// (`false`: every parameter is trained, e.g. for a randomly initialised backbone).
    pub fn frozen(self, frozen: bool) -> Gpt2 {
        self.set_require_grad(!frozen)
    }

    /// The number of positions, the longest sequence it accepts.
    pub fn n_positions(&self) -> usize {
        self.wpe.weight.shape().dims::<2>()[0]
    }

    /// The token embedding table (the tied LM head's weight).
    ///
    /// # Shapes
    ///
    /// - output: `[vocab, d]`
    pub fn wte_weight(&self) -> Tensor<2> {
        self.wte.weight.val()
    }

    /// Looks up token embeddings.
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq]`, each in `0..vocab`
    /// - output: `[batch, seq, d]`
    pub fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.wte.weight.val(), ids)
    }

    /// Runs the transformer on given input embeddings: adds the embeddings of positions
    /// `0..seq` (every row starts at position 0, as Hugging Face without `position_ids`), runs
    /// the blocks and `ln_f`. CLLM4Rec calls it with its own user/item embeddings placed at the
    /// user/item token positions.
    ///
    /// `attention_mask` is 1 for real tokens and 0 for padding; padding is never attended to.
    /// Outputs at padded positions are meaningless.
    ///
    /// # Shapes
    ///
    /// - inputs_embeds: `[batch, seq, d]`, `seq <= n_positions`
    /// - attention_mask: `[batch, seq]`
    /// - output: `[batch, seq, d]`, the last hidden state (after `ln_f`)
    ///
    /// # Panics
    ///
    /// If `seq > n_positions` or the mask's shape is not `[batch, seq]`.
    pub fn forward_embeds(
        &self,
        inputs_embeds: Tensor<3>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        self.forward_embeds_dropout(inputs_embeds, attention_mask, None)
    }

    /// [`Gpt2::forward_embeds`] with a training batch's dropout: the embeddings plus
    /// positions, the attention probabilities and both branches of every block
    /// (`model::dropout`, row `r` of the batch as the dropout's row `r`).
    pub fn forward_embeds_dropout(
        &self,
        inputs_embeds: Tensor<3>,
        attention_mask: Option<Tensor<2, Int>>,
        dropout: Option<Dropout>,
    ) -> Tensor<3> {
        let [batch, seq, _] = inputs_embeds.dims();
        assert!(
            seq <= self.n_positions(),
            "sequence of {seq} tokens is longer than the model's {} positions",
            self.n_positions()
        );
        let device = inputs_embeds.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let x = inputs_embeds + self.wpe.forward(positions); // [batch, seq, d] + [1, seq, d]
        let mut x = attention::dropped(x, Site::Embedding, dropout.map(|dr| (dr, 0)));
        let pad = attention_mask.map(|mask| {
            assert_eq!(
                mask.dims(),
                [batch, seq],
                "attention_mask must be [batch, seq]"
            );
            mask.equal_elem(0).reshape([batch, 1, 1, seq]) // [batch, 1, 1, seq], true at padding
        });
        for (l, block) in self.h.iter().enumerate() {
            x = block.forward(x, pad.clone(), dropout.map(|dr| (dr, l)));
        }
        self.ln_f.forward(x)
    }

    /// The tied LM head: `logits = hidden · wteᵀ`.
    ///
    /// # Shapes
    ///
    /// - hidden: `[batch, seq, d]`
    /// - output: `[batch, seq, vocab]`
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, seq, d] = hidden.dims();
        let wte = self.wte.weight.val(); // [vocab, d]
        let [vocab, _] = wte.dims();
        hidden
            .reshape([batch * seq, d]) // [batch * seq, d]
            .matmul(wte.transpose()) // [batch * seq, vocab]
            .reshape([batch, seq, vocab])
    }

    /// The language model on token ids: [`Gpt2::embed_tokens`], [`Gpt2::forward_embeds`],
    /// [`Gpt2::lm_logits`].
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
