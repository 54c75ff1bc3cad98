//! `reproduce`: run cached instances again, each from its recorded inputs, into a scratch
//! folder outside the cache, and compare what they write with the recorded outputs.
//!
//! The cache is only read: inputs are copied out of it (a stage running as root could
//! otherwise write into a sealed object), the stage writes into the scratch folder, its log
//! goes there too, and the stat cache is not saved.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::audit::bundle::label_dir;
use crate::audit::lineage::normalize;
use crate::audit::numdiff;
use crate::audit::resolve::{bit_exact, Resolved};
use crate::audit::{io, AuditError};
use crate::cache::hash;
use crate::cache::record::Manifest;
use crate::cache::store::{remove_tree, Store};
use crate::exec::runner::{gathered_name, write_params_file};
use crate::exec::CANCEL;
use crate::kinds::{StageContext, StageError};
use crate::pipeline::Pipeline;

#[derive(Debug, Clone)]
pub enum Outcome {
    Identical,
    /// The output hash differs; `files` says how, one line per file.
    Differs {
        bit_exact: bool,
        now: String,
        files: Vec<String>,
    },
    /// The stage failed; the message and the tail of its log.
    Failed(String, String),
    NotCached,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub recorded: Option<String>,
    pub outcome: Outcome,
    pub seconds: f64,
}

/// `n` of `candidates`, picked by a seeded hash of their labels (stable across runs and
/// cache states), in pipeline order.
pub fn sample(p: &Pipeline, candidates: &[usize], n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<(String, usize)> = candidates
        .iter()
        .map(|&i| {
            let h = blake3::hash(format!("{seed}\0{}", p.instances[i].label).as_bytes());
            (h.to_hex().to_string(), i)
        })
        .collect();
    v.sort();
    let mut out: Vec<usize> = v.into_iter().take(n).map(|(_, i)| i).collect();
    out.sort();
    out
}

/// A fresh scratch folder (under `parent`, else the system's temp folder), never in the cache.
pub fn scratch_dir(store: &Store, parent: Option<&Path>) -> Result<PathBuf, AuditError> {
    let parent = parent
        .map(Path::to_owned)
        .unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!(
        "cllm4rec-reproduce-{}-{}",
        std::process::id(),
        crate::util::unix_nanos()
    ));
    if normalize(&dir).starts_with(normalize(&store.root)) {
        return Err(AuditError::Usage(format!(
            "the scratch folder `{}` would be inside the cache; choose another with `--scratch`",
            dir.display()
        )));
    }
    fs::create_dir_all(&dir).map_err(io(format!("cannot create `{}`", dir.display())))?;
    Ok(dir)
}

fn copy_tree(src: &Path, dest: &Path) -> Result<(), AuditError> {
    fs::create_dir_all(dest).map_err(io(format!("cannot create `{}`", dest.display())))?;
    for (rel, path, _) in hash::walk(src)? {
        let to = dest.join(&rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)
                .map_err(io(format!("cannot create `{}`", parent.display())))?;
        }
        fs::copy(&path, &to).map_err(io(format!("cannot copy `{}`", path.display())))?;
    }
    Ok(())
}

/// Re-execute instances `which` (pipeline order); `on_row` sees each result as it comes.
pub fn reproduce(
    p: &Pipeline,
    store: &Store,
    resolved: &Resolved,
    which: &[usize],
    scratch: &Path,
    mut on_row: impl FnMut(&Row),
) -> Result<Vec<Row>, AuditError> {
    let mut rows = Vec::new();
    for (n, &i) in which.iter().enumerate() {
        let inst = &p.instances[i];
        let Some(rec) = &resolved.records[i] else {
            let row = Row {
                label: inst.label.clone(),
                recorded: None,
                outcome: Outcome::NotCached,
                seconds: 0.0,
            };
            on_row(&row);
            rows.push(row);
            continue;
        };
        let idir = scratch.join(format!("{n:03}-{}", label_dir(&inst.label)));
        let mut inputs: BTreeMap<String, PathBuf> = BTreeMap::new();
        for input in &inst.inputs {
            let data = |j: usize| {
                resolved.records[j]
                    .as_ref()
                    .map(|r| store.object_data(&r.output))
                    .ok_or_else(|| {
                        AuditError::Usage(format!("input `{}` is not cached", p.instances[j].label))
                    })
            };
            let dir = idir.join("in").join(&input.stage);
            if input.gather {
                for &j in &input.instances {
                    copy_tree(&data(j)?, &dir.join(gathered_name(p, j)))?;
                }
            } else {
                copy_tree(&data(input.instances[0])?, &dir)?;
            }
            inputs.insert(input.stage.clone(), dir);
        }
        let out = idir.join("out");
        fs::create_dir_all(&out).map_err(io(format!("cannot create `{}`", out.display())))?;
        let params_file = idir.join("params.json");
        write_params_file(inst, &params_file).map_err(io("cannot write params.json"))?;
        let log_path = idir.join("log");
        let log = fs::File::create(&log_path)
            .map_err(io(format!("cannot create `{}`", log_path.display())))?;
        let progress = |_: crate::kinds::Progress| {};
        let ctx = StageContext {
            instance: inst,
            workdir: &p.dir,
            out: &out,
            inputs: &inputs,
            params_file: &params_file,
            log: &log,
            cancel: &CANCEL,
            progress: &progress,
        };
        let t0 = Instant::now();
        let result = inst.kind.run(&ctx);
        let seconds = t0.elapsed().as_secs_f64();
        if CANCEL.load(Ordering::SeqCst) {
            return Err(AuditError::Exec(crate::exec::ExecError::Cancelled));
        }
        let outcome = match result {
            Err(StageError::Cancelled) => {
                return Err(AuditError::Exec(crate::exec::ExecError::Cancelled))
            }
            Err(StageError::Failed(m)) => Outcome::Failed(m, log_tail(&log_path, 10)),
            Ok(()) => {
                let (now, entries) = hash::hash_dir(&out)?;
                if now == rec.output {
                    Outcome::Identical
                } else {
                    let recorded_dir = store.object_data(&rec.output);
                    let recorded = recorded_files(store, &rec.output)?;
                    let now_files: BTreeMap<String, String> =
                        entries.into_iter().map(|e| (e.path, e.hash)).collect();
                    Outcome::Differs {
                        bit_exact: bit_exact(p, i),
                        now,
                        files: file_differences(&recorded, &now_files, &recorded_dir, &out),
                    }
                }
            }
        };
        let row = Row {
            label: inst.label.clone(),
            recorded: Some(rec.output.clone()),
            outcome,
            seconds,
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// path -> hash of a recorded output: its manifest, else its files as they are.
fn recorded_files(store: &Store, output: &str) -> Result<BTreeMap<String, String>, AuditError> {
    let manifest = fs::read(store.object_dir(output).join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
    let entries = match manifest {
        Some(m) => m.files,
        None => hash::hash_dir(&store.object_data(output))?.1,
    };
    Ok(entries.into_iter().map(|e| (e.path, e.hash)).collect())
}

fn file_differences(
    recorded: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    recorded_dir: &Path,
    now_dir: &Path,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, h) in recorded {
        match now.get(path) {
            None => out.push(format!("`{path}` was not written this time")),
            Some(g) if g != h => {
                let how = numdiff::diff_files(&recorded_dir.join(path), &now_dir.join(path))
                    .map(|d| d.describe())
                    .unwrap_or_else(|| format!("recorded {}, now {}", &h[..12], &g[..12]));
                out.push(format!("`{path}` differs: {how}"));
            }
            Some(_) => {}
        }
    }
    for path in now.keys().filter(|p| !recorded.contains_key(*p)) {
        out.push(format!("`{path}` is new (not in the recorded output)"));
    }
    out
}

fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {l}\n"))
        .collect()
}

/// Remove the scratch folder (its copies may be read-only).
pub fn remove_scratch(dir: &Path) {
    remove_tree(dir)
}
