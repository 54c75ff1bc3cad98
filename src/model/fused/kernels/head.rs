//! The softmax cross-entropy head, computed block by block against a tied weight matrix.

use rayon::prelude::*;

use super::gemm;

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
    use super::super::tests::close;
    use super::*;

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
