//! `gc`: delete objects that no record points to and, with `--keep-last N`, all but the last N
//! records of each (pipeline, stage, matrix point). Runs under the exclusive store lock, so it
//! never deletes what a running pipeline is using.

use std::collections::BTreeSet;
use std::fs;

use crate::cache::index::latest_name;
use crate::cache::store::{read_dir_sorted, remove_tree, Store};

#[derive(Debug, Default)]
pub struct GcReport {
    pub records_removed: usize,
    pub objects_removed: usize,
    pub bytes_freed: u64,
}

pub fn gc(store: &Store, keep_last: Option<usize>) -> GcReport {
    let mut report = GcReport::default();
    if let Some(n) = keep_last {
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (path, lines) in store.all_indexes() {
            // The newest first: the key its `.latest` link names (the run that finished
            // last), then the history from its end.
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let latest = store.latest(id).filter(|_| n > 0);
            let mut kept_here: Vec<String> = latest
                .and_then(|l| lines.iter().rev().find(|x| latest_name(&x.key) == l))
                .map(|x| x.key.clone())
                .into_iter()
                .collect();
            for l in lines.iter().rev() {
                seen.insert(l.key.clone());
                if kept_here.len() < n && !kept_here.contains(&l.key) {
                    kept_here.push(l.key.clone());
                }
            }
            // Rewrite the index with only what is kept, oldest first.
            let text: String = lines
                .iter()
                .filter(|l| kept_here.contains(&l.key))
                .map(|l| serde_json::to_string(l).expect("plain data") + "\n")
                .collect();
            let tmp = path.with_extension("jsonl.tmp");
            if fs::write(&tmp, text).is_ok() {
                let _ = fs::rename(&tmp, &path);
            }
            keep.extend(kept_here);
        }
        for (key, _) in store.all_records() {
            if seen.contains(&key)
                && !keep.contains(&key)
                && fs::remove_file(store.record_path(&key)).is_ok()
            {
                let _ = fs::remove_file(store.log_path(&key));
                let _ = fs::remove_file(store.lock_path(&key));
                report.records_removed += 1;
            }
        }
    }
    let referenced: BTreeSet<String> = store
        .all_records()
        .into_iter()
        .filter_map(|(_, r)| r.map(|r| r.output))
        .collect();
    for object in store.all_objects() {
        if !referenced.contains(&object) {
            let dir = store.object_dir(&object);
            report.bytes_freed += crate::cache::hash::walk(&dir)
                .map(|v| v.iter().map(|(_, _, m)| m.len()).sum())
                .unwrap_or(0);
            remove_tree(&dir);
            report.objects_removed += 1;
        }
    }
    store.clean_stale_tmp();
    remove_stale_temp_files(store);
    report
}

/// Temp files of writes that a killed process never finished: records and indexes (renamed
/// into place when whole) and the stat cache. No runner writes while gc holds the store lock.
fn remove_stale_temp_files(store: &Store) {
    let stale = |p: &std::path::Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name.starts_with('.') && name.ends_with(".tmp"))
            || name.ends_with(".jsonl.tmp")
            || name.starts_with("statcache.tmp.")
    };
    let mut files: Vec<std::path::PathBuf> = read_dir_sorted(&store.root.join("records"))
        .iter()
        .flat_map(|shard| read_dir_sorted(shard))
        .collect();
    files.extend(read_dir_sorted(&store.root.join("index")));
    files.extend(read_dir_sorted(&store.root));
    // symlink_metadata: a `.latest` link's temp name is a link, to a key, not a file.
    let not_dir = |f: &std::path::Path| fs::symlink_metadata(f).is_ok_and(|m| !m.is_dir());
    for f in files.iter().filter(|f| not_dir(f) && stale(f)) {
        let _ = fs::remove_file(f);
    }
}
