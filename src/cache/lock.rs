//! Cross-process locks on files (flock): one per cache key, so that two runners compute an
//! instance once, and the store-wide gc lock (shared by runners, exclusive for `gc`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{host_name, pid_alive};

/// Held while an instance is computed; released on drop (or by the kernel if the process dies).
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

/// Who holds a lock: `pid host`.
fn holder(path: &Path) -> Option<(u32, String)> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.to_owned()))
}

impl KeyLock {
    /// Block until the lock at `path` is ours. `on_wait` is told once who holds it.
    pub fn acquire(path: &Path, mut on_wait: impl FnMut(&str)) -> io::Result<KeyLock> {
        let mut told = false;
        let mut delay = Duration::from_millis(5);
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            match file.try_lock() {
                Ok(()) => {
                    // The file may have been unlinked as stale between open and lock.
                    let same = fs::metadata(path)
                        .map(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0))
                        .unwrap_or(false);
                    if !same {
                        continue;
                    }
                    file.set_len(0)?;
                    file.rewind()?;
                    write!(file, "{} {}", std::process::id(), host_name())?;
                    file.flush()?;
                    return Ok(KeyLock { _file: file });
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let h = holder(path);
                    if let Some((pid, host)) = &h {
                        // flock dies with its process; a held lock of a dead local pid is left
                        // by a file system that does not honour that (e.g. some network mounts).
                        if *host == host_name() && !pid_alive(*pid) {
                            tracing::warn!(
                                "removing stale lock {} of dead pid {pid}",
                                path.display()
                            );
                            let _ = fs::remove_file(path);
                            continue;
                        }
                    }
                    if !told {
                        let who = h
                            .map(|(p, host)| format!("pid {p} on {host}"))
                            .unwrap_or_else(|| "another process".into());
                        on_wait(&who);
                        told = true;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

/// The store-wide lock: runners share it, `gc` takes it alone.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    fn open(root: &Path) -> io::Result<(File, PathBuf)> {
        let path = root.join("gc.lock");
        Ok((
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?,
            path,
        ))
    }

    /// On a read-only cache folder the lock file is opened read-only (flock needs no write
    /// access), so that a pipeline whose entries are all there still runs from it.
    pub fn shared(root: &Path) -> io::Result<StoreLock> {
        let f = match Self::open(root) {
            Ok((f, _)) => f,
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
                File::open(root.join("gc.lock")).map_err(|_| e)?
            }
            Err(e) => return Err(e),
        };
        f.lock_shared()?;
        Ok(StoreLock { _file: f })
    }

    pub fn exclusive(root: &Path, mut on_wait: impl FnMut()) -> io::Result<StoreLock> {
        let (f, _) = Self::open(root)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                on_wait();
                f.lock()?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(StoreLock { _file: f })
    }
}
