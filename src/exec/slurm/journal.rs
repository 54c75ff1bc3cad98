//! `cache/slurm/journal.jsonl`: one line per submitted instance (its key and Slurm job id),
//! appended and fsynced before the runner starts polling, so that a runner that is restarted
//! finds the jobs it submitted and reattaches to those still queued or running.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One submission of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The instance's cache key.
    pub key: String,
    /// The Slurm job id: `123`, or `123_4` for element 4 of job array 123.
    pub job: String,
    /// The job's name: a reattach checks it, as Slurm reuses ids after a reset.
    pub name: String,
    pub label: String,
    pub pipeline: String,
    /// When it was submitted (RFC 3339, UTC).
    pub time: String,
}

#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal in `slurm_dir` (the folder is created if needed).
    pub fn open(slurm_dir: &Path) -> io::Result<Journal> {
        fs::create_dir_all(slurm_dir)?;
        Ok(Journal {
            path: slurm_dir.join("journal.jsonl"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entries` with one `write` (O_APPEND, so concurrent runners do not interleave
    /// lines), then fsync: once this returns, a restarted runner will see them.
    pub fn append(&self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(e).expect("plain data"));
            text.push('\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        // After a crash mid-write the file ends inside a line: start on a fresh one.
        let len = f.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                text.insert(0, '\n');
            }
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Every entry, oldest first. A line that does not parse (torn by a crash mid-write) is
    /// skipped.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// The latest submission of each key.
    pub fn latest(&self) -> io::Result<HashMap<String, Entry>> {
        let mut map = HashMap::new();
        for e in self.entries()? {
            map.insert(e.key.clone(), e);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, job: &str) -> Entry {
        Entry {
            key: key.into(),
            job: job.into(),
            name: "cllm4rec:s".into(),
            label: format!("s[{key}]"),
            pipeline: "p".into(),
            time: "2025-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn latest_submission_of_a_key_wins_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("slurm")).unwrap();
        assert!(j.latest().unwrap().is_empty());
        j.append(&[entry("a", "10"), entry("b", "11_0")]).unwrap();
        j.append(&[entry("a", "12")]).unwrap();
        // a crash in the middle of a write leaves half a line
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(b"{\"key\":\"b\",\"job\":\"9").unwrap();
        drop(f);
        j.append(&[entry("c", "13")]).unwrap();
        let latest = j.latest().unwrap();
        assert_eq!(latest["a"].job, "12");
        assert_eq!(latest["b"].job, "11_0");
        assert_eq!(
            latest["c"].job, "13",
            "an append after a torn line is whole"
        );
        assert_eq!(j.entries().unwrap().len(), 4);
    }
}
