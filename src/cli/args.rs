//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cllm4rec-pipe",
    version,
    about = "CLLM4Rec experiments as declarative, content-hashed pipelines"
)]
pub struct Cli {
    /// The cache folder (default `./cache`).
    #[arg(long, global = true, env = "CLLM4REC_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How progress and logs are written to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The cache folder: `--cache-dir` (or `CLLM4REC_CACHE`), else `./cache`.
    pub fn cache_root(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("cache"))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where `run` runs the stages that are not cached.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Worker threads on this machine.
    Local,
    /// One Slurm job per instance (`sbatch`), against the shared cache folder.
    Slurm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// How `run` shows its progress.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProgressFormat {
    /// Bars on a terminal, plain lines otherwise (JSON lines on stderr with
    /// `--log-format json`).
    Auto,
    Bars,
    Plain,
    /// JSON lines on stdout, one per event (started, progress, epoch, done, cached, failed,
    /// skipped), then a `finished` line with the counts and metrics; no tables.
    Json,
}

/// Output formats of `table`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TableFormat {
    Markdown,
    Csv,
    Latex,
}

#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// The pipeline file (pipelines/*.yaml, sweeps/*.yaml).
    pub pipeline: PathBuf,
    /// Override a value: `params.x=1`, `matrix.axis=[1,2]`, `stages.NAME.params.x=1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: compute what is not cached, in parallel.
    Run {
        #[command(flatten)]
        p: PipelineArgs,
        /// Stage instances to run at once (default: the number of cores; with
        /// `--executor slurm`, no limit on the jobs in the queue). A stage's cpus are free once
        /// its program has succeeded: its commit (hashing, fsyncs) overlaps the next stage.
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Recompute every instance of this stage even when cached (repeatable).
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Keep running independent stages after a failure.
        #[arg(long)]
        keep_going: bool,
        /// Rehash every cached output before reusing it; recompute damaged ones.
        #[arg(long)]
        verify: bool,
        /// Where stages run: here, or as Slurm jobs on a cluster.
        #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
        executor: ExecutorKind,
        /// With `--executor slurm`: submit each instance as its own job, never as a job array.
        #[arg(long)]
        no_job_arrays: bool,
        /// How progress is shown; `json` streams JSON lines on stdout for notebooks and
        /// dashboards (README "Progress as JSON lines").
        #[arg(long, value_enum, default_value_t = ProgressFormat::Auto)]
        progress: ProgressFormat,
    },
    /// Compute one instance and commit it to the cache (what a Slurm job runs on its node).
    #[command(hide = true)]
    ExecStage {
        #[command(flatten)]
        p: PipelineArgs,
        /// The instance's label (`train[lr=0.1]`).
        #[arg(long)]
        instance: String,
        /// The key the runner computed for it; the stage is refused if it differs here.
        #[arg(long)]
        key: String,
        /// Recompute even if the entry exists.
        #[arg(long)]
        force: bool,
    },
    /// Show each instance's key, hit or miss, and why it misses.
    Plan {
        #[command(flatten)]
        p: PipelineArgs,
    },
    /// Print the instance graph.
    Graph {
        #[command(flatten)]
        p: PipelineArgs,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Print the metric table of the pipeline's `ablate` stages from the cache (runs nothing;
    /// exits 1 if they are not cached).
    Table {
        #[command(flatten)]
        p: PipelineArgs,
        #[arg(long, value_enum, default_value_t = TableFormat::Markdown)]
        format: TableFormat,
        /// Compare with FILE instead of printing; exit 1 if it differs (for CI).
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
    },
    /// What of a pipeline is cached.
    Status {
        #[command(flatten)]
        p: PipelineArgs,
    },
    /// The output folder and record of each instance of a stage.
    Show {
        #[command(flatten)]
        p: PipelineArgs,
        /// The stage name.
        stage: String,
    },
    /// Delete objects no record points to.
    Gc {
        /// Also keep only the last N records of each stage and matrix point.
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
    },
    /// Rehash the cache; list corrupt, truncated and orphaned objects (exit 1 if any).
    Verify,
    /// The lineage of every metric back to the raw files; `--bundle` writes it as a folder,
    /// `--check` re-verifies such a folder.
    Audit(AuditArgs),
    /// Re-execute cached instances into a scratch folder and compare their outputs with the
    /// recorded ones (the cache is only read).
    Reproduce(ReproduceArgs),
    /// Write one self-contained HTML page of a pipeline's results from the cache: tables,
    /// plots, every instance, every metric's lineage (runs nothing, writes nothing into the
    /// cache).
    Report {
        #[command(flatten)]
        p: PipelineArgs,
        /// The HTML file to write.
        #[arg(short, long, value_name = "FILE", default_value = "report.html")]
        output: PathBuf,
    },
    /// Export a pipeline's cached runs for MLflow or TensorBoard (reads only the cache).
    Export {
        #[command(subcommand)]
        to: ExportTo,
    },
    /// Print the content hash of files (their blake3, as b3sum) or folders (a tree hash).
    Hash {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportTo {
    /// MLflow's file store (`mlflow.set_tracking_uri("file:DIR")`): an experiment per
    /// pipeline, a run per cached instance.
    Mlflow {
        #[command(flatten)]
        p: PipelineArgs,
        /// The store folder (made if missing; the pipeline's experiment is replaced).
        dir: PathBuf,
    },
    /// TensorBoard event files (`tensorboard --logdir DIR`): a run per cached instance.
    Tensorboard {
        #[command(flatten)]
        p: PipelineArgs,
        /// The log folder (made if missing; the pipeline's folder in it is replaced).
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AuditFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The pipeline file.
    #[arg(required_unless_present = "check")]
    pub pipeline: Option<PathBuf>,
    /// Audit every instance of this stage (default: every cached instance with metrics).
    pub stage: Option<String>,
    /// Override a value, as for `run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    /// Also write the lineage, the metric files and the pipeline text into this new folder.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Re-verify a bundle folder against its files, the raw files and the cache.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["pipeline", "bundle", "sets"])]
    pub check: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub p: PipelineArgs,
    /// Reproduce every instance of this stage.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub stage: Option<String>,
    /// Reproduce every instance of the pipeline.
    #[arg(long)]
    pub all: bool,
    /// Reproduce only N of the chosen instances, picked at random (seeded by `--seed`).
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// The seed of `--sample`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Make the scratch folder under this folder (default: the system's temp folder).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Keep the scratch folder (reproduced outputs and logs) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}
