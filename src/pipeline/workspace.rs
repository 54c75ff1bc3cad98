//! The workspace: the project folder a pipeline's `deps` must stay inside.
//!
//! It is the nearest folder, from the pipeline file's own folder upwards, that holds a `.git`
//! entry or a `stages/` folder (the templates), else the pipeline file's folder itself. A
//! pipeline in `pipelines/` can thus name `../scripts/prep.py`, but not `../../elsewhere` or
//! `/etc/passwd`. Datasets read by `ingest` (its `path` param) may live outside: they are
//! read-only inputs, hashed into the key like any dep.

use std::path::{Component, Path, PathBuf};

/// The workspace root of a pipeline whose file is in `dir` (an absolute path).
pub fn root(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.join(".git").exists() || d.join("stages").is_dir())
        .unwrap_or(dir)
        .to_path_buf()
}

/// `path` with `.` and `..` removed, without touching the file system; `None` if `..` climbs
/// above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Check a `deps` entry as written (`rel`) against the workspace `ws` of a pipeline in `dir`.
/// Returns (message, hint) when it is absolute or leaves the workspace, lexically or through
/// a symlink.
pub fn check_dep(rel: &str, dir: &Path, ws: &Path) -> Result<(), (String, String)> {
    let hint = format!(
        "deps must be relative paths inside the workspace `{}` (the nearest folder above the \
         pipeline with `.git` or `stages/`)",
        ws.display()
    );
    if rel.is_empty() {
        return Err(("a dep is an empty path".into(), hint));
    }
    if Path::new(rel).is_absolute() {
        return Err((format!("dep `{rel}` is an absolute path"), hint));
    }
    let inside = |p: &Path| p.starts_with(ws);
    match normalize(&dir.join(rel)) {
        Some(p) if inside(&p) => {}
        _ => return Err((format!("dep `{rel}` is outside the workspace"), hint)),
    }
    // A symlink (the dep itself or a folder on its way) may still lead out.
    if let (Ok(real), Ok(real_ws)) = (dir.join(rel).canonicalize(), ws.canonicalize()) {
        if !real.starts_with(&real_ws) {
            return Err((
                format!(
                    "dep `{rel}` leads outside the workspace through a symlink (to `{}`)",
                    real.display()
                ),
                hint,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused_and_inner_paths_pass() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(ws.join("stages")).unwrap();
        std::fs::create_dir_all(ws.join("pipelines")).unwrap();
        let dir = ws.join("pipelines");
        assert_eq!(root(&dir), ws);
        assert!(check_dep("prep.py", &dir, &ws).is_ok());
        assert!(check_dep("../scripts/prep.py", &dir, &ws).is_ok());
        assert!(check_dep("./a/../b", &dir, &ws).is_ok());
        let msg = |r: &str| check_dep(r, &dir, &ws).unwrap_err().0;
        assert_eq!(msg("../../x"), "dep `../../x` is outside the workspace");
        assert_eq!(msg("/etc/passwd"), "dep `/etc/passwd` is an absolute path");
        assert_eq!(
            msg("a/../../../x"),
            "dep `a/../../../x` is outside the workspace"
        );
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        assert!(
            msg("etc/passwd").contains("through a symlink"),
            "{}",
            msg("etc/passwd")
        );
    }

    #[test]
    fn without_markers_the_pipeline_folder_is_the_workspace() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap().join("p");
        std::fs::create_dir_all(&dir).unwrap();
        // (a `.git` or `stages/` above the temp folder would change this; there is none)
        if root(&dir) == dir {
            assert!(check_dep("../x", &dir, &dir).is_err());
        }
    }
}
