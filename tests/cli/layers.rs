//! The direction of dependencies (README, "Layout"): the spec layer (`src/pipeline/`) never
//! names the layers that consume it, and no subcommand module reaches into the dispatcher.
//! A cheap text check, so a circle that comes back fails here with the file that closed it.

use std::path::{Path, PathBuf};

/// The `.rs` files under `dir` (recursively), sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

/// (file:line, line) of every line of code (comments left out) under `dir` that contains one
/// of `needles`.
fn mentions(dir: &str, needles: &[&str], skip: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut hits = Vec::new();
    for f in sources(&root.join(dir)) {
        let name = f.strip_prefix(root).unwrap().display().to_string();
        if skip.iter().any(|s| name.ends_with(s)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            if needles.iter().any(|n| code.contains(n)) {
                hits.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn the_spec_layer_does_not_name_its_consumers() {
    let hits = mentions(
        "src/pipeline",
        &[
            "crate::kinds",
            "crate::exec",
            "crate::cli",
            "crate::audit",
            "crate::report",
        ],
        &[],
    );
    assert!(
        hits.is_empty(),
        "src/pipeline/ must take what it needs of the stage kinds through \
         `pipeline::StageKinds` (src/pipeline/schema.rs), not name them:\n{}",
        hits.join("\n")
    );
}

#[test]
fn subcommand_modules_do_not_import_the_dispatcher() {
    let hits = mentions("src/cli", &["commands::"], &["src/cli/mod.rs"]);
    assert!(
        hits.is_empty(),
        "only src/cli/mod.rs may call into src/cli/commands.rs; shared helpers belong in \
         args.rs or mod.rs:\n{}",
        hits.join("\n")
    );
}
