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
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub host: String,
    /// The stage's log, relative to the cache folder.
    pub log: String,
}

/// Stored in each object beside its `data/` folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub hash: String,
    pub files: Vec<FileEntry>,
}
