//! `run --executor slurm`: each miss becomes a Slurm job that runs `cllm4rec-pipe
//! exec-stage` on a node against the shared cache folder. The runner journals job ids
//! (`journal`), submits (`sbatch`), polls (`poll`) from its own thread (`executor`); the
//! node side is `node`.

pub mod executor;
pub mod journal;
pub mod node;
pub mod poll;
pub mod sbatch;

use std::path::PathBuf;

/// What a job needs to run `exec-stage` for an instance of this run.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The pipeline file (absolute), loaded again on the node.
    pub pipeline_file: PathBuf,
    /// The run's `--set` overrides, passed on as written.
    pub sets: Vec<String>,
    /// The `cllm4rec-pipe` binary the job runs (on a shared file system).
    pub exe: PathBuf,
    /// Submit instances of one stage that are ready together as one job array.
    pub arrays: bool,
}
