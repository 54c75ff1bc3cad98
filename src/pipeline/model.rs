//! The validated pipeline: what the executor runs. Stages never see raw YAML.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::pipeline::raw::RawResources;
use crate::pipeline::schema::{Kind, Params};
use crate::pipeline::source::Source;

/// A point of the sweep: axis name -> value.
pub type Point = BTreeMap<String, Json>;

#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    pub source: Arc<Source>,
    /// The pipeline file's folder: commands run here and `deps` are relative to it.
    pub dir: PathBuf,
    /// Matrix axes, in the order the file declares them.
    pub axes: Vec<String>,
    /// Every point of the sweep after include/exclude.
    pub points: Vec<Point>,
    pub stages: Vec<Stage>,
    /// Stage instances in a topological order.
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone)]
pub struct Need {
    pub stage: String,
    /// `stage[*]`: take every instance of `stage` (and run once for all of them).
    pub gather: bool,
}

#[derive(Debug)]
pub struct Stage {
    pub name: String,
    pub kind: Kind,
    pub needs: Vec<Need>,
    /// The axes this stage varies over: its own references and those of its plain needs.
    pub axes: Vec<String>,
    pub resources: RawResources,
    /// `bit_exact:` as written; `None` means the kind's default (`StageKind::bit_exact`).
    pub bit_exact: Option<bool>,
}

/// One upstream stage's output(s) as seen by an instance.
#[derive(Debug, Clone)]
pub struct InputRef {
    pub stage: String,
    pub gather: bool,
    /// The upstream stage's kind.
    pub kind: &'static str,
    /// The role it fills among the kind's `Needs` (`None` for a kind that takes any).
    pub role: Option<&'static str>,
    /// Indices into `Pipeline::instances`.
    pub instances: Vec<usize>,
}

/// A `deps` entry: a file or folder hashed into the key.
#[derive(Debug, Clone)]
pub struct Dep {
    /// As written (after interpolation), relative to the pipeline folder.
    pub rel: String,
    pub abs: PathBuf,
    /// Where it was written, for a "missing dep" error.
    pub origin: Arc<Source>,
    pub yaml_path: String,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub stage: usize,
    pub stage_name: String,
    pub kind: Kind,
    /// `pretrain[lambda_c=0.1]`, or the stage name when it has no axes.
    pub label: String,
    pub point: Point,
    /// Params as the kind resolved them (typed, defaults filled in), without `seed`.
    pub params: Params,
    pub seed: u64,
    /// Kind-specific resolved fields (`cmd`, `shell` for `command`), hashed into the key.
    pub spec: Map<String, Json>,
    /// The pipeline's shared params this stage references, resolved at its point.
    pub shared: Map<String, Json>,
    pub deps: Vec<Dep>,
    pub inputs: Vec<InputRef>,
    pub resources: RawResources,
}

impl Instance {
    /// The params as a stage sees them: resolved params plus `seed`.
    pub fn params_with_seed(&self) -> Map<String, Json> {
        let mut p = self.params.json().clone();
        p.insert("seed".to_owned(), self.seed.into());
        p
    }
    /// The typed params: the struct the instance's own kind resolved them into.
    pub fn params_as<T: std::any::Any>(&self) -> &T {
        self.params
            .get()
            .expect("an instance's params are resolved by its own kind")
    }
}

impl Pipeline {
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

/// `a=1,b=x` for a point, axes in the given order.
pub fn point_label(point: &Point, axes: &[String]) -> String {
    axes.iter()
        .filter_map(|a| {
            point
                .get(a)
                .map(|v| format!("{a}={}", crate::pipeline::interp::as_text(v)))
        })
        .collect::<Vec<_>>()
        .join(",")
}
