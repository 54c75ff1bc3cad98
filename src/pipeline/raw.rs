//! The YAML as written: serde structs that mirror the file, with unknown keys rejected.
//! Nothing here is validated beyond types; `load` turns these into a `Pipeline`.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_norway::Value as Yaml;

/// A pipeline file (pipelines/*.yaml, sweeps/*.yaml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: String,
    #[serde(default)]
    pub params: IndexMap<String, Yaml>,
    /// Sweep axes, plus the reserved `include` and `exclude` lists.
    #[serde(default)]
    pub matrix: IndexMap<String, Yaml>,
    /// Defaults for every stage's `resources`.
    #[serde(default)]
    pub resources: RawResources,
    pub stages: IndexMap<String, RawStage>,
}

/// A stage in a pipeline, or a stage template in stages/<kind>.yaml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub kind: Option<String>,
    #[serde(rename = "use")]
    pub use_: Option<String>,
    pub needs: Option<Vec<String>>,
    pub params: Option<IndexMap<String, Yaml>>,
    pub resources: Option<RawResources>,
    /// `command` stages: argv as a list, or a string when `shell: true`.
    pub cmd: Option<Yaml>,
    pub shell: Option<bool>,
    /// Files or folders (relative to the pipeline's folder) hashed into the key.
    pub deps: Option<Vec<String>>,
    /// Templates only: whether a stage may set params the template does not list.
    pub open_params: Option<bool>,
    /// Whether a rerun must give byte-identical outputs (`reproduce`); default: the kind's.
    /// Not part of the cache key.
    pub bit_exact: Option<bool>,
}

/// What a stage asks of the machine. Only `cpus` matters to the local executor.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    pub cpus: Option<u32>,
    pub mem: Option<Scalar>,
    pub gpus: Option<u32>,
    pub time: Option<Scalar>,
    pub partition: Option<String>,
    /// Extra arguments for a cluster scheduler, passed through as written.
    pub sbatch: Option<Vec<String>>,
}

/// A number or a string (`mem: 4096` or `mem: 4G`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Int(u64),
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

impl RawResources {
    /// `self` with unset fields taken from `base`.
    pub fn or(&self, base: &RawResources) -> RawResources {
        RawResources {
            cpus: self.cpus.or(base.cpus),
            mem: self.mem.clone().or_else(|| base.mem.clone()),
            gpus: self.gpus.or(base.gpus),
            time: self.time.clone().or_else(|| base.time.clone()),
            partition: self.partition.clone().or_else(|| base.partition.clone()),
            sbatch: self.sbatch.clone().or_else(|| base.sbatch.clone()),
        }
    }
}
