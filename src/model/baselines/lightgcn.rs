//! LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
//! Recommendation", SIGIR 2020): one embedding per user and item (the ego embeddings), K
//! parameter-free propagations over the symmetric-normalised user-item graph, and the mean of
//! the K + 1 layers as the final embeddings; a user scores an item by the dot product.
//!
//! The propagation is defined once, as a linear operator on the host: [`Graph::smooth`], the
//! final embeddings `S e = (e + A e + ... + A^K e) / (K + 1)` by a sparse (CSR) product per
//! layer, each output row a sum over its node's neighbours in a fixed order (so the result is
//! the same on any number of threads). `A = D^-1/2 A D^-1/2` is symmetric, so `S` is too, and
//! the gradient of a loss `L(S e)` with respect to `e` is `S` applied to its gradient with
//! respect to `S e`: the same operator is the backward pass. The BPR loss on the batch's rows
//! of `S e` is a burn graph, differentiated by burn. This replaced propagation by burn's
//! `select` and `select_assign` (a gather and a scatter-add per layer, and their reverses),
//! whose CPU scatter went row by row: 839 ms an update on Amazon Beauty, against 81 ms for
//! PyTorch's CSR product (`benches/baselines.sh`).

use burn::module::{Module, Param};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::data::rng::Rng;
use crate::model::cllm4rec::normal;

#[derive(Module, Debug)]
pub struct LightGcn {
    /// [users + items, dim]: users first, then items
    pub ego: Param<Tensor<2>>,
}

/// The bipartite graph, both directions, as each node's neighbours (CSR: users first, then
/// items; each node's neighbours in ascending order), and each node's `1 / sqrt(degree)` (0
/// for a node without edges).
#[derive(Debug, Clone)]
pub struct Graph {
    pub users: usize,
    pub items: usize,
    /// [nodes + 1]: node `v`'s neighbours are `neighbours[offsets[v]..offsets[v + 1]]`
    pub offsets: Vec<usize>,
    pub neighbours: Vec<u32>,
    pub norm: Vec<f32>,
}

impl Graph {
    /// From each user's (sorted) training items.
    pub fn new(train: &[Vec<u32>], items: usize) -> Graph {
        let users = train.len();
        let nodes = users + items;
        let mut deg = vec![0usize; nodes];
        for (u, row) in train.iter().enumerate() {
            deg[u] += row.len();
            for &i in row {
                deg[users + i as usize] += 1;
            }
        }
        let mut offsets = Vec::with_capacity(nodes + 1);
        offsets.push(0);
        for d in &deg {
            offsets.push(offsets.last().copied().unwrap_or(0) + d);
        }
        let mut neighbours = vec![0u32; offsets[nodes]];
        let mut next = offsets[..nodes].to_vec();
        // users in ascending order: each item's users come out sorted
        for (u, row) in train.iter().enumerate() {
            for &i in row {
                let item = users + i as usize;
                neighbours[next[u]] = item as u32;
                next[u] += 1;
                neighbours[next[item]] = u as u32;
                next[item] += 1;
            }
        }
        let norm = deg
            .iter()
            .map(|&d| {
                if d == 0 {
                    0.0
                } else {
                    (1.0 / (d as f64).sqrt()) as f32
                }
            })
            .collect();
        Graph {
            users,
            items,
            offsets,
            neighbours,
            norm,
        }
    }

    pub fn nodes(&self) -> usize {
        self.users + self.items
    }

    /// One propagation `A_hat x` into `out`, both row-major `[nodes, dim]`, added to `sum`:
    /// row `v` is `norm[v] * sum over neighbours w of norm[w] * x[w]`.
    fn propagate(&self, x: &[f32], dim: usize, out: &mut [f32], sum: &mut [f32]) {
        out.par_chunks_mut(dim)
            .zip(sum.par_chunks_mut(dim))
            .enumerate()
            .for_each(|(v, (o, s))| {
                o.fill(0.0);
                for &w in &self.neighbours[self.offsets[v]..self.offsets[v + 1]] {
                    let w = w as usize;
                    let nw = self.norm[w];
                    for (a, b) in o.iter_mut().zip(&x[w * dim..(w + 1) * dim]) {
                        *a += nw * b;
                    }
                }
                let nv = self.norm[v];
                for (a, t) in o.iter_mut().zip(s.iter_mut()) {
                    *a *= nv;
                    *t += *a;
                }
            });
    }

    /// `S x = (x + A_hat x + ... + A_hat^layers x) / (layers + 1)`, `x` row-major
    /// `[nodes, dim]`: LightGCN's final embeddings of ego embeddings `x`, and, `S` being
    /// symmetric, the gradient with respect to the ego embeddings of a loss whose gradient
    /// with respect to the final ones is `x`.
    pub fn smooth(&self, x: &[f32], dim: usize, layers: usize) -> Vec<f32> {
        assert_eq!(x.len(), self.nodes() * dim, "a [nodes, dim] table");
        let mut sum = x.to_vec();
        let (mut cur, mut next) = (Vec::new(), vec![0f32; x.len()]);
        for layer in 0..layers {
            let from = if layer == 0 { x } else { &cur[..] };
            self.propagate(from, dim, &mut next, &mut sum);
            std::mem::swap(&mut cur, &mut next);
            if next.is_empty() {
                next = vec![0f32; x.len()];
            }
        }
        let k = (layers + 1) as f32;
        sum.par_iter_mut().for_each(|s| *s /= k);
        sum
    }

    /// [`Graph::smooth`] of a `[nodes, dim]` tensor, as a tensor on its device (no gradient).
    pub fn smooth_tensor(&self, x: Tensor<2>, layers: usize) -> Tensor<2> {
        let [n, dim] = x.dims();
        let device = x.device();
        let v = host(x);
        Tensor::from_data(
            TensorData::new(self.smooth(&v, dim, layers), [n, dim]),
            &device,
        )
    }
}

/// A tensor's values, row-major.
fn host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    // `* 1` first: burn-ndarray hands over the buffer of a tensor it alone holds, but copies
    // one it shares (a parameter's, a gradient still in its container) element by element
    // through a dynamic-rank iterator: 59 ms for LightGCN's Beauty table, against 3 ms for
    // the multiplication, which makes an array of its own.
    x.mul_scalar(1.0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 values")
}

/// The terms of a BPR batch's loss, and its gradient.
pub struct BprLoss {
    /// `bpr + l2 * reg`
    pub value: f64,
    /// mean of softplus(neg - pos) = -log sigmoid(pos - neg)
    pub bpr: f64,
    /// (|e_u|^2 + |e_pos|^2 + |e_neg|^2) / 2 / batch, on the ego embeddings
    pub reg: f64,
    /// d value / d ego, `[users + items, dim]`, on the inner (non-autodiff) device: what
    /// the optimiser takes for [`LightGcn::ego`].
    pub grad: Tensor<2>,
}

impl LightGcn {
    /// Ego embeddings N(0, std^2) from `seed` (the authors' code: std 0.1).
    pub fn new(
        users: usize,
        items: usize,
        dim: usize,
        std: f64,
        seed: u64,
        device: &Device,
    ) -> LightGcn {
        let mut rng = Rng::new(seed ^ 0x6c67_636e);
        let n = users + items;
        LightGcn {
            ego: Param::from_tensor(Tensor::from_data(
                TensorData::new(normal(&mut rng, n * dim, std), [n, dim]),
                device,
            )),
        }
    }

    /// The final embeddings: the mean of the ego embeddings and their `layers` propagations
    /// (no gradient: training differentiates through [`LightGcn::bpr_loss`]).
    ///
    /// # Shapes
    /// - output: `[users + items, dim]`
    pub fn embeddings(&self, g: &Graph, layers: usize) -> Tensor<2> {
        g.smooth_tensor(self.ego.val().inner(), layers)
    }

    /// The BPR loss of (user, positive item, negative item) triples, with L2 regularisation
    /// of the triples' ego embeddings (as in the authors' code), and its gradient with respect
    /// to the ego embeddings. Items are item ids (not node ids). `self` must be on an autodiff
    /// device.
    pub fn bpr_loss(
        &self,
        g: &Graph,
        layers: usize,
        triples: &[(u32, u32, u32)],
        l2: f64,
    ) -> BprLoss {
        let ego = self.ego.val();
        let device = ego.device();
        let [nodes, dim] = ego.dims();
        let users = g.users;
        let b = triples.len();
        let rows: [Vec<usize>; 3] = [
            triples.iter().map(|t| t.0 as usize).collect(),
            triples.iter().map(|t| users + t.1 as usize).collect(),
            triples.iter().map(|t| users + t.2 as usize).collect(),
        ];
        let ego_host = host(ego.inner());
        let fin_host = g.smooth(&ego_host, dim, layers);
        // The loss's graph has the batch's rows as its leaves, gathered here: (user,
        // positive, negative) rows of the final embeddings, and of the ego ones for the
        // regulariser. Their gradients are added back into whole tables below.
        let leaf = |table: &[f32], rows: &[usize]| {
            let mut v = Vec::with_capacity(rows.len() * dim);
            for &r in rows {
                v.extend_from_slice(&table[r * dim..(r + 1) * dim]);
            }
            Tensor::<2>::from_data(TensorData::new(v, [rows.len(), dim]), &device).require_grad()
        };
        let [fu, fp, fneg] = [0, 1, 2].map(|k| leaf(&fin_host, &rows[k]));
        let [eu, ep, en] = [0, 1, 2].map(|k| leaf(&ego_host, &rows[k]));
        let pos = (fu.clone() * fp.clone()).sum_dim(1); // [b, 1]
        let neg = (fu.clone() * fneg.clone()).sum_dim(1); // [b, 1]
        let bpr = softplus(neg - pos, 1.0).mean(); // [1]
        let sq = |e: &Tensor<2>| e.clone().square().sum();
        let reg = (sq(&eu) + sq(&ep) + sq(&en))
            .mul_scalar(0.5)
            .div_scalar(b as f64);
        let value = bpr.clone() + reg.clone().mul_scalar(l2);
        let mut grads = value.backward();
        let mut scatter = |leaves: [Tensor<2>; 3]| {
            let mut table = vec![0f32; nodes * dim];
            for (t, rows) in leaves.into_iter().zip(&rows) {
                let d = host(
                    t.grad_remove(&mut grads)
                        .expect("the loss reads every leaf"),
                );
                for (k, &r) in rows.iter().enumerate() {
                    for (a, x) in table[r * dim..(r + 1) * dim]
                        .iter_mut()
                        .zip(&d[k * dim..(k + 1) * dim])
                    {
                        *a += x;
                    }
                }
            }
            table
        };
        let d_fin = scatter([fu, fp, fneg]);
        let d_ego = scatter([eu, ep, en]);
        let grad: Vec<f32> = g
            .smooth(&d_fin, dim, layers)
            .into_iter()
            .zip(d_ego)
            .map(|(a, b)| a + b)
            .collect();
        let grad = Tensor::<2>::from_data(TensorData::new(grad, [nodes, dim]), &device.inner());
        BprLoss {
            value: value.into_scalar::<f32>() as f64,
            bpr: bpr.into_scalar::<f32>() as f64,
            reg: reg.into_scalar::<f32>() as f64,
            grad,
        }
    }
}
