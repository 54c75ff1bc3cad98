//! `run --executor slurm` against a real single-node Slurm (`bash tests/slurm/start.sh`
//! starts one; `.ci/run` does). Where Slurm is absent each of these tests says on stderr that
//! it skipped (written past the test harness's capture, so it shows without --nocapture);
//! with CLLM4REC_REQUIRE_SLURM=1 (as CI sets) an absent Slurm fails them instead.
//! `exec-stage` itself needs no Slurm and is tested in any case.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::{walk_files, Env, Run};

/// The Slurm tests share one node: run them one at a time.
static NODE: Mutex<()> = Mutex::new(());

/// The node, or `None` after saying why the test is skipped.
fn slurm(test: &str) -> Option<MutexGuard<'static, ()>> {
    let guard = NODE.lock().unwrap_or_else(|e| e.into_inner());
    match slurm_available() {
        Ok(()) => Some(guard),
        Err(why) if std::env::var("CLLM4REC_REQUIRE_SLURM").is_ok_and(|v| v == "1") => {
            panic!("CLLM4REC_REQUIRE_SLURM=1 but {why}; start it with `bash tests/slurm/start.sh`")
        }
        Err(why) => {
            // Straight to the process's stderr: the harness captures only print! and eprint!.
            let line = format!(
                "SKIPPED slurm::{test}: {why} (start one with `bash tests/slurm/start.sh`)\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn slurm_available() -> Result<(), String> {
    if on_path("sbatch").is_none() {
        return Err("Slurm is absent: `sbatch` is not on PATH".into());
    }
    let ping = Command::new("scontrol").arg("ping").output();
    match ping {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("UP") => Ok(()),
        Ok(o) => Err(format!(
            "slurmctld does not answer `scontrol ping`: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => Err(format!("cannot run `scontrol ping`: {e}")),
    }
}

/// Wait for `cond`, up to `secs`.
fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait for a runner to exit (killing it after `secs`).
fn finish(child: Child, secs: u64) -> Run {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let t0 = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if t0.elapsed() > Duration::from_secs(secs) {
                unsafe { kill(pid as i32, 9) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let killed = watchdog.join().unwrap();
    let run = Run { out };
    assert!(
        !killed,
        "the runner took over {secs}s\nstdout:\n{}\nstderr:\n{}",
        run.stdout(),
        run.stderr()
    );
    run
}

fn run_slurm(e: &Env, args: &[&str], secs: u64) -> Run {
    finish(spawn_slurm(e, args), secs)
}

fn spawn_slurm(e: &Env, args: &[&str]) -> Child {
    let mut c = e.command(args);
    c.arg("--executor").arg("slurm");
    // An sbatch in front of the real one that logs every submitted script.
    if e.path("shim/sbatch").is_file() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![e.path("shim")];
        dirs.extend(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn install_sbatch_shim(e: &Env) {
    let real = on_path("sbatch").unwrap();
    e.write(
        "shim/sbatch",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do script=\"$a\"; done\n\
             {{ echo \"== sbatch $*\"; cat \"$script\"; }} >> {log}\n\
             exec {real} \"$@\"\n",
            log = e.path("sbatch.log").display(),
            real = real.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        e.path("shim/sbatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// (key, job id, label) of each line of the cache's Slurm journal.
fn journal(e: &Env, cache: &str) -> Vec<(String, String, String)> {
    e.read(&format!("{cache}/slurm/journal.jsonl"))
        .lines()
        // a line being appended right now may be read half-written: not there yet
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("key"), s("job"), s("label"))
        })
        .collect()
}

/// label -> (key, output hash) of every record in a cache.
fn records(e: &Env, cache: &str) -> BTreeMap<String, (String, String)> {
    walk_files(&e.path(cache).join("records"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("label"), (s("key_hash"), s("output")))
        })
        .collect()
}

/// The jobs among `ids` that squeue lists as queued or running.
fn queued(ids: &[String]) -> Vec<String> {
    let out = Command::new("squeue")
        .args([
            "--noheader",
            "--array",
            "--format=%i|%T",
            "--jobs",
            &ids.join(","),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter(|(_, s)| matches!(*s, "PENDING" | "RUNNING" | "CONFIGURING"))
        .map(|(id, _)| id.to_owned())
        .collect()
}

fn job_state(id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["--oneliner", "show", "job", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .unwrap_or("?")
        .to_owned()
}

fn no_work_folders(e: &Env) -> bool {
    walk_files(&e.path("cache/tmp")).is_empty()
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const SWEEP: &str = r#"name: cluster
matrix:
  x: [1, 2, 3]
stages:
  prep:
    kind: command
    cmd: [sh, -c, 'echo prep >> ran.log; seq 5 > $CLLM4REC_OUT/rows']
  train:
    kind: command
    needs: [prep]
    params:
      x: ${matrix.x}
    cmd: [sh, -c, 'echo train-${params.x} >> ran.log; touch started-${params.x}; sleep 5; head -n ${params.x} $CLLM4REC_IN_PREP/rows > $CLLM4REC_OUT/model; cat $CLLM4REC_PARAMS >> $CLLM4REC_OUT/model']
    resources: {cpus: 1, mem: 64, time: 10}
  report:
    kind: command
    needs: ["train[*]"]
    cmd: [sh, -c, 'echo report >> ran.log; ls $CLLM4REC_IN_TRAIN > $CLLM4REC_OUT/points; cat $CLLM4REC_IN_TRAIN/*/model >> $CLLM4REC_OUT/points']
"#;

#[test]
fn killed_runner_reattaches_to_its_jobs_and_the_sweep_matches_a_local_run() {
    let Some(_node) =
        slurm("killed_runner_reattaches_to_its_jobs_and_the_sweep_matches_a_local_run")
    else {
        return;
    };
    let e = Env::unsandboxed();
    e.write("sweep.yaml", SWEEP);
    install_sbatch_shim(&e);
    let local = e.run_cache(&["run", "sweep.yaml"], "cache-local").ok();
    std::fs::remove_file(e.path("ran.log")).unwrap();
    for x in 1..=3 {
        std::fs::remove_file(e.path(&format!("started-{x}"))).unwrap();
    }

    // Kill the runner (SIGKILL: no chance to cancel anything) once the sweep's jobs are
    // journaled and one is running on the node.
    let mut first = spawn_slurm(&e, &["run", "sweep.yaml"]);
    wait_until(
        "the train jobs to be journaled and one to start",
        120,
        || {
            journal(&e, "cache").len() >= 4
                && (1..=3).any(|x| e.path(&format!("started-{x}")).exists())
        },
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let before = journal(&e, "cache");
    let train_jobs: Vec<String> = before
        .iter()
        .filter(|(_, _, l)| l.starts_with("train["))
        .map(|(_, j, _)| j.clone())
        .collect();
    assert_eq!(train_jobs.len(), 3, "{before:?}");
    // the three instances that were ready together went as one job array
    assert!(
        train_jobs.iter().all(|j| j.contains('_')),
        "not an array: {train_jobs:?}"
    );
    let alive = queued(&train_jobs);
    assert!(
        !alive.is_empty(),
        "the kill came too late: no train job is queued or running"
    );
    assert!(records(&e, "cache").len() < 5, "the kill came too late");

    let second = run_slurm(&e, &["run", "sweep.yaml"], 300).ok();
    let err = second.stderr();
    // every job still in the queue at the restart was reattached to, not submitted again
    let mut reattached = 0;
    for (_, job, label) in before.iter().filter(|(_, j, _)| alive.contains(j)) {
        let line = format!("{label}  reattached to slurm job {job} (");
        // a job may end between the squeue above and the restart: then it is a cache hit
        let hit = second
            .stdout()
            .lines()
            .any(|l| l.starts_with(label.as_str()) && l.contains(" cached "));
        assert!(err.contains(&line) || hit, "{label} (job {job}):\n{err}");
        reattached += usize::from(err.contains(&line));
    }
    assert!(reattached >= 1, "nothing was reattached:\n{err}");
    let after = journal(&e, "cache");
    let mut keys: Vec<&String> = after.iter().map(|(k, _, _)| k).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        after.len(),
        "a key was submitted twice: {after:?}"
    );
    assert_eq!(after.len(), 5, "{after:?}");
    // what sbatch itself was given: each instance's key in exactly one submitted script
    let submitted = e.read("sbatch.log");
    assert_eq!(submitted.matches("== sbatch ").count(), 3, "{submitted}");
    for (key, _, label) in &after {
        assert_eq!(
            submitted.matches(&format!("key={key} ;;")).count(),
            1,
            "{label} submitted {} times:\n{submitted}",
            submitted.matches(key.as_str()).count()
        );
    }
    // and each stage ran once
    let mut ran: Vec<String> = e.read("ran.log").lines().map(str::to_owned).collect();
    ran.sort();
    assert_eq!(ran, ["prep", "report", "train-1", "train-2", "train-3"]);

    // the cluster's entries are the local run's, hash for hash
    assert_eq!(second.outputs(), local.outputs());
    assert_eq!(records(&e, "cache"), records(&e, "cache-local"));
    let third = run_slurm(&e, &["run", "sweep.yaml"], 60).ok();
    assert_eq!(third.counts(), (0, 5));
    e.run(&["verify"]).ok();
    assert!(no_work_folders(&e));
}

const FAILING: &str = "name: f\nstages:\n  ok:\n    kind: command\n    cmd: [sh, -c, 'echo fine > $CLLM4REC_OUT/x']\n  bad:\n    kind: command\n    needs: [ok]\n    cmd: [sh, -c, 'echo partial > $CLLM4REC_OUT/y; echo something broke >&2; exit 3']\n";

#[test]
fn a_failing_job_ends_the_run_with_its_log_and_no_entry() {
    let Some(_node) = slurm("a_failing_job_ends_the_run_with_its_log_and_no_entry") else {
        return;
    };
    let e = Env::unsandboxed();
    e.write("p.yaml", FAILING);
    let r = run_slurm(&e, &["run", "p.yaml"], 120).fails(1);
    let err = r.stderr();
    let bad = journal(&e, "cache")
        .into_iter()
        .find(|(_, _, l)| l == "bad")
        .unwrap();
    assert!(
        err.contains(&format!(
            "error: stage `bad` failed: slurm job {} failed (FAILED)",
            bad.1
        )) && err.contains("exit status 1"),
        "{err}"
    );
    // the job's log, with the stage's own error in it
    assert!(
        err.contains(&format!(
            "log: {}",
            e.path(&format!("cache/slurm/jobs/{}.out", bad.1)).display()
        )) && err.contains("|   | something broke"),
        "{err}"
    );
    assert_eq!(records(&e, "cache").keys().collect::<Vec<_>>(), ["ok"]);
    assert!(no_work_folders(&e));
    e.run(&["verify"]).ok();
}

#[test]
fn a_job_cancelled_with_scancel_ends_the_run_and_leaves_no_entry() {
    let Some(_node) = slurm("a_job_cancelled_with_scancel_ends_the_run_and_leaves_no_entry") else {
        return;
    };
    let e = Env::unsandboxed();
    // Slurm sends SIGTERM to every process of the job, often children before their parents:
    // `sleep` can die while `sh` and `exec-stage` have yet to get theirs. A stage that went on after
    // its `sleep` was killed (`sleep 120; echo whole`) could then exit 0 before `exec-stage`
    // learns of the cancellation, and be committed like any stage that succeeds (README,
    // Slurm: Failures). With `&&` a killed `sleep` fails the stage, in any order.
    e.write(
        "p.yaml",
        "name: c\nstages:\n  slow:\n    kind: command\n    cmd: [sh, -c, 'echo partial > $CLLM4REC_OUT/x; touch started; sleep 120 && echo whole > $CLLM4REC_OUT/x']\n",
    );
    let child = spawn_slurm(&e, &["run", "p.yaml"]);
    wait_until("the job to start", 120, || e.path("started").exists());
    let (_, job, _) = journal(&e, "cache").pop().unwrap();
    let st = Command::new("scancel").arg(&job).status().unwrap();
    assert!(st.success());
    let r = finish(child, 60).fails(1);
    let err = r.stderr();
    assert!(
        err.contains(&format!(
            "error: stage `slow` failed: slurm job {job} was cancelled"
        )),
        "{err}"
    );
    assert_eq!(job_state(&job), "CANCELLED");
    assert!(records(&e, "cache").is_empty());
    // exec-stage stopped its stage and removed its work folder
    assert!(
        no_work_folders(&e),
        "{:?}",
        walk_files(&e.path("cache/tmp"))
    );
    e.run(&["verify"]).ok();
}

#[test]
fn a_node_side_crash_ends_the_run_with_no_entry_and_the_next_run_resubmits() {
    let Some(_node) =
        slurm("a_node_side_crash_ends_the_run_with_no_entry_and_the_next_run_resubmits")
    else {
        return;
    };
    let e = Env::unsandboxed();
    // The stage kills its `exec-stage` (its parent) with SIGKILL, once.
    e.write(
        "p.yaml",
        "name: k\nstages:\n  ok:\n    kind: command\n    cmd: [sh, -c, 'echo fine > $CLLM4REC_OUT/x']\n  crash:\n    kind: command\n    needs: [ok]\n    cmd: [sh, -c, 'echo partial > $CLLM4REC_OUT/y; if [ ! -e crashed ]; then touch crashed; kill -9 $PPID; sleep 5; fi; echo whole > $CLLM4REC_OUT/y']\n",
    );
    let r = run_slurm(&e, &["run", "p.yaml"], 120).fails(1);
    let err = r.stderr();
    let crash = journal(&e, "cache")
        .into_iter()
        .find(|(_, _, l)| l == "crash")
        .unwrap();
    assert!(
        err.contains(&format!(
            "error: stage `crash` failed: slurm job {} failed (FAILED)",
            crash.1
        )) && err
            .contains("exit status 137: `exec-stage` was killed by signal 9 (SIGKILL) on the node"),
        "{err}"
    );
    assert!(
        err.contains("| run      crash"),
        "the job log is shown: {err}"
    );
    assert!(e.path("crashed").exists());
    assert_eq!(records(&e, "cache").keys().collect::<Vec<_>>(), ["ok"]);
    // The dead process's work folder holds the partial output; nothing of it was committed.
    assert!(!no_work_folders(&e));
    let v = e.run(&["verify"]).ok().stdout();
    assert!(v.contains("no problems"), "{v}");

    let r = run_slurm(&e, &["run", "p.yaml"], 120).ok();
    assert_eq!(r.counts(), (1, 1));
    let jobs: Vec<_> = journal(&e, "cache")
        .into_iter()
        .filter(|(_, _, l)| l == "crash")
        .collect();
    assert_eq!(jobs.len(), 2, "resubmitted once: {jobs:?}");
    assert_eq!(jobs[0].0, jobs[1].0);
    let (_, out) = &records(&e, "cache")["crash"];
    let y = std::fs::read_to_string(e.path(&format!("cache/objects/{}/{out}/data/y", &out[..2])));
    assert_eq!(y.unwrap(), "whole\n");
    assert!(no_work_folders(&e), "the stale work folder was removed");
}

#[test]
fn ctrl_c_scancels_the_jobs_and_leaves_no_entry() {
    let Some(_node) = slurm("ctrl_c_scancels_the_jobs_and_leaves_no_entry") else {
        return;
    };
    let e = Env::unsandboxed();
    e.write(
        "p.yaml",
        "name: i\nmatrix:\n  n: [1, 2]\nstages:\n  slow:\n    kind: command\n    params: {n: '${matrix.n}'}\n    cmd: [sh, -c, 'echo partial > $CLLM4REC_OUT/x; touch started-${params.n}; sleep 120']\n",
    );
    let child = spawn_slurm(&e, &["run", "p.yaml"]);
    wait_until("a job to start", 120, || {
        e.path("started-1").exists() || e.path("started-2").exists()
    });
    let jobs: Vec<String> = journal(&e, "cache")
        .into_iter()
        .map(|(_, j, _)| j)
        .collect();
    assert_eq!(jobs.len(), 2);
    unsafe { kill(child.id() as i32, 2) };
    let r = finish(child, 90).fails(130);
    assert!(r.stderr().contains("scancel"), "{}", r.stderr());
    for j in &jobs {
        assert_eq!(job_state(j), "CANCELLED", "job {j}");
    }
    assert!(queued(&jobs).is_empty());
    assert!(records(&e, "cache").is_empty());
    assert!(
        no_work_folders(&e),
        "{:?}",
        walk_files(&e.path("cache/tmp"))
    );
}

/// What a job runs on its node, without Slurm: the key is checked, the commit is a local
/// run's.
#[test]
fn exec_stage_refuses_a_wrong_key_and_commits_what_a_local_run_would() {
    let e = Env::unsandboxed();
    e.write(
        "p.yaml",
        "name: p\nstages:\n  a:\n    kind: command\n    cmd: [sh, -c, 'echo a > $CLLM4REC_OUT/x']\n  b:\n    kind: command\n    needs: [a]\n    cmd: [sh, -c, 'cat $CLLM4REC_IN_A/x > $CLLM4REC_OUT/y; echo b >> $CLLM4REC_OUT/y']\n",
    );
    e.run_cache(&["run", "p.yaml"], "cache-local").ok();
    let local = records(&e, "cache-local");
    let (ka, kb) = (&local["a"].0, &local["b"].0);
    let exec = |label: &str, key: &str| {
        e.run(&["exec-stage", "p.yaml", "--instance", label, "--key", key])
    };

    let err = exec("b", kb).fails(1).stderr();
    assert!(
        err.contains("input `a` of `b` is not in the cache"),
        "{err}"
    );
    let wrong = "0".repeat(64);
    let err = exec("a", &wrong).fails(1).stderr();
    assert!(
        err.contains(&format!(
            "refusing to run `a`: its key here is {ka}, but the runner submitted {wrong}"
        )),
        "{err}"
    );
    let err = exec("c", ka).fails(1).stderr();
    assert!(err.contains("has no instance `c`"), "{err}");
    assert!(records(&e, "cache").is_empty());

    let err = exec("a", ka).ok().stderr();
    assert!(err.contains("committed `a`"), "{err}");
    exec("b", kb).ok();
    assert_eq!(records(&e, "cache"), local);
    // a second exec-stage reuses the entry; a plain run finds everything cached
    assert!(exec("b", kb).ok().stderr().contains("already cached `b`"));
    assert_eq!(e.run(&["run", "p.yaml"]).ok().counts(), (0, 2));
}

#[test]
fn without_sbatch_a_slurm_run_says_so() {
    let e = Env::unsandboxed();
    e.write(
        "p.yaml",
        "name: p\nstages:\n  a:\n    kind: command\n    cmd: [sh, -c, 'echo a > $CLLM4REC_OUT/x']\n",
    );
    let mut c = e.command(&["run", "p.yaml", "--executor", "slurm"]);
    c.env("PATH", e.path("nothing-here"));
    let r = Run {
        out: c.output().unwrap(),
    };
    let err = r.fails(1).stderr();
    assert!(
        err.contains("cannot submit `a`: `sbatch` not found: is Slurm installed here"),
        "{err}"
    );
    assert!(records(&e, "cache").is_empty());
}
