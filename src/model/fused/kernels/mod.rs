//! The CPU kernels of the fused trainer, forward and backward, on row-major `f32` slices:
//! matrix products (matrixmultiply's sgemm), layer norm, `gelu_new`, causal attention per
//! sequence, and the softmax cross-entropy head computed block by block.
//!
//! Parallel work is cut into pieces whose boundaries do not depend on the number of threads,
//! and every sum is taken in a fixed order, so results are bit-identical from run to run and
//! from machine to machine with the same CPU features.

mod attention;
mod head;

use rayon::prelude::*;

pub use attention::{attention, attention_backward, Heads};
pub use head::{softmax_head, HeadOut};

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

#[cfg(test)]
mod tests {
    use super::*;

    /// `a` equals `b` within `tol` relative (plus `tol` absolute), element by element.
    pub(super) fn close(a: &[f32], b: &[f32], tol: f32) {
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
}
