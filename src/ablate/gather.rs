//! What an `ablate` stage reads from its inputs: the per-user metrics of each evaluation (a
//! variant) and the per-epoch history of each pretrain or finetune run. An input is one
//! stage's output folder, or a gathered stage's folder of one subfolder per matrix point
//! (`axis=value,...`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// One evaluation: its label in the table and its per-user metrics.
#[derive(Debug, Clone)]
pub struct Variant {
    pub label: String,
    /// The matrix point it came from (axis, value as written), empty for a plain input.
    pub point: Vec<(String, String)>,
    /// Metric names, in per_user.csv order.
    pub metrics: Vec<String>,
    /// user id -> one value per metric.
    pub users: BTreeMap<u64, Vec<f64>>,
    /// The evaluate stage it came from, and its instance's label (`stage[point]`).
    pub stage: String,
    pub instance: String,
    /// Its compute.json (what made the evaluated model), if it wrote one.
    pub compute: Option<Json>,
}

/// One training run: `pretrain` or `finetune`, with its history.json.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub stage: String,
    pub history: Json,
}

/// An input folder, with the matrix point when it is one instance of a gathered stage.
struct Source {
    stage: String,
    point: Option<Vec<(String, String)>>,
    dir: PathBuf,
}

fn parse_point(name: &str) -> Vec<(String, String)> {
    if name == "_" {
        return Vec::new();
    }
    name.split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect()
}

/// Points in order: axis by axis, numerically where both values are numbers.
fn cmp_points(a: &[(String, String)], b: &[(String, String)]) -> std::cmp::Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        let o = ka
            .cmp(kb)
            .then_with(|| match (va.parse::<f64>(), vb.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => va.cmp(vb),
            });
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Each input's output folder, or for a gathered input (a stage in `gathered`) each of its
/// instances' (the subfolders, named by their points), in `order`.
fn sources(
    inputs: &BTreeMap<String, PathBuf>,
    order: &[String],
    gathered: &[&str],
) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    let mut stages: Vec<(&String, &PathBuf)> = inputs.iter().collect();
    stages.sort_by_key(|(s, _)| order.iter().position(|o| o == *s).unwrap_or(usize::MAX));
    for (stage, dir) in stages {
        if !gathered.contains(&stage.as_str()) {
            out.push(Source {
                stage: stage.clone(),
                point: None,
                dir: dir.clone(),
            });
            continue;
        }
        let entries = std::fs::read_dir(dir).map_err(|e| format!("input `{stage}`: {e}"))?;
        let mut subs = Vec::new();
        for e in entries {
            let e = e.map_err(|e| format!("input `{stage}`: {e}"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            subs.push((parse_point(&name), e.path()));
        }
        subs.sort_by(|a, b| cmp_points(&a.0, &b.0));
        for (point, dir) in subs {
            out.push(Source {
                stage: stage.clone(),
                point: Some(point),
                dir,
            });
        }
    }
    Ok(out)
}

fn label(s: &Source, only_stage: bool) -> String {
    let point = s.point.as_ref().map(|p| {
        p.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    match point {
        Some(p) if only_stage && !p.is_empty() => p,
        Some(p) if !p.is_empty() => format!("{}[{p}]", s.stage),
        _ => s.stage.clone(),
    }
}

/// The metric names of a per_user.csv and, per user, the values in that order.
pub type PerUser = (Vec<String>, BTreeMap<u64, Vec<f64>>);

/// Reads an evaluate stage's per_user.csv: `user,heldout,<metric>...`.
pub fn read_per_user(path: &Path) -> Result<PerUser, String> {
    let shown = path.display();
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{shown}: {e}"))?;
    let header = r.headers().map_err(|e| format!("{shown}: {e}"))?.clone();
    if header.len() < 3 || &header[0] != "user" || &header[1] != "heldout" {
        return Err(format!(
            "{shown}: expected a header `user,heldout,<metric>...`"
        ));
    }
    let metrics: Vec<String> = header.iter().skip(2).map(str::to_owned).collect();
    let mut users = BTreeMap::new();
    for (k, rec) in r.records().enumerate() {
        let line = k + 2;
        let rec = rec.map_err(|e| format!("{shown}:{line}: {e}"))?;
        let user: u64 = rec
            .get(0)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{shown}:{line}: bad user id"))?;
        let values: Vec<f64> = rec
            .iter()
            .skip(2)
            .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<_>>()
            .filter(|v: &Vec<f64>| v.len() == metrics.len())
            .ok_or_else(|| format!("{shown}:{line}: expected {} numbers", metrics.len()))?;
        if users.insert(user, values).is_some() {
            return Err(format!("{shown}:{line}: user {user} appears twice"));
        }
    }
    Ok((metrics, users))
}

/// The variants (the inputs of the stages `evaluations`) and runs (of `trainings`: stage,
/// kind) among the inputs, in the order of the
/// stage names in `order` (the stage's `needs`; others last, by name), with the points of a gathered stage in matrix order. A label is the matrix point when a
/// single gathered stage provides all variants (or all runs of one kind), else the stage
/// name, with the point in brackets for a gathered stage.
pub fn collect(
    inputs: &BTreeMap<String, PathBuf>,
    order: &[String],
    gathered: &[&str],
    evaluations: &[&str],
    trainings: &[(&str, &'static str)],
) -> Result<(Vec<Variant>, Vec<Run>), String> {
    let srcs = sources(inputs, order, gathered)?;
    let evals: Vec<&Source> = srcs
        .iter()
        .filter(|s| evaluations.contains(&s.stage.as_str()))
        .collect();
    let one_eval_stage = evals.iter().all(|s| s.stage == evals[0].stage);
    let mut variants = Vec::new();
    for s in &evals {
        let (metrics, users) = read_per_user(&s.dir.join("per_user.csv"))?;
        let path = s.dir.join(crate::kinds::evaluate::COMPUTE_JSON);
        let compute = match std::fs::read_to_string(&path) {
            Ok(text) => {
                Some(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            Err(_) => None,
        };
        variants.push(Variant {
            label: label(s, one_eval_stage),
            point: s.point.clone().unwrap_or_default(),
            metrics,
            users,
            stage: s.stage.clone(),
            instance: label(s, false),
            compute,
        });
    }
    let mut trained: Vec<(&Source, String, Json)> = Vec::new();
    for s in &srcs {
        let Some((_, kind)) = trainings.iter().find(|(t, _)| *t == s.stage) else {
            continue;
        };
        let path = s.dir.join("history.json");
        let history = serde_json::from_str(
            &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        trained.push((s, (*kind).to_owned(), history));
    }
    let mut runs = Vec::new();
    for (s, kind, history) in &trained {
        let one = trained
            .iter()
            .filter(|(_, k, _)| k == kind)
            .all(|(o, _, _)| o.stage == s.stage);
        runs.push(Run {
            label: label(s, one),
            stage: kind.clone(),
            history: history.clone(),
        });
    }
    Ok((variants, runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_sort_numerically() {
        let mut v = [
            parse_point("lambda_c=100"),
            parse_point("lambda_c=0.1"),
            parse_point("lambda_c=1e-2"),
            parse_point("lambda_c=10"),
        ];
        v.sort_by(|a, b| cmp_points(a, b));
        let vals: Vec<&str> = v.iter().map(|p| p[0].1.as_str()).collect();
        assert_eq!(vals, ["1e-2", "0.1", "10", "100"]);
    }

    #[test]
    fn per_user_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("per_user.csv");
        std::fs::write(&p, "user,heldout,recall@20\n0,2,0.5\n1,3,x\n").unwrap();
        let e = read_per_user(&p).unwrap_err();
        assert!(e.ends_with("per_user.csv:3: expected 1 numbers"), "{e}");
        std::fs::write(&p, "user,n,recall@20\n").unwrap();
        assert!(read_per_user(&p).unwrap_err().contains("expected a header"));
    }
}
