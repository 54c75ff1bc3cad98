//! Remembers the hash of input files by (device, inode, size, mtime, ctime) so that an
//! unchanged `deps` file is not rehashed on every run.
//!
//! An entry is trusted only when the file's mtime was older than the moment it was hashed by
//! more than `RACY_NS`: a file edited within the same timestamp tick as its hashing is
//! rehashed next time (git's "racily clean" rule).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::hash::{self, FileEntry, HashError};

const RACY_NS: i128 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    /// When the hash was computed.
    hashed_ns: i128,
    hash: String,
}

#[derive(Debug, Default)]
pub struct StatCache {
    file: Option<PathBuf>,
    entries: HashMap<PathBuf, Entry>,
    dirty: bool,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl StatCache {
    /// Load from `file`; a missing or unreadable file starts empty (it is only a cache).
    pub fn load(file: &Path) -> StatCache {
        let entries = fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            file: Some(file.to_owned()),
            entries,
            dirty: false,
        }
    }

    /// Write back if anything changed (atomically; a concurrent writer may win, which is fine).
    pub fn save(&self) {
        let (Some(file), true) = (&self.file, self.dirty) else {
            return;
        };
        let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
        if let Ok(bytes) = serde_json::to_vec(&self.entries) {
            // A full or read-only disk: keep the old file, leave no temp file behind.
            if fs::write(&tmp, bytes).is_err() || fs::rename(&tmp, file).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
    }

    /// The blake3 of a file, from the cache when its stat is unchanged.
    pub fn hash_file(&mut self, path: &Path, meta: &fs::Metadata) -> Result<String, HashError> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let ctime_ns = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
        if let Some(e) = self.entries.get(&abs) {
            let same = e.dev == meta.dev()
                && e.ino == meta.ino()
                && e.size == meta.len()
                && e.mtime_ns == mtime_ns
                && e.ctime_ns == ctime_ns;
            if same && e.hashed_ns - mtime_ns > RACY_NS {
                return Ok(e.hash.clone());
            }
        }
        let hashed_ns = now_ns();
        let h = hash::hash_file(path)?.to_hex().to_string();
        let e = Entry {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            hashed_ns,
            hash: h.clone(),
        };
        self.entries.insert(abs, e);
        self.dirty = true;
        Ok(h)
    }

    /// The content hash of a file (its blake3) or folder (its tree hash).
    pub fn hash_path(&mut self, path: &Path) -> Result<String, HashError> {
        let meta = fs::symlink_metadata(path).map_err(|source| HashError::Io {
            path: path.to_owned(),
            source,
        })?;
        let meta = if meta.file_type().is_symlink() {
            fs::metadata(path).map_err(|source| HashError::Io {
                path: path.to_owned(),
                source,
            })?
        } else {
            meta
        };
        if meta.is_file() {
            return self.hash_file(path, &meta);
        }
        if !meta.is_dir() {
            return Err(HashError::Special {
                path: path.to_owned(),
            });
        }
        let mut entries = Vec::new();
        for (rel, p, m) in hash::walk(path)? {
            entries.push(FileEntry {
                hash: self.hash_file(&p, &m)?,
                path: rel,
                size: m.len(),
            });
        }
        Ok(hash::tree_hash(&entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_within_same_tick_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"aaaa").unwrap();
        let mut c = StatCache::default();
        let h1 = c.hash_path(&p).unwrap();
        // same size, and force the same mtime: only the racy rule catches this
        let mtime = fs::metadata(&p).unwrap().modified().unwrap();
        fs::write(&p, b"bbbb").unwrap();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let h2 = c.hash_path(&p).unwrap();
        assert_ne!(h1, h2);
        assert_eq!(h2, hash::hash_file(&p).unwrap().to_hex().to_string());
    }

    #[test]
    fn old_unchanged_file_comes_from_cache() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"data").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(10);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut c = StatCache::default();
        let h = c.hash_path(&p).unwrap();
        // poison the cached hash: a trusted entry is returned without reading the file
        let abs = std::path::absolute(&p).unwrap();
        c.entries.get_mut(&abs).unwrap().hash = "cached".into();
        assert_eq!(c.hash_path(&p).unwrap(), "cached");
        assert_ne!(h, "cached");
    }
}
