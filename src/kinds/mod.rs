//! Stage kinds: what a stage of a given `kind` does. Each kind has a version that is part of
//! every cache key, so a change to its behaviour is a deliberate bump.

pub mod ablate;
pub mod command;
pub mod evaluate;
pub mod finetune;
pub mod ingest;
pub mod lightgcn;
pub mod multivae;
pub mod popular;
pub mod pretrain;
pub mod sandbox;
pub mod tokenize;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::pipeline::load::StageDef;
use crate::pipeline::schema::StageKinds;
use crate::pipeline::Instance;

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

/// What a running stage says about its progress.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A short status line (epoch, batch, loss, tokens/s), shown beside the running stage.
    Status(&'a str),
    /// A finished epoch: its entry of the stage's `history.json`.
    Epoch(&'a serde_json::Value),
}

impl StageContext<'_> {
    pub fn progress(&self, status: &str) {
        (self.progress)(Progress::Status(status))
    }
    /// A finished epoch, as it goes into `history.json`.
    pub fn epoch(&self, entry: &serde_json::Value) {
        (self.progress)(Progress::Epoch(entry))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

/// (field, message, hint) of a stage definition error (defined with the trait the pipeline
/// layer checks definitions through).
pub use crate::pipeline::schema::DefError;

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
    /// Check an instance's resolved params: (param name, message).
    fn check_instance(&self, _inst: &Instance) -> Result<(), (String, String)> {
        Ok(())
    }
    /// Check the files an instance's params name, relative to the pipeline's folder
    /// `workdir`, when the pipeline is loaded: (param name, message).
    fn check_files(&self, _inst: &Instance, _workdir: &Path) -> Result<(), (String, String)> {
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

/// An instance's resolved params (the seed is `Instance::seed`) as a kind's typed params struct; an error names the
/// offending param.
pub fn params_of<T: serde::de::DeserializeOwned>(inst: &Instance) -> Result<T, (String, String)> {
    let v = serde_json::Value::Object(inst.params.clone());
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        let field = msg.split('`').nth(1).unwrap_or("params").to_owned();
        let hint = if msg.starts_with("unknown field") {
            let expected: Vec<&str> = msg.split('`').skip(3).step_by(2).collect();
            format!(
                "; {}",
                crate::diag::suggest(&field, &expected, "known params")
            )
        } else {
            String::new()
        };
        (field, format!("{msg}{hint}"))
    })
}

/// The kinds this build knows.
pub struct Registry {
    kinds: Vec<Box<dyn StageKind>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            kinds: vec![
                Box::new(command::Command),
                Box::new(ingest::Ingest),
                Box::new(tokenize::Tokenize),
                Box::new(popular::Popular),
                Box::new(pretrain::Pretrain),
                Box::new(finetune::Finetune),
                Box::new(evaluate::Evaluate),
                Box::new(multivae::MultiVaeKind),
                Box::new(lightgcn::LightGcnKind),
                Box::new(ablate::Ablate),
            ],
        }
    }
}

impl Registry {
    /// A registry of exactly these kinds (tests of the executor with kinds of their own).
    #[cfg(test)]
    pub(crate) fn of(kinds: Vec<Box<dyn StageKind>>) -> Registry {
        Registry { kinds }
    }

    pub fn get(&self, name: &str) -> Option<&dyn StageKind> {
        self.kinds
            .iter()
            .find(|k| k.name() == name)
            .map(|k| k.as_ref())
    }
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

/// What the pipeline layer asks of the kinds while it loads and expands a pipeline
/// (`pipeline::StageKinds`): the registry answers for the kind of that name.
impl StageKinds for Registry {
    fn names(&self) -> Vec<&str> {
        Registry::names(self)
    }
    fn knows(&self, kind: &str) -> bool {
        self.get(kind).is_some()
    }
    fn check_def(&self, def: &StageDef) -> Result<(), DefError> {
        self.get(&def.kind).expect("checked above").check_def(def)
    }
    fn check_instance(
        &self,
        kind: &str,
        inst: &Instance,
        workdir: &Path,
    ) -> Result<(), (String, String)> {
        let k = self.get(kind).expect("known kind");
        k.check_instance(inst)
            .and_then(|()| k.check_files(inst, workdir))
    }
    fn implicit_deps(&self, kind: &str, inst: &Instance) -> Vec<(String, String)> {
        self.get(kind).expect("known kind").implicit_deps(inst)
    }
}
