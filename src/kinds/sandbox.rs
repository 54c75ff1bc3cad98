//! The sandbox of `command` stages: with Linux Landlock (5.13 and later), the program and
//! everything it starts may write only beneath its output folder, its scratch folder
//! (`$TMPDIR`) and `/dev` (`/dev/null`, terminals, GPUs; all of `/dev/shm`). Any other write,
//! into the workspace, the cache or elsewhere, fails with `EACCES`. Reading is not restricted.
//!
//! The ruleset is built in the runner, before the child is started (`spawn`); the child only
//! calls `prctl` and `landlock_restrict_self`, plain system calls, before its `execve`.
//! `CLLM4REC_SANDBOX=off` turns it off.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Once;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

const WRITE_FILE: u64 = 1 << 1;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
/// MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM.
const MAKE_ANY: u64 = 0b111_1111 << 6;
/// ABI 2.
const REFER: u64 = 1 << 13;
/// ABI 3.
const TRUNCATE: u64 = 1 << 14;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// A Landlock ruleset ready to be applied to a child process.
pub struct Sandbox {
    ruleset: OwnedFd,
}

/// The Landlock ABI version of the running kernel, if it has Landlock.
pub fn landlock_abi() -> Option<i64> {
    // SAFETY: the documented way to ask for the ABI version (no attribute, size 0).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v)
}

fn disabled_by_env() -> bool {
    matches!(
        std::env::var("CLLM4REC_SANDBOX").as_deref(),
        Ok("off" | "0" | "false" | "no")
    )
}

impl Sandbox {
    /// A ruleset that allows writes only beneath `writable` (and `/dev`). `None` when the
    /// sandbox is turned off, or the kernel has no Landlock (said once, as a warning).
    pub fn new(writable: &[&Path]) -> io::Result<Option<Sandbox>> {
        if disabled_by_env() {
            return Ok(None);
        }
        let Some(abi) = landlock_abi() else {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                tracing::warn!(
                    "this kernel has no Landlock: `command` stages run without the sandbox \
                     that keeps their writes inside their output folder"
                )
            });
            return Ok(None);
        };
        let mut all = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_ANY;
        if abi >= 2 {
            all |= REFER;
        }
        let file_write = if abi >= 3 {
            all |= TRUNCATE;
            WRITE_FILE | TRUNCATE
        } else {
            WRITE_FILE
        };
        let attr = RulesetAttr {
            handled_access_fs: all,
        };
        // SAFETY: a valid attribute of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh file descriptor that we own.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let sb = Sandbox { ruleset };
        for dir in writable {
            sb.allow(dir, all)?;
        }
        sb.allow(Path::new("/dev"), file_write)?;
        if Path::new("/dev/shm").is_dir() {
            sb.allow(Path::new("/dev/shm"), all)?;
        }
        Ok(Some(sb))
    }

    fn allow(&self, dir: &Path, access: u64) -> io::Result<()> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))?;
        // SAFETY: a NUL-terminated path; O_PATH opens nothing but a reference.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("`{}`: {e}", dir.display()),
            ));
        }
        // SAFETY: a fresh file descriptor that we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let rule = PathBeneathAttr {
            allowed_access: access,
            parent_fd: fd.as_raw_fd(),
        };
        // SAFETY: a valid rule for a ruleset we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.ruleset.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("`{}`: {e}", dir.display()),
            ));
        }
        Ok(())
    }

    /// The ruleset's file descriptor, for [`restrict_self`] in the child.
    pub fn fd(&self) -> libc::c_int {
        self.ruleset.as_raw_fd()
    }
}

/// Restrict the calling process (a child between its start and `execve`) with the ruleset `fd`.
/// Only system calls: no allocation, no locks.
pub fn restrict_self(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
