//! Starting a `command` stage's program without copying the runner.
//!
//! `std::process::Command` with a `pre_exec` hook (which the sandbox and the process group
//! need) starts the child with `fork`: the kernel copies the runner's page tables and marks
//! its memory copy-on-write, so each start costs time in proportion to the runner's size, and
//! every page the runner writes afterwards faults once more. A sweep of 10^5 instances holds
//! most of a GB, and its starts cost more than the programs they ran (measured: 1,751 s of
//! system time for 10^5 `sh -c echo` stages). This starts the child as `posix_spawn` does,
//! with `clone(CLONE_VM | CLONE_VFORK)`: the child borrows the runner's memory until it calls
//! `execve`, the runner's thread waits for that, and the cost no longer depends on the
//! runner's size.
//!
//! Everything the child touches is built before the `clone`; between `clone` and `execve` the
//! child makes only system calls (and `execvpe`'s path search, which glibc's own
//! `posix_spawnp` runs in the same place). Signals are blocked across the `clone`, and the
//! child resets every caught signal to its default before unblocking, so no handler of the
//! runner ever runs on the borrowed memory.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

/// What to start: the program (looked up on `PATH` when it has no `/`), its arguments, the
/// environment beyond the runner's own, the working folder and the output files.
pub struct Spawn<'a> {
    pub argv: &'a [String],
    pub env: Vec<(OsString, OsString)>,
    pub cwd: &'a Path,
    pub stdout: &'a std::fs::File,
    pub stderr: &'a std::fs::File,
    /// A Landlock ruleset to restrict the child with (see `sandbox`).
    pub sandbox: Option<RawFd>,
}

/// A started child: its own process group, killed with SIGKILL if the runner's thread dies.
pub struct Child {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
}

/// Everything the child reads, prepared by the parent.
struct ChildArgs {
    file: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    fds: [RawFd; 3],
    sandbox: RawFd,
    /// Set by the child to the `errno` of the step that failed; 0 when it reached its program.
    err: AtomicI32,
}

fn cstring(s: impl Into<Vec<u8>>, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} holds a NUL byte"),
        )
    })
}

impl Spawn<'_> {
    pub fn start(self) -> io::Result<Child> {
        let file = cstring(self.argv[0].as_bytes(), "the program name")?;
        let argv_c: Vec<CString> = self
            .argv
            .iter()
            .map(|a| cstring(a.as_bytes(), "an argument"))
            .collect::<io::Result<_>>()?;
        let mut env: std::collections::BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        env.extend(self.env);
        let env_c: Vec<CString> = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                cstring(kv, "an environment variable")
            })
            .collect::<io::Result<_>>()?;
        let cwd = cstring(self.cwd.as_os_str().as_bytes(), "the working folder")?;
        let null = std::fs::File::open("/dev/null")?;
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let (argv_p, envp_p) = (ptrs(&argv_c), ptrs(&env_c));
        let args = ChildArgs {
            file: file.as_ptr(),
            argv: argv_p.as_ptr(),
            envp: envp_p.as_ptr(),
            cwd: cwd.as_ptr(),
            fds: [
                null.as_raw_fd(),
                self.stdout.as_raw_fd(),
                self.stderr.as_raw_fd(),
            ],
            sandbox: self.sandbox.unwrap_or(-1),
            err: AtomicI32::new(0),
        };
        // The child's stack: its own system calls, and `execvpe`'s path buffer and the argument
        // list it builds for a script without `#!`.
        let mut stack = vec![0u8; 256 * 1024 + 8 * (self.argv.len() + 2)];
        let top = {
            let end = stack.as_mut_ptr() as usize + stack.len();
            (end & !15) as *mut libc::c_void
        };
        // SAFETY: signals are blocked so that none is handled between `clone` and the child's
        // reset; `clone` with CLONE_VFORK returns only once the child has called `execve` or
        // exited, so `args`, the strings it points to and `stack` outlive every use the child
        // makes of them.
        let pid = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child_main,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &args as *const ChildArgs as *mut libc::c_void,
            );
            let e = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                return Err(e);
            }
            pid
        };
        drop(stack);
        let mut child = Child { pid, status: None };
        match args.err.load(Ordering::SeqCst) {
            0 => Ok(child),
            errno => {
                let _ = child.wait();
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

/// Report the failed step's `errno` to the parent and end the child.
unsafe fn fail(a: &ChildArgs) -> ! {
    // SAFETY: the calling thread's errno; then a plain exit, without atexit handlers.
    unsafe {
        let e = *libc::__errno_location();
        a.err
            .store(if e == 0 { libc::EINVAL } else { e }, Ordering::SeqCst);
        libc::_exit(127)
    }
}

/// The child, on the parent's memory: system calls only, then the program.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive until this child execs or exits; every
    // call below is a plain system call (or `execvpe`, as in glibc's `posix_spawnp`).
    unsafe {
        let a = &*(arg as *const ChildArgs);
        // No handler of the runner may run here; and SIGPIPE, which Rust's runtime ignores,
        // is the program's to have by default (as `std::process::Command` does).
        for sig in 1..libc::SIGRTMAX() {
            let mut sa: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut sa) != 0 {
                continue;
            }
            if sa.sa_sigaction != libc::SIG_DFL
                && (sa.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        // Its own process group (so that cancelling reaches the whole tree), and death with
        // the runner.
        if libc::setpgid(0, 0) != 0 || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(a);
        }
        if a.sandbox >= 0 && crate::kinds::sandbox::restrict_self(a.sandbox).is_err() {
            fail(a);
        }
        for (target, &fd) in a.fds.iter().enumerate() {
            let target = target as RawFd;
            let ok = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                fail(a);
            }
        }
        if libc::chdir(a.cwd) != 0 {
            fail(a);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execvpe(a.file, a.argv, a.envp);
        fail(a)
    }
}

impl Child {
    pub fn id(&self) -> libc::pid_t {
        self.pid
    }

    fn reap(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if r == self.pid {
                self.status = Some(ExitStatus::from_raw(status));
                return Ok(self.status);
            }
            if r == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The exit status, if the child has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        Ok(self
            .reap(0)?
            .expect("waitpid without WNOHANG returns a status"))
    }
}

/// `NAME=value` pairs from strings, for [`Spawn::env`].
pub fn var(k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> (OsString, OsString) {
    (k.as_ref().to_owned(), v.as_ref().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str], cwd: &Path) -> (io::Result<ExitStatus>, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let f = std::fs::File::create(&log).unwrap();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let r = Spawn {
            argv: &argv,
            env: vec![var("SPAWN_TEST", "v=1")],
            cwd,
            stdout: &f,
            stderr: &f,
            sandbox: None,
        }
        .start()
        .and_then(|mut c| c.wait());
        (r, std::fs::read_to_string(&log).unwrap())
    }

    #[test]
    fn runs_a_program_with_its_environment_folder_and_output() {
        let cwd = tempfile::tempdir().unwrap();
        let (r, out) = run(
            &["sh", "-c", "echo $SPAWN_TEST; pwd; echo err >&2; exit 3"],
            cwd.path(),
        );
        assert_eq!(r.unwrap().code(), Some(3));
        let real = cwd.path().canonicalize().unwrap();
        assert_eq!(out, format!("v=1\n{}\nerr\n", real.display()));
    }

    #[test]
    fn the_program_gets_default_sigpipe_and_its_own_process_group() {
        let cwd = tempfile::tempdir().unwrap();
        // `yes` ends by SIGPIPE once `head` is done (it would print errors forever with the
        // signal ignored); the group id is the child's own pid.
        let (r, out) = run(
            &[
                "sh",
                "-c",
                "yes | head -n 2; cut -d' ' -f5 /proc/$$/stat; echo $$",
            ],
            cwd.path(),
        );
        assert!(r.unwrap().success());
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(&lines[..2], ["y", "y"], "{out}");
        assert_eq!(lines[2], lines[3], "{out}");
    }

    #[test]
    fn a_missing_program_or_folder_is_an_error_not_a_child() {
        let cwd = tempfile::tempdir().unwrap();
        let (r, _) = run(&["no-such-program-xyz"], cwd.path());
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
        let (r, _) = run(&["true"], &cwd.path().join("gone"));
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
