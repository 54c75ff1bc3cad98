//! Causal self-attention of packed sequences, forward and backward, one sequence per
//! parallel piece.

use rayon::prelude::*;

use super::gemm;
use crate::model::dropout::Dropout;

/// Splits `v` into consecutive mutable pieces of the given lengths.
fn split_lens<T>(mut v: &mut [T], lens: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lens {
        let (head, tail) = v.split_at_mut(len);
        out.push(head);
        v = tail;
    }
    out
}

/// The shape of one attention call: heads and the width of a head.
#[derive(Clone, Copy)]
pub struct Heads {
    pub n: usize,
    pub dim: usize,
}

impl Heads {
    fn d(&self) -> usize {
        self.n * self.dim
    }
}

/// `p[i, j] = q_i · k_j * scale` of one head of one sequence, `[len, len]`.
fn scores(qkv: &[f32], (l, h): (usize, usize), heads: Heads, p: &mut [f32]) {
    let d = heads.d();
    let (q, k) = (&qkv[h * heads.dim..], &qkv[d + h * heads.dim..]);
    gemm(
        (l, heads.dim, l),
        q,
        (3 * d, 1),
        k,
        (1, 3 * d),
        0.0,
        p,
        (l, 1),
    );
}

/// Causal self-attention of packed sequences. `qkv` is `[tokens, 3d]` (queries, keys, values
/// side by side, as GPT-2's `c_attn` makes them); sequence `s` holds tokens
/// `starts[s]..starts[s] + lens[s]` and attends only within itself. Returns the context
/// `[tokens, d]` and, per sequence, the log of each query row's softmax denominator
/// `[heads, len]` (with its max), from which the backward pass recomputes the probabilities
/// instead of keeping `[heads, len, len]` of them (as flash attention does): memory linear in
/// the sequence length.
///
/// With `drop` (a training batch's dropout and the layer), the probabilities are dropped
/// (`model::dropout`, sequence `s` as the batch's row `s`) before they weigh the values;
/// the log-denominators are those of the probabilities before dropout.
pub fn attention(
    qkv: &[f32],
    lens: &[usize],
    heads: Heads,
    drop: Option<(Dropout, usize)>,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let d = heads.d();
    let n: usize = lens.iter().sum();
    let scale = 1.0 / (heads.dim as f32).sqrt();
    let mut out = vec![0f32; n * d];
    let mut lse: Vec<Vec<f32>> = lens.iter().map(|&l| vec![0f32; heads.n * l]).collect();
    let starts = starts(lens);
    let pieces = split_lens(&mut out, lens.iter().map(|l| l * d));
    pieces
        .into_par_iter()
        .zip(lse.par_iter_mut())
        .zip(lens.par_iter().zip(starts.par_iter()))
        .enumerate()
        .for_each(|(row, ((out, lse), (&l, &s)))| {
            let qkv = &qkv[s * 3 * d..(s + l) * 3 * d];
            let mut p = vec![0f32; l * l];
            for h in 0..heads.n {
                scores(qkv, (l, h), heads, &mut p);
                for i in 0..l {
                    let row = &mut p[i * l..(i + 1) * l];
                    let mut max = f32::NEG_INFINITY;
                    for x in &mut row[..=i] {
                        *x *= scale;
                        max = max.max(*x);
                    }
                    let mut sum = 0f32;
                    for x in &mut row[..=i] {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    for x in &mut row[..=i] {
                        *x *= inv;
                    }
                    row[i + 1..].fill(0.0);
                    lse[h * l + i] = max + sum.ln();
                }
                if let Some((dr, layer)) = drop {
                    drop_probabilities(&mut p, dr, layer, row, h, l);
                }
                let v = &qkv[2 * d + h * heads.dim..];
                gemm(
                    (l, l, heads.dim),
                    &p,
                    (l, 1),
                    v,
                    (3 * d, 1),
                    0.0,
                    &mut out[h * heads.dim..],
                    (d, 1),
                );
            }
        });
    (out, lse)
}

/// Backward of [`attention`]: from the context's gradient `dout [tokens, d]`, the gradient of
/// `qkv` `[tokens, 3d]`.
pub fn attention_backward(
    qkv: &[f32],
    lse: &[Vec<f32>],
    dout: &[f32],
    lens: &[usize],
    heads: Heads,
    drop: Option<(Dropout, usize)>,
) -> Vec<f32> {
    let d = heads.d();
    let n: usize = lens.iter().sum();
    let scale = 1.0 / (heads.dim as f32).sqrt();
    let mut dqkv = vec![0f32; n * 3 * d];
    let starts = starts(lens);
    let pieces = split_lens(&mut dqkv, lens.iter().map(|l| l * 3 * d));
    pieces
        .into_par_iter()
        .zip(lse.par_iter())
        .zip(lens.par_iter().zip(starts.par_iter()))
        .enumerate()
        .for_each(|(row, ((dqkv, lse), (&l, &s)))| {
            let qkv = &qkv[s * 3 * d..(s + l) * 3 * d];
            let dout = &dout[s * d..(s + l) * d];
            let mut p = vec![0f32; l * l];
            let mut ds = vec![0f32; l * l];
            // with dropout: the dropped probabilities, which weigh the values
            let mut pd = drop.map(|_| vec![0f32; l * l]);
            for h in 0..heads.n {
                let o = h * heads.dim;
                // the probabilities again, from the scores and the forward's log-denominators
                scores(qkv, (l, h), heads, &mut p);
                for i in 0..l {
                    let (row, m) = (&mut p[i * l..(i + 1) * l], lse[h * l + i]);
                    for x in &mut row[..=i] {
                        *x = (*x * scale - m).exp();
                    }
                    row[i + 1..].fill(0.0);
                }
                // dP = dOut · Vᵀ
                gemm(
                    (l, heads.dim, l),
                    &dout[o..],
                    (d, 1),
                    &qkv[2 * d + o..],
                    (1, 3 * d),
                    0.0,
                    &mut ds,
                    (l, 1),
                );
                // with dropout, out = (P * M) · V: dV = (P * M)ᵀ · dOut, dP = (dOut · Vᵀ) * M
                if let (Some((dr, layer)), Some(pd)) = (drop, pd.as_mut()) {
                    pd.copy_from_slice(&p);
                    drop_probabilities(pd, dr, layer, row, h, l);
                    drop_probabilities(&mut ds, dr, layer, row, h, l);
                }
                // dV = Pᵀ · dOut
                gemm(
                    (l, l, heads.dim),
                    pd.as_deref().unwrap_or(&p),
                    (1, l),
                    &dout[o..],
                    (d, 1),
                    0.0,
                    &mut dqkv[2 * d + o..],
                    (3 * d, 1),
                );
                // dS = P * (dP - sum_j P dP), scaled
                for i in 0..l {
                    let (pr, dr) = (&p[i * l..i * l + i + 1], &mut ds[i * l..(i + 1) * l]);
                    let dot: f32 = pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
                    for (dv, pv) in dr.iter_mut().zip(pr) {
                        *dv = pv * (*dv - dot) * scale;
                    }
                    dr[i + 1..].fill(0.0);
                }
                // dQ = dS · K, dK = dSᵀ · Q
                gemm(
                    (l, l, heads.dim),
                    &ds,
                    (l, 1),
                    &qkv[d + o..],
                    (3 * d, 1),
                    0.0,
                    &mut dqkv[o..],
                    (3 * d, 1),
                );
                gemm(
                    (l, l, heads.dim),
                    &ds,
                    (1, l),
                    &qkv[o..],
                    (3 * d, 1),
                    0.0,
                    &mut dqkv[d + o..],
                    (3 * d, 1),
                );
            }
        });
    dqkv
}

/// Multiplies one head's probabilities `[len, len]` (the causal half) by their dropout
/// factors.
fn drop_probabilities(p: &mut [f32], dr: Dropout, layer: usize, row: usize, h: usize, l: usize) {
    for i in 0..l {
        for (j, x) in p[i * l..i * l + i + 1].iter_mut().enumerate() {
            *x *= dr.attention_factor(layer, row, h, i, j);
        }
    }
}

/// Where each sequence starts among the packed tokens.
fn starts(lens: &[usize]) -> Vec<usize> {
    lens.iter()
        .scan(0, |acc, &l| {
            let s = *acc;
            *acc += l;
            Some(s)
        })
        .collect()
}
