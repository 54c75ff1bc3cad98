//! Submitting jobs: a stage's `resources` as sbatch options, the batch script that runs
//! `cllm4rec-pipe exec-stage` on the node, `sbatch --parsable` and `scancel`.
//!
//! Files a job leaves under `cache/slurm/`:
//!
//! ```text
//! scripts/<time>-<stage>.sh   the batch script as submitted
//! jobs/<id>.out               the job's stdout and stderr (id: `123` or `123_4`)
//! jobs/<id>.exit              the exit status of `exec-stage`, written by the script
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exec::slurm::SlurmOptions;
use crate::pipeline::raw::{RawResources, Scalar};

/// Slurm refuses arrays larger than its `MaxArraySize` (1001 by default).
pub const MAX_ARRAY: usize = 1000;

/// The folder of a cache's Slurm files.
pub fn slurm_dir(cache: &Path) -> PathBuf {
    cache.join("slurm")
}

/// The job's stdout and stderr.
pub fn job_log(cache: &Path, id: &str) -> PathBuf {
    slurm_dir(cache).join("jobs").join(format!("{id}.out"))
}

/// The exit status of `exec-stage`, written by the batch script when it ends.
pub fn job_exit(cache: &Path, id: &str) -> PathBuf {
    slurm_dir(cache).join("jobs").join(format!("{id}.exit"))
}

/// One instance of a job: its label and the key the runner computed for it.
#[derive(Debug, Clone)]
pub struct Task {
    pub label: String,
    pub key: String,
}

/// A job to submit: one instance, or several of one stage as a job array.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    pub stage: &'a str,
    pub tasks: Vec<Task>,
    pub resources: &'a RawResources,
    /// The pipeline's folder: the job starts there.
    pub workdir: &'a Path,
    /// Recompute even if the entry exists (`run --force`).
    pub force: bool,
}

/// A word for a POSIX shell: single-quoted unless it is plainly safe.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `%` is a pattern character in sbatch's `--output`.
fn output_pattern(path: &Path) -> String {
    path.to_string_lossy().replace('%', "%%")
}

/// The sbatch options that `resources` asks for: `cpus` -> `--cpus-per-task`, `mem` ->
/// `--mem` (a number is MB), `gpus` -> `--gres=gpu:N`, `time` -> `--time` (a number is
/// minutes), `partition` -> `--partition`, then `sbatch` as written.
pub fn resource_args(r: &RawResources) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(c) = r.cpus {
        a.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &r.mem {
        a.push(format!("--mem={m}"));
    }
    if let Some(g) = r.gpus.filter(|&g| g > 0) {
        a.push(format!("--gres=gpu:{g}"));
    }
    if let Some(t) = &r.time {
        a.push(match t {
            Scalar::Int(min) => format!("--time={min}"),
            Scalar::Str(s) => format!("--time={s}"),
        });
    }
    if let Some(p) = &r.partition {
        a.push(format!("--partition={p}"));
    }
    a.extend(r.sbatch.iter().flatten().cloned());
    a
}

/// `cllm4rec:<label>`, or `cllm4rec:<stage>` for an array.
pub fn job_name(job: &JobSpec) -> String {
    if job.tasks.len() > 1 {
        format!("cllm4rec:{}", job.stage)
    } else {
        format!("cllm4rec:{}", job.tasks[0].label)
    }
}

/// Every sbatch argument for `job` (the script path goes last, added by `submit`).
pub fn sbatch_args(job: &JobSpec, cache: &Path) -> Vec<String> {
    let jobs = slurm_dir(cache).join("jobs");
    let array = job.tasks.len() > 1;
    let mut a = vec![
        "--parsable".to_owned(),
        format!("--job-name={}", job_name(job)),
        "--nodes=1".to_owned(),
        "--ntasks=1".to_owned(),
        format!("--chdir={}", job.workdir.display()),
    ];
    if array {
        a.push(format!("--array=0-{}", job.tasks.len() - 1));
        a.push(format!("--output={}/%A_%a.out", output_pattern(&jobs)));
    } else {
        a.push(format!("--output={}/%j.out", output_pattern(&jobs)));
    }
    a.extend(resource_args(job.resources));
    a
}

/// The batch script: pick this task's instance, run `exec-stage` (and outlive it when
/// scancel or a time limit sends SIGTERM, so that it cleans up its work folder), record its
/// exit status in `jobs/<id>.exit`, and exit with it.
pub fn script(job: &JobSpec, opts: &SlurmOptions, cache: &Path) -> String {
    let q = shell_quote;
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# cllm4rec-pipe: stage `{}`, {} instance(s); submitted with sbatch\n",
        job.stage,
        job.tasks.len()
    ));
    s.push_str(
        "if [ -n \"${SLURM_ARRAY_TASK_ID:-}\" ]; then\n\
         \x20   id=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n\
         else\n\
         \x20   id=\"$SLURM_JOB_ID\"\n\
         fi\n",
    );
    s.push_str("case \"${SLURM_ARRAY_TASK_ID:-0}\" in\n");
    for (n, t) in job.tasks.iter().enumerate() {
        s.push_str(&format!(
            "    {n}) label={}; key={} ;;\n",
            q(&t.label),
            q(&t.key)
        ));
    }
    s.push_str(
        "    *) echo \"cllm4rec-pipe: no instance for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\n\
         esac\n",
    );
    let jobs = slurm_dir(cache).join("jobs");
    s.push_str(&format!(
        "exit_file={}/\"$id\".exit\n",
        q(&jobs.to_string_lossy())
    ));
    s.push_str("echo \"cllm4rec-pipe: slurm job $id on $(hostname): $label (key $key)\" >&2\n");
    // scancel and time limits send SIGTERM to every process of the job: exec-stage stops its
    // stage and removes its work folder. The shell must outlive it (when the batch shell
    // exits, what is left of the job is killed at once), and a waiting shell runs traps
    // only between commands, so exec-stage runs in the background and the shell waits.
    // The signal is not forwarded: a second SIGTERM makes exec-stage quit without cleaning.
    s.push_str("term=0\n");
    s.push_str("trap 'term=1' TERM\n");
    let mut cmd = vec![
        q(&opts.exe.to_string_lossy()),
        "--cache-dir".into(),
        q(&cache.to_string_lossy()),
        "exec-stage".into(),
        q(&opts.pipeline_file.to_string_lossy()),
    ];
    for set in &opts.sets {
        cmd.push("--set".into());
        cmd.push(q(set));
    }
    cmd.extend([
        "--instance".into(),
        "\"$label\"".into(),
        "--key".into(),
        "\"$key\"".into(),
    ]);
    if job.force {
        cmd.push("--force".into());
    }
    s.push_str(&cmd.join(" "));
    s.push_str(" &\nchild=$!\n");
    s.push_str("wait \"$child\"\nrc=$?\n");
    // A wait cut short by the trap returns 128+15: wait again for exec-stage's own status.
    s.push_str(
        "while [ \"$term\" = 1 ] && [ \"$rc\" -gt 128 ]; do term=0; wait \"$child\"; rc=$?; done\n",
    );
    s.push_str("echo \"$rc\" > \"$exit_file.$$\" && mv -f \"$exit_file.$$\" \"$exit_file\"\n");
    s.push_str("exit \"$rc\"\n");
    s
}

/// Write the script and submit it. Returns the job id of each task, in order: `123` for a
/// single job, `123_0`, `123_1`, ... for an array.
pub fn submit(job: &JobSpec, opts: &SlurmOptions, cache: &Path) -> Result<Vec<String>, String> {
    let dir = slurm_dir(cache);
    let scripts = dir.join("scripts");
    let io_err =
        |what: &str, p: &Path, e: io::Error| format!("cannot {what} `{}`: {e}", p.display());
    for d in [&scripts, &dir.join("jobs")] {
        fs::create_dir_all(d).map_err(|e| io_err("create", d, e))?;
    }
    let path = scripts.join(format!(
        "{}-{}.sh",
        crate::util::unix_nanos(),
        job.stage
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    ));
    fs::write(&path, script(job, opts, cache)).map_err(|e| io_err("write", &path, e))?;
    let mut args = sbatch_args(job, cache);
    args.push(path.to_string_lossy().into_owned());
    tracing::debug!(?args, "sbatch");
    let out = Command::new("sbatch").args(&args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            "`sbatch` not found: is Slurm installed here (and on PATH)?".to_owned()
        } else {
            format!("cannot run `sbatch`: {e}")
        }
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "sbatch failed ({}): {}\n  script: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            path.display()
        ));
    }
    let id = parse_parsable(&stdout)
        .ok_or_else(|| format!("sbatch printed no job id: `{}`", stdout.trim()))?;
    Ok(if job.tasks.len() > 1 {
        (0..job.tasks.len()).map(|n| format!("{id}_{n}")).collect()
    } else {
        vec![id]
    })
}

/// `sbatch --parsable` prints `id` or `id;cluster`.
pub fn parse_parsable(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_owned())
}

/// `scancel` these jobs (array elements by their `123_4` ids).
pub fn cancel(ids: &[String]) -> Result<(), String> {
    for chunk in ids.chunks(200) {
        let out = Command::new("scancel")
            .args(chunk)
            .output()
            .map_err(|e| format!("cannot run `scancel`: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // A job that ended meanwhile is not an error.
            if !err.lines().all(|l| {
                l.contains("already completing")
                    || l.contains("Invalid job id")
                    || l.trim().is_empty()
            }) {
                return Err(format!("scancel failed ({}): {}", out.status, err.trim()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_become_sbatch_options() {
        let r = RawResources {
            cpus: Some(4),
            mem: Some(Scalar::Str("16G".into())),
            gpus: Some(1),
            time: Some(Scalar::Int(90)),
            partition: Some("gpu".into()),
            sbatch: Some(vec!["--qos=high".into(), "--constraint=a100".into()]),
        };
        assert_eq!(
            resource_args(&r),
            [
                "--cpus-per-task=4",
                "--mem=16G",
                "--gres=gpu:1",
                "--time=90",
                "--partition=gpu",
                "--qos=high",
                "--constraint=a100"
            ]
        );
        let r = RawResources {
            mem: Some(Scalar::Int(4096)),
            time: Some(Scalar::Str("2:00:00".into())),
            gpus: Some(0),
            ..Default::default()
        };
        assert_eq!(resource_args(&r), ["--mem=4096", "--time=2:00:00"]);
        assert!(resource_args(&RawResources::default()).is_empty());
    }

    #[test]
    fn arrays_name_their_stage_and_write_one_log_per_element() {
        let r = RawResources {
            cpus: Some(2),
            ..Default::default()
        };
        let task = |l: &str| Task {
            label: l.into(),
            key: "k".into(),
        };
        let mut job = JobSpec {
            stage: "train",
            tasks: vec![task("train[x=1]"), task("train[x=2]")],
            resources: &r,
            workdir: Path::new("/p"),
            force: false,
        };
        let a = sbatch_args(&job, Path::new("/c/100%"));
        assert!(a.contains(&"--array=0-1".to_owned()), "{a:?}");
        assert!(
            a.contains(&"--output=/c/100%%/slurm/jobs/%A_%a.out".to_owned()),
            "{a:?}"
        );
        assert!(a.contains(&"--job-name=cllm4rec:train".to_owned()), "{a:?}");
        assert_eq!(a.last().unwrap(), "--cpus-per-task=2");
        job.tasks.truncate(1);
        let a = sbatch_args(&job, Path::new("/c"));
        assert!(!a.iter().any(|x| x.starts_with("--array")), "{a:?}");
        assert!(
            a.contains(&"--output=/c/slurm/jobs/%j.out".to_owned()),
            "{a:?}"
        );
        assert!(
            a.contains(&"--job-name=cllm4rec:train[x=1]".to_owned()),
            "{a:?}"
        );
    }

    #[test]
    fn quoted_words_survive_the_shell() {
        for w in [
            "plain", "a b", "it's", "$HOME", "x[y=1]", "", "\"q\"", "a\nb",
        ] {
            let out = Command::new("sh")
                .args(["-c", &format!("printf %s {}", shell_quote(w))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), w);
        }
    }

    #[test]
    fn parsable_output_gives_the_job_id() {
        assert_eq!(parse_parsable("123\n").as_deref(), Some("123"));
        assert_eq!(parse_parsable("456;cluster\n").as_deref(), Some("456"));
        assert_eq!(parse_parsable("sbatch: error: nope\n"), None);
        assert_eq!(parse_parsable(""), None);
    }
}
