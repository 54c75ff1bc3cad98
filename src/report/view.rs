//! What the cache holds of a pipeline, read without writing anything: each instance's state
//! (cached, failed, not run), its record, training history and plots, and the lineage of
//! every instance with metrics. The HTML report and the MLflow and TensorBoard exports are
//! all drawn from this one view.

use std::path::PathBuf;

use serde_json::Value as Json;

use crate::ablate::gather::Run;
use crate::ablate::table::Table;
use crate::audit::lineage::{self, Lineage};
use crate::audit::resolve::resolve;
use crate::audit::AuditError;
use crate::cache::record::Record;
use crate::cache::store::Store;
use crate::kinds::ablate::TABLE_JSON;
use crate::pipeline::Pipeline;

/// The plot files an `ablate` stage may leave, in the order a report shows them.
pub const PLOTS: [&str; 2] = ["sensitivity.svg", "curves.svg"];

/// Where an instance stands in the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Its complete entry is in the cache.
    Cached,
    /// Its inputs are cached and it has a key, but no entry: its last attempt failed or was
    /// stopped, and left this log (the log's last lines).
    Failed { log: PathBuf, tail: String },
    /// Its inputs are cached and it has a key, but it never ran.
    NotRun,
    /// Some upstream instance is not cached, so it has no key yet.
    Waiting,
}

impl State {
    pub fn word(&self) -> &'static str {
        match self {
            State::Cached => "cached",
            State::Failed { .. } => "failed",
            State::NotRun => "not run",
            State::Waiting => "waiting for upstream",
        }
    }
}

pub struct InstanceView {
    pub index: usize,
    pub state: State,
    /// The key, when every input is cached.
    pub key: Option<String>,
    pub record: Option<Record>,
    /// The backend a model stage computed on (`ndarray`, `tch`, `cuda`); None for the
    /// other kinds.
    pub backend: Option<String>,
    /// The output's `history.json` (per-epoch statistics of a training stage).
    pub history: Option<Json>,
    /// The stage kind a training output names in its `model.json` (`pretrain`, `finetune`,
    /// `multivae`, `lightgcn`).
    pub trained: Option<String>,
    /// An `ablate` output's table.
    pub table: Option<Table>,
    /// Plot files among the output: (file name, path).
    pub plots: Vec<(String, PathBuf)>,
    /// The output folder, when cached.
    pub output_dir: Option<PathBuf>,
}

pub struct View<'a> {
    pub pipeline: &'a Pipeline,
    pub instances: Vec<InstanceView>,
    /// The lineage of every cached instance with metrics and of every cached `ablate`
    /// (None when there is none).
    pub lineage: Option<Lineage>,
}

fn read_json(path: &std::path::Path) -> Option<Json> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The last `n` lines of a log, or nothing when it cannot be read.
fn log_tail(path: &std::path::Path, n: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads the view of `p` from `store` (opened read-only). `sets` are the overrides the
/// pipeline was loaded with, recorded in the lineage.
pub fn read<'a>(p: &'a Pipeline, store: &Store, sets: &[String]) -> Result<View<'a>, AuditError> {
    let resolved = resolve(p, store)?;
    let mut instances = Vec::with_capacity(p.instances.len());
    for (i, inst) in p.instances.iter().enumerate() {
        let key = resolved.keys[i].clone();
        let record = resolved.records[i].clone();
        let state = match (&key, &record) {
            (_, Some(_)) => State::Cached,
            (None, None) => State::Waiting,
            (Some(k), None) => {
                let log = store.log_path(k);
                if log.is_file() {
                    State::Failed {
                        tail: log_tail(&log, 12),
                        log,
                    }
                } else {
                    State::NotRun
                }
            }
        };
        let backend = Some(&inst.kind)
            .filter(|k| k.computes_on_backend())
            .map(|_| {
                record
                    .as_ref()
                    .and_then(|r| r.key.spec.get("backend"))
                    .and_then(Json::as_str)
                    .unwrap_or("ndarray")
                    .to_owned()
            });
        let output_dir = record.as_ref().map(|r| store.object_data(&r.output));
        let (mut history, mut trained, mut table, mut plots) = (None, None, None, Vec::new());
        if let Some(dir) = &output_dir {
            history = read_json(&dir.join("history.json"));
            if history.is_some() {
                trained = read_json(&dir.join("model.json"))
                    .and_then(|m| m["stage"].as_str().map(str::to_owned))
                    .or_else(|| Some(inst.kind.name().to_owned()));
            }
            if inst.kind == "ablate" {
                table = read_json(&dir.join(TABLE_JSON))
                    .and_then(|t| serde_json::from_value::<Table>(t).ok());
                plots = PLOTS
                    .iter()
                    .map(|f| (f.to_string(), dir.join(f)))
                    .filter(|(_, path)| path.is_file())
                    .collect();
            }
        }
        instances.push(InstanceView {
            index: i,
            state,
            key,
            record,
            backend,
            history,
            trained,
            table,
            plots,
            output_dir,
        });
    }
    // Every number on the page traces back: the metrics of each instance, and an ablate
    // table's changes and p-values (computed from all its inputs).
    let targets: Vec<usize> = instances
        .iter()
        .filter(|v| {
            v.record
                .as_ref()
                .is_some_and(|r| r.metrics.is_some() || p.instances[v.index].kind == "ablate")
        })
        .map(|v| v.index)
        .collect();
    let lineage = if targets.is_empty() {
        None
    } else {
        Some(lineage::build(p, &resolved, &targets, sets)?)
    };
    Ok(View {
        pipeline: p,
        instances,
        lineage,
    })
}

impl View<'_> {
    /// How many instances are in the state that `State::word` calls `word`.
    pub fn count(&self, word: &str) -> usize {
        self.instances
            .iter()
            .filter(|v| v.state.word() == word)
            .count()
    }

    /// The pretrain and finetune runs with a history, as the training-curve plot takes them:
    /// labelled by matrix point when one stage holds all runs of its kind, else by label.
    pub fn runs(&self) -> Vec<Run> {
        let trained: Vec<&InstanceView> = self
            .instances
            .iter()
            .filter(|v| matches!(v.trained.as_deref(), Some("pretrain" | "finetune")))
            .collect();
        trained
            .iter()
            .map(|v| {
                let inst = &self.pipeline.instances[v.index];
                let kind = v.trained.clone().unwrap_or_default();
                let one_stage = trained
                    .iter()
                    .filter(|o| o.trained.as_deref() == Some(kind.as_str()))
                    .all(|o| self.pipeline.instances[o.index].stage == inst.stage);
                let point = point_text(&inst.label);
                let label = match point {
                    Some(pt) if one_stage => pt.to_owned(),
                    _ => inst.label.clone(),
                };
                Run {
                    label,
                    stage: kind,
                    history: v.history.clone().unwrap_or(Json::Null),
                }
            })
            .collect()
    }

    /// The instance that a row of an `ablate` instance's table came from: the input whose
    /// label, stage name or matrix point is the row's variant.
    pub fn variant_source(&self, ablate: usize, variant: &str) -> Option<usize> {
        let p = self.pipeline;
        let names = |u: usize| {
            let inst = &p.instances[u];
            inst.label == variant
                || inst.stage_name == variant
                || point_text(&inst.label) == Some(variant)
        };
        let inputs = || {
            p.instances[ablate]
                .inputs
                .iter()
                .flat_map(|input| input.instances.iter().copied())
        };
        // Variants are evaluations; a pretrain run at the same point names it too.
        inputs()
            .find(|&u| p.instances[u].kind == "evaluate" && names(u))
            .or_else(|| inputs().find(|&u| names(u)))
    }
}

/// `lambda_c=1` of `evaluate[lambda_c=1]`.
pub fn point_text(label: &str) -> Option<&str> {
    let open = label.find('[')?;
    label[open + 1..].strip_suffix(']')
}

/// One point of a metric's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub step: i64,
    pub value: f64,
}

/// The per-epoch series of a `history.json`: each number of an epoch's entry (other than
/// `epoch`) under its path (`train/loss`, `valid/recall@20`), with the epoch as its step; an
/// entry with a `phase` (pretraining's `collab` and `content`) has it as the first part.
/// Names are as written; exporters map them to their tools' rules.
pub fn history_points(history: &Json) -> Vec<Point> {
    fn walk(v: &Json, path: &str, step: i64, out: &mut Vec<Point>) {
        match v {
            Json::Number(n) => {
                if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                    out.push(Point {
                        name: path.to_owned(),
                        step,
                        value: x,
                    });
                }
            }
            Json::Object(m) => {
                for (k, x) in m {
                    let n = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}/{k}")
                    };
                    walk(x, &n, step, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let Some(epochs) = history.as_array() else {
        return out;
    };
    for e in epochs {
        let Some(m) = e.as_object() else { continue };
        let Some(step) = m.get("epoch").and_then(Json::as_i64) else {
            continue;
        };
        let phase = m.get("phase").and_then(Json::as_str).unwrap_or("");
        for (k, x) in m {
            if k == "epoch" || k == "phase" {
                continue;
            }
            let n = if phase.is_empty() {
                k.clone()
            } else {
                format!("{phase}/{k}")
            };
            walk(x, &n, step, &mut out);
        }
    }
    out
}

/// The name a history series is exported under: `history/<path>`, beside the record's
/// final metrics under their own names.
pub fn history_name(path: &str) -> String {
    format!("history/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_steps_are_epochs_and_phases_prefix_names() {
        let h = json!([
            {"epoch": 0, "valid": {"recall@20": 0.1}},
            {"epoch": 1, "train": {"loss": 2.5}, "valid": {"recall@20": 0.2}},
            {"epoch": 1, "phase": "collab", "loss": 3.0, "note": "text"}
        ]);
        let pts = history_points(&h);
        let got: Vec<(&str, i64, f64)> = pts
            .iter()
            .map(|p| (p.name.as_str(), p.step, p.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("valid/recall@20", 0, 0.1),
                ("train/loss", 1, 2.5),
                ("valid/recall@20", 1, 0.2),
                ("collab/loss", 1, 3.0)
            ]
        );
    }

    #[test]
    fn point_text_is_the_bracketed_part() {
        assert_eq!(point_text("evaluate[lambda_c=1]"), Some("lambda_c=1"));
        assert_eq!(point_text("evaluate"), None);
    }
}
