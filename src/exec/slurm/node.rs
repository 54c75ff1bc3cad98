//! `exec-stage`, run by a Slurm job on a node: load the same pipeline, find the instance,
//! recompute its key from the cached records of its inputs, refuse if it is not the key the
//! runner submitted, then compute and commit it exactly as a local run does (same per-key
//! lock, same work folder and atomic commit).

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::cache::lock::StoreLock;
use crate::cache::statcache::StatCache;
use crate::cache::store::{Store, StoreError};
use crate::cache::work::WorkFolders;
use crate::exec::keys::instance_key;
use crate::exec::progress::Reporter;
use crate::exec::runner::{compute, Outcome, RunEnv};
use crate::exec::ExecError;
use crate::pipeline::Pipeline;

/// Compute the instance labelled `label`, whose key the runner computed as `key`.
pub fn exec_stage(
    p: &Pipeline,
    store: &Store,
    reporter: &Reporter,
    label: &str,
    key: &str,
    force: bool,
) -> Result<Outcome, ExecError> {
    let _store_lock = StoreLock::shared(&store.root).map_err(|source| StoreError::Io {
        context: "cannot lock the cache".into(),
        source,
    })?;
    // Work folders of processes of this node that died (a job killed mid-stage).
    store.clean_stale_tmp();
    let i = p
        .instances
        .iter()
        .position(|x| x.label == label)
        .ok_or_else(|| {
            ExecError::Slurm(format!(
                "pipeline `{}` has no instance `{label}` (was the pipeline file edited after \
                 the job was submitted?)",
                p.name
            ))
        })?;
    // Only hashed here, never saved: concurrent jobs would race on the file.
    let stat = Mutex::new(StatCache::load(&store.root.join("statcache.json")));
    let mut outputs: Vec<Option<String>> = vec![None; p.instances.len()];
    // Instances are in a topological order: each ancestor's inputs are known before it.
    for j in ancestors(p, i) {
        let (k, _) = instance_key(p, j, &outputs, &stat)?;
        let rec = store.lookup(&k.hash()).ok_or_else(|| {
            ExecError::Slurm(format!(
                "input `{}` of `{label}` is not in the cache (key {})",
                p.instances[j].label,
                k.hash()
            ))
        })?;
        outputs[j] = Some(rec.output);
    }
    let (k, _) = instance_key(p, i, &outputs, &stat)?;
    let here = k.hash();
    if here != key {
        return Err(ExecError::Slurm(format!(
            "refusing to run `{label}`: its key here is {here}, but the runner submitted {key}; \
             the pipeline, a dep or an input changed since the job was submitted"
        )));
    }
    let work = WorkFolders::new(store);
    let env = RunEnv {
        pipeline: p,
        store,
        reporter,
        work: &work,
    };
    compute(
        &env,
        i,
        &k,
        &crate::exec::runner::upstream(p, i, &outputs),
        force,
        crate::util::git_commit(&p.dir),
        &|| {},
    )
}

/// Every instance `i` depends on, directly or not, in ascending (topological) order.
fn ancestors(p: &Pipeline, i: usize) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![i];
    while let Some(x) = todo.pop() {
        for input in &p.instances[x].inputs {
            for &j in &input.instances {
                if seen.insert(j) {
                    todo.push(j);
                }
            }
        }
    }
    seen.into_iter().collect()
}
