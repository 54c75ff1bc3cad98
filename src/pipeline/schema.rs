//! The contract between pipelines and stage kinds: what a kind is (`StageKind`), what it is
//! handed when it runs (`StageContext`), and how the pipeline layer finds kinds by name
//! (`StageKinds`). The kinds (`src/kinds/`) implement it and `kinds::Registry` lists them, so
//! `pipeline/` never names `kinds/`: the kinds depend on the spec, not the other way round.
//!
//! Loading resolves everything a kind decides once: each instance holds its `Kind`, its params
//! as the kind's typed struct (defaults filled in, checked) together with their JSON (what the
//! cache key hashes), and for each input the role it fills among the kind's declared `Needs`.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::pipeline::load::StageDef;
use crate::pipeline::model::Instance;

/// (field, message, hint) of a stage definition error.
pub type DefError = (String, String, Option<String>);

/// (param name, message) of a param error; the name positions the error in the file.
pub type ParamError = (String, String);

/// A stage's params as its kind resolved them at load time: the kind's typed struct, and the
/// same values as JSON, every param present (defaults filled in). The JSON is what the cache
/// key hashes, what a stage's `params.json` holds and what reports show, so a default changed
/// in code changes the key.
#[derive(Clone)]
pub struct Params {
    json: Map<String, Json>,
    typed: Arc<dyn Any + Send + Sync>,
}

impl Params {
    /// The resolved params `typed`, with `json` their serialization.
    pub fn new<T: Any + Send + Sync>(typed: T, json: Map<String, Json>) -> Params {
        Params {
            json,
            typed: Arc::new(typed),
        }
    }
    pub fn json(&self) -> &Map<String, Json> {
        &self.json
    }
    /// The typed params, if they are a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.typed.downcast_ref()
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Json::Object(self.json.clone()))
    }
}

/// One input of a kind: a role filled by the output of an upstream stage (one of `needs`)
/// whose kind is one of `kinds`.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub role: &'static str,
    pub kinds: &'static [&'static str],
    pub required: bool,
    /// Whether several needs may fill it (such as the evaluations an `ablate` compares).
    pub many: bool,
}

/// The inputs a kind takes, checked against a stage's `needs` when the pipeline loads.
#[derive(Debug, Clone, Copy)]
pub enum Needs {
    /// Any upstream stages, of any kind (a `command`).
    Any,
    /// Exactly these roles; a need that fills none of them is refused.
    Slots(&'static [Slot]),
}

/// What a running stage says about its progress.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A short status line (epoch, batch, loss, tokens/s), shown beside the running stage.
    Status(&'a str),
    /// A finished epoch: its entry of the stage's `history.json`.
    Epoch(&'a serde_json::Value),
}

/// Everything a stage may touch while it runs.
pub struct StageContext<'a> {
    pub instance: &'a Instance,
    /// The pipeline file's folder.
    pub workdir: &'a Path,
    /// The empty folder the stage writes its outputs into.
    pub out: &'a Path,
    /// Upstream stage name -> its output folder (gathered: a folder of one subfolder per instance).
    pub inputs: &'a BTreeMap<String, PathBuf>,
    /// JSON file with the resolved params (seed included) and the matrix point.
    pub params_file: &'a Path,
    /// The stage's log (stdout and stderr of a command).
    pub log: &'a File,
    /// Set on Ctrl-C: stop as soon as possible.
    pub cancel: &'a AtomicBool,
    /// Hears the stage's progress: status lines and finished epochs.
    pub progress: &'a (dyn Fn(Progress) + Sync),
}

impl StageContext<'_> {
    pub fn progress(&self, status: &str) {
        (self.progress)(Progress::Status(status))
    }
    /// A finished epoch, as it goes into `history.json`.
    pub fn epoch(&self, entry: &serde_json::Value) {
        (self.progress)(Progress::Epoch(entry))
    }
    /// The instance's typed params: the struct its own kind resolved them into at load time.
    pub fn params<T: Any>(&self) -> &T {
        self.instance.params_as()
    }
    /// The inputs filling `role`, in `needs` order: (upstream kind, output folder).
    pub fn inputs_as(&self, role: &str) -> Vec<(&'static str, &Path)> {
        self.instance
            .inputs
            .iter()
            .filter(|i| i.role == Some(role))
            .map(|i| (i.kind, self.inputs[&i.stage].as_path()))
            .collect()
    }
    /// The output folder of the input filling `role` (checked at load time when the slot is
    /// required), with the kind of the stage that wrote it.
    pub fn input(&self, role: &str) -> Result<(&'static str, &Path), StageError> {
        self.inputs_as(role).into_iter().next().ok_or_else(|| {
            StageError::Failed(format!(
                "a `{}` stage needs an input for `{role}`",
                self.instance.kind
            ))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

/// A stage kind: what a stage of a given `kind` does. Each kind has a version that is part of
/// every cache key, so a change to its behaviour is a deliberate bump.
pub trait StageKind: Send + Sync {
    fn name(&self) -> &'static str;
    /// Bumped whenever the kind's outputs could change for the same key.
    fn version(&self) -> u32;
    /// Check a stage definition before expansion. By default `cmd` and `shell` are refused.
    fn check_def(&self, def: &StageDef) -> Result<(), DefError> {
        if def.cmd.is_some() || def.shell {
            let field = if def.cmd.is_some() { "cmd" } else { "shell" };
            return Err((
                field.into(),
                format!("`{field}` is only for `command` stages"),
                Some(format!("stage `{}` is a `{}` stage", def.name, def.kind)),
            ));
        }
        Ok(())
    }
    /// An instance's params (after interpolation, without `seed`) as the kind's typed struct,
    /// defaults filled in and values checked.
    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError>;
    /// The kind's defaults, one value per param that has one (what `stages/<kind>.yaml` lists),
    /// and the names of the params an instance must give.
    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]);
    /// The upstream stages it takes.
    fn needs(&self) -> Needs;
    /// Check a combination of filled roles beyond the slots' own rules: (role, upstream kind).
    fn check_needs(&self, _filled: &[(&'static str, &'static str)]) -> Result<(), String> {
        Ok(())
    }
    /// Check the files an instance's params name, relative to the pipeline's folder
    /// `workdir`, when the pipeline is loaded.
    fn check_files(&self, _inst: &Instance, _workdir: &Path) -> Result<(), ParamError> {
        Ok(())
    }
    /// Check the params against the instances upstream (`inst.inputs` index `instances`), when
    /// the pipeline is loaded, so that a combination the stage would refuse is refused before
    /// anything upstream runs.
    fn check_inputs(&self, _inst: &Instance, _instances: &[Instance]) -> Result<(), ParamError> {
        Ok(())
    }
    /// Files or folders named by params (relative to the pipeline's folder) whose content is
    /// hashed into the key, as if listed in `deps`: (param name, path).
    fn implicit_deps(&self, _inst: &Instance) -> Vec<(String, String)> {
        Vec::new()
    }
    fn run(&self, ctx: &StageContext) -> Result<(), StageError>;
    /// Whether rerunning an instance must give byte-identical outputs (checked by
    /// `reproduce`). A stage's `bit_exact:` field overrides it.
    fn bit_exact(&self) -> bool {
        true
    }
    /// Whether the stage computes on the model backend (`src/model/backend.rs`): then a build
    /// with another backend than the default has it in the key, so a libtorch build never
    /// reuses an ndarray result (they differ in the last bits) nor the other way round.
    fn computes_on_backend(&self) -> bool {
        false
    }
}

/// A stage kind as stages and instances hold it.
#[derive(Clone)]
pub struct Kind(Arc<dyn StageKind>);

impl Kind {
    pub fn new(kind: Arc<dyn StageKind>) -> Kind {
        Kind(kind)
    }
}

impl std::ops::Deref for Kind {
    type Target = dyn StageKind;
    fn deref(&self) -> &(dyn StageKind + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// The stage kinds a pipeline may use.
pub trait StageKinds {
    /// The kinds' names, in a stable order (the one hints list them in).
    fn names(&self) -> Vec<&'static str>;
    /// The kind of that name.
    fn get(&self, name: &str) -> Option<Kind>;
}
