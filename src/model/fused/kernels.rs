//! The CPU kernels of the fused trainer, forward and backward, on row-major `f32` slices:
//! matrix products (matrixmultiply's sgemm), layer norm, `gelu_new`, causal attention per
//! sequence, and the softmax cross-entropy head computed block by block.
//!
//! Parallel work is cut into pieces whose boundaries do not depend on the number of threads,
//! and every sum is taken in a fixed order, so results are bit-identical from run to run and
//! from machine to machine with the same CPU features.

use rayon::prelude::*;

/// Tokens per parallel piece of the row-wise kernels.
const ROWS: usize = 64;

/// `c[m, n] = beta * c + a[m, k] · b[k, n]`; each matrix given by its slice and (row stride,
/// column stride), so transposes cost nothing.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, rsc, csc) < c.len(), "gemm: c is too short");
    if k == 0 {
        // matrixmultiply handles k = 0, but the operand checks below need k >= 1
        for i in 0..m {
            for j in 0..n {
                c[i * rsc + j * csc] *= beta;
            }
        }
        return;
    }
    assert!(last(m, k, rsa, csa) < a.len(), "gemm: a is too short");
    assert!(last(k, n, rsb, csb) < b.len(), "gemm: b is too short");
    // SAFETY: the asserts above keep every index the strides reach inside the slices, and `c`
    // is borrowed mutably, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// `y[n, out] = x[n, inp] · w[inp, out] + bias`.
pub fn linear(x: &[f32], w: &[f32], bias: &[f32], inp: usize, out: usize) -> Vec<f32> {
    let n = x.len() / inp;
    let mut y = vec![0f32; n * out];
    y.par_chunks_mut(ROWS * out)
        .zip(x.par_chunks(ROWS * inp))
        .for_each(|(y, x)| {
            let rows = x.len() / inp;
            for r in y.chunks_mut(out) {
                r.copy_from_slice(bias);
            }
            gemm((rows, inp, out), x, (inp, 1), w, (out, 1), 1.0, y, (out, 1));
        });
    y
}

/// Backward of [`linear`]: returns `dx = dy · wᵀ`; adds `xᵀ · dy` to `dw` and the column sums
/// of `dy` to `dbias` when given (a frozen layer passes `None`).
pub fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    (inp, out): (usize, usize),
    grads: Option<(&mut [f32], &mut [f32])>,
) -> Vec<f32> {
    let n = x.len() / inp;
    let mut dx = vec![0f32; n * inp];
    dx.par_chunks_mut(ROWS * inp)
        .zip(dy.par_chunks(ROWS * out))
        .for_each(|(dx, dy)| {
            let rows = dy.len() / out;
            gemm(
                (rows, out, inp),
                dy,
                (out, 1),
                w,
                (1, out),
                0.0,
                dx,
                (inp, 1),
            );
        });
    if let Some((dw, db)) = grads {
        // dw[i, o] += sum_t x[t, i] dy[t, o]: pieces of dw's rows, each summing over all tokens
        let per = inp.div_ceil(8).max(1);
        dw.par_chunks_mut(per * out)
            .enumerate()
            .for_each(|(p, dw)| {
                let rows = dw.len() / out;
                gemm(
                    (rows, n, out),
                    &x[p * per..],
                    (1, inp),
                    dy,
                    (out, 1),
                    1.0,
                    dw,
                    (out, 1),
                );
            });
        column_sums_into(dy, out, db);
    }
    dx
}

/// Adds the column sums of `m[n, cols]` to `acc[cols]`, in pieces of [`ROWS`] rows whose sums
/// are added in order.
pub fn column_sums_into(m: &[f32], cols: usize, acc: &mut [f32]) {
    let parts: Vec<Vec<f32>> = m
        .par_chunks(ROWS * cols)
        .map(|piece| {
            let mut s = vec![0f32; cols];
            for row in piece.chunks(cols) {
                for (s, v) in s.iter_mut().zip(row) {
                    *s += v;
                }
            }
            s
        })
        .collect();
    for s in parts {
        for (a, v) in acc.iter_mut().zip(&s) {
            *a += v;
        }
    }
}

/// What layer norm's backward needs of its forward: the mean and 1/std of each row.
pub struct NormStats {
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// `y = (x - mean) / sqrt(var + eps) * g + b` over rows of width `d` (biased variance).
pub fn layer_norm(x: &[f32], g: &[f32], b: &[f32], d: usize, eps: f32) -> (Vec<f32>, NormStats) {
    let n = x.len() / d;
    let mut y = vec![0f32; n * d];
    let mut mean = vec![0f32; n];
    let mut rstd = vec![0f32; n];
    y.par_chunks_mut(ROWS * d)
        .zip(x.par_chunks(ROWS * d))
        .zip(mean.par_chunks_mut(ROWS).zip(rstd.par_chunks_mut(ROWS)))
        .for_each(|((y, x), (mean, rstd))| {
            for (((y, x), m), r) in y.chunks_mut(d).zip(x.chunks(d)).zip(mean).zip(rstd) {
                let mu = x.iter().sum::<f32>() / d as f32;
                let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
                let s = 1.0 / (var + eps).sqrt();
                for (((y, x), g), b) in y.iter_mut().zip(x).zip(g).zip(b) {
                    *y = (x - mu) * s * g + b;
                }
                *m = mu;
                *r = s;
            }
        });
    (y, NormStats { mean, rstd })
}

/// Backward of [`layer_norm`]: returns `dx`; adds to `dg`, `db` when given.
pub fn layer_norm_backward(
    x: &[f32],
    stats: &NormStats,
    g: &[f32],
    dy: &[f32],
    d: usize,
    grads: Option<(&mut [f32], &mut [f32])>,
) -> Vec<f32> {
    let n = x.len() / d;
    let mut dx = vec![0f32; n * d];
    let want = grads.is_some();
    let parts: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(ROWS * d)
        .zip(x.par_chunks(ROWS * d).zip(dy.par_chunks(ROWS * d)))
        .zip(stats.mean.par_chunks(ROWS).zip(stats.rstd.par_chunks(ROWS)))
        .map(|((dx, (x, dy)), (mean, rstd))| {
            let (mut dg, mut db) = if want {
                (vec![0f32; d], vec![0f32; d])
            } else {
                (Vec::new(), Vec::new())
            };
            let mut norm = vec![0f32; d];
            for ((((dx, x), dy), &mu), &s) in dx
                .chunks_mut(d)
                .zip(x.chunks(d))
                .zip(dy.chunks(d))
                .zip(mean)
                .zip(rstd)
            {
                let (mut mean_dn, mut mean_dn_norm) = (0f32, 0f32);
                for (((nv, x), dy), g) in norm.iter_mut().zip(x).zip(dy).zip(g) {
                    *nv = (x - mu) * s;
                    let dn = dy * g;
                    mean_dn += dn;
                    mean_dn_norm += dn * *nv;
                }
                mean_dn /= d as f32;
                mean_dn_norm /= d as f32;
                for (((dx, nv), dy), g) in dx.iter_mut().zip(&norm).zip(dy).zip(g) {
                    *dx = s * (dy * g - mean_dn - nv * mean_dn_norm);
                }
                if want {
                    for (((dg, db), nv), dy) in dg.iter_mut().zip(&mut db).zip(&norm).zip(dy) {
                        *dg += dy * nv;
                        *db += dy;
                    }
                }
            }
            (dg, db)
        })
        .collect();
    if let Some((dg, db)) = grads {
        for (pg, pb) in parts {
            for (a, v) in dg.iter_mut().zip(&pg) {
                *a += v;
            }
            for (a, v) in db.iter_mut().zip(&pb) {
                *a += v;
            }
        }
    }
    dx
}

const GELU_S: f32 = 0.797_884_6; // sqrt(2 / pi)
const GELU_C: f32 = 0.044_715;

/// GPT-2's `gelu_new`: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(ROWS * 64)
        .zip(x.par_chunks(ROWS * 64))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                let t = (GELU_S * (x + GELU_C * x * x * x)).tanh();
                *y = 0.5 * x * (1.0 + t);
            }
        });
    y
}

/// Backward of [`gelu`]: `dx = dy * gelu'(x)`.
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(ROWS * 64)
        .zip(x.par_chunks(ROWS * 64).zip(dy.par_chunks(ROWS * 64)))
        .for_each(|(dx, (x, dy))| {
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                let u = GELU_S * (x + GELU_C * x * x * x);
                let t = u.tanh();
                let du = GELU_S * (1.0 + 3.0 * GELU_C * x * x);
                *dx = dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
            }
        });
    dx
}

/// Splits `v` into consecutive mutable pieces of the given lengths.
pub fn split_lens<T>(mut v: &mut [T], lens: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
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
pub fn attention(qkv: &[f32], lens: &[usize], heads: Heads) -> (Vec<f32>, Vec<Vec<f32>>) {
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
        .for_each(|((out, lse), (&l, &s))| {
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
        .for_each(|((dqkv, lse), (&l, &s))| {
            let qkv = &qkv[s * 3 * d..(s + l) * 3 * d];
            let dout = &dout[s * d..(s + l) * d];
            let mut p = vec![0f32; l * l];
            let mut ds = vec![0f32; l * l];
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
                // dV = Pᵀ · dOut
                gemm(
                    (l, l, heads.dim),
                    &p,
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

/// Where each sequence starts among the packed tokens.
pub fn starts(lens: &[usize]) -> Vec<usize> {
    lens.iter()
        .scan(0, |acc, &l| {
            let s = *acc;
            *acc += l;
            Some(s)
        })
        .collect()
}

/// Rows of the softmax head per block (a block's logits stay in cache).
const HEAD_BLOCK: usize = 128;
/// Partial sums of the head's weight gradient, fixed so results do not depend on the thread
/// count: block `b` adds into partial `b % HEAD_PARTS`.
const HEAD_PARTS: usize = 4;

/// What the softmax cross-entropy head gives back.
pub struct HeadOut {
    /// Sum over rows of `-log softmax(h · wᵀ)[target]`, in f64.
    pub nll: f64,
    /// `d loss / d h`, `[rows, d]`.
    pub dh: Vec<f32>,
    /// `d loss / d w`, `[vocab, d]` (only when asked for).
    pub dw: Option<Vec<f32>>,
}

/// Softmax cross-entropy of `h [rows, d]` against the tied head `w [vocab, d]`, without ever
/// holding all logits: blocks of [`HEAD_BLOCK`] rows compute their logits, softmax, loss and
/// gradients. Row `r`'s targets are `targets[starts[r]..starts[r + 1]]` (distinct; one per row
/// for next-token prediction, several for RecLLM's multinomial likelihood):
/// loss `-sum_t log softmax(h_r · wᵀ)[t]`. `scale` multiplies the gradients (1 / number of
/// predictions).
pub fn softmax_head(
    h: &[f32],
    w: &[f32],
    (starts, targets): (&[usize], &[usize]),
    d: usize,
    scale: f32,
    want_dw: bool,
) -> HeadOut {
    let rows = starts.len() - 1;
    let vocab = w.len() / d;
    let mut dh = vec![0f32; rows * d];
    let blocks: Vec<(usize, &mut [f32])> = dh.chunks_mut(HEAD_BLOCK * d).enumerate().collect();
    let mut groups: Vec<Vec<(usize, &mut [f32])>> = (0..HEAD_PARTS).map(|_| Vec::new()).collect();
    for (b, piece) in blocks {
        groups[b % HEAD_PARTS].push((b, piece));
    }
    let parts: Vec<(f64, Option<Vec<f32>>)> = groups
        .into_par_iter()
        .map(|group| {
            let mut dw = want_dw.then(|| vec![0f32; vocab * d]);
            let mut logits = vec![0f32; HEAD_BLOCK * vocab];
            let mut nll = 0f64;
            for (b, dh) in group {
                let r0 = b * HEAD_BLOCK;
                let n = dh.len() / d;
                let hb = &h[r0 * d..(r0 + n) * d];
                let lg = &mut logits[..n * vocab];
                gemm((n, d, vocab), hb, (d, 1), w, (1, d), 0.0, lg, (vocab, 1));
                for (r, row) in lg.chunks_mut(vocab).enumerate() {
                    let ts = &targets[starts[r0 + r]..starts[r0 + r + 1]];
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    // -log p_t = log(sum) - (logit_t - max), taken before exponentiating
                    let picked: f32 = ts.iter().map(|&t| row[t] - max).sum();
                    let mut sum = 0f32;
                    for x in row.iter_mut() {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    nll += (ts.len() as f32 * sum.ln() - picked) as f64;
                    let coef = ts.len() as f32 * scale / sum;
                    for x in row.iter_mut() {
                        *x *= coef;
                    }
                    for &t in ts {
                        row[t] -= scale;
                    }
                }
                // dh = G · w; dw += Gᵀ · h
                gemm((n, vocab, d), lg, (vocab, 1), w, (d, 1), 0.0, dh, (d, 1));
                if let Some(dw) = &mut dw {
                    gemm((vocab, n, d), lg, (1, vocab), hb, (d, 1), 1.0, dw, (d, 1));
                }
            }
            (nll, dw)
        })
        .collect();
    let mut nll = 0f64;
    let mut dw = want_dw.then(|| vec![0f32; vocab * d]);
    for (n, p) in parts {
        nll += n;
        if let (Some(dw), Some(p)) = (&mut dw, p) {
            for (a, v) in dw.iter_mut().zip(&p) {
                *a += v;
            }
        }
    }
    HeadOut { nll, dh, dw }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn gemm_with_transposed_operands() {
        // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
        let mut c = [0f32; 4];
        gemm((2, 2, 2), &a, (2, 1), &b, (2, 1), 0.0, &mut c, (2, 1));
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // aᵀ · b = [[1, 3], [2, 4]] · b
        gemm((2, 2, 2), &a, (1, 2), &b, (2, 1), 0.0, &mut c, (2, 1));
        assert_eq!(c, [26.0, 30.0, 38.0, 44.0]);
    }

    #[test]
    fn gelu_matches_hand_values_and_its_derivative_finite_differences() {
        // gelu_new(1) = 0.5 (1 + tanh(0.7978846 * 1.044715)) = 0.8411920
        let y = gelu(&[1.0, 0.0, -2.0]);
        close(&y, &[0.841_192, 0.0, -0.045_402_3], 1e-5);
        let xs = [-3.0f32, -0.7, 0.0, 0.4, 2.5];
        let dx = gelu_backward(&xs, &[1.0; 5]);
        for (x, g) in xs.iter().zip(dx) {
            let h = 1e-3f64;
            let f =
                |x: f64| 0.5 * x * (1.0 + (0.797_884_560_8 * (x + 0.044_715 * x * x * x)).tanh());
            let fd = (f(*x as f64 + h) - f(*x as f64 - h)) / (2.0 * h);
            assert!((g as f64 - fd).abs() < 1e-4, "{x}: {g} vs {fd}");
        }
    }

    #[test]
    fn softmax_head_matches_hand_computation() {
        // h rows [1, 0] -> target 0 and [0, 2] -> target 1 against w = identity:
        // logits [1, 0] and [0, 2]: nll = ln(1 + e^-1) + ln(1 + e^-2)
        let out = softmax_head(
            &[1.0, 0.0, 0.0, 2.0],
            &[1.0, 0.0, 0.0, 1.0],
            (&[0, 1, 2], &[0, 1]),
            2,
            1.0,
            true,
        );
        assert!((out.nll - 0.440_189_7).abs() < 1e-6);
        // row 0: softmax [e/(e+1), 1/(e+1)] - onehot(0) = [-1/(e+1), 1/(e+1)] = [-0.2689414, 0.2689414]
        let s0 = 1.0 / (1.0 + 1f32.exp());
        let s1 = 1.0 / (1.0 + 2f32.exp());
        close(&out.dh, &[-s0, s0, s1, -s1], 1e-6);
        // dw = Gᵀ h: w row 0 gets -s0 * [1, 0] + s1 * [0, 2]; row 1 gets s0 * [1, 0] - s1 * [0, 2]
        close(&out.dw.unwrap(), &[-s0, 2.0 * s1, s0, -2.0 * s1], 1e-6);
    }

    #[test]
    fn several_targets_of_a_row_sum_their_losses() {
        // one row [0, 0, ln 2] (h = those logits, w = identity): softmax [1/4, 1/4, 1/2];
        // targets {0, 2}: -ln(1/4) - ln(1/2) = ln 8; gradient 2 softmax - [1, 0, 1]
        let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let out = softmax_head(
            &[0.0, 0.0, 2f32.ln()],
            &eye,
            (&[0, 2], &[0, 2]),
            3,
            1.0,
            false,
        );
        assert!((out.nll - 8f64.ln()).abs() < 1e-6);
        close(&out.dh, &[-0.5, 0.5, 0.0], 1e-6);
        assert!(out.dw.is_none());
    }
}
