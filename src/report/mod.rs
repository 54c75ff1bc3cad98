//! What people look at: the HTML report of a pipeline (`report`) and its export to MLflow's
//! file store and TensorBoard event files (`export`). All of it is drawn from one read-only
//! view of the cache ([`view`]); none of it writes into the cache or runs a stage.

pub mod html;
pub mod mlflow;
pub mod tensorboard;
pub mod tfrecord;
pub mod view;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;

/// A metric as tables print it: integers as they are, other numbers with four decimals.
pub fn fmt_metric(v: &Json) -> String {
    match (v.as_i64(), v.as_f64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(f)) => format!("{f:.4}"),
        _ => String::new(),
    }
}

/// The names of the numeric top-level metrics among `records`' metrics objects, sorted: the
/// columns of a metrics table.
pub fn metric_names<'a>(
    metrics: impl Iterator<Item = &'a serde_json::Map<String, Json>>,
) -> BTreeSet<&'a String> {
    metrics
        .flat_map(|m| m.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k))
        .collect()
}

/// Writes `bytes` to `path` through a temporary file beside it, so that a reader never sees a
/// half-written file and a failure leaves the old one (or none).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn io_ctx(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Writes a file of an export, making its folder.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io_ctx(format!("cannot create `{}`", d.display())))?;
    }
    std::fs::write(path, bytes).map_err(io_ctx(format!("cannot write `{}`", path.display())))
}

/// An export's folder, made if missing, as an absolute path.
pub(crate) fn out_dir(dir: &Path) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(io_ctx(format!("cannot create `{}`", dir.display())))?;
    std::path::absolute(dir).map_err(io_ctx(format!("bad folder `{}`", dir.display())))
}

/// Fills a new folder through `fill` (handed a temporary folder beside `target`), then puts
/// it in place of `target`: an old `target` is moved aside and removed after. A failure
/// leaves `target` as it was and no temporary folder.
pub(crate) fn replace_dir<T>(
    target: &Path,
    fill: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let old = parent.join(format!(".{name}.{}.old", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_ctx(format!("cannot create `{}`", tmp.display())))?;
    let value = match fill(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let had_old = target.exists();
    if had_old {
        if let Err(e) = std::fs::rename(target, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(format!("cannot replace `{}`: {e}", target.display()));
        }
    }
    if let Err(e) = std::fs::rename(&tmp, target) {
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("cannot write `{}`: {e}", target.display()));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(value)
}
