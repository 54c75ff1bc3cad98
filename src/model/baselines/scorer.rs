//! The baselines as scorers for the `evaluate` stage, and their files: `model.json`,
//! `checkpoint.safetensors` (every parameter, by name) and, for LightGCN,
//! `embeddings.safetensors` (the propagated user and item embeddings that score).

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::eval::scorer::Scorer;
use crate::eval::EvalSplit;
use crate::model::backend::infer_device;
use crate::model::baselines::multivae::{MultiVae, SparseRows};
use crate::model::baselines::train_lists;
use crate::model::cllm4rec::checkpoint;

/// model.json of a baseline stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// `multi-vae` or `lightgcn`
    pub model: String,
    pub users: usize,
    pub items: usize,
    /// Multi-VAE: [hidden, latent]; LightGCN: [dim]
    pub dims: Vec<usize>,
    /// LightGCN: propagation layers
    #[serde(default)]
    pub layers: usize,
    /// The kept epoch (best validation NDCG@100)
    pub best_epoch: usize,
    /// The model FLOPs of training, validation scoring included (`model::flops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    /// The kept epoch's validation metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<serde_json::Value>,
}

pub fn read_info(dir: &Path) -> Result<BaselineInfo, String> {
    let path = dir.join("model.json");
    serde_json::from_str(
        &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn load_into<M: Module>(m: M, path: &Path) -> Result<M, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    checkpoint::from_bytes(m, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn check_shape(info: &BaselineInfo, split: &EvalSplit) -> Result<(), String> {
    if info.items != split.items || info.users != split.train.len() {
        return Err(format!(
            "the model has {} users and {} items, the data {} and {}",
            info.users,
            info.items,
            split.train.len(),
            split.items
        ));
    }
    Ok(())
}

fn rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>, String> {
    let [n, items] = t.dims();
    let v: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    Ok((0..n)
        .map(|r| v[r * items..(r + 1) * items].to_vec())
        .collect())
}

/// Multi-VAE: the decoder at the posterior mean of each user's training items.
pub struct MultiVaeScorer {
    pub model: MultiVae,
    info: Option<BaselineInfo>,
    lists: Option<Vec<Vec<u32>>>,
}

impl MultiVaeScorer {
    pub fn new(model: MultiVae) -> MultiVaeScorer {
        MultiVaeScorer {
            model,
            info: None,
            lists: None,
        }
    }

    pub fn load(dir: &Path) -> Result<MultiVaeScorer, String> {
        let info = read_info(dir)?;
        let [hidden, latent] = info.dims[..] else {
            return Err(format!(
                "{}: `dims` must be [hidden, latent]",
                dir.join("model.json").display()
            ));
        };
        let m = MultiVae::new(info.items, hidden, latent, 0, &infer_device());
        let model = load_into(m, &dir.join("checkpoint.safetensors"))?;
        Ok(MultiVaeScorer {
            model,
            info: Some(info),
            lists: None,
        })
    }
}

impl Scorer for MultiVaeScorer {
    fn model(&self) -> String {
        "multi-vae".into()
    }

    fn score(&mut self, users: &[u32], split: &EvalSplit) -> Result<Vec<Vec<f32>>, String> {
        if let Some(info) = &self.info {
            check_shape(info, split)?;
        }
        let lists = self.lists.get_or_insert_with(|| train_lists(split));
        let batch: Vec<&[u32]> = users
            .iter()
            .map(|&u| lists[u as usize].as_slice())
            .collect();
        let x = SparseRows::normalised(&batch, 0.0, &mut crate::data::rng::Rng::new(0));
        rows(self.model.scores(&x))
    }
}

/// LightGCN's final embeddings, saved for scoring.
#[derive(Module, Debug)]
pub struct Embeddings {
    /// [users, dim]
    pub user_emb: Param<Tensor<2>>,
    /// [items, dim]
    pub item_emb: Param<Tensor<2>>,
}

impl Embeddings {
    /// Split a `[users + items, dim]` table (users first).
    pub fn from_nodes(e: Tensor<2>, users: usize) -> Embeddings {
        let [n, _] = e.dims();
        Embeddings {
            user_emb: Param::from_tensor(e.clone().narrow(0, 0, users)),
            item_emb: Param::from_tensor(e.narrow(0, users, n - users)),
        }
    }

    fn zeros(users: usize, items: usize, dim: usize, device: &Device) -> Embeddings {
        Embeddings {
            user_emb: Param::from_tensor(Tensor::zeros([users, dim], device)),
            item_emb: Param::from_tensor(Tensor::zeros([items, dim], device)),
        }
    }
}

/// LightGCN: the dot product of the final user and item embeddings.
pub struct LightGcnScorer {
    pub emb: Embeddings,
}

impl LightGcnScorer {
    pub fn load(dir: &Path) -> Result<LightGcnScorer, String> {
        let info = read_info(dir)?;
        let [dim] = info.dims[..] else {
            return Err(format!(
                "{}: `dims` must be [dim]",
                dir.join("model.json").display()
            ));
        };
        let e = Embeddings::zeros(info.users, info.items, dim, &infer_device());
        Ok(LightGcnScorer {
            emb: load_into(e, &dir.join("embeddings.safetensors"))?,
        })
    }
}

impl Scorer for LightGcnScorer {
    fn model(&self) -> String {
        "lightgcn".into()
    }

    fn score(&mut self, users: &[u32], split: &EvalSplit) -> Result<Vec<Vec<f32>>, String> {
        let u = self.emb.user_emb.val();
        let [nu, _] = u.dims();
        let items = self.emb.item_emb.val();
        if items.dims()[0] != split.items || nu != split.train.len() {
            return Err(format!(
                "the model has {nu} users and {} items, the data {} and {}",
                items.dims()[0],
                split.train.len(),
                split.items
            ));
        }
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(
                users.iter().map(|&x| x as i64).collect::<Vec<_>>(),
                [users.len()],
            ),
            &u.device(),
        );
        rows(u.select(0, idx).matmul(items.transpose())) // [batch, dim] x [dim, items]
    }
}
