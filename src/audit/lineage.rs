//! The lineage of a metric: every upstream stage instance with its key, record and output,
//! down to the content hash of each raw file that a stage's `deps` (or a kind's implicit
//! deps, such as `ingest`'s dataset folder) hashed into its key.
//!
//! The key records a folder dep as one tree hash; its per-file hashes are recomputed from the
//! files as they are now and accepted only when they hash back to the recorded tree hash
//! (otherwise the dep is reported as changed, with no per-file hashes).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::audit::resolve::{ancestors, bit_exact, Resolved};
use crate::audit::AuditError;
use crate::cache::hash::{self, FileEntry};
use crate::cache::key::{canonical_json, CacheKey};
use crate::pipeline::Pipeline;

pub const LINEAGE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lineage {
    pub format: u32,
    pub tool_version: String,
    pub pipeline: PipelineRef,
    /// The audited instances (those with metrics, or every instance of the named stage).
    pub targets: Vec<Target>,
    /// Every instance the targets depend on (targets included), upstream first.
    pub instances: Vec<Node>,
    /// Every raw file under the deps of those instances, by path.
    pub raw_files: Vec<RawFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipelineRef {
    pub name: String,
    /// The pipeline file, absolute.
    pub file: String,
    /// blake3 of the pipeline file's text as it was loaded.
    pub file_hash: String,
    /// `--set` overrides given to the audit.
    pub sets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub label: String,
    pub stage: String,
    pub key: String,
    pub output: String,
    /// Every number of the record's metrics, flattened (`a.b`, `rows.3`).
    pub metrics: Vec<Metric>,
    /// The record's metrics as the stage wrote them.
    pub metrics_json: Option<Json>,
    /// Labels of the instances this one depends on, itself last.
    pub lineage: Vec<String>,
    /// Absolute paths of the raw files at the roots of the lineage.
    pub raw_files: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub label: String,
    pub stage: String,
    pub kind: String,
    pub kind_version: u32,
    pub bit_exact: bool,
    pub key_hash: String,
    /// The full key: resolved params, settings, shared params, matrix point, seed, input
    /// output hashes and dep hashes.
    pub key: CacheKey,
    pub inputs: Vec<NodeInput>,
    pub output: String,
    pub files: u64,
    pub bytes: u64,
    pub started: String,
    pub ended: String,
    pub duration_s: f64,
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub host: String,
    pub deps: Vec<DepInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInput {
    pub stage: String,
    pub label: String,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepInfo {
    /// As written in the pipeline, relative to its folder.
    pub path: String,
    pub abs: String,
    /// The hash in the key.
    pub recorded: String,
    /// The hash of the files now (None when they cannot be read).
    pub current: Option<String>,
    pub error: Option<String>,
    /// Per-file hashes; empty unless `current == recorded`.
    pub files: Vec<RawFile>,
}

impl DepInfo {
    pub fn matches(&self) -> bool {
        self.current.as_deref() == Some(self.recorded.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RawFile {
    /// Relative to the working folder when under it, else absolute.
    pub path: String,
    pub abs: String,
    /// The file's path inside its dep folder (empty when the dep is the file itself).
    pub rel: String,
    pub size: u64,
    /// blake3 of its bytes (as `b3sum` prints it).
    pub hash: String,
    /// The dep as written.
    pub dep: String,
    /// Labels of the instances whose keys hold it.
    pub used_by: Vec<String>,
}

/// Lexically normalized absolute path (`a/../b` -> `b`), without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn display(abs: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| abs.strip_prefix(normalize(&cwd)).ok().map(Path::to_owned))
        .unwrap_or_else(|| abs.to_owned())
        .display()
        .to_string()
}

/// Every number in a metrics object, with its path.
pub fn flatten_metrics(v: &Json) -> Vec<Metric> {
    fn walk(v: &Json, prefix: &str, out: &mut Vec<Metric>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Json::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push(Metric {
                        name: prefix.to_owned(),
                        value: x,
                    })
                }
            }
            Json::Object(m) => {
                for (k, x) in m {
                    walk(x, &join(k), out)
                }
            }
            Json::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &join(&i.to_string()), out)
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

type Hashed = Result<(String, Vec<FileEntry>, bool), String>;

/// (hash, files, is a folder) of a dep as it is now.
fn hash_dep(abs: &Path) -> Hashed {
    let meta =
        std::fs::metadata(abs).map_err(|e| format!("cannot read `{}`: {e}", abs.display()))?;
    if meta.is_dir() {
        hash::hash_dir(abs)
            .map(|(h, files)| (h, files, true))
            .map_err(|e| e.to_string())
    } else {
        let h = hash::hash_file(abs).map_err(|e| e.to_string())?;
        let h = h.to_hex().to_string();
        let files = vec![FileEntry {
            path: String::new(),
            size: meta.len(),
            hash: h.clone(),
        }];
        Ok((h, files, false))
    }
}

/// The lineage of `targets` (instance indices; each must be cached).
pub fn build(
    p: &Pipeline,
    resolved: &Resolved,
    targets: &[usize],
    sets: &[String],
) -> Result<Lineage, AuditError> {
    let record = |j: usize| {
        resolved.records[j].as_ref().ok_or_else(|| {
            AuditError::Usage(format!(
                "`{}` is not cached; run the pipeline first",
                p.instances[j].label
            ))
        })
    };
    let mut wanted = vec![false; p.instances.len()];
    for &t in targets {
        for j in ancestors(p, t) {
            wanted[j] = true;
        }
    }
    let mut dep_cache: HashMap<PathBuf, Hashed> = HashMap::new();
    let mut raw: BTreeMap<String, RawFile> = BTreeMap::new();
    let mut nodes = Vec::new();
    for j in (0..p.instances.len()).filter(|&j| wanted[j]) {
        let inst = &p.instances[j];
        let rec = record(j)?;
        let mut inputs = Vec::new();
        for input in &inst.inputs {
            for &u in &input.instances {
                inputs.push(NodeInput {
                    stage: input.stage.clone(),
                    label: p.instances[u].label.clone(),
                    output: record(u)?.output.clone(),
                });
            }
        }
        let mut deps = Vec::new();
        for d in &inst.deps {
            let abs = normalize(&d.abs);
            let recorded = rec.key.deps.get(&d.rel).cloned().unwrap_or_default();
            let hashed = dep_cache
                .entry(abs.clone())
                .or_insert_with(|| hash_dep(&abs))
                .clone();
            let mut info = DepInfo {
                path: d.rel.clone(),
                abs: abs.display().to_string(),
                recorded,
                current: None,
                error: None,
                files: Vec::new(),
            };
            match hashed {
                Ok((h, files, is_dir)) => {
                    info.current = Some(h);
                    if info.matches() {
                        for f in files {
                            let fabs = if is_dir {
                                abs.join(&f.path)
                            } else {
                                abs.clone()
                            };
                            let rf = RawFile {
                                path: display(&fabs),
                                abs: fabs.display().to_string(),
                                rel: f.path,
                                size: f.size,
                                hash: f.hash,
                                dep: d.rel.clone(),
                                used_by: vec![inst.label.clone()],
                            };
                            let e = raw.entry(rf.abs.clone()).or_insert_with(|| rf.clone());
                            if !e.used_by.contains(&inst.label) {
                                e.used_by.push(inst.label.clone());
                            }
                            info.files.push(rf);
                        }
                    }
                }
                Err(e) => info.error = Some(e),
            }
            deps.push(info);
        }
        nodes.push(Node {
            label: inst.label.clone(),
            stage: inst.stage_name.clone(),
            kind: inst.kind.name().to_owned(),
            kind_version: rec.key.kind_version,
            bit_exact: bit_exact(p, j),
            key_hash: rec.key_hash.clone(),
            key: rec.key.clone(),
            inputs,
            output: rec.output.clone(),
            files: rec.files,
            bytes: rec.bytes,
            started: rec.started.clone(),
            ended: rec.ended.clone(),
            duration_s: rec.duration_s,
            tool_version: rec.tool_version.clone(),
            git_commit: rec.git_commit.clone(),
            host: rec.host.clone(),
            deps,
        });
    }
    let by_label: HashMap<&str, &Node> = nodes.iter().map(|n| (n.label.as_str(), n)).collect();
    let mut out_targets = Vec::new();
    for &t in targets {
        let rec = record(t)?;
        let lineage: Vec<String> = ancestors(p, t)
            .into_iter()
            .map(|j| p.instances[j].label.clone())
            .collect();
        let mut raw_files: Vec<String> = lineage
            .iter()
            .filter_map(|l| by_label.get(l.as_str()))
            .flat_map(|n| {
                n.deps
                    .iter()
                    .flat_map(|d| d.files.iter().map(|f| f.abs.clone()))
            })
            .collect();
        raw_files.sort();
        raw_files.dedup();
        out_targets.push(Target {
            // this pipeline's names: the record may have been written by another pipeline
            // whose instance had the same key under another name
            label: p.instances[t].label.clone(),
            stage: p.instances[t].stage_name.clone(),
            key: rec.key_hash.clone(),
            output: rec.output.clone(),
            metrics: rec
                .metrics
                .as_ref()
                .map(flatten_metrics)
                .unwrap_or_default(),
            metrics_json: rec.metrics.clone(),
            lineage,
            raw_files,
        });
    }
    Ok(Lineage {
        format: LINEAGE_FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        pipeline: PipelineRef {
            name: p.name.clone(),
            file: normalize(&p.source.path).display().to_string(),
            file_hash: blake3::hash(p.source.text.as_bytes()).to_hex().to_string(),
            sets: sets.to_vec(),
        },
        targets: out_targets,
        instances: nodes,
        raw_files: raw.into_values().collect(),
    })
}

fn map_json<T: Serialize>(m: &T) -> String {
    canonical_json(&serde_json::to_value(m).expect("plain data"))
}

/// The human-readable report.
pub fn render_text(l: &Lineage) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "audit of `{}` ({}, blake3 {})",
        l.pipeline.name,
        display(Path::new(&l.pipeline.file)),
        l.pipeline.file_hash
    );
    for s in &l.pipeline.sets {
        let _ = writeln!(o, "  --set {s}");
    }
    let raw_by_abs: HashMap<&str, &RawFile> =
        l.raw_files.iter().map(|f| (f.abs.as_str(), f)).collect();
    for t in &l.targets {
        let _ = writeln!(o, "\n== {}  (key {}, output {})", t.label, t.key, t.output);
        if t.metrics.is_empty() {
            let _ = writeln!(o, "  metrics     none recorded");
        }
        let width = t.metrics.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for m in &t.metrics {
            let _ = writeln!(o, "  metric  {:width$}  {}", m.name, m.value);
        }
        let _ = writeln!(o, "  lineage     {}", t.lineage.join(" -> "));
        let _ = writeln!(o, "  raw files   (blake3, size, path)");
        for f in &t.raw_files {
            if let Some(rf) = raw_by_abs.get(f.as_str()) {
                let _ = writeln!(o, "    {}  {:>10}  {}", rf.hash, rf.size, rf.path);
            }
        }
    }
    let _ = writeln!(o, "\n== stage instances, upstream first");
    for n in &l.instances {
        let _ = writeln!(o, "{}", n.label);
        let _ = writeln!(
            o,
            "  kind        {} version {}{}",
            n.kind,
            n.kind_version,
            if n.bit_exact {
                ", bit-exact"
            } else {
                ", not declared bit-exact"
            }
        );
        let _ = writeln!(o, "  key         {}", n.key_hash);
        let _ = writeln!(o, "  params      {}", map_json(&n.key.params));
        if !n.key.spec.is_empty() {
            let _ = writeln!(o, "  settings    {}", map_json(&n.key.spec));
        }
        if !n.key.shared.is_empty() {
            let _ = writeln!(o, "  shared      {}", map_json(&n.key.shared));
        }
        if !n.key.matrix.is_empty() {
            let _ = writeln!(o, "  matrix      {}", map_json(&n.key.matrix));
        }
        let _ = writeln!(o, "  seed        {}", n.key.seed);
        for i in &n.inputs {
            let _ = writeln!(o, "  input       {} = {} ({})", i.stage, i.output, i.label);
        }
        for d in &n.deps {
            let state = match (&d.current, &d.error) {
                _ if d.matches() => format!("matches the files now ({} files)", d.files.len()),
                (Some(now), _) => format!("CHANGED since the run: the files now hash to {now}"),
                (None, Some(e)) => format!("cannot be checked now: {e}"),
                (None, None) => "cannot be checked now".to_owned(),
            };
            let _ = writeln!(o, "  dep         {} = {}  {}", d.path, d.recorded, state);
        }
        let _ = writeln!(
            o,
            "  output      {}  ({} files, {} bytes)",
            n.output, n.files, n.bytes
        );
        let _ = writeln!(
            o,
            "  ran         {} .. {} ({:.2}s) on {}, cllm4rec-pipe {}, git {}",
            n.started,
            n.ended,
            n.duration_s,
            n.host,
            n.tool_version,
            n.git_commit.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(o, "\n== raw files (blake3, size, path, used by)");
    for f in &l.raw_files {
        let _ = writeln!(
            o,
            "{}  {:>10}  {}  ({})",
            f.hash,
            f.size,
            f.path,
            f.used_by.join(", ")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_nested_metrics_and_skips_text() {
        let m = flatten_metrics(&json!({"model": "pop", "recall@20": 0.5, "by": {"k": [1, 2]}}));
        let names: Vec<(&str, f64)> = m.iter().map(|m| (m.name.as_str(), m.value)).collect();
        assert_eq!(
            names,
            vec![("by.k.0", 1.0), ("by.k.1", 2.0), ("recall@20", 0.5)]
        );
    }

    #[test]
    fn normalizes_parent_components() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
    }
}
