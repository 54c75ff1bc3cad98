//! The index of the store: per (pipeline, stage, matrix point), the history of the keys its
//! runs used (`index/<id>.jsonl`, oldest first, for `plan` and `gc --keep-last`) and a link to
//! the latest one (`index/<id>.latest`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::key::write_sorted;
use crate::cache::store::Store;
use crate::pipeline::Point;
use crate::util::{now_rfc3339, unix_nanos};

/// A line of an index file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexLine {
    pub key: String,
    pub time: String,
    pub pipeline: String,
    pub stage: String,
    pub label: String,
}

impl Store {
    /// The name, in `index/`, of the history of (pipeline, stage, point), without extension.
    fn index_id(pipeline: &str, stage: &str, point: &Point) -> String {
        let mut id = format!("{pipeline}\0{stage}\0").into_bytes();
        write_sorted(point.iter(), &mut id);
        blake3::hash(&id).to_hex()[..32].to_owned()
    }

    fn index_path(&self, pipeline: &str, stage: &str, point: &Point) -> PathBuf {
        self.history_path(&Store::index_id(pipeline, stage, point))
    }

    /// The history file `index/<id>.jsonl`.
    fn history_path(&self, id: &str) -> PathBuf {
        self.dirs.index.path().join(format!("{id}.jsonl"))
    }

    /// Note that `key` is now the latest of (pipeline, stage, point): one line appended to its
    /// history (one `write` with O_APPEND, so concurrent runners do not interleave), then its
    /// `.latest` link pointed at `key`.
    pub(super) fn append_index(
        &self,
        pipeline: &str,
        stage: &str,
        label: &str,
        point: &Point,
        key: &str,
    ) {
        let line = IndexLine {
            key: key.to_owned(),
            time: now_rfc3339(),
            pipeline: pipeline.into(),
            stage: stage.into(),
            label: label.into(),
        };
        let mut text = serde_json::to_string(&line).expect("plain data");
        text.push('\n');
        let path = self.index_path(pipeline, stage, point);
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&path) {
            if f.write_all(text.as_bytes()).is_ok() {
                set_latest(&path, key);
            }
        }
    }

    /// Note that `key` was used again (a cache hit): it becomes the latest of its (pipeline,
    /// stage, point) unless it already is, so that `gc --keep-last` keeps what the last run
    /// used. Best effort (a read-only cache stays as it is). The check is one `readlink` of the
    /// `.latest` link: a no-op rerun of 10^5 instances does it 10^5 times (reading each history
    /// instead cost 0.3 to 0.5 s more). A cache written before the links existed gets them here.
    pub fn touch_index(&self, pipeline: &str, stage: &str, label: &str, point: &Point, key: &str) {
        let id = Store::index_id(pipeline, stage, point);
        match self.latest(&id) {
            Some(l) if l == latest_name(key) => {}
            Some(_) => self.append_index(pipeline, stage, label, point, key),
            None => {
                let path = self.history_path(&id);
                if read_index(&path).last().is_some_and(|l| l.key == key) {
                    set_latest(&path, key);
                } else {
                    self.append_index(pipeline, stage, label, point, key);
                }
            }
        }
    }

    /// What the `.latest` link of history `id` names: the key the last run of its (pipeline,
    /// stage, point) used, as [`latest_name`] writes it. Where two runs of one point race, this
    /// link, not the history's last line, says which one finished last.
    pub fn latest(&self, id: &str) -> Option<String> {
        self.dirs.index.read_link(&format!("{id}.latest"))
    }

    /// Keys recorded for (pipeline, stage, point), oldest first.
    pub fn history(&self, pipeline: &str, stage: &str, point: &Point) -> Vec<IndexLine> {
        read_index(&self.index_path(pipeline, stage, point))
    }

    /// Every index file with its lines.
    pub fn all_indexes(&self) -> Vec<(PathBuf, Vec<IndexLine>)> {
        let Ok(rd) = fs::read_dir(self.dirs.index.path()) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, Vec<IndexLine>)> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .map(|p| {
                let lines = read_index(&p);
                (p, lines)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// What a `.latest` link holds of a key: its first 32 hex digits (128 bits). A target of up to
/// 59 bytes fits in the link's inode on ext4, where the whole 64-digit key would take a 4 KiB
/// block per link (400 MB for 10^5 instances).
pub fn latest_name(key: &str) -> &str {
    &key[..32.min(key.len())]
}

/// Point the `.latest` link of `history` at `key`: a new link renamed over the old one, so a
/// reader sees the one or the other.
fn set_latest(history: &Path, key: &str) {
    let link = history.with_extension("latest");
    let Some(name) = link.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let tmp = link.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        unix_nanos()
    ));
    if std::os::unix::fs::symlink(latest_name(key), &tmp).is_ok()
        && fs::rename(&tmp, &link).is_err()
    {
        let _ = fs::remove_file(&tmp);
    }
}

fn read_index(path: &Path) -> Vec<IndexLine> {
    fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}
