//! Evaluate a scorer on the held-out items of an `ingest` output: for each user with held-out
//! items, score all items, drop the user's training items, rank, and average the metrics over
//! those users. After a `cold-items` split only the items held out in the evaluated part are
//! ranked (the cold-start protocol: which of the new items will the user take?).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Map, Value as Json};

use crate::eval::metrics::{ndcg_at, recall_at, top_k};

/// Training and held-out items per user, from `train.csv` and `valid.csv` or `test.csv`.
pub struct EvalSplit {
    pub train: Vec<HashSet<u32>>,
    pub heldout: Vec<HashSet<u32>>,
    pub items: usize,
    /// The items that are ranked, when not all are: after a `cold-items` split (stats.json's
    /// `cold: items`), those that occur in the held-out part.
    pub candidates: Option<Vec<bool>>,
}

/// The (user, item) pairs of a split file, each id below its bound (stats.json's counts).
fn pairs(path: &Path, (users, items): (usize, usize)) -> Result<Vec<(u32, u32)>, String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let get = |k: usize, (name, bound): (&str, usize)| {
            rec.get(k)
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|&x| (x as usize) < bound)
                .ok_or_else(|| {
                    format!(
                        "{}:{line}: `{name}` is not an id below {bound} (stats.json's count): {rec:?}",
                        path.display()
                    )
                })
        };
        out.push((get(0, ("user", users))?, get(1, ("item", items))?));
    }
    Ok(out)
}

impl EvalSplit {
    /// `which` is `test` or `valid`.
    pub fn read(ingest: &Path, which: &str) -> Result<EvalSplit, String> {
        let stats: Json = serde_json::from_str(
            &std::fs::read_to_string(ingest.join("stats.json"))
                .map_err(|e| format!("{}: {e}", ingest.display()))?,
        )
        .map_err(|e| format!("stats.json: {e}"))?;
        let users = stats["users"].as_u64().ok_or("stats.json lacks `users`")? as usize;
        let items = stats["items"].as_u64().ok_or("stats.json lacks `items`")? as usize;
        let mut train = vec![HashSet::new(); users];
        let mut heldout = vec![HashSet::new(); users];
        for (u, i) in pairs(&ingest.join("train.csv"), (users, items))? {
            train[u as usize].insert(i);
        }
        let held = pairs(&ingest.join(format!("{which}.csv")), (users, items))?;
        let candidates = match stats.get("cold").and_then(Json::as_str) {
            None | Some("users") => None,
            Some("items") => {
                let mut c = vec![false; items];
                for &(_, i) in &held {
                    c[i as usize] = true;
                }
                Some(c)
            }
            Some(other) => {
                return Err(format!(
                    "{}: `cold` is `{other}`, expected `items` or `users`",
                    ingest.join("stats.json").display()
                ))
            }
        };
        for (u, i) in held {
            heldout[u as usize].insert(i);
        }
        Ok(EvalSplit {
            train,
            heldout,
            items,
            candidates,
        })
    }

    /// Whether item `i` is ranked for user `u`: not one of the user's training items, and a
    /// candidate.
    pub fn ranks(&self, u: u32, i: u32) -> bool {
        !self.train[u as usize].contains(&i)
            && self.candidates.as_ref().is_none_or(|c| c[i as usize])
    }

    /// Users with held-out items, in id order.
    pub fn eval_users(&self) -> Vec<u32> {
        (0..self.heldout.len() as u32)
            .filter(|&u| !self.heldout[u as usize].is_empty())
            .collect()
    }
}

/// Per-user metric values, filled batch by batch.
pub struct UserMetrics {
    pub names: Vec<String>,
    /// (user, number of held-out items, values in the order of `names`)
    pub rows: Vec<(u32, usize, Vec<f64>)>,
    recall: Vec<usize>,
    ndcg: Vec<usize>,
}

impl UserMetrics {
    pub fn new(recall: &[usize], ndcg: &[usize]) -> UserMetrics {
        let mut names: Vec<String> = recall.iter().map(|k| format!("recall@{k}")).collect();
        names.extend(ndcg.iter().map(|k| format!("ndcg@{k}")));
        UserMetrics {
            names,
            rows: Vec::new(),
            recall: recall.to_vec(),
            ndcg: ndcg.to_vec(),
        }
    }

    /// Rank and score a batch: `scores[b]` holds a score per item for `users[b]`.
    pub fn add_batch(&mut self, split: &EvalSplit, users: &[u32], scores: &[Vec<f32>]) {
        let kmax = self
            .recall
            .iter()
            .chain(&self.ndcg)
            .copied()
            .max()
            .unwrap_or(0);
        for (&u, s) in users.iter().zip(scores) {
            let truth = &split.heldout[u as usize];
            let ranking = top_k(s, |i| split.ranks(u, i), kmax);
            let mut v: Vec<f64> = self
                .recall
                .iter()
                .map(|&k| recall_at(&ranking, truth, k))
                .collect();
            v.extend(self.ndcg.iter().map(|&k| ndcg_at(&ranking, truth, k)));
            self.rows.push((u, truth.len(), v));
        }
    }

    pub fn means(&self) -> Vec<f64> {
        let n = self.rows.len().max(1) as f64;
        (0..self.names.len())
            .map(|j| self.rows.iter().map(|r| r.2[j]).sum::<f64>() / n)
            .collect()
    }

    /// metrics.json: `model`, `split`, `users`, and the mean of each metric.
    pub fn summary(&self, model: &str, split: &str) -> Json {
        let mut m = Map::new();
        m.insert("model".into(), json!(model));
        m.insert("split".into(), json!(split));
        m.insert("users".into(), json!(self.rows.len()));
        for (name, v) in self.names.iter().zip(self.means()) {
            m.insert(name.clone(), json!(v));
        }
        Json::Object(m)
    }

    /// per_user.csv: user, number of held-out items, each metric (full precision).
    pub fn per_user_csv(&self) -> String {
        let mut out = format!("user,heldout,{}\n", self.names.join(","));
        for (u, n, v) in &self.rows {
            let _ = writeln!(
                out,
                "{u},{n},{}",
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        out
    }

    /// The model-selection criterion of RecLLM finetuning: the sum of the means.
    pub fn criterion(&self) -> f64 {
        self.means().iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ingest folder with `stats`, and train/test files of `(user, item)` rows.
    fn folder(stats: &str, train: &str, test: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("stats.json"), stats).unwrap();
        let csv = |rows: &str| format!("user,item,rating,timestamp\n{rows}");
        std::fs::write(d.path().join("train.csv"), csv(train)).unwrap();
        std::fs::write(d.path().join("test.csv"), csv(test)).unwrap();
        d
    }

    #[test]
    fn cold_items_rank_only_the_held_out_items() {
        let d = folder(
            r#"{"users": 2, "items": 5, "cold": "items"}"#,
            "0,0,,\n1,1,,\n",
            "0,3,,\n1,4,,\n",
        );
        let s = EvalSplit::read(d.path(), "test").unwrap();
        let ranked: Vec<u32> = (0..5).filter(|&i| s.ranks(0, i)).collect();
        assert_eq!(ranked, [3, 4]);
        let d = folder(r#"{"users": 2, "items": 5}"#, "0,0,,\n1,1,,\n", "0,3,,\n");
        let s = EvalSplit::read(d.path(), "test").unwrap();
        let ranked: Vec<u32> = (0..5).filter(|&i| s.ranks(0, i)).collect();
        assert_eq!(ranked, [1, 2, 3, 4], "all but the user's training items");
    }

    #[test]
    fn an_id_beyond_the_counts_is_an_error_naming_file_and_line() {
        let d = folder(r#"{"users": 2, "items": 5}"#, "0,0,,\n1,7,,\n", "0,3,,\n");
        let e = EvalSplit::read(d.path(), "test").err().unwrap();
        assert!(
            e.contains("train.csv:3: `item` is not an id below 5"),
            "{e}"
        );
    }
}
