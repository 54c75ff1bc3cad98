//! One function per subcommand.

use std::collections::BTreeSet;
use std::mem::ManuallyDrop;

use crate::cache::lock::StoreLock;
use crate::cache::statcache::StatCache;
use crate::cache::store::{Store, StoreError};
use crate::cache::{gc, hash, verify};
use crate::cli::args::{
    Cli, Command, ExecutorKind, GraphFormat, LogFormat, PipelineArgs, ProgressFormat, TableFormat,
};
use crate::cli::CliError;
use crate::cli::{table_cmd, tables};
use crate::exec::progress::{Mode, Reporter};
use crate::exec::scheduler::{self, Executor, RunOptions, Status};
use crate::exec::slurm::{node, SlurmOptions};
use crate::exec::{plan, ExecError};
use crate::kinds::Registry;
use crate::pipeline::{self, Pipeline};

fn open_store(cli: &Cli) -> Result<Store, CliError> {
    Store::open(&cli.cache_root()).map_err(|e| CliError::Exec(e.into()))
}

/// The pipeline, left for the process's exit to free: a command loads one and ends, and
/// dropping the 10^5 instances of a large sweep took a sixth of its `plan`.
fn load(p: &PipelineArgs, kinds: &Registry) -> Result<ManuallyDrop<Pipeline>, CliError> {
    Ok(ManuallyDrop::new(pipeline::load(
        &p.pipeline,
        &p.sets,
        kinds,
    )?))
}

pub fn dispatch(cli: &Cli) -> Result<i32, CliError> {
    let kinds = Registry::default();
    match &cli.command {
        Command::Run {
            p,
            jobs,
            force,
            keep_going,
            verify,
            executor,
            no_job_arrays,
            progress,
        } => {
            let pl = load(p, &kinds)?;
            for f in force {
                if pl.stage_index(f).is_none() {
                    let names: Vec<&str> = pl.stages.iter().map(|s| s.name.as_str()).collect();
                    return Err(CliError::Usage(format!(
                        "`--force {f}`: no such stage; {}",
                        crate::diag::suggest(f, &names, "stages")
                    )));
                }
            }
            let store = open_store(cli)?;
            let executor = match executor {
                ExecutorKind::Local => Executor::Local,
                ExecutorKind::Slurm => Executor::Slurm(slurm_options(p, !*no_job_arrays)?),
            };
            let jobs = jobs.unwrap_or_else(|| match executor {
                Executor::Slurm(_) => usize::MAX,
                Executor::Local => std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            });
            let opts = RunOptions {
                jobs,
                force: force.iter().cloned().collect::<BTreeSet<_>>(),
                keep_going: *keep_going,
                verify: *verify,
                executor,
            };
            let mode = match progress {
                ProgressFormat::Auto => Mode::detect(cli.log_format == LogFormat::Json),
                ProgressFormat::Bars => Mode::Bars,
                ProgressFormat::Plain => Mode::Plain,
                ProgressFormat::Json => Mode::JsonStdout,
            };
            let reporter = Reporter::new(mode, pl.instances.len());
            let summary = scheduler::run(&pl, &store, &opts, &reporter)?;
            if mode == Mode::JsonStdout {
                reporter.json("finished", None, tables::run_json(&pl, &summary));
            } else {
                print!("{}", tables::run_table(&pl, &summary));
                print!("{}", tables::metrics_table(&pl, &summary.records));
                print!("{}", table_cmd::after_run(&pl, &store, &summary.records));
            }
            if let Some(err) = &summary.error {
                let failed = summary
                    .status
                    .iter()
                    .filter(|s| matches!(s, Status::Failed(_)))
                    .count();
                eprintln!("error: {err}");
                if let ExecError::Stage { log, .. } = err {
                    eprint!("{}", tables::log_tail(log, 20));
                }
                if failed > 1 {
                    eprintln!("error: {failed} stage instances failed");
                }
                return Err(CliError::Quiet(1));
            }
            Ok(0)
        }
        Command::ExecStage {
            p,
            instance,
            key,
            force,
        } => {
            let pl = load(p, &kinds)?;
            let store = open_store(cli)?;
            let mode = if cli.log_format == LogFormat::Json {
                Mode::Json
            } else {
                Mode::Plain
            };
            let reporter = Reporter::new(mode, 1);
            match node::exec_stage(&pl, &store, &reporter, instance, key, *force) {
                Ok(out) => {
                    eprintln!(
                        "{} `{instance}`: output {}",
                        if out.ran {
                            "committed"
                        } else {
                            "already cached"
                        },
                        out.record.output
                    );
                    Ok(0)
                }
                Err(ExecError::Cancelled) => Err(CliError::Exec(ExecError::Cancelled)),
                Err(e) => {
                    eprintln!("error: {e}");
                    if let ExecError::Stage { log, .. } = &e {
                        eprint!("{}", tables::log_tail(log, 20));
                    }
                    Err(CliError::Quiet(1))
                }
            }
        }
        Command::Plan { p } => {
            let pl = load(p, &kinds)?;
            let store = open_store(cli)?;
            let rows = plan::plan(&pl, &store)?;
            print!("{}", tables::plan_table(&rows));
            Ok(0)
        }
        Command::Graph { p, format } => {
            let pl = load(p, &kinds)?;
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => tables::graph_dot(&pl),
                    GraphFormat::Mermaid => tables::graph_mermaid(&pl),
                }
            );
            Ok(0)
        }
        Command::Table { p, format, check } => {
            let pl = load(p, &kinds)?;
            let store = open_store(cli)?;
            let format = match format {
                TableFormat::Markdown => crate::ablate::table::Format::Markdown,
                TableFormat::Csv => crate::ablate::table::Format::Csv,
                TableFormat::Latex => crate::ablate::table::Format::Latex,
            };
            table_cmd::table(&pl, &p.pipeline, &store, format, check.as_ref())
        }
        Command::Status { p } => {
            let pl = load(p, &kinds)?;
            let store = open_store(cli)?;
            let rows = plan::plan(&pl, &store)?;
            print!("{}", tables::status_table(&pl, &store, &rows));
            Ok(0)
        }
        Command::Show { p, stage } => {
            let pl = load(p, &kinds)?;
            let Some(si) = pl.stage_index(stage) else {
                let names: Vec<&str> = pl.stages.iter().map(|s| s.name.as_str()).collect();
                return Err(CliError::Usage(format!(
                    "no stage `{stage}` in `{}`; {}",
                    pl.name,
                    crate::diag::suggest(stage, &names, "stages")
                )));
            };
            let store = open_store(cli)?;
            let rows = plan::plan(&pl, &store)?;
            for (inst, row) in pl
                .instances
                .iter()
                .zip(&rows)
                .filter(|(i, _)| i.stage == si)
            {
                println!("== {}", inst.label);
                match row.key.as_deref().and_then(|k| store.lookup(k)) {
                    Some(rec) if row.hit => {
                        println!("output: {}", store.object_data(&rec.output).display());
                        println!("log:    {}", store.root.join(&rec.log).display());
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&rec).expect("plain data")
                        );
                    }
                    _ => println!("not cached: {}", row.reasons.join("; ")),
                }
            }
            Ok(0)
        }
        Command::Gc { keep_last } => {
            let store = open_store(cli)?;
            let _lock = StoreLock::exclusive(&store.root, || {
                eprintln!("waiting for running pipelines to finish")
            })
            .map_err(|source| {
                CliError::Exec(
                    StoreError::Io {
                        context: "cannot lock the cache".into(),
                        source,
                    }
                    .into(),
                )
            })?;
            let r = gc::gc(&store, *keep_last);
            println!(
                "removed {} records and {} objects ({} bytes)",
                r.records_removed, r.objects_removed, r.bytes_freed
            );
            Ok(0)
        }
        Command::Verify => {
            let store = open_store(cli)?;
            let problems = verify::verify(&store);
            for pr in &problems {
                println!("{pr}");
            }
            let objects = store.all_objects().len();
            if problems.is_empty() {
                println!("{objects} objects verified, no problems");
                Ok(0)
            } else {
                println!("{} problem(s) in {objects} objects", problems.len());
                Ok(1)
            }
        }
        Command::Audit(a) => super::audit::audit(cli, a, &kinds),
        Command::Report { p, output } => super::report_cmd::report(cli, p, output, &kinds),
        Command::Export { to } => super::report_cmd::export(cli, to, &kinds),
        Command::Reproduce(a) => super::audit::reproduce(cli, a, &kinds),
        Command::Hash { paths } => {
            let mut stat = StatCache::default();
            for p in paths {
                let h = if p.is_file() {
                    hash::hash_file(p).map(|h| h.to_hex().to_string())
                } else {
                    stat.hash_path(p)
                };
                match h {
                    Ok(h) => println!("{h}  {}", p.display()),
                    Err(e) => return Err(CliError::Usage(e.to_string())),
                }
            }
            Ok(0)
        }
    }
}

/// What Slurm jobs need to run `exec-stage` for this run: absolute paths (jobs start in the
/// pipeline's folder on another machine) and the same `--set` values.
fn slurm_options(p: &PipelineArgs, arrays: bool) -> Result<SlurmOptions, CliError> {
    let pipeline_file = std::path::absolute(&p.pipeline).map_err(|e| {
        CliError::Usage(format!("bad pipeline path `{}`: {e}", p.pipeline.display()))
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("cannot find this program's path: {e}")))?;
    Ok(SlurmOptions {
        pipeline_file,
        sets: p.sets.clone(),
        exe,
        arrays,
    })
}
