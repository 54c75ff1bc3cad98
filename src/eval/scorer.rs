//! Models that score items for users, found among a stage's inputs by their `model.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

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

/// Which input is the model, and which the `ingest` output.
pub struct Inputs {
    pub ingest: PathBuf,
    pub model: PathBuf,
    pub model_kind: String,
}

pub fn find_inputs(inputs: &BTreeMap<String, PathBuf>) -> Result<Inputs, String> {
    let ingest: Vec<&PathBuf> = inputs
        .values()
        .filter(|d| EvalSplit::is_ingest_output(d))
        .collect();
    let models: Vec<(&PathBuf, String)> = inputs
        .values()
        .filter_map(|d| {
            let v: Json =
                serde_json::from_str(&std::fs::read_to_string(d.join("model.json")).ok()?).ok()?;
            Some((d, v["model"].as_str()?.to_owned()))
        })
        .collect();
    match (ingest.as_slice(), models.as_slice()) {
        ([i], [(m, k)]) => Ok(Inputs { ingest: (*i).clone(), model: (*m).clone(), model_kind: k.clone() }),
        (i, m) => Err(format!(
            "an `evaluate` stage needs exactly one `ingest` output and one model (a stage that writes model.json); its inputs have {} and {}",
            i.len(),
            m.len()
        )),
    }
}
