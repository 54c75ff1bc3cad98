//! Compute one stage instance: take its lock, run it in a work folder, commit atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::cache::key::CacheKey;
use crate::cache::lock::KeyLock;
use crate::cache::record::Record;
use crate::cache::store::{CommitMeta, Store, StoreError};
use crate::cache::work::{Work, WorkFolders};
use crate::exec::cpu::CpuClock;
use crate::exec::panics;
use crate::exec::progress::Reporter;
use crate::exec::{ExecError, CANCEL};
use crate::kinds::{Progress, StageContext, StageError};
use crate::pipeline::model::point_label;
use crate::pipeline::Pipeline;

/// What a worker (a local thread, or the Slurm executor for its jobs) tells the scheduler.
// Two messages per instance at most, each moved once through a channel: not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The stage of instance `i` has succeeded; its commit (hashing, fsyncs) goes on. Its
    /// cpus are free for the next instance: the commit's waits on the disk overlap with it.
    Ran(usize),
    /// Instance `i` is over: committed, or failed. (Since, outcome.)
    Done(usize, std::time::Instant, Result<Outcome, ExecError>),
}

pub struct Outcome {
    pub record: Record,
    /// False when another process computed it while we waited for the lock.
    pub ran: bool,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> ExecError {
    move |source| ExecError::Store(StoreError::Io { context, source })
}

/// What every instance of one run shares.
pub struct RunEnv<'a> {
    pub pipeline: &'a Pipeline,
    pub store: &'a Store,
    pub reporter: &'a Reporter,
    pub work: &'a WorkFolders,
}

/// The output hash of each instance that instance `i` reads: all of the run's state that its
/// computation needs, copied for it alone (a copy of every instance's would make a run's
/// scheduling quadratic in its size).
pub type Upstream = std::collections::HashMap<usize, String>;

/// The upstream outputs of instance `i`, from the run's `outputs` (every input must be done).
pub fn upstream(p: &Pipeline, i: usize, outputs: &[Option<String>]) -> Upstream {
    p.instances[i]
        .inputs
        .iter()
        .flat_map(|x| x.instances.iter().copied())
        .map(|j| {
            let out = outputs[j]
                .clone()
                .expect("inputs are done before their consumers");
            (j, out)
        })
        .collect()
}

/// Compute instance `i` under its key's lock (unless a complete entry appears meanwhile and
/// `force` is off). `outputs` holds the output hash of each of its inputs; `ran` is called
/// when the stage itself has succeeded, before its output is committed.
pub fn compute(
    env: &RunEnv,
    i: usize,
    key: &CacheKey,
    outputs: &Upstream,
    force: bool,
    git_commit: Option<String>,
    ran: &dyn Fn(),
) -> Result<Outcome, ExecError> {
    let RunEnv {
        pipeline: p,
        store,
        reporter,
        work,
    } = *env;
    let inst = &p.instances[i];
    let key_hash = key.hash();
    let _lock = KeyLock::acquire(&store.lock_path(&key_hash), |who| {
        reporter.waiting(&inst.label, who)
    })
    .map_err(io(format!(
        "cannot lock `{}` (`{}`)",
        inst.label,
        store.lock_path(&key_hash).display()
    )))?;
    tracing::debug!(instance = %inst.label, key = %key_hash, "lock acquired");
    if !force {
        if let Some(record) = store.lookup(&key_hash) {
            tracing::debug!(instance = %inst.label, "computed by another runner while we waited");
            return Ok(Outcome { record, ran: false });
        }
    }
    reporter.started(&inst.label);
    let folder = work.take()?;
    let started = SystemTime::now();
    let progress = |event: Progress| reporter.stage_progress(&inst.label, event);
    // A panic in the stage (caught in `run_in`, with its log) or in the commit fails the
    // instance like any other error: its work folder is cleared below.
    let result = panics::contain(|| {
        let clock = CpuClock::start();
        run_in(p, i, &folder, &key_hash, outputs, store, &progress)?;
        let cpu_s = clock.stop();
        // (A failed stage keeps its cpus until its failure is reported, so that without
        // `--keep-going` nothing starts after it.)
        ran();
        let meta = CommitMeta {
            key,
            key_hash: &key_hash,
            pipeline: &p.name,
            stage: &inst.stage_name,
            label: &inst.label,
            point: &inst.point,
            started,
            cpu_s,
            git_commit,
        };
        // What the stage left is refused (a symlink, a bad metrics.json) or cannot be stored
        // (a full disk): the instance fails, named, with its log.
        store.commit(&folder.obj(), meta).map_err(|e| {
            let out = format!("{}/", folder.out().display());
            ExecError::Stage {
                label: inst.label.clone(),
                message: format!(
                    "cannot commit its output: {}",
                    e.to_string().replace(&out, "$CLLM4REC_OUT/")
                ),
                log: store.log_path(&key_hash),
            }
        })
    })
    .unwrap_or_else(|panic| {
        Err(ExecError::Stage {
            label: inst.label.clone(),
            message: panic.message,
            log: store.log_path(&key_hash),
        })
    });
    // A stage that failed on a full cache disk may not even have its log to say so (asked
    // before its work folder is cleared, which frees the space).
    let result = result.map_err(|e| match e {
        ExecError::Stage {
            label,
            message,
            log,
        } if store.is_full() => ExecError::Stage {
            label,
            message: format!(
                "{message}; the cache's file system is full (`{}`)",
                store.root.display()
            ),
            log,
        },
        e => e,
    });
    work.give_back(folder);
    let record = result?;
    tracing::debug!(instance = %inst.label, output = %record.output, "committed");
    Ok(Outcome { record, ran: true })
}

/// The name of instance `j`'s folder inside a gathered input: its matrix point (`_` for none).
pub(crate) fn gathered_name(p: &Pipeline, j: usize) -> String {
    let label = point_label(&p.instances[j].point, &p.axes);
    if label.is_empty() {
        "_".to_owned()
    } else {
        label.replace('/', "_")
    }
}

/// The params file a stage reads: stage, label, resolved params with the seed, matrix point.
pub(crate) fn write_params_file(
    inst: &crate::pipeline::Instance,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let params = serde_json::json!({
        "stage": inst.stage_name,
        "label": inst.label,
        "params": inst.params_with_seed(),
        "matrix": inst.point,
    });
    fs::write(
        path,
        serde_json::to_vec_pretty(&params).expect("plain data"),
    )
}

#[allow(clippy::too_many_arguments)]
fn run_in(
    p: &Pipeline,
    i: usize,
    work: &Work,
    key_hash: &str,
    outputs: &Upstream,
    store: &Store,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(), ExecError> {
    let inst = &p.instances[i];
    let mut inputs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for input in &inst.inputs {
        let data = |j: usize| {
            store.object_data(
                outputs
                    .get(&j)
                    .expect("inputs are done before their consumers"),
            )
        };
        if input.gather {
            let dir = work.inputs().join(&input.stage);
            fs::create_dir_all(&dir).map_err(io(format!("cannot create `{}`", dir.display())))?;
            for &j in &input.instances {
                std::os::unix::fs::symlink(data(j), dir.join(gathered_name(p, j)))
                    .map_err(io(format!("cannot link input `{}`", p.instances[j].label)))?;
            }
            inputs.insert(input.stage.clone(), dir);
        } else {
            inputs.insert(input.stage.clone(), data(input.instances[0]));
        }
    }
    let params_file = work.params_file();
    write_params_file(inst, &params_file).map_err(io("cannot write params.json".into()))?;
    let log_path = store.log_path(key_hash);
    if let Some(parent) = log_path.parent() {
        fs::create_dir_all(parent).map_err(io("cannot create the log folder".into()))?;
    }
    let log = fs::File::create(&log_path)
        .map_err(io(format!("cannot create `{}`", log_path.display())))?;
    let out = work.out();
    let ctx = StageContext {
        instance: inst,
        workdir: &p.dir,
        out: &out,
        inputs: &inputs,
        params_file: &params_file,
        log: &log,
        cancel: &CANCEL,
        progress,
    };
    let ran = panics::contain(|| inst.kind.run(&ctx)).unwrap_or_else(|panic| {
        if let Some(bt) = &panic.backtrace {
            let mut log = &log;
            let _ = writeln!(log, "{}\n{bt}", panic.message);
        }
        Err(StageError::Failed(panic.message))
    });
    match ran {
        Ok(()) if CANCEL.load(Ordering::SeqCst) => Err(ExecError::Cancelled),
        Ok(()) => Ok(()),
        Err(StageError::Cancelled) => Err(ExecError::Cancelled),
        Err(StageError::Failed(message)) => {
            let mut log = &log;
            let _ = writeln!(log, "error: {message}");
            Err(ExecError::Stage {
                label: inst.label.clone(),
                message,
                log: log_path,
            })
        }
    }
}
