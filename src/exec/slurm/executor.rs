//! The runner's side of `--executor slurm`: a thread that takes the misses the scheduler
//! hands it, reattaches to jobs the journal says are already queued or running for their
//! keys, submits the others (instances of one stage that are ready together as one job
//! array), journals the job ids before polling, polls squeue with a backoff, and reports each
//! finished job to the scheduler as a local run would. On Ctrl-C it scancels its jobs.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::Scope;
use std::time::{Duration, Instant};

use crate::cache::key::CacheKey;
use crate::exec::runner::{Event, Outcome, RunEnv};
use crate::exec::slurm::journal::{Entry, Journal};
use crate::exec::slurm::poll::{self, Backoff, Ended};
use crate::exec::slurm::sbatch::{
    self, job_exit, job_log, job_name, slurm_dir, JobSpec, Task, MAX_ARRAY,
};
use crate::exec::slurm::SlurmOptions;
use crate::exec::{ExecError, CANCEL};
use crate::util::now_rfc3339;

/// A miss to run: the instance, its key, and whether `--force` applies to it.
pub struct Request {
    pub index: usize,
    pub key: CacheKey,
    pub force: bool,
}

/// First and longest wait between two polls.
const POLL_MIN: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(10);
/// How often Ctrl-C and new work are looked at.
const TICK: Duration = Duration::from_millis(100);
/// How long squeue may keep failing before the run gives up on its jobs (they keep running
/// and are reattached to by the next run).
const POLL_GIVE_UP: Duration = Duration::from_secs(120);
/// How long a job that ended well may take for its record to show (a shared file system
/// may show a node's writes late).
const GRACE: Duration = Duration::from_secs(10);

/// An instance handed to Slurm.
struct Job {
    /// `123` or `123_4`.
    id: String,
    index: usize,
    key: String,
    since: Instant,
    /// When the job was submitted (RFC 3339), to tell a run from a reuse.
    submitted: String,
    running: bool,
    /// When the job was first seen over without a record (see `GRACE`).
    over_since: Option<Instant>,
}

struct Executor<'a> {
    env: &'a RunEnv<'a>,
    opts: &'a SlurmOptions,
    journal: Journal,
    jobs: Vec<Job>,
    done: Sender<Event>,
    backoff: Backoff,
    cancelled: bool,
    poll_failing_since: Option<Instant>,
}

/// Start the executor thread in `scope`. Misses are sent as batches (those ready at once);
/// results come back on `done`. The thread ends when the returned sender is dropped and
/// its jobs are over.
pub fn start<'scope>(
    scope: &'scope Scope<'scope, '_>,
    env: &'scope RunEnv<'scope>,
    opts: &'scope SlurmOptions,
    done: Sender<Event>,
) -> Result<Sender<Vec<Request>>, ExecError> {
    let dir = slurm_dir(&env.store.root);
    let journal = Journal::open(&dir)
        .map_err(|e| ExecError::Slurm(format!("cannot create `{}`: {e}", dir.display())))?;
    let (tx, rx) = mpsc::channel();
    let ex = Executor {
        env,
        opts,
        journal,
        jobs: Vec::new(),
        done,
        backoff: Backoff::new(POLL_MIN, POLL_MAX),
        cancelled: false,
        poll_failing_since: None,
    };
    scope.spawn(move || {
        // A panic here drops `done`, which the scheduler sees; it must not re-panic the scope.
        if let Err(p) = crate::exec::panics::contain(|| ex.serve(rx)) {
            tracing::error!(
                "the slurm executor failed: {}",
                p.message.replacen("stage ", "it ", 1)
            );
        }
    });
    Ok(tx)
}

impl Executor<'_> {
    fn label(&self, i: usize) -> &str {
        &self.env.pipeline.instances[i].label
    }

    fn send(&self, index: usize, since: Instant, r: Result<Outcome, ExecError>) {
        let _ = self.done.send(Event::Done(index, since, r));
    }

    fn serve(mut self, rx: Receiver<Vec<Request>>) {
        let mut open = true;
        let mut next_poll = Instant::now();
        loop {
            if CANCEL.load(Ordering::SeqCst) && !self.cancelled {
                self.cancel_all();
                next_poll = Instant::now();
            }
            if !open && self.jobs.is_empty() {
                return;
            }
            if !self.jobs.is_empty() && Instant::now() >= next_poll {
                if self.poll() || self.cancelled {
                    self.backoff.reset();
                }
                next_poll = Instant::now() + self.backoff.next_delay();
            }
            let wait = if self.jobs.is_empty() {
                TICK
            } else {
                next_poll
                    .saturating_duration_since(Instant::now())
                    .min(TICK)
            };
            if !open {
                std::thread::sleep(wait);
                continue;
            }
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    self.submit(batch);
                    self.backoff.reset();
                    next_poll = Instant::now() + self.backoff.next_delay();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
    }

    /// Reattach or submit each request of a batch.
    fn submit(&mut self, batch: Vec<Request>) {
        let now = Instant::now();
        if self.cancelled || CANCEL.load(Ordering::SeqCst) {
            for r in batch {
                self.send(r.index, now, Err(ExecError::Cancelled));
            }
            return;
        }
        let reporter = self.env.reporter;
        // Jobs of earlier runs (or of another runner) for these keys, still queued or running.
        let latest = self.journal.latest().unwrap_or_else(|e| {
            tracing::warn!("cannot read `{}`: {e}", self.journal.path().display());
            HashMap::new()
        });
        let known: Vec<String> = batch
            .iter()
            .filter_map(|r| latest.get(&r.key.hash()).map(|e| e.job.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let active = if known.is_empty() {
            HashMap::new()
        } else {
            match poll::active(&known) {
                Ok(a) => a,
                Err(e) => {
                    for r in batch {
                        let msg = format!(
                            "cannot ask slurm whether `{}` is already queued: {e}",
                            self.label(r.index)
                        );
                        self.send(r.index, now, Err(ExecError::Slurm(msg)));
                    }
                    return;
                }
            }
        };
        let mut fresh: Vec<(Request, String)> = Vec::new();
        for r in batch {
            let key = r.key.hash();
            // Slurm reuses job ids after a reset: the name must match too.
            let attach = latest.get(&key).and_then(|e| {
                let q = active.get(&e.job).filter(|q| q.name == e.name)?;
                Some((e, &q.state))
            });
            let Some((entry, state)) = attach else {
                fresh.push((r, key));
                continue;
            };
            let label = self.label(r.index).to_owned();
            reporter.note(
                &label,
                &format!(
                    "reattached to slurm job {} ({state}), submitted {}",
                    entry.job, entry.time
                ),
            );
            let running = state == "RUNNING";
            if running {
                reporter.started(&label);
            }
            self.jobs.push(Job {
                id: entry.job.clone(),
                index: r.index,
                key,
                since: now,
                submitted: entry.time.clone(),
                running,
                over_since: None,
            });
        }
        for group in self.groups(fresh) {
            self.submit_group(group);
        }
    }

    /// One job per request, or with arrays, one job per stage (and `--force`) among them.
    fn groups(&self, fresh: Vec<(Request, String)>) -> Vec<Vec<(Request, String)>> {
        if !self.opts.arrays {
            return fresh.into_iter().map(|x| vec![x]).collect();
        }
        let p = self.env.pipeline;
        let mut groups: Vec<Vec<(Request, String)>> = Vec::new();
        for x in fresh {
            let stage = p.instances[x.0.index].stage;
            let same = |g: &Vec<(Request, String)>| {
                p.instances[g[0].0.index].stage == stage
                    && g[0].0.force == x.0.force
                    && g.len() < MAX_ARRAY
            };
            match groups.iter_mut().find(|g| same(g)) {
                Some(g) => g.push(x),
                None => groups.push(vec![x]),
            }
        }
        groups
    }

    fn submit_group(&mut self, group: Vec<(Request, String)>) {
        let p = self.env.pipeline;
        let first = &p.instances[group[0].0.index];
        let spec = JobSpec {
            stage: &first.stage_name,
            tasks: group
                .iter()
                .map(|(r, key)| Task {
                    label: p.instances[r.index].label.clone(),
                    key: key.clone(),
                })
                .collect(),
            resources: &first.resources,
            workdir: &p.dir,
            force: group[0].0.force,
        };
        let now = Instant::now();
        let root = &self.env.store.root;
        let ids = match sbatch::submit(&spec, self.opts, root) {
            Ok(ids) => ids,
            Err(e) => {
                for (r, _) in &group {
                    let msg = format!("cannot submit `{}`: {e}", self.label(r.index));
                    self.send(r.index, now, Err(ExecError::Slurm(msg)));
                }
                return;
            }
        };
        let time = now_rfc3339();
        let name = job_name(&spec);
        let entries: Vec<Entry> = group
            .iter()
            .zip(&ids)
            .map(|((r, key), id)| Entry {
                key: key.clone(),
                job: id.clone(),
                name: name.clone(),
                label: self.label(r.index).to_owned(),
                pipeline: p.name.clone(),
                time: time.clone(),
            })
            .collect();
        // Journaled before anything waits on them, or not run at all.
        if let Err(e) = self.journal.append(&entries) {
            let cancelled = sbatch::cancel(&ids);
            for (r, _) in &group {
                let msg = format!(
                    "cannot write `{}`: {e}; {} slurm job(s) {}",
                    self.journal.path().display(),
                    if cancelled.is_ok() {
                        "cancelled"
                    } else {
                        "could not cancel"
                    },
                    ids.join(" ")
                );
                self.send(r.index, now, Err(ExecError::Slurm(msg)));
            }
            return;
        }
        for ((r, key), id) in group.into_iter().zip(ids) {
            self.env
                .reporter
                .note(self.label(r.index), &format!("submitted as slurm job {id}"));
            self.jobs.push(Job {
                id,
                index: r.index,
                key,
                since: now,
                submitted: time.clone(),
                running: false,
                over_since: None,
            });
        }
    }

    /// The distinct ids of the jobs being watched, sorted.
    fn job_ids(&self) -> Vec<String> {
        self.jobs
            .iter()
            .map(|j| j.id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Ask squeue about every job; report those that are over. Whether anything changed.
    fn poll(&mut self) -> bool {
        let ids = self.job_ids();
        let active = match poll::active(&ids) {
            Ok(a) => {
                self.poll_failing_since = None;
                a
            }
            Err(e) => {
                tracing::warn!("cannot poll slurm: {e}");
                let since = *self.poll_failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() < POLL_GIVE_UP {
                    return false;
                }
                for job in std::mem::take(&mut self.jobs) {
                    let msg = format!(
                        "cannot poll slurm for {}s ({e}); job {} may still be queued or running: \
                         run again to reattach to it",
                        since.elapsed().as_secs(),
                        job.id
                    );
                    self.send(job.index, job.since, Err(ExecError::Slurm(msg)));
                }
                return true;
            }
        };
        let mut changed = false;
        for mut job in std::mem::take(&mut self.jobs) {
            if let Some(q) = active.get(&job.id) {
                if q.state == "RUNNING" && !job.running {
                    job.running = true;
                    changed = true;
                    self.env.reporter.started(self.label(job.index));
                }
                self.jobs.push(job);
                continue;
            }
            match self.conclude(&mut job) {
                Some(r) => {
                    changed = true;
                    self.send(job.index, job.since, r);
                }
                None => self.jobs.push(job),
            }
        }
        changed
    }

    /// The result of a job squeue no longer lists: its committed entry, or why there is
    /// none. `None`: ended well but its record is not visible yet; look again later.
    fn conclude(&self, job: &mut Job) -> Option<Result<Outcome, ExecError>> {
        let store = self.env.store;
        if let Some(record) = store.lookup(&job.key) {
            // An entry that started before the job was submitted was made by someone else.
            let ran = record.started.as_str() >= job.submitted.as_str();
            return Some(Ok(Outcome { record, ran }));
        }
        if self.cancelled {
            return Some(Err(ExecError::Cancelled));
        }
        let ended = poll::ended(&job.id);
        let exit: Option<i32> = fs::read_to_string(job_exit(&store.root, &job.id))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let looks_ok = matches!(ended.state.as_deref(), None | Some("COMPLETED"))
            && exit.unwrap_or(0) == 0
            && ended.exit.unwrap_or(0) == 0;
        if looks_ok {
            let since = *job.over_since.get_or_insert_with(Instant::now);
            if since.elapsed() < GRACE {
                return None;
            }
        }
        Some(Err(ExecError::Stage {
            label: self.label(job.index).to_owned(),
            message: failure(&job.id, &ended, exit),
            log: job_log(&store.root, &job.id),
        }))
    }

    /// Ctrl-C: scancel every job; the poll loop then waits for them to leave the queue.
    fn cancel_all(&mut self) {
        self.cancelled = true;
        let ids = self.job_ids();
        if ids.is_empty() {
            return;
        }
        self.env.reporter.note(
            "slurm",
            &format!("cancelling {} job(s): scancel {}", ids.len(), ids.join(" ")),
        );
        if let Err(e) = sbatch::cancel(&ids) {
            tracing::warn!("{e}");
        }
    }
}

/// Why a job left no entry, in words: Slurm's final state, then the exit status of
/// `exec-stage` (from the job's `.exit` file, else from Slurm).
pub fn failure(id: &str, ended: &Ended, exit: Option<i32>) -> String {
    let state = ended.state.as_deref();
    let mut m = format!("slurm job {id} ");
    m.push_str(&match state {
        Some("CANCELLED") => "was cancelled".to_owned(),
        Some("TIMEOUT") => "reached its time limit".to_owned(),
        Some("OUT_OF_MEMORY") => "ran out of memory".to_owned(),
        Some("NODE_FAIL") => "failed: its node failed".to_owned(),
        Some("BOOT_FAIL") => "failed: its node did not boot".to_owned(),
        Some("PREEMPTED") => "was preempted".to_owned(),
        Some("DEADLINE") => "missed its deadline".to_owned(),
        Some("COMPLETED") => "completed but committed no entry".to_owned(),
        Some(s) => format!("failed ({s})"),
        None => "ended; slurm no longer knows how".to_owned(),
    });
    if let Some(r) = ended.reason.as_deref() {
        m.push_str(&format!(", reason {r}"));
    }
    if matches!(state, Some("CANCELLED" | "TIMEOUT" | "PREEMPTED")) {
        return m;
    }
    match (exit.or(ended.exit), ended.signal) {
        (Some(c), _) if c > 128 => m.push_str(&format!(
            "; exit status {c}: `exec-stage` was killed by signal {}{} on the node",
            c - 128,
            if c == 137 { " (SIGKILL)" } else { "" }
        )),
        (_, Some(s)) => m.push_str(&format!("; the job script was killed by signal {s}")),
        (Some(c), None) if c != 0 => m.push_str(&format!("; exit status {c}")),
        (None, None) => m.push_str("; it left no exit status (killed before it finished?)"),
        _ => {}
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(state: Option<&str>, exit: Option<i32>, signal: Option<i32>) -> Ended {
        Ended {
            state: state.map(str::to_owned),
            exit,
            signal,
            reason: None,
        }
    }

    #[test]
    fn failures_say_what_happened() {
        assert_eq!(
            failure("7", &ended(Some("FAILED"), Some(1), None), Some(1)),
            "slurm job 7 failed (FAILED); exit status 1"
        );
        assert_eq!(
            failure("7_2", &ended(Some("FAILED"), Some(137), None), Some(137)),
            "slurm job 7_2 failed (FAILED); exit status 137: `exec-stage` was killed by \
             signal 9 (SIGKILL) on the node"
        );
        assert_eq!(
            failure("8", &ended(Some("CANCELLED"), Some(0), Some(15)), Some(130)),
            "slurm job 8 was cancelled"
        );
        assert_eq!(
            failure("9", &ended(None, None, None), None),
            "slurm job 9 ended; slurm no longer knows how; it left no exit status (killed \
             before it finished?)"
        );
        // slurm forgot the job; its exit file still tells
        assert_eq!(
            failure("9", &ended(None, None, None), Some(3)),
            "slurm job 9 ended; slurm no longer knows how; exit status 3"
        );
    }
}
