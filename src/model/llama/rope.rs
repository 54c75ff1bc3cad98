//! Rotary position embeddings (Su et al. 2021) in Hugging Face's convention: the two halves
//! of each head, `x1 = x[..hd/2]` and `x2 = x[hd/2..]`, are rotated as pairs
//! `(x1[i], x2[i])` by the angle `position · inv_freq[i]` (`rotate_half`). Checkpoints in the
//! Hugging Face layout need no permutation; GGUF's query and key weights, which llama.cpp
//! permutes for its interleaved pairs, are put back into this layout when loaded.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// How positions are scaled before the rotation (`rope_scaling` / `rope_parameters`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RopeScaling {
    /// Positions as they are (`rope_type` `default`).
    None,
    /// Positions divided by `factor` (`rope_type` `linear`, "position interpolation").
    Linear {
        /// The divisor, > 0.
        factor: f64,
    },
}

/// The inverse frequencies `1 / (theta^(2i / head_dim) · factor)`, `i` in `0..head_dim/2`,
/// rounded to f32 as Hugging Face computes them.
pub fn inverse_frequencies(head_dim: usize, theta: f64, scaling: RopeScaling) -> Vec<f32> {
    let factor = match scaling {
        RopeScaling::None => 1.0,
        RopeScaling::Linear { factor } => factor as f32,
    };
    (0..head_dim / 2)
        .map(|i| {
            // f32 exponent and power, as torch computes `base ** (arange(0, dim, 2) / dim)`.
            let exponent = (2 * i) as f32 / head_dim as f32;
            let inv = 1.0 / (theta as f32).powf(exponent);
            inv / factor
        })
        .collect()
}

/// The cosines and sines of every position's angles, computed once when the model is built.
/// They are plain tensors, not parameters: module visitors (optimisers, checkpoints) do not see
/// them.
#[derive(Module, Debug)]
pub struct Rope {
    /// `cos(p · inv_freq[i])`, [positions, head_dim / 2].
    pub cos: Tensor<2>,
    /// `sin(p · inv_freq[i])`, [positions, head_dim / 2].
    pub sin: Tensor<2>,
}

impl Rope {
    /// Tables for positions `0..positions`.
    pub fn new(
        positions: usize,
        head_dim: usize,
        theta: f64,
        scaling: RopeScaling,
        device: &Device,
    ) -> Rope {
        let inv = inverse_frequencies(head_dim, theta, scaling);
        let half = inv.len();
        let (mut cos, mut sin) = (
            Vec::with_capacity(positions * half),
            Vec::with_capacity(positions * half),
        );
        for p in 0..positions {
            for &f in &inv {
                let angle = (p as f32 * f) as f64; // an f32 product, as Hugging Face's
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Rope {
            cos: Tensor::from_data(TensorData::new(cos, [positions, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [positions, half]), device),
        }
    }

    /// The number of positions the tables cover.
    pub fn positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// The tables for positions `0..seq`, shaped to broadcast over `[batch, seq, heads, hd/2]`.
    pub(crate) fn tables(&self, seq: usize) -> (Tensor<4>, Tensor<4>) {
        let half = self.cos.dims()[1];
        let shape = [1, seq, 1, half];
        (
            self.cos.clone().narrow(0, 0, seq).reshape(shape),
            self.sin.clone().narrow(0, 0, seq).reshape(shape),
        )
    }

    /// Rotates every head of `x` by its position: `[x1 cos - x2 sin, x2 cos + x1 sin]`, which
    /// is Hugging Face's `x * cos + rotate_half(x) * sin`.
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, heads, head_dim]`
    /// - cos, sin: `[1, seq, 1, head_dim / 2]` (from [`Rope::tables`])
    /// - output: `[batch, seq, heads, head_dim]`
    pub(crate) fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let half = x.dims()[3] / 2;
        let x1 = x.clone().narrow(3, 0, half); // [batch, seq, heads, hd/2]
        let x2 = x.narrow(3, half, half);
        let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
        let r2 = x2 * cos.clone() + x1 * sin.clone();
        Tensor::cat(vec![r1, r2], 3)
    }
}
