//! Work folders: where a stage writes its output (`obj/data`), its params file and its
//! scratch files before the commit moves `obj/` into `objects/`.
//!
//! A run keeps its work folders and hands each, cleared, to the next instance it computes,
//! instead of making and deleting one per instance. On ext4 without a journal (as on this
//! project's machines) the inode allocator skips every inode deleted in the last five minutes,
//! one lookup each, so the three deletions per instance of a fresh folder made every file
//! creation slower as a sweep grew. Now an instance whose stage leaves nothing in its
//! scratch folder deletes nothing: its params file is overwritten in place, and its `obj/`
//! becomes the object. The folders go when the run ends (a killed run's are removed by the
//! next one, [`Store::clean_stale_tmp`](crate::cache::Store::clean_stale_tmp)).

use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::cache::store::{remove_tree, Store, StoreError};
use crate::util::{host_name, unix_nanos};

/// One instance's work folder: `<cache>/tmp/work<n>.<host>.<pid>.<nanos>/`.
#[derive(Debug)]
pub struct Work {
    pub path: PathBuf,
}

impl Work {
    /// The output folder the commit moves into `objects/`: `obj/`.
    pub fn obj(&self) -> PathBuf {
        self.path.join("obj")
    }
    /// Where the stage writes its output: `obj/data/`.
    pub fn out(&self) -> PathBuf {
        self.path.join("obj").join("data")
    }
    /// The params file the stage reads.
    pub fn params_file(&self) -> PathBuf {
        self.path.join("params.json")
    }
    /// The stage's `$TMPDIR`.
    pub fn scratch(&self) -> PathBuf {
        self.path.join("scratch")
    }
    /// The folders of gathered inputs (links to their objects).
    pub fn inputs(&self) -> PathBuf {
        self.path.join("in")
    }
}

/// A run's work folders, those not in use kept for the next instance.
pub struct WorkFolders {
    tmp: PathBuf,
    /// (folders free now, every folder made)
    state: Mutex<(Vec<PathBuf>, Vec<PathBuf>)>,
}

impl WorkFolders {
    pub fn new(store: &Store) -> WorkFolders {
        WorkFolders {
            tmp: store.root.join("tmp"),
            state: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    /// A work folder with an empty `obj/data/`: a free one, or a new one.
    pub fn take(&self) -> Result<Work, StoreError> {
        let path = {
            let mut s = self.state.lock().expect("work folders lock");
            match s.0.pop() {
                Some(path) => path,
                None => {
                    let path = self.tmp.join(format!(
                        "work{}.{}.{}.{}",
                        s.1.len() + 1,
                        host_name(),
                        std::process::id(),
                        unix_nanos()
                    ));
                    s.1.push(path.clone());
                    path
                }
            }
        };
        let work = Work { path };
        fs::create_dir_all(work.out()).map_err(|source| StoreError::Io {
            context: format!("cannot create a work folder `{}`", work.path.display()),
            source,
        })?;
        Ok(work)
    }

    /// Clear what the instance left (an output not moved into `objects/`, gathered inputs,
    /// scratch files) and keep the folder for the next instance; a folder that cannot be
    /// cleared is removed instead.
    pub fn give_back(&self, work: Work) {
        if clear(&work).is_err() {
            remove_tree(&work.path);
            return;
        }
        self.state
            .lock()
            .expect("work folders lock")
            .0
            .push(work.path);
    }
}

/// Remove `obj/` and `in/` if present, and everything inside `scratch/`.
fn clear(work: &Work) -> std::io::Result<()> {
    for dir in [work.obj(), work.inputs()] {
        if fs::symlink_metadata(&dir).is_ok() {
            remove_tree(&dir);
            if fs::symlink_metadata(&dir).is_ok() {
                return Err(std::io::Error::other("cannot remove"));
            }
        }
    }
    match fs::read_dir(work.scratch()) {
        Ok(entries) => {
            for e in entries {
                let p = e?.path();
                remove_tree(&p);
                if fs::symlink_metadata(&p).is_ok() {
                    return Err(std::io::Error::other("cannot remove"));
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for WorkFolders {
    /// The run is over: remove its folders (one still in use too, should a worker hold one
    /// after a failure elsewhere).
    fn drop(&mut self) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for path in &s.1 {
            remove_tree(path);
        }
    }
}
