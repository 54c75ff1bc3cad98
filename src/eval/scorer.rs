//! Models that score items for users.

use std::path::Path;

use crate::eval::EvalSplit;

pub trait Scorer {
    /// What is evaluated, as written into metrics.json (`most-popular`, `cllm4rec`).
    fn model(&self) -> String;
    /// A score per item for each user of the batch (higher is better).
    fn score(&mut self, users: &[u32], split: &EvalSplit) -> Result<Vec<Vec<f32>>, String>;
}

/// The same ranking for everyone: training popularity.
pub struct MostPopular {
    pub counts: Vec<f32>,
}

impl Scorer for MostPopular {
    fn model(&self) -> String {
        "most-popular".into()
    }
    fn score(&mut self, users: &[u32], _: &EvalSplit) -> Result<Vec<Vec<f32>>, String> {
        Ok(users.iter().map(|_| self.counts.clone()).collect())
    }
}

impl MostPopular {
    pub fn from_split(split: &EvalSplit) -> MostPopular {
        let mut counts = vec![0f32; split.items];
        for items in &split.train {
            for &i in items {
                counts[i as usize] += 1.0;
            }
        }
        MostPopular { counts }
    }

    pub fn load(dir: &Path) -> Result<MostPopular, String> {
        let path = dir.join("popularity.csv");
        let mut r =
            csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut counts = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
            counts.push(
                rec.get(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("{}: bad row", path.display()))?,
            );
        }
        Ok(MostPopular { counts })
    }
}
