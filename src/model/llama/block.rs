//! A Llama decoder layer (`layers.N`) and its SwiGLU feed-forward network (`mlp`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{Bool, Tensor};

use super::attention::Attention;
use super::params::Builder;
use super::rms_norm::RmsNorm;
use super::{LlamaConfig, LlamaError};

/// A pre-norm block: `x + self_attn(input_layernorm(x))`, then
/// `x + mlp(post_attention_layernorm(x))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Normalisation before attention.
    pub input_layernorm: RmsNorm,
    /// Causal grouped-query self-attention with rotary positions.
    pub self_attn: Attention,
    /// Normalisation before the feed-forward network.
    pub post_attention_layernorm: RmsNorm,
    /// Feed-forward network.
    pub mlp: Mlp,
}

impl DecoderLayer {
    pub(crate) fn build(b: &mut Builder, config: &LlamaConfig) -> Result<DecoderLayer, LlamaError> {
        let (d, eps) = (config.hidden_size, config.rms_norm_eps);
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::build(b, "input_layernorm", d, eps)?,
            self_attn: Attention::build(b, config)?,
            post_attention_layernorm: RmsNorm::build(b, "post_attention_layernorm", d, eps)?,
            mlp: Mlp::build(b, config)?,
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - cos, sin: `[1, seq, 1, head_dim / 2]`
    /// - mask: `[batch, kv_heads, group · seq, seq]`, `true` where the key is hidden
    /// - output: `[batch, seq, d]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: Tensor<4, Bool>,
    ) -> Tensor<3> {
        let h = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), cos, sin, mask);
        let x = x + h;
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

/// SwiGLU: `down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate: weight [d, intermediate].
    pub gate_proj: Linear,
    /// Up: weight [d, intermediate].
    pub up_proj: Linear,
    /// Down: weight [intermediate, d].
    pub down_proj: Linear,
}

impl Mlp {
    pub(crate) fn build(b: &mut Builder, config: &LlamaConfig) -> Result<Mlp, LlamaError> {
        let (d, inner, std) = (
            config.hidden_size,
            config.intermediate_size,
            config.initializer_range,
        );
        b.scope("mlp", |b| {
            Ok(Mlp {
                gate_proj: b.linear("gate_proj", d, inner, std)?,
                up_proj: b.linear("up_proj", d, inner, std)?,
                down_proj: b.linear("down_proj", inner, d, std)?,
            })
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, d]`
    /// - output: `[batch, seq, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone())); // [batch, seq, intermediate]
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
