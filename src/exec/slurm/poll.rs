//! What Slurm says about jobs: `squeue` for the ones still queued or running, then
//! `scontrol show job` (or `sacct`, where accounting is enabled) for how a job ended. Jobs
//! are polled with a backoff.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// How a job ended, as far as Slurm still remembers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, `OUT_OF_MEMORY`, `NODE_FAIL`, ...;
    /// `None` when neither scontrol nor sacct knows the job any more.
    pub state: Option<String>,
    /// The batch script's exit code.
    pub exit: Option<i32>,
    /// The signal that ended the batch script, if any.
    pub signal: Option<i32>,
    /// Slurm's reason (`NonZeroExitCode`, ...).
    pub reason: Option<String>,
}

/// States of a job that is over (it may still be listed by squeue for a moment).
const FINAL: &[&str] = &[
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "REVOKED",
    "SPECIAL_EXIT",
];

/// Whether a state means the job is over.
pub fn is_final(state: &str) -> bool {
    let s = state.split_whitespace().next().unwrap_or("");
    FINAL.contains(&s)
}

/// Run a Slurm client command; its stdout, or an error with its stderr.
fn slurm(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{program}` not found: is Slurm installed here (and on PATH)?")
        } else {
            format!("cannot run `{program}`: {e}")
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A job squeue lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// `PENDING`, `RUNNING`, `COMPLETING`, ...
    pub state: String,
    pub name: String,
}

/// The jobs among `ids` that squeue still lists and whose state is not final. Array
/// elements are listed one by one (`123_4`).
pub fn active(ids: &[String]) -> Result<HashMap<String, Queued>, String> {
    let mut all = HashMap::new();
    // Keep command lines short on big sweeps.
    for chunk in ids.chunks(200) {
        let list = chunk.join(",");
        let args = [
            "--noheader",
            "--array",
            "--format=%i|%T|%j",
            "--jobs",
            &list,
        ];
        match slurm("squeue", &args) {
            Ok(text) => all.extend(parse_squeue(&text)),
            // squeue refuses a list in which no job is known any more: none is active.
            Err(e) if e.contains("Invalid job id") => {}
            Err(e) => return Err(e),
        }
    }
    all.retain(|_, q: &mut Queued| !is_final(&q.state));
    Ok(all)
}

/// `123_4|RUNNING|name` lines -> id -> state and name.
pub fn parse_squeue(text: &str) -> HashMap<String, Queued> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, '|');
            let (id, state) = (f.next()?.trim(), f.next()?.trim());
            let name = f.next().unwrap_or("").trim();
            let q = Queued {
                state: state.to_owned(),
                name: name.to_owned(),
            };
            (!id.is_empty()).then(|| (id.to_owned(), q))
        })
        .collect()
}

/// How job `id` ended: scontrol while slurmctld still remembers it (MinJobAge), else sacct
/// where accounting works, else nothing is known.
pub fn ended(id: &str) -> Ended {
    if let Ok(text) = slurm("scontrol", &["--oneliner", "show", "job", id]) {
        if let Some(e) = parse_scontrol(&text) {
            return e;
        }
    }
    if let Ok(text) = slurm(
        "sacct",
        &[
            "--noheader",
            "--parsable2",
            "--jobs",
            id,
            "--format=JobID,State,ExitCode",
        ],
    ) {
        if let Some(e) = parse_sacct(&text, id) {
            return e;
        }
    }
    Ended::default()
}

/// `ExitCode=1:0` -> (1, None); `0:9` -> (0, Some(9)).
fn exit_code(s: &str) -> (Option<i32>, Option<i32>) {
    let (code, sig) = s.split_once(':').unwrap_or((s, "0"));
    let sig = sig.trim().parse().ok().filter(|&s: &i32| s != 0);
    (code.trim().parse().ok(), sig)
}

/// The first job of `scontrol --oneliner show job` output.
pub fn parse_scontrol(text: &str) -> Option<Ended> {
    let line = text.lines().find(|l| l.contains("JobState="))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let (exit, signal) = field("ExitCode").map(|c| exit_code(&c)).unwrap_or_default();
    Some(Ended {
        state: field("JobState"),
        exit,
        signal,
        reason: field("Reason").filter(|r| r != "None"),
    })
}

/// The line of `sacct --parsable2 --format=JobID,State,ExitCode` for the job itself (not
/// its steps). `CANCELLED by 0` is shortened to `CANCELLED`.
pub fn parse_sacct(text: &str, id: &str) -> Option<Ended> {
    let line = text.lines().find(|l| l.split('|').next() == Some(id))?;
    let f: Vec<&str> = line.split('|').collect();
    let state = f.get(1)?.split_whitespace().next()?.to_owned();
    let (exit, signal) = f.get(2).map(|c| exit_code(c)).unwrap_or_default();
    Some(Ended {
        state: Some(state),
        exit,
        signal,
        reason: None,
    })
}

/// Poll intervals: start short, grow while nothing changes, start over on a change.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, cur: min }
    }
    /// The wait before the next poll; each call without a `reset` waits longer.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.cur;
        self.cur = (self.cur * 3 / 2).min(self.max);
        d
    }
    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_states_of_jobs_and_array_elements() {
        let m = parse_squeue("12|RUNNING|cllm4rec:a\n13_0|PENDING|x|y\n13_1|COMPLETING|\n\n");
        assert_eq!(m.len(), 3);
        assert_eq!(m["12"].state, "RUNNING");
        assert_eq!(m["12"].name, "cllm4rec:a");
        assert_eq!(m["13_0"].state, "PENDING");
        assert_eq!(m["13_0"].name, "x|y");
        assert!(!is_final(&m["13_1"].state));
        assert!(is_final("CANCELLED"));
        assert!(is_final("CANCELLED by 0"));
        assert!(!is_final("PENDING"));
    }

    #[test]
    fn scontrol_gives_state_exit_code_signal_and_reason() {
        // trimmed from slurm 22.05 `scontrol --oneliner show job 4`
        let text = "JobId=4 ArrayJobId=2 ArrayTaskId=1 JobName=wrap UserId=root(0) \
                    JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 \
                    Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:04\n";
        assert_eq!(
            parse_scontrol(text),
            Some(Ended {
                state: Some("FAILED".into()),
                exit: Some(3),
                signal: None,
                reason: Some("NonZeroExitCode".into()),
            })
        );
        let killed = "JobId=9 JobState=CANCELLED Reason=None ExitCode=0:15";
        let e = parse_scontrol(killed).unwrap();
        assert_eq!((e.exit, e.signal, e.reason), (Some(0), Some(15), None));
        assert_eq!(
            parse_scontrol("slurm_load_jobs error: Invalid job id"),
            None
        );
    }

    #[test]
    fn sacct_takes_the_job_line_not_its_steps() {
        let text = "7|CANCELLED by 0|0:15\n7.batch|CANCELLED|0:15\n8|COMPLETED|0:0\n";
        let e = parse_sacct(text, "7").unwrap();
        assert_eq!(e.state.as_deref(), Some("CANCELLED"));
        assert_eq!(e.signal, Some(15));
        assert_eq!(parse_sacct(text, "8").unwrap().exit, Some(0));
        assert_eq!(parse_sacct(text, "9"), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
        let d: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, [100, 150, 225, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
