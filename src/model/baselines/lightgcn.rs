//! LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
//! Recommendation", SIGIR 2020): one embedding per user and item (the ego embeddings), K
//! parameter-free propagations over the symmetric-normalised user-item graph, and the mean of
//! the K + 1 layers as the final embeddings; a user scores an item by the dot product.
//!
//! Propagation is a gather of the source rows, a scale by the edge weight and a scatter-add
//! into the destination rows (burn's `select` and `select_assign`), so autodiff carries the
//! gradient back through every layer to the ego embeddings.

use burn::module::{Module, Param};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::data::rng::Rng;
use crate::model::cllm4rec::normal;

#[derive(Module, Debug)]
pub struct LightGcn {
    /// [users + items, dim]: users first, then items
    pub ego: Param<Tensor<2>>,
}

/// The bipartite graph as directed edges in both directions, and each node's
/// `1 / sqrt(degree)` (0 for a node without edges): the symmetric normalisation
/// `A_hat = D^-1/2 A D^-1/2` is applied to the nodes on both sides of a sum over edges,
/// which touches `nodes` rows instead of `edges` rows.
#[derive(Debug, Clone)]
pub struct Graph {
    pub users: usize,
    pub items: usize,
    pub src: Vec<i64>,
    pub dst: Vec<i64>,
    pub norm: Vec<f32>,
}

impl Graph {
    /// From each user's (sorted) training items.
    pub fn new(train: &[Vec<u32>], items: usize) -> Graph {
        let users = train.len();
        let mut deg = vec![0usize; users + items];
        let (mut src, mut dst) = (Vec::new(), Vec::new());
        for (u, row) in train.iter().enumerate() {
            for &i in row {
                let (a, b) = (u, users + i as usize);
                deg[a] += 1;
                deg[b] += 1;
                src.extend([a as i64, b as i64]);
                dst.extend([b as i64, a as i64]);
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
            src,
            dst,
            norm,
        }
    }
}

/// The graph as tensors on a device.
pub struct GraphTensors {
    src: Tensor<1, Int>,
    dst: Tensor<1, Int>,
    /// [nodes, 1]
    norm: Tensor<2>,
    users: usize,
    nodes: usize,
}

impl GraphTensors {
    pub fn new(g: &Graph, device: &Device) -> GraphTensors {
        let (n, nodes) = (g.src.len(), g.users + g.items);
        GraphTensors {
            src: Tensor::from_data(TensorData::new(g.src.clone(), [n]), device),
            dst: Tensor::from_data(TensorData::new(g.dst.clone(), [n]), device),
            norm: Tensor::from_data(TensorData::new(g.norm.clone(), [nodes, 1]), device),
            users: g.users,
            nodes,
        }
    }

    /// One propagation: `A_hat e = D^-1/2 A D^-1/2 e`.
    ///
    /// # Shapes
    /// - e, output: `[users + items, dim]`
    pub fn propagate(&self, e: Tensor<2>) -> Tensor<2> {
        let dim = e.dims()[1];
        let zeros = Tensor::<2>::zeros([self.nodes, dim], &e.device());
        if self.src.dims()[0] == 0 {
            return zeros;
        }
        let msg = (e * self.norm.clone()).select(0, self.src.clone()); // [edges, dim]
        zeros.select_assign(0, self.dst.clone(), msg, IndexingUpdateOp::Add) * self.norm.clone()
    }
}

/// The terms of a BPR batch's loss.
pub struct BprLoss {
    /// `bpr + l2 * reg`
    pub value: Tensor<1>,
    /// mean of softplus(neg - pos) = -log sigmoid(pos - neg)
    pub bpr: f64,
    /// (|e_u|^2 + |e_pos|^2 + |e_neg|^2) / 2 / batch, on the ego embeddings
    pub reg: f64,
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

    /// The final embeddings: the mean of the ego embeddings and their `layers` propagations.
    ///
    /// # Shapes
    /// - output: `[users + items, dim]`
    pub fn embeddings(&self, g: &GraphTensors, layers: usize) -> Tensor<2> {
        let mut e = self.ego.val();
        let mut sum = e.clone();
        for _ in 0..layers {
            e = g.propagate(e);
            sum = sum + e.clone();
        }
        sum.div_scalar((layers + 1) as f64)
    }

    /// The BPR loss of (user, positive item, negative item) triples, with L2 regularisation
    /// of the triples' ego embeddings (as in the authors' code). Items are item ids (not node ids).
    pub fn bpr_loss(
        &self,
        g: &GraphTensors,
        layers: usize,
        triples: &[(u32, u32, u32)],
        l2: f64,
    ) -> BprLoss {
        let ego = self.ego.val();
        let device = ego.device();
        let users = g.users;
        let b = triples.len();
        let idx = |f: &dyn Fn(&(u32, u32, u32)) -> i64| {
            Tensor::<1, Int>::from_data(
                TensorData::new(triples.iter().map(f).collect::<Vec<i64>>(), [b]),
                &device,
            )
        };
        let u = idx(&|t| t.0 as i64);
        let p = idx(&|t| (users + t.1 as usize) as i64);
        let n = idx(&|t| (users + t.2 as usize) as i64);
        let fin = self.embeddings(g, layers);
        let eu = fin.clone().select(0, u.clone()); // [b, dim]
        let pos = (eu.clone() * fin.clone().select(0, p.clone())).sum_dim(1); // [b, 1]
        let neg = (eu * fin.select(0, n.clone())).sum_dim(1); // [b, 1]
        let bpr = softplus(neg - pos, 1.0).mean(); // [1]
        let sq = |i: Tensor<1, Int>| ego.clone().select(0, i).square().sum();
        let reg = (sq(u) + sq(p) + sq(n)).mul_scalar(0.5).div_scalar(b as f64);
        let value = bpr.clone() + reg.clone().mul_scalar(l2);
        BprLoss {
            value,
            bpr: bpr.into_scalar::<f32>() as f64,
            reg: reg.into_scalar::<f32>() as f64,
        }
    }
}
