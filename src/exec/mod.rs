//! Executing a pipeline: cache keys of instances, the parallel scheduler, `plan`, progress.

pub mod cpu;
pub mod keys;
pub mod panics;
pub mod plan;
pub mod progress;
pub mod runner;
pub mod scheduler;
pub mod slurm;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::cache::store::StoreError;
use crate::diag::Diagnostic;

/// Set by the Ctrl-C handler: start nothing new, stop what runs, leave no partial entry.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Dep(Box<Diagnostic>),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("stage `{label}` failed: {message}\n  log: {}", log.display())]
    Stage {
        label: String,
        message: String,
        log: PathBuf,
    },
    #[error("{failed} stage instance(s) failed")]
    Failed { failed: usize },
    /// Talking to Slurm, or a job that refused to run (`--executor slurm`).
    #[error("slurm: {0}")]
    Slurm(String),
    #[error("cancelled")]
    Cancelled,
}
