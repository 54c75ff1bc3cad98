//! `audit --check DIR`: re-verify a bundle against itself and against the files it names.
//!
//! Checked, each a line of the report: every bundled file against its blake3 in
//! `bundle.json` (and no unlisted files); every instance's key against its key hash, its
//! inputs against its upstream instances' outputs, its deps' per-file hashes against the
//! dep hash in its key; each bundled output folder against the recorded output hash and its
//! `metrics.json` against the lineage's metrics; each raw file, where it was, against its
//! hash; and, where the cache holds a record of the same key, its output hash.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use crate::audit::bundle::{BundleManifest, MANIFEST};
use crate::audit::lineage::Lineage;
use crate::audit::AuditError;
use crate::cache::hash::{self, FileEntry};
use crate::cache::key::InputKey;
use crate::cache::store::Store;

#[derive(Debug, Default)]
pub struct CheckReport {
    /// (passed, message); notes that are neither are `None`.
    pub lines: Vec<(Option<bool>, String)>,
}

impl CheckReport {
    fn ok(&mut self, m: impl Into<String>) {
        self.lines.push((Some(true), m.into()));
    }
    fn fail(&mut self, m: impl Into<String>) {
        self.lines.push((Some(false), m.into()));
    }
    fn note(&mut self, m: impl Into<String>) {
        self.lines.push((None, m.into()));
    }
    pub fn problems(&self) -> usize {
        self.lines.iter().filter(|l| l.0 == Some(false)).count()
    }
    pub fn passed(&self) -> usize {
        self.lines.iter().filter(|l| l.0 == Some(true)).count()
    }
    pub fn render(&self) -> String {
        let mut o = String::new();
        for (state, m) in &self.lines {
            let tag = match state {
                Some(true) => "ok    ",
                Some(false) => "FAILED",
                None => "note  ",
            };
            o.push_str(&format!("{tag}  {m}\n"));
        }
        o
    }
}

fn file_hash(path: &Path) -> Result<String, String> {
    hash::hash_file(path)
        .map(|h| h.to_hex().to_string())
        .map_err(|e| e.to_string())
}

pub fn check(dir: &Path, cache: Option<&Store>) -> Result<CheckReport, AuditError> {
    let mut r = CheckReport::default();
    let manifest_path = dir.join(MANIFEST);
    let bytes = fs::read(&manifest_path).map_err(|e| {
        AuditError::Usage(format!(
            "`{}` is not a bundle: cannot read `{MANIFEST}`: {e}",
            dir.display()
        ))
    })?;
    let manifest: BundleManifest = serde_json::from_slice(&bytes).map_err(|e| {
        AuditError::Usage(format!(
            "`{}`: bad `{MANIFEST}`: {e}",
            manifest_path.display()
        ))
    })?;

    // 1. The bundled files, byte for byte.
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let mut intact = 0;
    for f in &manifest.files {
        let path = dir.join(&f.path);
        match file_hash(&path) {
            Ok(h) if h == f.hash => intact += 1,
            Ok(h) => r.fail(format!(
                "`{}` was modified: it hashes to {h}, the bundle says {}",
                f.path, f.hash
            )),
            Err(_) if !path.exists() => r.fail(format!("`{}` is missing", f.path)),
            Err(e) => r.fail(format!("`{}`: {e}", f.path)),
        }
    }
    if intact == manifest.files.len() {
        r.ok(format!("the {intact} bundled files match their blake3"));
    }
    for (rel, _, _) in hash::walk(dir)? {
        if rel != MANIFEST && !listed.contains(rel.as_str()) {
            r.fail(format!("`{rel}` is not part of the bundle (added later)"));
        }
    }

    // 2. The lineage, internally.
    let lineage: Lineage = match fs::read(dir.join("lineage.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(l) => l,
        Err(e) => {
            r.fail(format!("`lineage.json` cannot be read: {e}"));
            return Ok(r);
        }
    };
    match fs::read(dir.join(&manifest.pipeline_file)) {
        Ok(text) if blake3::hash(&text).to_hex().as_str() == lineage.pipeline.file_hash => r.ok(
            format!("`{}` is the audited pipeline text", manifest.pipeline_file),
        ),
        Ok(_) => r.fail(format!(
            "`{}` is not the pipeline text the lineage names (blake3 {})",
            manifest.pipeline_file, lineage.pipeline.file_hash
        )),
        Err(e) => r.fail(format!("`{}`: {e}", manifest.pipeline_file)),
    }
    match fs::read(&lineage.pipeline.file) {
        Ok(text) if blake3::hash(&text).to_hex().as_str() == lineage.pipeline.file_hash => r.note(
            format!("the pipeline file `{}` is unchanged", lineage.pipeline.file),
        ),
        Ok(_) => r.note(format!(
            "the pipeline file `{}` has changed since the bundle was made",
            lineage.pipeline.file
        )),
        Err(_) => r.note(format!(
            "the pipeline file `{}` is not here",
            lineage.pipeline.file
        )),
    }
    let outputs: HashMap<&str, &str> = lineage
        .instances
        .iter()
        .map(|n| (n.label.as_str(), n.output.as_str()))
        .collect();
    for n in &lineage.instances {
        let mut bad = Vec::new();
        if n.key.hash() != n.key_hash {
            bad.push(format!(
                "its key hashes to {}, not {}",
                n.key.hash(),
                n.key_hash
            ));
        }
        for i in &n.inputs {
            let in_key = match n.key.inputs.get(&i.stage) {
                Some(InputKey::One(h)) => h == &i.output,
                Some(InputKey::Gathered(m)) => m.values().any(|h| h == &i.output),
                None => false,
            };
            if !in_key {
                bad.push(format!("input `{}` is not the one in its key", i.label));
            }
            if outputs.get(i.label.as_str()) != Some(&i.output.as_str()) {
                bad.push(format!("input `{}` is not that instance's output", i.label));
            }
        }
        for d in &n.deps {
            if n.key.deps.get(&d.path) != Some(&d.recorded) {
                bad.push(format!("dep `{}` is not the one in its key", d.path));
            }
            if d.files.is_empty() {
                continue;
            }
            let entries: Vec<FileEntry> = d
                .files
                .iter()
                .map(|f| FileEntry {
                    path: f.rel.clone(),
                    size: f.size,
                    hash: f.hash.clone(),
                })
                .collect();
            let h = if entries.len() == 1 && entries[0].path.is_empty() {
                entries[0].hash.clone()
            } else {
                hash::tree_hash(&entries)
            };
            if h != d.recorded {
                bad.push(format!(
                    "the file hashes of dep `{}` do not make its hash",
                    d.path
                ));
            }
        }
        if bad.is_empty() {
            r.ok(format!(
                "`{}`: key, inputs and deps are consistent",
                n.label
            ));
        } else {
            r.fail(format!("`{}`: {}", n.label, bad.join("; ")));
        }
    }

    // 3. The bundled outputs against the recorded output hashes and metrics.
    for o in &manifest.outputs {
        let Some(t) = lineage.targets.iter().find(|t| t.label == o.label) else {
            r.fail(format!(
                "`{}` is bundled but not audited in the lineage",
                o.dir
            ));
            continue;
        };
        match hash::hash_dir(&dir.join(&o.dir)) {
            Ok((h, _)) if h == t.output && h == o.output => r.ok(format!(
                "`{}` is the recorded output of `{}` ({h})",
                o.dir, t.label
            )),
            Ok((h, _)) => r.fail(format!(
                "`{}` hashes to {h}, but the recorded output of `{}` is {}",
                o.dir, t.label, t.output
            )),
            Err(e) => r.fail(format!("`{}`: {e}", o.dir)),
        }
        let mpath = dir.join(&o.dir).join("metrics.json");
        if let Some(recorded) = &t.metrics_json {
            let now = fs::read(&mpath)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            match now {
                Some(v) if same_numbers(&v, recorded) => r.ok(format!(
                    "the {} metric(s) of `{}` match `{}/metrics.json`",
                    t.metrics.len(),
                    t.label,
                    o.dir
                )),
                Some(_) => r.fail(format!(
                    "the metrics of `{}` in the lineage differ from `{}/metrics.json`",
                    t.label, o.dir
                )),
                None => r.fail(format!("`{}/metrics.json` cannot be read", o.dir)),
            }
        }
    }

    // 4. The raw files, where they were.
    for f in &lineage.raw_files {
        match file_hash(Path::new(&f.abs)) {
            Ok(h) if h == f.hash => r.ok(format!("raw file `{}` matches ({h})", f.abs)),
            Ok(h) => r.fail(format!(
                "raw file `{}` has changed: it hashes to {h}, the lineage says {}",
                f.abs, f.hash
            )),
            Err(_) if !Path::new(&f.abs).exists() => {
                r.fail(format!("raw file `{}` is not there", f.abs))
            }
            Err(e) => r.fail(format!("raw file `{}`: {e}", f.abs)),
        }
    }

    // 5. The cache, where it has the same keys.
    if let Some(store) = cache {
        let mut absent = 0;
        for n in &lineage.instances {
            match store.read_record(&n.key_hash) {
                Some(rec) if rec.output == n.output => r.ok(format!(
                    "the cache's record of `{}` names the same output",
                    n.label
                )),
                Some(rec) => r.fail(format!(
                    "the cache's record of `{}` names output {}, the lineage {}",
                    n.label, rec.output, n.output
                )),
                None => absent += 1,
            }
        }
        if absent > 0 {
            r.note(format!(
                "{absent} instance(s) have no record in the cache at `{}` (not compared)",
                store.root.display()
            ));
        }
    }
    Ok(r)
}

/// Whether two metrics documents hold the same values, numbers compared up to their last
/// bits (4 ulp): a cache record written before stop 30 holds the metrics as serde_json's fast
/// float parser read them, which can be one ulp off the decimal in metrics.json, and a bundle's
/// lineage copies the record.
fn same_numbers(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as Json;
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
            }
            _ => x == y,
        },
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_numbers(v, w)))
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_numbers(v, w))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod same_numbers_tests {
    use super::same_numbers;
    use serde_json::json;

    /// One ulp apart is the same number; a real difference, another key or a text is not.
    #[test]
    fn numbers_match_up_to_their_last_bits() {
        let a = json!({"recall@20": 0.10371457456080779, "users": 666, "model": "pop"});
        let b = json!({"recall@20": 0.1037145745608078, "users": 666, "model": "pop"});
        assert!(same_numbers(&a, &b));
        let c = json!({"recall@20": 0.1037145745608, "users": 666, "model": "pop"});
        assert!(!same_numbers(&a, &c));
        let d = json!({"recall@20": 0.10371457456080779, "users": 665, "model": "pop"});
        assert!(!same_numbers(&a, &d));
        let e = json!({"recall@20": 0.10371457456080779, "users": 666, "model": "vae"});
        assert!(!same_numbers(&a, &e));
        let f = json!({"recall@20": 0.10371457456080779, "users": 666});
        assert!(!same_numbers(&a, &f));
    }
}
