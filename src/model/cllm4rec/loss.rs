//! The three objectives: the collaborative LM (next item, softmax over items), the content LM
//! (next word, softmax over the word vocabulary), and RecLLM's multinomial likelihood; each
//! with the mutual regularization of the user/item tokens in its batch.
//!
//! Scale ([`RegScale`]): with S the sum over the batch's user and item token occurrences of
//! ||own - other.detach()||^2, loss = (sum of negative log-likelihoods + lambda_c / 2 * S) /
//! number of predictions (`map`, the default), or the authors' code's form (`code`).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::model::cllm4rec::batch::Batch;
use crate::model::cllm4rec::{Cllm4Rec, Side};

crate::choice! {
    /// How a batch's loss weighs the mutual regularizer against the negative log-likelihood
    /// (docs/fidelity.md, section 6). S: the sum of squared differences over the batch's
    /// user/item token occurrences; n: the batch's predictions; B: its rows.
    RegScale {
        /// `(sum NLL + lambda_c / 2 * S) / n`: the MAP form, the default.
        Map = "map",
        /// `sum NLL / n + lambda_c * S` for the two LMs and `sum NLL / B + lambda_c * S` for
        /// RecLLM: the authors' code, whose `lambda_V` values (1 in its `run.sh`) are on this
        /// scale. Its lambda_c = 1 is about 3,600 times the map form's on the quickstart's
        /// collaborative batches.
        Code = "code",
    }
}

/// The mutual regularization of a training stage: its weight and its scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reg {
    pub lambda_c: f64,
    pub scale: RegScale,
}

impl Reg {
    /// What the sum of negative log-likelihoods is divided by, for a batch of `n` predictions
    /// in `rows` rows; `per_row`: RecLLM's objective.
    pub fn nll_divisor(self, n: usize, rows: usize, per_row: bool) -> usize {
        match self.scale {
            RegScale::Code if per_row => rows.max(1),
            _ => n.max(1),
        }
    }

    /// The loss from its parts: the sum of negative log-likelihoods, S (None: no token to
    /// pull, or lambda_c = 0) and [`Reg::nll_divisor`]. The map form is written as
    /// `(nll + lambda_c / 2 * S) / n`, the order of operations of every earlier run.
    fn combine(self, nll_sum: Tensor<1>, s: Option<Tensor<1>>, divisor: usize) -> Tensor<1> {
        let d = divisor as f64;
        match (self.scale, s) {
            (_, None) => nll_sum.div_scalar(d),
            (RegScale::Map, Some(s)) => (nll_sum + s.mul_scalar(self.lambda_c / 2.0)).div_scalar(d),
            (RegScale::Code, Some(s)) => nll_sum.div_scalar(d) + s.mul_scalar(self.lambda_c),
        }
    }
}

fn ints(v: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// Sum over rows of -log softmax(logits)[target].
pub fn nll(logits: Tensor<2>, targets: Vec<i64>, device: &Device) -> Tensor<1> {
    let n = targets.len();
    let t = ints(targets, device).reshape([n, 1]);
    log_softmax(logits, 1).gather(1, t).sum().neg()
}

/// Sum over `ids` (row indices, repeats counted) of ||own[id] - other[id].detach()||^2.
pub fn pull(own: Tensor<2>, other: Tensor<2>, ids: Vec<i64>, device: &Device) -> Tensor<1> {
    let idx = ints(ids, device);
    (own.select(0, idx.clone()) - other.select(0, idx).detach())
        .powf_scalar(2.0)
        .sum()
}

/// S: the sum of squared differences between `side`'s embeddings of the batch's user/item
/// tokens and the other side's, detached (None when lambda_c = 0 or there is no such token).
fn mutual(m: &Cllm4Rec, b: &Batch, side: Side, reg: Reg, device: &Device) -> Option<Tensor<1>> {
    if reg.lambda_c == 0.0 {
        return None;
    }
    let (base, nu, ni) = m.layout();
    let other = if side == Side::Collab {
        Side::Content
    } else {
        Side::Collab
    };
    let (own_u, own_i) = m.tables(side);
    let (oth_u, oth_i) = m.tables(other);
    let users = b.ids_in(base as u32, (base + nu) as u32);
    let items = b.ids_in((base + nu) as u32, (base + nu + ni) as u32);
    let mut terms = Vec::new();
    if !users.is_empty() {
        terms.push(pull(own_u, oth_u, users, device));
    }
    if !items.is_empty() {
        terms.push(pull(own_i, oth_i, items, device));
    }
    terms.into_iter().reduce(|a, b| a + b)
}

/// -sum over rows r and target items t of log softmax(logits[r])[t].
pub fn multinomial(logits: Tensor<2>, targets: &[Vec<u32>], device: &Device) -> (Tensor<1>, usize) {
    let [rows, items] = logits.dims();
    let mut weights = vec![0f32; rows * items];
    let mut n = 0;
    for (r, ts) in targets.iter().enumerate() {
        for &t in ts {
            weights[r * items + t as usize] = 1.0;
            n += 1;
        }
    }
    let w = Tensor::<2>::from_data(TensorData::new(weights, [rows, items]), device);
    ((log_softmax(logits, 1) * w).sum().neg(), n)
}

/// A loss and what it is made of, for the training log.
pub struct Loss {
    pub value: Tensor<1>,
    pub nll: f64,
    pub predictions: usize,
}

fn loss(nll_sum: Tensor<1>, s: Option<Tensor<1>>, n: usize, divisor: usize, reg: Reg) -> Loss {
    let nll = nll_sum.clone().into_scalar::<f32>() as f64;
    Loss {
        value: reg.combine(nll_sum, s, divisor),
        nll,
        predictions: n,
    }
}

/// Collaborative LM: each main-text item predicted from the tokens before it, over items.
pub fn collab(m: &Cllm4Rec, b: &Batch, reg: Reg, device: &Device) -> Loss {
    let (base, nu, _) = m.layout();
    let h = m.hidden(b, Side::Collab, device);
    let pos = ints(b.pred_pos.clone(), device);
    let logits = h.select(0, pos).matmul(m.collab_items.val().transpose()); // [n, items]
    let targets: Vec<i64> = b
        .targets
        .iter()
        .map(|&t| t as i64 - (base + nu) as i64)
        .collect();
    let n = targets.len();
    loss(
        nll(logits, targets, device),
        mutual(m, b, Side::Collab, reg, device),
        n,
        reg.nll_divisor(n, 0, false),
        reg,
    )
}

/// The words the content LM's softmax runs over: the whole vocabulary (the paper), or only the
/// words that occur in the content corpus (a cheaper approximation for small corpora).
pub enum ContentVocab {
    Full,
    /// Sorted word ids, and each id's index among them.
    Corpus(Vec<i64>, std::collections::HashMap<u32, i64>),
}

impl ContentVocab {
    pub fn corpus(words: impl IntoIterator<Item = u32>) -> ContentVocab {
        let set: std::collections::BTreeSet<u32> = words.into_iter().collect();
        let ids: Vec<i64> = set.iter().map(|&w| w as i64).collect();
        let index = set
            .iter()
            .enumerate()
            .map(|(k, &w)| (w, k as i64))
            .collect();
        ContentVocab::Corpus(ids, index)
    }
}

/// Content LM: each main-text word predicted from the tokens before it, over words.
pub fn content(m: &Cllm4Rec, b: &Batch, vocab: &ContentVocab, reg: Reg, device: &Device) -> Loss {
    let h = m.hidden(b, Side::Content, device);
    let pos = ints(b.pred_pos.clone(), device);
    let (head, targets): (Tensor<2>, Vec<i64>) = match vocab {
        ContentVocab::Full => (
            m.backbone.word_head_weight(),
            b.targets.iter().map(|&t| t as i64).collect(),
        ),
        ContentVocab::Corpus(ids, index) => (
            m.backbone
                .word_head_weight()
                .select(0, ints(ids.clone(), device)),
            b.targets
                .iter()
                .map(|t| index.get(t).copied().unwrap_or(0))
                .collect(),
        ),
    };
    let logits = h.select(0, pos).matmul(head.transpose()); // [n, words]
    let n = targets.len();
    loss(
        nll(logits, targets, device),
        mutual(m, b, Side::Content, reg, device),
        n,
        reg.nll_divisor(n, 0, false),
        reg,
    )
}

/// RecLLM: for each row (a recommendation prompt), -sum of log p(item) over its target items,
/// from the last token's hidden state through the tied item head. `targets[r]` are item
/// indices (0-based) of row r.
pub fn rec(m: &Cllm4Rec, b: &Batch, targets: &[Vec<u32>], reg: Reg, device: &Device) -> Loss {
    let (nll_sum, n) = multinomial(m.rec_logits(b, device), targets, device);
    let s = mutual(m, b, Side::Collab, reg, device);
    loss(nll_sum, s, n, reg.nll_divisor(n, targets.len(), true), reg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backend::{infer_device, train_device};

    fn t2(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    #[test]
    fn nll_matches_hand_computation() {
        let d = infer_device();
        // rows [1, 0] -> target 0, [0, 2] -> target 1:
        // -log(e/(e+1)) - log(e^2/(e^2+1)) = ln(1+e^-1) + ln(1+e^-2) = 0.3132617 + 0.1269280
        let v = nll(t2(vec![1.0, 0.0, 0.0, 2.0], [2, 2], &d), vec![0, 1], &d).into_scalar::<f32>();
        assert!((v - 0.4401897).abs() < 1e-6, "{v}");
    }

    #[test]
    fn multinomial_sums_over_target_items() {
        let d = infer_device();
        // one row [0, 0, ln 2]: softmax = [1/4, 1/4, 1/2]; targets {0, 2}: -ln(1/4) - ln(1/2) = ln 8
        let (v, n) = multinomial(t2(vec![0.0, 0.0, 2f32.ln()], [1, 3], &d), &[vec![0, 2]], &d);
        assert_eq!(n, 2);
        assert!((v.into_scalar::<f32>() - 8f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn pull_counts_repeats_and_detaches_the_other_side() {
        let d = train_device();
        let own = t2(vec![1.0, 2.0, 3.0, 4.0], [2, 2], &d).require_grad();
        let other = t2(vec![0.0, 2.0, 3.0, 1.0], [2, 2], &d).require_grad();
        // row 0: (1, 0) -> 1; row 1 twice: (0, 3) -> 9 each: 19
        let loss = pull(own.clone(), other.clone(), vec![0, 1, 1], &d);
        assert!((loss.clone().into_scalar::<f32>() - 19.0).abs() < 1e-6);
        let grads = loss.backward();
        // d/d own = 2 * (own - other) per occurrence: row 0: (2, 0); row 1: 2 * 2 * (0, 3)
        let g = own
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(g, vec![2.0, 0.0, 0.0, 12.0]);
        assert!(
            other.grad(&grads).is_none(),
            "the other side must get no gradient"
        );
    }
}
