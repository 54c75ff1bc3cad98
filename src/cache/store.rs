//! The on-disk store (its index: `index.rs`; reads relative to held-open folders:
//! `folder.rs`). Layout under the cache folder:
//!
//! ```text
//! objects/ab/<tree hash>/{manifest.json, data/...}   immutable stage outputs
//! records/ab/<key hash>.json                         one per key, written last
//! index/<id>.jsonl                                   keys per (pipeline, stage, point), oldest first
//! index/<id>.latest -> <32 hex digits>              a symbolic link: the latest key's first digits
//! locks/<key hash>.lock                              per-key flock
//! logs/ab/<key hash>.log                             the last attempt's stdout and stderr
//! tmp/work<n>.<host>.<pid>.<nanos>/                 work folders (`work.rs`): obj/ renamed into objects/
//! statcache.json, gc.lock
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value as Json;

use crate::cache::folder::Folder;
use crate::cache::hash::{self, HashError};
use crate::cache::key::CacheKey;
use crate::cache::record::{Hit, Manifest, Record, RECORD_FORMAT};
use crate::pipeline::Point;
use crate::util::{host_name, pid_alive};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache: {context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("{0}")]
    Hash(#[from] HashError),
    #[error("`metrics.json` written by the stage is not valid JSON: {0}")]
    Metrics(serde_json::Error),
}

fn ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
    pub(super) dirs: Arc<Dirs>,
}

/// The folders a cache lookup reads, held open.
#[derive(Debug)]
pub(super) struct Dirs {
    pub records: Folder,
    pub objects: Folder,
    pub index: Folder,
}

/// What the runner knows about an instance when committing it.
pub struct CommitMeta<'a> {
    pub key: &'a CacheKey,
    pub key_hash: &'a str,
    pub pipeline: &'a str,
    pub stage: &'a str,
    pub label: &'a str,
    pub point: &'a Point,
    pub started: SystemTime,
    /// The stage's CPU seconds, where they are its own (`exec::cpu`).
    pub cpu_s: Option<f64>,
    pub git_commit: Option<String>,
}

fn shard(h: &str) -> &str {
    &h[..2.min(h.len())]
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        // Stages run in their pipeline's folder: every path handed to them must be absolute.
        let root = std::path::absolute(root)
            .map_err(ctx(format!("bad cache folder `{}`", root.display())))?;
        for sub in ["objects", "records", "index", "locks", "logs", "tmp"] {
            fs::create_dir_all(root.join(sub))
                .map_err(ctx(format!("cannot create `{}`", root.join(sub).display())))?;
        }
        Ok(Store::at(root))
    }

    /// The store at `root`, an absolute path, as it is (nothing created).
    pub fn at(root: PathBuf) -> Store {
        let dirs = Arc::new(Dirs {
            records: Folder::open(root.join("records")),
            objects: Folder::open(root.join("objects")),
            index: Folder::open(root.join("index")),
        });
        Store { root, dirs }
    }

    pub fn record_path(&self, key: &str) -> PathBuf {
        self.root
            .join("records")
            .join(shard(key))
            .join(format!("{key}.json"))
    }
    pub fn object_dir(&self, h: &str) -> PathBuf {
        self.root.join("objects").join(shard(h)).join(h)
    }
    pub fn object_data(&self, h: &str) -> PathBuf {
        self.object_dir(h).join("data")
    }
    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.lock"))
    }
    pub fn log_rel(&self, key: &str) -> String {
        format!("logs/{}/{key}.log", shard(key))
    }
    pub fn log_path(&self, key: &str) -> PathBuf {
        self.root.join(self.log_rel(key))
    }

    /// Whether the cache's file system has no free blocks left.
    pub fn is_full(&self) -> bool {
        let Ok(c) = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: a NUL-terminated path and a zeroed out-struct.
        unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_bavail == 0
        }
    }

    /// The record of `key`, if it exists and parses.
    pub fn read_record(&self, key: &str) -> Option<Record> {
        self.read_as(key)
    }

    /// The record of `key` read as `T` (all of it, or the part a `T` holds).
    fn read_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = self
            .dirs
            .records
            .read(&format!("{}/{key}.json", shard(key)))
            .ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("ignoring unreadable record {key}: {e}");
                None
            }
        }
    }

    /// A complete entry: the record and the object it names.
    pub fn lookup(&self, key: &str) -> Option<Record> {
        self.complete(key, |r: &Record| &r.output)
    }

    /// [`Store::lookup`], keeping only what a run needs of the record.
    pub fn hit(&self, key: &str) -> Option<Hit> {
        self.complete(key, |h: &Hit| &h.output)
    }

    fn complete<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        output: fn(&T) -> &str,
    ) -> Option<T> {
        let r = self.read_as(key)?;
        let h = output(&r);
        let manifest = format!("{}/{h}/manifest.json", shard(h));
        self.dirs.objects.is_file(&manifest).then_some(r)
    }

    /// Remove work folders left by dead processes of this host.
    pub fn clean_stale_tmp(&self) {
        let Ok(rd) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let parts: Vec<&str> = name.rsplitn(3, '.').collect();
            // name = work<n>.host.pid.nanos -> rsplitn gives [nanos, pid, work<n>.host]
            if parts.len() == 3 {
                let host_ok = parts[2].ends_with(&format!(".{}", host_name()));
                if let Ok(pid) = parts[1].parse::<u32>() {
                    if host_ok && !pid_alive(pid) {
                        remove_tree(&e.path());
                    }
                }
            }
        }
    }

    /// Hash the output `obj/data/` of a work folder, move `obj/` into `objects/` (unless
    /// identical content is already there: then it stays where it is), then write the record.
    /// Returns the record.
    pub fn commit(&self, obj: &Path, meta: CommitMeta) -> Result<Record, StoreError> {
        let data = obj.join("data");
        let (hash, files) = hash::hash_dir(&data)?;
        let metrics = match fs::read(data.join("metrics.json")) {
            Ok(b) => Some(serde_json::from_slice::<Json>(&b).map_err(StoreError::Metrics)?),
            Err(_) => None,
        };
        let bytes = files.iter().map(|f| f.size).sum();
        let nfiles = files.len() as u64;
        let dest = self.object_dir(&hash);
        if !dest.join("manifest.json").is_file() {
            if dest.exists() {
                // A damaged object without its manifest: replace it.
                remove_tree(&dest);
            }
            let manifest = Manifest {
                format: RECORD_FORMAT,
                hash: hash.clone(),
                files,
            };
            write_file_synced(
                &obj.join("manifest.json"),
                &serde_json::to_vec_pretty(&manifest).expect("plain data"),
            )?;
            sync_tree(&data)?;
            seal(obj);
            let parent = dest.parent().expect("sharded");
            fs::create_dir_all(parent).map_err(ctx("cannot create an object folder"))?;
            if let Err(e) = fs::rename(obj, &dest) {
                // Another process may have committed the same content just now.
                if !dest.join("manifest.json").is_file() {
                    return Err(StoreError::Io {
                        context: format!("cannot move the output into `{}`", dest.display()),
                        source: e,
                    });
                }
            }
            sync_dir(parent);
        }
        let ended = SystemTime::now();
        let record = Record {
            format: RECORD_FORMAT,
            key_hash: meta.key_hash.to_owned(),
            key: meta.key.clone(),
            output: hash,
            files: nfiles,
            bytes,
            metrics,
            pipeline: meta.pipeline.to_owned(),
            stage: meta.stage.to_owned(),
            label: meta.label.to_owned(),
            started: humantime::format_rfc3339_millis(meta.started).to_string(),
            ended: humantime::format_rfc3339_millis(ended).to_string(),
            duration_s: ended
                .duration_since(meta.started)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            cpu_s: meta.cpu_s,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit: meta.git_commit,
            host: host_name(),
            log: self.log_rel(meta.key_hash),
        };
        self.write_record(&record)?;
        self.append_index(
            meta.pipeline,
            meta.stage,
            meta.label,
            meta.point,
            meta.key_hash,
        );
        Ok(record)
    }

    /// Write a record atomically (temp file, fsync, rename).
    pub fn write_record(&self, record: &Record) -> Result<(), StoreError> {
        let path = self.record_path(&record.key_hash);
        let parent = path.parent().expect("sharded");
        fs::create_dir_all(parent).map_err(ctx("cannot create a record folder"))?;
        let tmp = parent.join(format!(".{}.{}.tmp", record.key_hash, std::process::id()));
        write_file_synced(
            &tmp,
            &serde_json::to_vec_pretty(record).expect("plain data"),
        )?;
        fs::rename(&tmp, &path).map_err(ctx(format!("cannot write `{}`", path.display())))?;
        sync_dir(parent);
        Ok(())
    }

    /// Every record file: (key hash, parsed record or None when unreadable).
    pub fn all_records(&self) -> Vec<(String, Option<Record>)> {
        let mut out = Vec::new();
        for shard in read_dir_sorted(&self.root.join("records")) {
            for f in read_dir_sorted(&shard) {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Some(key) = name.strip_suffix(".json").filter(|k| !k.starts_with('.')) {
                    let rec = fs::read(&f)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    out.push((key.to_owned(), rec));
                }
            }
        }
        out
    }

    /// Every object folder name.
    pub fn all_objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        for shard in read_dir_sorted(&self.root.join("objects")) {
            for o in read_dir_sorted(&shard) {
                out.push(
                    o.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            }
        }
        out
    }
}

pub fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = File::create(path).map_err(ctx(format!("cannot write `{}`", path.display())))?;
    f.write_all(bytes)
        .map_err(ctx(format!("cannot write `{}`", path.display())))?;
    f.sync_all()
        .map_err(ctx(format!("cannot sync `{}`", path.display())))
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// fsync every file and folder under `dir`.
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for (_, path, _) in hash::walk(dir)? {
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(ctx(format!("cannot sync `{}`", path.display())))?;
    }
    sync_dir(dir);
    Ok(())
}

/// Make an object read-only, so that a stage cannot edit its inputs in place.
fn seal(dir: &Path) {
    let _ = set_mode_tree(dir, 0o444, 0o555);
}

fn set_mode_tree(dir: &Path, file_mode: u32, dir_mode: u32) -> io::Result<()> {
    for e in fs::read_dir(dir)?.flatten() {
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
            set_mode_tree(&p, file_mode, dir_mode)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(dir_mode))?;
        } else if ft.is_file() {
            fs::set_permissions(&p, fs::Permissions::from_mode(file_mode))?;
        }
    }
    Ok(())
}

/// Delete a folder tree, sealed or not. Best effort.
pub fn remove_tree(dir: &Path) {
    if fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    let _ = set_mode_tree(dir, 0o644, 0o755);
    let _ = fs::remove_dir_all(dir);
}
