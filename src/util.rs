//! Small process and time helpers.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// This machine's host name.
pub fn host_name() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return "unknown".to_owned();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
    .clone()
}

/// Whether a local process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The git commit of the folder's repository, if it is in one.
pub fn git_commit(dir: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// `CLLM4REC_IN_<STAGE>`: upper-cased, non-alphanumerics as `_`.
pub fn env_name(stage: &str) -> String {
    stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Keep freed memory in the process instead of unmapping it. Training allocates and frees
/// tensors of hundreds of MiB per batch (the content LM's logits over the word vocabulary);
/// glibc would map each one afresh and page-fault through it, which cost more system time
/// than the arithmetic.
/// The fused trainer (`model::fused`) splits its work across rayon's threads itself and calls
/// matrixmultiply's sgemm inside them; matrixmultiply's own thread pool (on by default through
/// burn's ndarray backend, which multiplies with OpenBLAS instead) would then contend with
/// rayon for the same cores: 2.4 s against 2.0 s for the pretrain benchmark's epoch. The pool
/// reads `MATMUL_NUM_THREADS` once, on first use; a value the user set is kept.
pub fn single_threaded_matrixmultiply() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // set_var is sound while no other thread reads the environment: called first in main.
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
}

pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// A choice between named values (`engine: auto`), written as its name in params and keys.
#[macro_export]
macro_rules! choice {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
