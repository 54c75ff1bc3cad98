//! Run a pipeline: instances whose inputs are done are checked against the cache on the main
//! thread; misses run on worker threads, up to `jobs` cpus at a time, or with
//! `Executor::Slurm` as Slurm jobs, up to `jobs` at a time. Each instance is checked once,
//! when its last input is done, and a worker gets only its own inputs' outputs, so a run's
//! bookkeeping grows linearly with the number of instances.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cache::key::CacheKey;
use crate::cache::lock::StoreLock;
use crate::cache::record::Hit;
use crate::cache::statcache::StatCache;
use crate::cache::store::Store;
use crate::cache::verify;
use crate::cache::work::WorkFolders;
use crate::exec::keys::instance_key;
use crate::exec::panics;
use crate::exec::progress::Reporter;
use crate::exec::runner::{compute, upstream, Event, RunEnv};
use crate::exec::slurm::executor::{self as slurm_executor, Request};
use crate::exec::slurm::SlurmOptions;
use crate::exec::{ExecError, CANCEL};
use crate::pipeline::Pipeline;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub jobs: usize,
    /// Stage names whose instances run even when cached.
    pub force: BTreeSet<String>,
    pub keep_going: bool,
    /// Rehash every reused object; recompute damaged ones.
    pub verify: bool,
    pub executor: Executor,
}

/// Where misses run.
#[derive(Debug, Clone, Default)]
pub enum Executor {
    /// Worker threads of this process.
    #[default]
    Local,
    /// Slurm jobs that run `exec-stage` on a node; `jobs` bounds how many are in the queue.
    Slurm(SlurmOptions),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Cached,
    Ran,
    Failed(String),
    Skipped,
}

#[derive(Debug)]
pub struct Summary {
    pub status: Vec<Status>,
    pub records: Vec<Option<Hit>>,
    /// The first failure (its error), if any.
    pub error: Option<ExecError>,
}

enum State {
    Waiting,
    Running,
    Done,
    Failed,
}

pub fn run(
    p: &Pipeline,
    store: &Store,
    opts: &RunOptions,
    reporter: &Reporter,
) -> Result<Summary, ExecError> {
    let _store_lock =
        StoreLock::shared(&store.root).map_err(|source| crate::cache::store::StoreError::Io {
            context: format!(
                "cannot lock the cache `{}`",
                store.root.join("gc.lock").display()
            ),
            source,
        })?;
    store.clean_stale_tmp();
    let stat = Mutex::new(StatCache::load(&store.root.join("statcache.json")));
    let n = p.instances.len();
    let mut state: Vec<State> = (0..n).map(|_| State::Waiting).collect();
    let mut outputs: Vec<Option<String>> = vec![None; n];
    let mut records: Vec<Option<Hit>> = vec![None; n];
    let mut status: Vec<Status> = vec![Status::Skipped; n];
    let mut first_error: Option<ExecError> = None;
    let jobs = opts.jobs.max(1);
    let git = OnceLock::new();
    let git_commit = || git.get_or_init(|| crate::util::git_commit(&p.dir)).clone();
    let slurm = match &opts.executor {
        Executor::Local => None,
        Executor::Slurm(o) => Some(o),
    };
    let cost = |i: usize| match slurm {
        Some(_) => 1,
        None => (p.instances[i].resources.cpus.unwrap_or(1) as usize).clamp(1, jobs),
    };

    let mut dag = Dag::new(p);
    let work = WorkFolders::new(store);
    let env = RunEnv {
        pipeline: p,
        store,
        reporter,
        work: &work,
    };
    let env = &env;
    let result = std::thread::scope(|scope| -> Result<(), ExecError> {
        let (tx, rx) = mpsc::channel::<Event>();
        // With Slurm, the misses that are ready together go to the executor as one batch.
        let submit = match slurm {
            Some(o) => Some(slurm_executor::start(scope, env, o, tx.clone())?),
            None => None,
        };
        // With Slurm the executor holds the only sender: should its thread die, `recv` says so
        // rather than waiting forever.
        let tx = submit.is_none().then_some(tx);
        let mut batch: Vec<Request> = Vec::new();
        // Cpus held by running stages, and the instances started and not yet over (their
        // commits included). `holds[i]`: instance i's stage still holds its cpus.
        let mut used = 0usize;
        let mut running = 0usize;
        let mut holds = vec![false; n];
        let mut stop = false;
        // Instances whose inputs are all done, to be checked against the cache (in index
        // order), and the misses among them waiting for cpus, by cost, in index order, with
        // their keys. Each instance is looked at once when it becomes ready, never rescanned:
        // a run's bookkeeping is linear in its size.
        let mut check: BTreeSet<usize> = (0..n).filter(|&i| dag.pending[i] == 0).collect();
        let mut misses: BTreeMap<usize, BTreeMap<usize, (CacheKey, bool)>> = BTreeMap::new();
        loop {
            if CANCEL.load(Ordering::SeqCst) {
                stop = true;
            }
            // The ready instances are checked a wave at a time: their keys and cache lookups
            // (file reads, independent of each other) on all cores, then their outcomes in
            // index order. With `--verify` a damaged object is removed, so one at a time.
            while !check.is_empty() && !stop {
                let wave: Vec<usize> = if opts.verify {
                    check.pop_first().into_iter().collect()
                } else {
                    std::mem::take(&mut check).into_iter().collect()
                };
                let look = |i: usize| -> Result<(CacheKey, bool, Option<Hit>), ExecError> {
                    let (key, _) = instance_key(p, i, &outputs, &stat)?;
                    let inst = &p.instances[i];
                    let forced = opts.force.contains(&inst.stage_name);
                    let hit = if forced {
                        None
                    } else {
                        reusable(store, &key.hash(), opts.verify, reporter, &inst.label)
                    };
                    if let Some(rec) = &hit {
                        store.touch_index(
                            &p.name,
                            &inst.stage_name,
                            &inst.label,
                            &inst.point,
                            &rec.key_hash,
                        );
                    }
                    Ok((key, forced, hit))
                };
                let looked: Vec<_> = wave.par_iter().map(|&i| look(i)).collect();
                let mut cached = Vec::new();
                for (i, r) in wave.into_iter().zip(looked) {
                    let (key, forced, hit) = r?;
                    tracing::debug!(instance = %p.instances[i].label, key = %key.hash(), "key computed");
                    let Some(rec) = hit else {
                        misses.entry(cost(i)).or_default().insert(i, (key, forced));
                        continue;
                    };
                    outputs[i] = Some(rec.output.clone());
                    records[i] = Some(rec);
                    status[i] = Status::Cached;
                    state[i] = State::Done;
                    cached.push(p.instances[i].label.as_str());
                    dag.done(i, &mut check);
                }
                reporter.cached_all(&cached);
            }
            // Launch the first waiting miss (by index) whose cpus fit, while one does.
            loop {
                let free = if used == 0 { usize::MAX } else { jobs - used };
                let first = misses
                    .range(..=free)
                    .filter_map(|(&c, m)| m.first_key_value().map(|(&i, _)| (i, c)))
                    .min();
                let Some((i, c)) = first.filter(|_| !stop) else {
                    break;
                };
                let bucket = misses.get_mut(&c).expect("a bucket of that cost");
                let (key, forced) = bucket.remove(&i).expect("the miss just found");
                if bucket.is_empty() {
                    misses.remove(&c);
                }
                used += c;
                running += 1;
                holds[i] = true;
                state[i] = State::Running;
                if submit.is_some() {
                    batch.push(Request {
                        index: i,
                        key,
                        force: forced,
                    });
                    continue;
                }
                let tx = tx.clone().expect("local workers");
                let ups = upstream(p, i, &outputs);
                let gc = git_commit();
                scope.spawn(move || {
                    let t0 = Instant::now();
                    // `compute` contains a stage's panics; this catches any other, so that
                    // every worker reports back and the loop below cannot wait forever.
                    let ran = || {
                        let _ = tx.send(Event::Ran(i));
                    };
                    let r = panics::contain(|| compute(env, i, &key, &ups, forced, gc, &ran))
                        .unwrap_or_else(|panic| {
                            Err(ExecError::Stage {
                                label: p.instances[i].label.clone(),
                                message: panic.message,
                                log: store.log_path(&key.hash()),
                            })
                        });
                    let _ = tx.send(Event::Done(i, t0, r));
                });
            }
            if let (Some(s), false) = (&submit, batch.is_empty()) {
                s.send(std::mem::take(&mut batch))
                    .map_err(|_| ExecError::Slurm("the slurm executor stopped".into()))?;
            }
            if running == 0 {
                break;
            }
            let (i, t0, r) = match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Event::Ran(i)) => {
                    if std::mem::take(&mut holds[i]) {
                        used -= cost(i);
                    }
                    continue;
                }
                Ok(Event::Done(i, t0, r)) => (i, t0, r),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ExecError::Slurm(format!(
                        "the slurm executor stopped with {running} instance(s) outstanding"
                    )))
                }
            };
            running -= 1;
            if std::mem::take(&mut holds[i]) {
                used -= cost(i);
            }
            let label = &p.instances[i].label;
            match r {
                Ok(out) => {
                    reporter.finished(label, !out.ran, t0.elapsed().as_secs_f64());
                    outputs[i] = Some(out.record.output.clone());
                    status[i] = if out.ran { Status::Ran } else { Status::Cached };
                    records[i] = Some(out.record.into());
                    state[i] = State::Done;
                    dag.done(i, &mut check);
                }
                Err(e) => {
                    state[i] = State::Failed;
                    let msg = match &e {
                        ExecError::Stage { message, .. } => message.clone(),
                        other => other.to_string(),
                    };
                    reporter.failed(label, &msg);
                    status[i] = Status::Failed(msg);
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                    if !opts.keep_going {
                        stop = true;
                    }
                    if !stop {
                        // What depends on it is skipped; the rest goes on.
                        for j in dag.downstream(i) {
                            if matches!(state[j], State::Waiting) {
                                state[j] = State::Failed;
                                reporter.skipped(&p.instances[j].label, "an input failed");
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    });
    stat.lock().expect("stat cache lock").save();
    reporter.finish();
    result?;
    if CANCEL.load(Ordering::SeqCst) {
        return Err(ExecError::Cancelled);
    }
    Ok(Summary {
        status,
        records,
        error: first_error,
    })
}

/// The instance graph as the scheduler walks it: what each instance feeds, and how many of
/// its inputs are not done yet.
struct Dag {
    feeds: Vec<Vec<usize>>,
    pending: Vec<usize>,
}

impl Dag {
    fn new(p: &Pipeline) -> Dag {
        let n = p.instances.len();
        let mut feeds = vec![Vec::new(); n];
        let mut pending = vec![0; n];
        for (i, inst) in p.instances.iter().enumerate() {
            let mut ups: Vec<usize> = inst
                .inputs
                .iter()
                .flat_map(|x| x.instances.iter().copied())
                .collect();
            ups.sort_unstable();
            ups.dedup();
            pending[i] = ups.len();
            for j in ups {
                feeds[j].push(i);
            }
        }
        Dag { feeds, pending }
    }

    /// Instance `i` is done: each instance it feeds whose inputs are now all done is ready.
    fn done(&mut self, i: usize, ready: &mut BTreeSet<usize>) {
        for &j in &self.feeds[i] {
            self.pending[j] -= 1;
            if self.pending[j] == 0 {
                ready.insert(j);
            }
        }
    }

    /// Every instance that depends on `i`, directly or not, in index order.
    fn downstream(&self, i: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![i];
        while let Some(x) = todo.pop() {
            for &j in &self.feeds[x] {
                if seen.insert(j) {
                    todo.push(j);
                }
            }
        }
        seen.into_iter().collect()
    }
}

/// A complete entry for `key`; with `verify`, only if its object rehashes clean (a damaged
/// object is removed so that it is recomputed).
fn reusable(
    store: &Store,
    key: &str,
    verify: bool,
    reporter: &Reporter,
    label: &str,
) -> Option<Hit> {
    let rec = store.hit(key)?;
    if verify {
        let problems = verify::check_object(store, &rec.output);
        if !problems.is_empty() {
            reporter.note(
                label,
                &format!("cached output is damaged ({}); recomputing", problems[0]),
            );
            crate::cache::store::remove_tree(&store.object_dir(&rec.output));
            return None;
        }
    }
    Some(rec)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exec::progress::Mode;
    use crate::kinds::{Needs, ParamError, Params, Registry, StageContext, StageError, StageKind};
    use serde_json::{Map, Value as Json};

    /// The load-time half of a test kind: no params, any inputs.
    macro_rules! no_params {
        () => {
            fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
                Ok(Params::new((), params))
            }
            fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
                (Map::new(), &[])
            }
            fn needs(&self) -> Needs {
                Needs::Any
            }
        };
    }

    /// Writes one file.
    struct Writes;
    impl StageKind for Writes {
        fn name(&self) -> &'static str {
            "writes"
        }
        fn version(&self) -> u32 {
            1
        }
        no_params!();
        fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
            std::fs::write(ctx.out.join("x"), "x").map_err(|e| StageError::Failed(e.to_string()))
        }
    }

    /// Writes part of its output, then panics.
    struct Panics;
    impl StageKind for Panics {
        fn name(&self) -> &'static str {
            "panics"
        }
        fn version(&self) -> u32 {
            1
        }
        no_params!();
        fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
            std::fs::write(ctx.out.join("partial"), "p").unwrap();
            let v: Vec<u32> = Vec::new();
            std::hint::black_box(v[ctx.instance.label.len()]);
            Ok(())
        }
    }

    /// Run `a` (panics), `b` (independent) and `c` (needs `a`) on a fresh cache, on a thread
    /// that must finish within a minute: (status of a, b, c; cache entries; work folders left).
    fn run_panicking(keep_going: bool) -> (Vec<Status>, usize, usize) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let tmp = tempfile::tempdir().unwrap();
            let kinds = Registry::of(vec![Arc::new(Writes), Arc::new(Panics)]);
            let yaml = "name: p\nstages:\n  a: {kind: panics}\n  b: {kind: writes}\n  c: {kind: writes, needs: [a]}\n";
            let p = crate::pipeline::load::load_text(
                &tmp.path().join("p.yaml"),
                yaml.into(),
                &[],
                &kinds,
            )
            .unwrap();
            let store = Store::open(&tmp.path().join("cache")).unwrap();
            let opts = RunOptions {
                jobs: 1,
                keep_going,
                ..RunOptions::default()
            };
            let reporter = Reporter::new(Mode::Plain, p.instances.len());
            let s = run(&p, &store, &opts, &reporter).unwrap();
            assert!(matches!(s.error, Some(ExecError::Stage { ref label, .. }) if label == "a"));
            let entries = |d: &std::path::Path| std::fs::read_dir(d).unwrap().flatten();
            let records: usize = entries(&store.root.join("records"))
                .map(|shard| entries(&shard.path()).count())
                .sum();
            let work = entries(&store.root.join("tmp")).count();
            let labels: Vec<&str> = p.instances.iter().map(|i| i.label.as_str()).collect();
            assert_eq!(labels, ["a", "b", "c"]);
            tx.send((s.status, records, work)).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the run hung after a stage panicked")
    }

    #[test]
    fn a_panicking_stage_fails_alone_and_leaves_nothing() {
        let (status, records, tmp) = run_panicking(true);
        match &status[0] {
            Status::Failed(m) => assert!(
                m.starts_with("stage panicked at src/exec/scheduler.rs:")
                    && m.contains("index out of bounds"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(status[1..], [Status::Ran, Status::Skipped]);
        assert_eq!(
            (records, tmp),
            (1, 0),
            "only `b` is cached; no work folder is left"
        );

        // without --keep-going the run stops after the failure (one job: `b` never started)
        let (status, records, tmp) = run_panicking(false);
        assert!(matches!(status[0], Status::Failed(_)), "{status:?}");
        assert_eq!(status[1..], [Status::Skipped, Status::Skipped]);
        assert_eq!((records, tmp), (0, 0));
    }
}
