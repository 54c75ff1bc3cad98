//! `export mlflow`: a pipeline's cached instances in MLflow's file-store layout (the
//! `mlruns/` folder that `mlflow.set_tracking_uri("file:DIR")` reads): an experiment per
//! pipeline, a run per cached instance with its params, its metrics (a training stage's
//! per-epoch history as steps), tags naming its key, output hash and git commit, and its
//! plots and result files as artifacts.
//!
//! ```text
//! DIR/<experiment id>/meta.yaml
//! DIR/<experiment id>/<run id>/meta.yaml
//! DIR/<experiment id>/<run id>/{params,metrics,tags}/<name>
//! DIR/<experiment id>/<run id>/artifacts/...
//! ```
//!
//! Ids are derived from the pipeline's name and each instance's label and key, and times from
//! the records, so the same cache exports to the same bytes. An export replaces the
//! pipeline's experiment folder as a whole (written beside it, then renamed into place);
//! other experiments in DIR are left alone.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::cache::key::canonical_json;
use crate::report::view::{history_name, history_points, State, View};
use crate::report::{io_ctx, write};

/// What an export wrote.
pub struct Summary {
    pub experiment_id: String,
    pub dir: PathBuf,
    pub runs: usize,
    /// Labels of the instances left out (not cached), with their state.
    pub skipped: Vec<(String, &'static str)>,
}

/// A name MLflow accepts for a metric, param or tag: `@` becomes `_at_` (`recall@20` ->
/// `recall_at_20`), any other character outside letters, digits, `_ - . / : space` becomes `_`.
pub fn name(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '@' => o.push_str("_at_"),
            c if c.is_alphanumeric() || "_-./: ".contains(c) => o.push(c),
            _ => o.push('_'),
        }
    }
    // Names are also file names: no empty, `.` or `..` parts.
    let parts: Vec<String> = o
        .split('/')
        .map(|p| match p {
            "" => "_".to_owned(),
            "." | ".." => p.replace('.', "_"),
            p => p.to_owned(),
        })
        .collect();
    parts.join("/")
}

/// The experiment id of a pipeline: 15 decimal digits of the blake3 of its name.
pub fn experiment_id(pipeline: &str) -> String {
    let h = blake3::hash(pipeline.as_bytes());
    let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    format!("{}", 100_000_000_000_000 + n % 900_000_000_000_000)
}

/// The run id of an instance: 32 hex digits, as MLflow's own.
pub fn run_id(pipeline: &str, label: &str, key: &str) -> String {
    let h = blake3::hash(format!("{pipeline}\n{label}\n{key}").as_bytes());
    h.to_hex()[..32].to_owned()
}

/// Milliseconds since the epoch of an RFC 3339 time (0 when it cannot be read).
pub fn millis(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Params flattened into `a.b` names; strings as they are, other values as canonical JSON.
fn flatten_params(prefix: &str, v: &Json, out: &mut Vec<(String, String)>) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let n = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_params(&n, x, out);
            }
        }
        Json::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), canonical_json(other))),
    }
}

fn yaml_str(s: &str) -> String {
    // A double-quoted YAML scalar is a JSON string.
    Json::String(s.to_owned()).to_string()
}

/// Exports `view` into the MLflow store folder `dir` (made if missing).
pub fn export(view: &View, dir: &Path) -> Result<Summary, String> {
    let dir = crate::report::out_dir(dir)?;
    let exp = experiment_id(&view.pipeline.name);
    let final_dir = dir.join(&exp);
    let summary = crate::report::replace_dir(&final_dir, |tmp| {
        write_experiment(view, &exp, &final_dir, tmp)
    })?;
    // MLflow's FileStore makes this itself when it creates a store; a store written here
    // from nothing gets it too, so that it reads as one.
    let trash = dir.join(".trash");
    std::fs::create_dir_all(&trash)
        .map_err(io_ctx(format!("cannot create `{}`", trash.display())))?;
    Ok(summary)
}

fn write_experiment(
    view: &View,
    exp: &str,
    final_dir: &Path,
    tmp: &Path,
) -> Result<Summary, String> {
    let p = view.pipeline;
    let records: Vec<_> = view
        .instances
        .iter()
        .filter_map(|v| v.record.as_ref())
        .collect();
    let created = records
        .iter()
        .map(|r| millis(&r.started))
        .min()
        .unwrap_or(0);
    let updated = records.iter().map(|r| millis(&r.ended)).max().unwrap_or(0);
    let uri = |d: &Path| format!("file://{}", d.display());
    let mut meta = String::new();
    let _ = writeln!(meta, "artifact_location: {}", yaml_str(&uri(final_dir)));
    let _ = writeln!(meta, "creation_time: {created}");
    let _ = writeln!(meta, "experiment_id: '{exp}'");
    let _ = writeln!(meta, "last_update_time: {updated}");
    let _ = writeln!(meta, "lifecycle_stage: active");
    let _ = writeln!(meta, "name: {}", yaml_str(&p.name));
    write(&tmp.join("meta.yaml"), meta.as_bytes())?;
    let file_hash = blake3::hash(p.source.text.as_bytes()).to_hex().to_string();
    write(
        &tmp.join("tags").join("cllm4rec.pipeline_file"),
        p.source.path.display().to_string().as_bytes(),
    )?;
    write(
        &tmp.join("tags").join("cllm4rec.pipeline_blake3"),
        file_hash.as_bytes(),
    )?;
    let mut runs = 0;
    let mut skipped = Vec::new();
    for v in &view.instances {
        let inst = &p.instances[v.index];
        let (State::Cached, Some(rec)) = (&v.state, &v.record) else {
            skipped.push((inst.label.clone(), v.state.word()));
            continue;
        };
        let id = run_id(&p.name, &inst.label, &rec.key_hash);
        let run = tmp.join(&id);
        let start = millis(&rec.started);
        let end = millis(&rec.ended);
        let mut m = String::new();
        let _ = writeln!(
            m,
            "artifact_uri: {}",
            yaml_str(&uri(&final_dir.join(&id).join("artifacts")))
        );
        let _ = writeln!(m, "end_time: {end}");
        let _ = writeln!(m, "entry_point_name: ''");
        let _ = writeln!(m, "experiment_id: '{exp}'");
        let _ = writeln!(m, "lifecycle_stage: active");
        let _ = writeln!(m, "run_id: {id}");
        let _ = writeln!(m, "run_name: {}", yaml_str(&inst.label));
        let _ = writeln!(m, "run_uuid: {id}");
        let _ = writeln!(m, "source_name: ''");
        let _ = writeln!(m, "source_type: 4");
        let _ = writeln!(m, "source_version: ''");
        let _ = writeln!(m, "start_time: {start}");
        let _ = writeln!(m, "status: 3");
        let _ = writeln!(m, "tags: []");
        let _ = writeln!(m, "user_id: {}", yaml_str(&rec.host));
        write(&run.join("meta.yaml"), m.as_bytes())?;
        // MLflow takes a folder for a run only when these three are in it, empty or not.
        for sub in ["metrics", "params", "artifacts"] {
            let d = run.join(sub);
            std::fs::create_dir_all(&d)
                .map_err(io_ctx(format!("cannot create `{}`", d.display())))?;
        }
        // Params: the resolved params with the seed, and the matrix point's axes.
        let mut params = Vec::new();
        flatten_params("", &Json::Object(inst.params_with_seed()), &mut params);
        for (axis, value) in &inst.point {
            let text = match value {
                Json::String(s) => s.clone(),
                other => canonical_json(other),
            };
            params.push((format!("matrix.{axis}"), text));
        }
        for (k, val) in params {
            write(&run.join("params").join(name(&k)), val.as_bytes())?;
        }
        // Metrics: the record's (step 0), then each epoch of the history (step = epoch).
        let mut metrics: std::collections::BTreeMap<String, String> = Default::default();
        if let Some(mj) = &rec.metrics {
            for mt in crate::audit::lineage::flatten_metrics(mj) {
                let line = format!("{end} {} 0\n", mt.value);
                metrics.entry(name(&mt.name)).or_default().push_str(&line);
            }
        }
        if let Some(h) = &v.history {
            for pt in history_points(h) {
                let line = format!("{end} {} {}\n", pt.value, pt.step);
                metrics
                    .entry(name(&history_name(&pt.name)))
                    .or_default()
                    .push_str(&line);
            }
        }
        for (k, lines) in &metrics {
            write(&run.join("metrics").join(k), lines.as_bytes())?;
        }
        // Tags: MLflow's own, then this tool's.
        let mut tags = vec![
            ("mlflow.runName".to_owned(), inst.label.clone()),
            ("mlflow.user".to_owned(), rec.host.clone()),
            ("mlflow.source.type".to_owned(), "LOCAL".to_owned()),
            (
                "mlflow.source.name".to_owned(),
                p.source.path.display().to_string(),
            ),
            ("cllm4rec.stage".to_owned(), inst.stage_name.clone()),
            ("cllm4rec.kind".to_owned(), inst.kind.name().to_owned()),
            ("cllm4rec.key".to_owned(), rec.key_hash.clone()),
            ("cllm4rec.output".to_owned(), rec.output.clone()),
            ("cllm4rec.host".to_owned(), rec.host.clone()),
            ("cllm4rec.tool_version".to_owned(), rec.tool_version.clone()),
            (
                "cllm4rec.duration_s".to_owned(),
                format!("{}", rec.duration_s),
            ),
        ];
        if let Some(c) = &rec.git_commit {
            tags.push(("mlflow.source.git.commit".to_owned(), c.clone()));
            tags.push(("cllm4rec.git_commit".to_owned(), c.clone()));
        }
        if let Some(b) = &v.backend {
            tags.push(("cllm4rec.backend".to_owned(), b.clone()));
        }
        for (k, val) in tags {
            write(&run.join("tags").join(name(&k)), val.as_bytes())?;
        }
        // Artifacts: the plots and tables of an ablate stage, the metrics and history files.
        let art = run.join("artifacts");
        if let Some(out) = &v.output_dir {
            let mut files: Vec<&str> = vec!["metrics.json", "history.json"];
            if inst.kind == "ablate" {
                files.extend([
                    "table.md",
                    "table.csv",
                    "sensitivity.svg",
                    "sensitivity.png",
                    "curves.svg",
                    "curves.png",
                ]);
            }
            for f in files {
                let src = out.join(f);
                if src.is_file() {
                    std::fs::copy(&src, art.join(f))
                        .map_err(io_ctx(format!("cannot copy `{}`", src.display())))?;
                }
            }
        }
        runs += 1;
    }
    Ok(Summary {
        experiment_id: exp.to_owned(),
        dir: final_dir.to_owned(),
        runs,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mlflow_rules() {
        assert_eq!(name("recall@20"), "recall_at_20");
        assert_eq!(name("valid/ndcg@100"), "valid/ndcg_at_100");
        assert_eq!(name("a|b"), "a_b");
        assert_eq!(name("../x"), "__/x");
        assert_eq!(name("a//b"), "a/_/b");
    }

    #[test]
    fn ids_are_stable_and_valid() {
        let e = experiment_id("lambda");
        assert_eq!(e.len(), 15);
        assert!(e.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(e, experiment_id("lambda"));
        assert_ne!(run_id("p", "a", "k"), run_id("p", "b", "k"));
        assert_eq!(run_id("p", "a", "k").len(), 32);
        assert_eq!(millis("1970-01-01T00:00:01.500Z"), 1500);
    }
}
