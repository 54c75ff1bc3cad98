//! The forward and backward passes of the fused trainer: a batch's activations, its loss and
//! the gradients of every parameter that takes part, and recommendation scores.

use super::kernels::{self, NormStats};
use super::*;
use crate::model::cllm4rec::loss::{Reg, RegScale};
use crate::model::dropout::Site;

struct LayerActs {
    x: Vec<f32>,
    ln1: Vec<f32>,
    ln1_stats: NormStats,
    qkv: Vec<f32>,
    /// Per sequence, each query row's log softmax denominator `[heads, len]`.
    lse: Vec<Vec<f32>>,
    att: Vec<f32>,
    x_mid: Vec<f32>,
    ln2: Vec<f32>,
    ln2_stats: NormStats,
    fc: Vec<f32>,
    act: Vec<f32>,
}

/// What the forward pass keeps for the backward pass.
struct Acts {
    layers: Vec<LayerActs>,
    x_last: Vec<f32>,
    lnf_stats: NormStats,
    hidden: Vec<f32>,
}

/// A batch's loss and its parts.
#[derive(Debug, Clone, Copy)]
pub struct StepLoss {
    /// (sum of NLL + lambda_c / 2 * regularizer) / predictions.
    pub loss: f64,
    pub nll: f64,
    pub predictions: usize,
}

/// Gradients, one per parameter (`None`: the parameter takes no part, or is frozen).
pub type Grads = Vec<Option<Vec<f32>>>;

impl Params {
    /// Input embeddings plus position embeddings, `[tokens, d]`.
    fn embed(&self, b: &Packed, users: usize, items: usize) -> Vec<f32> {
        let s = &self.shape;
        let d = s.d;
        let mut x = vec![0f32; b.tokens.len() * d];
        let mut k = 0;
        for &len in &b.lens {
            for pos in 0..len {
                let row = self.token_row(b.tokens[k], users, items);
                let wpe = &self.t[WPE][pos * d..(pos + 1) * d];
                for ((x, r), p) in x[k * d..(k + 1) * d].iter_mut().zip(row).zip(wpe) {
                    *x = r + p;
                }
                k += 1;
            }
        }
        x
    }

    /// (tensor, row) that embeds `tok`.
    fn token_ref(&self, tok: u32, users: usize, items: usize) -> (usize, usize) {
        let s = &self.shape;
        let tok = tok as usize;
        if tok < s.vocab {
            (WTE, tok)
        } else if tok < s.vocab + s.users {
            (users, tok - s.vocab)
        } else {
            (items, tok - s.vocab - s.users)
        }
    }

    fn token_row(&self, tok: u32, users: usize, items: usize) -> &[f32] {
        let d = self.shape.d;
        let (t, r) = self.token_ref(tok, users, items);
        &self.t[t][r * d..(r + 1) * d]
    }

    fn forward(&self, b: &Packed, users: usize, items: usize) -> Acts {
        let s = &self.shape;
        let d = s.d;
        let dropout_at = |site, l, v: &mut Vec<f32>| {
            if let Some(dr) = b.dropout {
                dr.apply_packed(site, l, &b.lens, d, v);
            }
        };
        let mut x = self.embed(b, users, items);
        dropout_at(Site::Embedding, 0, &mut x);
        let mut layers = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let p = |k| &self.t[layer(l, k)];
            let (ln1, ln1_stats) = kernels::layer_norm(&x, p(LN1_G), p(LN1_B), d, s.eps);
            let qkv = kernels::linear(&ln1, p(ATTN_W), p(ATTN_B), d, 3 * d);
            let (att, lse) =
                kernels::attention(&qkv, &b.lens, self.heads(), b.dropout.map(|dr| (dr, l)));
            let mut proj = kernels::linear(&att, p(PROJ_W), p(PROJ_B), d, d);
            dropout_at(Site::AttentionOut, l, &mut proj);
            let x_mid: Vec<f32> = x.iter().zip(&proj).map(|(a, b)| a + b).collect();
            let (ln2, ln2_stats) = kernels::layer_norm(&x_mid, p(LN2_G), p(LN2_B), d, s.eps);
            let fc = kernels::linear(&ln2, p(FC_W), p(FC_B), d, s.inner);
            let act = kernels::gelu(&fc);
            let mut mlp = kernels::linear(&act, p(FCP_W), p(FCP_B), s.inner, d);
            dropout_at(Site::MlpOut, l, &mut mlp);
            let x_out: Vec<f32> = x_mid.iter().zip(&mlp).map(|(a, b)| a + b).collect();
            layers.push(LayerActs {
                x: std::mem::replace(&mut x, x_out),
                ln1,
                ln1_stats,
                qkv,
                lse,
                att,
                x_mid,
                ln2,
                ln2_stats,
                fc,
                act,
            });
        }
        let (hidden, lnf_stats) = kernels::layer_norm(&x, &self.t[LNF_G], &self.t[LNF_B], d, s.eps);
        Acts {
            layers,
            x_last: x,
            lnf_stats,
            hidden,
        }
    }

    /// The last hidden state `[tokens, d]` of a packed batch, user/item tokens embedded with
    /// the objective's tables (for tests).
    pub fn hidden(&self, b: &Packed, objective: &Objective) -> Vec<f32> {
        let (u, i, _, _) = objective.tables();
        self.forward(b, u, i).hidden
    }

    /// Recommendation scores: each sequence's last hidden state times the collaborative item
    /// table, `[sequences, items]` (what `Cllm4Rec::rec_logits` computes).
    pub fn rec_scores(&self, seqs: &[Seq]) -> Vec<f32> {
        use rayon::prelude::*;
        let (d, items) = (self.shape.d, self.shape.items);
        let b = Packed::new(seqs);
        let hidden = self.forward(&b, COLLAB_USERS, COLLAB_ITEMS).hidden;
        let mut last = vec![0f32; seqs.len() * d];
        let mut at = 0;
        for (r, &len) in b.lens.iter().enumerate() {
            at += len;
            if len > 0 {
                last[r * d..(r + 1) * d].copy_from_slice(&hidden[(at - 1) * d..at * d]);
            }
        }
        let table = &self.t[COLLAB_ITEMS];
        let mut scores = vec![0f32; seqs.len() * items];
        scores
            .par_chunks_mut(8 * items)
            .zip(last.par_chunks(8 * d))
            .for_each(|(out, h)| {
                let rows = h.len() / d;
                kernels::gemm(
                    (rows, d, items),
                    h,
                    (d, 1),
                    table,
                    (1, d),
                    0.0,
                    out,
                    (items, 1),
                );
            });
        scores
    }

    /// The batch's loss and the gradients of every parameter that takes part: the backbone's
    /// (unless frozen) and the objective's user/item tables.
    pub fn loss_and_grads(&self, b: &Packed, objective: &Objective, reg: Reg) -> (StepLoss, Grads) {
        let lambda_c = reg.lambda_c;
        let s = self.shape;
        let d = s.d;
        let (own_u, own_i, other_u, other_i) = objective.tables();
        let acts = self.forward(b, own_u, own_i);
        let n_next = b.targets.len();
        let mut grads: Grads = vec![None; self.t.len()];
        let train = self.train_backbone;
        let zeros = |k: usize| Some(vec![0f32; self.t[k].len()]);
        if train {
            for (k, g) in grads.iter_mut().enumerate() {
                if !(COLLAB_USERS..=CONTENT_ITEMS).contains(&k) {
                    *g = zeros(k);
                }
            }
        }
        grads[own_u] = zeros(own_u);
        grads[own_i] = zeros(own_i);

        // the head: which rows predict what
        let (pos, starts, flat, n) = match objective {
            Objective::Rec(targets) => {
                // the last token of each row; a repeated target counts once in the loss (as
                // burn's multinomial weights) but every time in the number of predictions
                let mut at = 0;
                let (mut pos, mut starts, mut flat, mut n) = (Vec::new(), vec![0], Vec::new(), 0);
                for (&len, ts) in b.lens.iter().zip(targets.iter()) {
                    at += len;
                    pos.push(at - 1);
                    let mut uniq: Vec<usize> = ts.iter().map(|&t| t as usize).collect();
                    uniq.sort_unstable();
                    uniq.dedup();
                    flat.extend(uniq);
                    starts.push(flat.len());
                    n += ts.len();
                }
                (pos, starts, flat, n)
            }
            Objective::Collab => {
                let flat = b
                    .targets
                    .iter()
                    .map(|&t| t as usize - s.vocab - s.users)
                    .collect();
                (b.pred.clone(), (0..=n_next).collect(), flat, n_next)
            }
            Objective::Content(ContentVocab::Full) => {
                let flat = b.targets.iter().map(|&t| t as usize).collect();
                (b.pred.clone(), (0..=n_next).collect(), flat, n_next)
            }
            Objective::Content(ContentVocab::Corpus(_, index)) => {
                let flat = b
                    .targets
                    .iter()
                    .map(|t| index.get(t).copied().unwrap_or(0) as usize)
                    .collect();
                (b.pred.clone(), (0..=n_next).collect(), flat, n_next)
            }
        };
        let rows = pos.len();
        let divisor = reg.nll_divisor(n, rows, matches!(objective, Objective::Rec(_)));
        let scale = 1.0 / divisor as f32;
        let mut h_sel = vec![0f32; pos.len() * d];
        for (r, &p) in pos.iter().enumerate() {
            h_sel[r * d..(r + 1) * d].copy_from_slice(&acts.hidden[p * d..(p + 1) * d]);
        }
        let targets = (starts.as_slice(), flat.as_slice());
        let head = match objective {
            Objective::Collab | Objective::Rec(_) => {
                let out = kernels::softmax_head(&h_sel, &self.t[own_i], targets, d, scale, true);
                add(
                    grads[own_i].as_mut().expect("own table"),
                    out.dw.as_ref().expect("asked"),
                );
                out
            }
            Objective::Content(ContentVocab::Full) => {
                let out = kernels::softmax_head(&h_sel, &self.t[WTE], targets, d, scale, train);
                if let (Some(g), Some(dw)) = (grads[WTE].as_mut(), out.dw.as_ref()) {
                    add(g, dw);
                }
                out
            }
            Objective::Content(ContentVocab::Corpus(ids, _)) => {
                let mut w = vec![0f32; ids.len() * d];
                for (r, &id) in ids.iter().enumerate() {
                    let id = id as usize;
                    w[r * d..(r + 1) * d].copy_from_slice(&self.t[WTE][id * d..(id + 1) * d]);
                }
                let out = kernels::softmax_head(&h_sel, &w, targets, d, scale, train);
                if let (Some(g), Some(dw)) = (grads[WTE].as_mut(), out.dw.as_ref()) {
                    for (r, &id) in ids.iter().enumerate() {
                        let id = id as usize;
                        add(&mut g[id * d..(id + 1) * d], &dw[r * d..(r + 1) * d]);
                    }
                }
                out
            }
        };
        let mut dhidden = vec![0f32; b.tokens.len() * d];
        for (r, &p) in pos.iter().enumerate() {
            dhidden[p * d..(p + 1) * d].copy_from_slice(&head.dh[r * d..(r + 1) * d]);
        }

        // mutual regularization of every user/item token occurrence
        let mut sq_sum = 0f64;
        if lambda_c != 0.0 {
            // d/d own of the loss's regularizer term (map: lambda_c / 2 * S / n; code:
            // lambda_c * S), per unit of (own - other)
            let coef = match reg.scale {
                RegScale::Map => (lambda_c as f32) * scale,
                RegScale::Code => 2.0 * lambda_c as f32,
            };
            for &tok in &b.tokens {
                let (t, row) = self.token_ref(tok, own_u, own_i);
                if t == WTE {
                    continue;
                }
                let other = if t == own_u { other_u } else { other_i };
                let own = &self.t[t][row * d..(row + 1) * d];
                let oth = &self.t[other][row * d..(row + 1) * d];
                let g = &mut grads[t].as_mut().expect("own table")[row * d..(row + 1) * d];
                let mut sq = 0f32;
                for ((g, a), o) in g.iter_mut().zip(own).zip(oth) {
                    let diff = a - o;
                    sq += diff * diff;
                    *g += coef * diff;
                }
                sq_sum += sq as f64;
            }
        }

        // backward through ln_f and the blocks
        let (dg, db) = two(&mut grads, LNF_G, LNF_B);
        let mut dx = kernels::layer_norm_backward(
            &acts.x_last,
            &acts.lnf_stats,
            &self.t[LNF_G],
            &dhidden,
            d,
            dg.zip(db),
        );
        drop(dhidden);
        // the gradient at a dropout site's input: the output's, times the same factors
        let dropped = |site, l, g: &Vec<f32>| {
            b.dropout.map(|dr| {
                let mut g = g.clone();
                dr.apply_packed(site, l, &b.lens, d, &mut g);
                g
            })
        };
        for l in (0..s.layers).rev() {
            let a = &acts.layers[l];
            let p = |k| &self.t[layer(l, k)];
            // x_out = x_mid + dropout(c_proj(gelu(c_fc(ln_2(x_mid)))))
            let (dw, dbias) = two(&mut grads, layer(l, FCP_W), layer(l, FCP_B));
            let dmlp = dropped(Site::MlpOut, l, &dx);
            let dmlp = dmlp.as_ref().unwrap_or(&dx);
            let dact =
                kernels::linear_backward(&a.act, p(FCP_W), dmlp, (s.inner, d), dw.zip(dbias));
            let dfc = kernels::gelu_backward(&a.fc, &dact);
            drop(dact);
            let (dw, dbias) = two(&mut grads, layer(l, FC_W), layer(l, FC_B));
            let dln2 = kernels::linear_backward(&a.ln2, p(FC_W), &dfc, (d, s.inner), dw.zip(dbias));
            drop(dfc);
            let (dg, db) = two(&mut grads, layer(l, LN2_G), layer(l, LN2_B));
            let dmid = kernels::layer_norm_backward(
                &a.x_mid,
                &a.ln2_stats,
                p(LN2_G),
                &dln2,
                d,
                dg.zip(db),
            );
            add(&mut dx, &dmid);
            drop(dmid);
            // x_mid = x + dropout(c_proj(attention(c_attn(ln_1(x)))))
            let (dw, dbias) = two(&mut grads, layer(l, PROJ_W), layer(l, PROJ_B));
            let dproj = dropped(Site::AttentionOut, l, &dx);
            let dproj = dproj.as_ref().unwrap_or(&dx);
            let datt = kernels::linear_backward(&a.att, p(PROJ_W), dproj, (d, d), dw.zip(dbias));
            let dqkv = kernels::attention_backward(
                &a.qkv,
                &a.lse,
                &datt,
                &b.lens,
                self.heads(),
                b.dropout.map(|dr| (dr, l)),
            );
            drop(datt);
            let (dw, dbias) = two(&mut grads, layer(l, ATTN_W), layer(l, ATTN_B));
            let dln1 =
                kernels::linear_backward(&a.ln1, p(ATTN_W), &dqkv, (d, 3 * d), dw.zip(dbias));
            drop(dqkv);
            let (dg, db) = two(&mut grads, layer(l, LN1_G), layer(l, LN1_B));
            let dxin =
                kernels::layer_norm_backward(&a.x, &a.ln1_stats, p(LN1_G), &dln1, d, dg.zip(db));
            add(&mut dx, &dxin);
        }

        // the embeddings: positions, words (if trained) and the objective's tables
        if let Some(dr) = b.dropout {
            dr.apply_packed(Site::Embedding, 0, &b.lens, d, &mut dx);
        }
        let mut k = 0;
        for &len in &b.lens {
            for pos in 0..len {
                let g = &dx[k * d..(k + 1) * d];
                if let Some(wpe) = grads[WPE].as_mut() {
                    add(&mut wpe[pos * d..(pos + 1) * d], g);
                }
                let (t, row) = self.token_ref(b.tokens[k], own_u, own_i);
                if let Some(table) = grads[t].as_mut() {
                    add(&mut table[row * d..(row + 1) * d], g);
                }
                k += 1;
            }
        }
        let loss = match reg.scale {
            RegScale::Map => (head.nll + lambda_c / 2.0 * sq_sum) / divisor as f64,
            RegScale::Code => head.nll / divisor as f64 + lambda_c * sq_sum,
        };
        (
            StepLoss {
                loss,
                nll: head.nll,
                predictions: n,
            },
            grads,
        )
    }
}

/// `a += b`, elementwise.
fn add(a: &mut [f32], b: &[f32]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// Two different gradients, mutably.
fn two(g: &mut Grads, i: usize, j: usize) -> (Option<&mut [f32]>, Option<&mut [f32]>) {
    assert!(i < j);
    let (lo, hi) = g.split_at_mut(j);
    (lo[i].as_deref_mut(), hi[0].as_deref_mut())
}
