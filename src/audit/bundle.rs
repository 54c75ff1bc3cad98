//! `audit --bundle DIR`: a self-contained reproducibility appendix.
//!
//! ```text
//! DIR/
//!   bundle.json                 format, tool, the files below with their blake3
//!   lineage.json                the audit (as `audit --format json` prints it)
//!   audit.txt                   the audit as text
//!   pipeline/<file>.yaml        the exact pipeline text
//!   pipeline/templates/<use>    the exact text of each template it uses
//!   outputs/<label>/...         each audited instance's output files (metrics and tables)
//! ```

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::lineage::{normalize, render_text, Lineage};
use crate::audit::{io, AuditError};
use crate::cache::hash::{self, FileEntry};
use crate::cache::store::Store;
use crate::pipeline::raw::RawPipeline;
use crate::pipeline::Pipeline;

pub const BUNDLE_FORMAT: u32 = 1;
pub const MANIFEST: &str = "bundle.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    pub created: String,
    pub tool_version: String,
    /// The bundled pipeline file, relative to the bundle.
    pub pipeline_file: String,
    pub templates: Vec<BundledSource>,
    pub outputs: Vec<BundledOutput>,
    /// Every file of the bundle except this manifest, with its blake3.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundledSource {
    /// Relative to the bundle.
    pub bundled: String,
    /// Where it was read from.
    pub original: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundledOutput {
    pub label: String,
    /// Relative to the bundle.
    pub dir: String,
    /// The recorded output hash; the folder's tree hash must equal it.
    pub output: String,
}

/// A label as a folder name (`evaluate[lambda_c=0.1]` stays readable; `/` is replaced).
pub fn label_dir(label: &str) -> String {
    label.replace(['/', '\\'], "_")
}

/// `../stages/x.yaml` -> `stages/x.yaml`: a path that stays inside the bundle.
fn inside(rel: &str) -> PathBuf {
    Path::new(rel)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(format!("cannot create `{}`", parent.display())))?;
    }
    fs::write(path, bytes).map_err(io(format!("cannot write `{}`", path.display())))
}

/// Write the bundle; returns its hash (the tree hash of the whole folder).
pub fn write_bundle(
    dir: &Path,
    p: &Pipeline,
    store: &Store,
    lineage: &Lineage,
) -> Result<String, AuditError> {
    if dir.exists()
        && fs::read_dir(dir)
            .map_err(io(format!("cannot read `{}`", dir.display())))?
            .next()
            .is_some()
    {
        return Err(AuditError::Usage(format!(
            "`{}` exists and is not empty; a bundle is written into a new folder",
            dir.display()
        )));
    }
    let store_root = normalize(&store.root);
    if normalize(dir).starts_with(&store_root) {
        return Err(AuditError::Usage(format!(
            "`{}` is inside the cache folder; write the bundle elsewhere",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(io(format!("cannot create `{}`", dir.display())))?;

    write(
        &dir.join("lineage.json"),
        (serde_json::to_string_pretty(lineage).expect("plain data") + "\n").as_bytes(),
    )?;
    write(&dir.join("audit.txt"), render_text(lineage).as_bytes())?;

    let file_name = p
        .source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline.yaml".into());
    let pipeline_file = format!("pipeline/{file_name}");
    write(&dir.join(&pipeline_file), p.source.text.as_bytes())?;

    // The templates the pipeline uses, by their `use:` value.
    let mut templates = Vec::new();
    if let Ok(raw) = serde_norway::from_str::<RawPipeline>(&p.source.text) {
        let mut uses: Vec<String> = raw.stages.values().filter_map(|s| s.use_.clone()).collect();
        uses.sort();
        uses.dedup();
        for u in uses {
            let Some(found) = crate::pipeline::load::find_template(&u, &p.dir) else {
                continue;
            };
            let text =
                fs::read(&found).map_err(io(format!("cannot read `{}`", found.display())))?;
            let bundled = Path::new("pipeline/templates").join(inside(&u));
            write(&dir.join(&bundled), &text)?;
            templates.push(BundledSource {
                bundled: bundled.display().to_string(),
                original: normalize(&found).display().to_string(),
            });
        }
    }

    let mut outputs = Vec::new();
    for t in &lineage.targets {
        let rel = format!("outputs/{}", label_dir(&t.label));
        let dest = dir.join(&rel);
        let src = store.object_data(&t.output);
        for (frel, path, _) in hash::walk(&src)? {
            let bytes = fs::read(&path).map_err(io(format!("cannot read `{}`", path.display())))?;
            write(&dest.join(&frel), &bytes)?;
        }
        fs::create_dir_all(&dest).map_err(io(format!("cannot create `{}`", dest.display())))?;
        let (h, _) = hash::hash_dir(&dest)?;
        if h != t.output {
            return Err(AuditError::Usage(format!(
                "the cached output of `{}` is damaged (its files hash to {h}, the record says {}); run `cllm4rec-pipe verify`",
                t.label, t.output
            )));
        }
        outputs.push(BundledOutput {
            label: t.label.clone(),
            dir: rel,
            output: t.output.clone(),
        });
    }

    let (_, files) = hash::hash_dir(dir)?;
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT,
        created: crate::util::now_rfc3339(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        pipeline_file,
        templates,
        outputs,
        files,
    };
    write(
        &dir.join(MANIFEST),
        (serde_json::to_string_pretty(&manifest).expect("plain data") + "\n").as_bytes(),
    )?;
    Ok(hash::hash_dir(dir)?.0)
}
