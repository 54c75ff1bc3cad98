//! What the cache keeps about an entry: the record (one per key) and an object's manifest.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::cache::hash::FileEntry;
use crate::cache::key::CacheKey;

pub const RECORD_FORMAT: u32 = 1;

/// One per cache key; written last, so its presence means the entry is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub key_hash: String,
    pub key: CacheKey,
    /// Tree hash of the output folder (the object's name).
    pub output: String,
    pub files: u64,
    pub bytes: u64,
    /// The stage's `metrics.json`, when it wrote one.
    pub metrics: Option<Json>,
    pub pipeline: String,
    pub stage: String,
    pub label: String,
    pub started: String,
    pub ended: String,
    pub duration_s: f64,
    /// CPU seconds (user and system) of the stage's run, where they are its own: none where
    /// another stage ran beside it in the same process (`exec::cpu`), or in a record written
    /// before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub host: String,
    /// The stage's log, relative to the cache folder.
    pub log: String,
}

/// What a run keeps of an entry it used or made: its output, how long it took, what it
/// measured. Read from a record without the key the record holds, which is most of it (a
/// gather's key names every instance it gathers), since a rerun of a large sweep reads 10^5
/// records.
#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    pub key_hash: String,
    pub output: String,
    pub duration_s: f64,
    #[serde(default)]
    pub cpu_s: Option<f64>,
    pub metrics: Option<Json>,
}

impl From<Record> for Hit {
    fn from(r: Record) -> Hit {
        Hit {
            key_hash: r.key_hash,
            output: r.output,
            duration_s: r.duration_s,
            cpu_s: r.cpu_s,
            metrics: r.metrics,
        }
    }
}

/// Stored in each object beside its `data/` folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub hash: String,
    pub files: Vec<FileEntry>,
}
