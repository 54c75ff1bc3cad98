//! The `command` kind: run any program with its outputs folder, inputs and params in the
//! environment.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::kinds::sandbox::Sandbox;
use crate::kinds::spawn::{self, Spawn};
use crate::kinds::{DefError, Needs, ParamError, Params, StageContext, StageError, StageKind};
use crate::pipeline::interp::as_text;
use crate::pipeline::load::StageDef;
use crate::util::env_name;

pub struct Command;

impl StageKind for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn version(&self) -> u32 {
        1
    }

    /// A command's params are its own: any name, any value, all hashed into the key.
    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        Ok(Params::new(params.clone(), params))
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        (Map::new(), &[])
    }

    fn needs(&self) -> Needs {
        Needs::Any
    }

    fn check_def(&self, def: &StageDef) -> Result<(), DefError> {
        let Some((cmd, _, _)) = &def.cmd else {
            return Err((
                "cmd".into(),
                format!("`command` stage `{}` has no `cmd`", def.name),
                Some("add `cmd: [program, arg, ...]`".into()),
            ));
        };
        match cmd {
            Json::Array(a) if a.is_empty() => Err((
                "cmd".into(),
                "`cmd` is empty".into(),
                Some("write `cmd: [program, arg, ...]`".into()),
            )),
            Json::Array(a) if def.shell => Err((
                "cmd".into(),
                format!(
                    "with `shell: true`, `cmd` is one string, not a list of {}",
                    a.len()
                ),
                None,
            )),
            Json::Array(a) => match a
                .iter()
                .position(|x| x.is_object() || x.is_array() || x.is_null())
            {
                Some(i) => Err((
                    "cmd".into(),
                    format!("argument {i} of `cmd` must be a string or number"),
                    None,
                )),
                None => Ok(()),
            },
            Json::String(_) if def.shell => Ok(()),
            Json::String(_) => Err((
                "cmd".into(),
                "a `cmd` string needs `shell: true`".into(),
                Some("write `cmd` as a list (`[python3, prep.py]`), or add `shell: true`".into()),
            )),
            _ => Err((
                "cmd".into(),
                "`cmd` must be a list of arguments (or a string with `shell: true`)".into(),
                None,
            )),
        }
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let spec = &ctx.instance.spec;
        let shell = spec.get("shell").and_then(Json::as_bool).unwrap_or(false);
        let argv: Vec<String> = match spec.get("cmd") {
            Some(Json::Array(a)) => a.iter().map(as_text).collect(),
            Some(Json::String(s)) => vec!["sh".into(), "-c".into(), s.clone()],
            _ => return Err(StageError::Failed("no `cmd`".into())),
        };
        debug_assert!(!shell || argv[0] == "sh");
        let log = |what: &str| {
            ctx.log
                .try_clone()
                .map_err(|e| StageError::Failed(format!("cannot open the log for {what}: {e}")))
        };
        // A scratch folder beside the output, in the work folder: `$TMPDIR`, emptied after the
        // stage (src/cache/work.rs).
        let work = ctx.out.parent().and_then(|o| o.parent()).unwrap_or(ctx.out);
        let scratch = work.join("scratch");
        std::fs::create_dir_all(&scratch).map_err(|e| {
            StageError::Failed(format!("cannot create `{}`: {e}", scratch.display()))
        })?;
        let sandbox = Sandbox::new(&[ctx.out, &scratch])
            .map_err(|e| StageError::Failed(format!("cannot set up the sandbox: {e}")))?;
        let (stdout, stderr) = (log("stdout")?, log("stderr")?);
        let mut env = vec![
            spawn::var("CLLM4REC_OUT", ctx.out),
            spawn::var("CLLM4REC_PARAMS", ctx.params_file),
            spawn::var("CLLM4REC_SEED", ctx.instance.seed.to_string()),
            spawn::var("TMPDIR", &scratch),
        ];
        for (stage, dir) in ctx.inputs {
            env.push(spawn::var(format!("CLLM4REC_IN_{}", env_name(stage)), dir));
        }
        let mut child = Spawn {
            argv: &argv,
            env,
            cwd: ctx.workdir,
            stdout: &stdout,
            stderr: &stderr,
            sandbox: sandbox.as_ref().map(Sandbox::fd),
        }
        .start()
        .map_err(|e| StageError::Failed(format!("cannot start `{}`: {e}", argv[0])))?;
        drop((stdout, stderr));
        let pgid = child.id();
        let exited = ExitWatch::new(pgid);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let why = match status.code() {
                        Some(c) => format!("`{}` exited with status {c}", argv[0]),
                        None => format!("`{}` was killed by a signal", argv[0]),
                    };
                    return Err(StageError::Failed(
                        if sandbox.is_some() && log_says_denied(ctx.log) {
                            format!(
                                "{why}; it was refused a write: a `command` stage may write \
                                 only into `$CLLM4REC_OUT` and `$TMPDIR`"
                            )
                        } else {
                            why
                        },
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(StageError::Failed(format!(
                        "cannot wait for `{}`: {e}",
                        argv[0]
                    )))
                }
            }
            if ctx.cancel.load(Ordering::SeqCst) {
                // SAFETY: signalling our own child's process group.
                unsafe { libc::kill(-pgid, libc::SIGTERM) };
                for _ in 0..100 {
                    if matches!(child.try_wait(), Ok(Some(_))) {
                        return Err(StageError::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                let _ = child.wait();
                return Err(StageError::Cancelled);
            }
            exited.wait(Duration::from_millis(10));
        }
    }
}

/// Waits for a child to exit, up to a timeout: on the child's pidfd (Linux 5.3 and later), so
/// that a short stage is noticed as it ends rather than at the next poll, else by sleeping.
struct ExitWatch(Option<std::os::fd::OwnedFd>);

impl ExitWatch {
    fn new(pid: libc::pid_t) -> ExitWatch {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a descriptor just returned to us, owned from here on.
        ExitWatch((fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }))
    }

    fn wait(&self, timeout: Duration) {
        use std::os::fd::AsRawFd;
        let Some(fd) = &self.0 else {
            std::thread::sleep(timeout);
            return;
        };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; an error or an interruption just means "look again".
        unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    }
}

/// Whether the end of the stage's log reports a refused write (`EACCES`).
fn log_says_denied(log: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(text) = std::fs::read(format!("/proc/self/fd/{}", log.as_raw_fd())) else {
        return false;
    };
    let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(4096)..]).to_lowercase();
    tail.contains("permission denied")
}
