//! Each instance's key and cached record, computed without writing anything (unlike `plan`,
//! which saves the stat cache): audits and reproductions only read the cache.

use std::path::Path;
use std::sync::Mutex;

use crate::audit::AuditError;
use crate::cache::record::Record;
use crate::cache::statcache::StatCache;
use crate::cache::store::Store;
use crate::exec::keys::instance_key;
use crate::pipeline::Pipeline;

/// The cache folder, opened without creating anything in it.
pub fn open_read_only(root: &Path) -> Result<Store, AuditError> {
    if !root.join("records").is_dir() {
        return Err(AuditError::Usage(format!(
            "no cache at `{}` (run the pipeline first, or pass `--cache-dir`)",
            root.display()
        )));
    }
    let root = std::path::absolute(root).map_err(crate::audit::io(format!(
        "bad cache folder `{}`",
        root.display()
    )))?;
    Ok(Store::at(root))
}

/// Per instance: (key hash when every input is cached, the complete entry if there is one).
pub struct Resolved {
    pub keys: Vec<Option<String>>,
    pub records: Vec<Option<Record>>,
}

pub fn resolve(p: &Pipeline, store: &Store) -> Result<Resolved, AuditError> {
    // Loaded, never saved: unchanged files are not rehashed, and the cache is not touched.
    let stat = Mutex::new(StatCache::load(&store.root.join("statcache.json")));
    let mut outputs: Vec<Option<String>> = vec![None; p.instances.len()];
    let mut keys = Vec::with_capacity(p.instances.len());
    let mut records = Vec::with_capacity(p.instances.len());
    for i in 0..p.instances.len() {
        let (key, complete) = instance_key(p, i, &outputs, &stat)?;
        let hash = key.hash();
        let rec = if complete { store.lookup(&hash) } else { None };
        outputs[i] = rec.as_ref().map(|r| r.output.clone());
        keys.push(complete.then_some(hash));
        records.push(rec);
    }
    Ok(Resolved { keys, records })
}

/// Whether instance `i` must reproduce byte for byte: the stage's `bit_exact:`, else its kind's.
pub fn bit_exact(p: &Pipeline, i: usize) -> bool {
    let inst = &p.instances[i];
    p.stages[inst.stage]
        .bit_exact
        .unwrap_or_else(|| inst.kind.bit_exact())
}

/// The indices of every instance instance `i` depends on, `i` included, upstream first.
pub fn ancestors(p: &Pipeline, i: usize) -> Vec<usize> {
    let mut seen = vec![false; p.instances.len()];
    let mut stack = vec![i];
    while let Some(j) = stack.pop() {
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        for input in &p.instances[j].inputs {
            stack.extend(input.instances.iter().copied());
        }
    }
    // `instances` is in a topological order.
    (0..p.instances.len()).filter(|&j| seen[j]).collect()
}
