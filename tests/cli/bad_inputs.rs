//! The bad-input corpus, `tests/bad/`: broken pipeline files, data files and stages, each with
//! the error it must produce. A case is a file `NAME.yaml`, or a folder `NAME/` whose pipeline
//! is `pipeline.yaml` (with its data files beside it). The pipeline's header comments say
//! what must happen:
//!
//! ```text
//! # expect: unknown field `cmdd`      (one or more: each must appear in stderr)
//! # exit: 2                           (2: a bad pipeline; 1: a stage failed)
//! # records: 1                        (entries left in the cache; default 0)
//! # needs: landlock                   (skipped on a kernel without it, unless
//!                                      CLLM4REC_REQUIRE_LANDLOCK=1)
//! # within: 1 s                        (the refusal takes at most this long)
//! # line-width: 220                    (no line of stderr is longer)
//! ```
//!
//! Each case runs `cllm4rec-pipe run` in a scratch copy of itself (its workspace), with the
//! cache beside it; nothing may panic, and nothing may be written outside the workspace and
//! the cache.

use std::path::{Path, PathBuf};

use crate::support::{walk_files, BIN};

struct Case {
    name: String,
    /// The file or folder in tests/bad.
    src: PathBuf,
    /// The pipeline file, relative to the copy's root.
    pipeline: String,
}

struct Expect {
    messages: Vec<String>,
    exit: i32,
    records: usize,
    landlock: bool,
    /// Seconds the run may take at most.
    within: Option<f64>,
    /// Characters a line of stderr may have at most.
    line_width: Option<usize>,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut out: Vec<Case> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_string_lossy().into_owned();
            if p.is_dir() {
                Some(Case {
                    name,
                    src: p,
                    pipeline: "pipeline.yaml".into(),
                })
            } else if name.ends_with(".yaml") {
                Some(Case {
                    pipeline: name.clone(),
                    name: name.trim_end_matches(".yaml").to_owned(),
                    src: p,
                })
            } else {
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn expectations(text: &str) -> Expect {
    let mut e = Expect {
        messages: Vec::new(),
        exit: 0,
        records: 0,
        landlock: false,
        within: None,
        line_width: None,
    };
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        if let Some(m) = line.strip_prefix("expect:") {
            e.messages.push(m.trim().to_owned());
        } else if let Some(c) = line.strip_prefix("exit:") {
            e.exit = c.trim().parse().expect("`# exit: N`");
        } else if let Some(n) = line.strip_prefix("records:") {
            e.records = n.trim().parse().expect("`# records: N`");
        } else if let Some(t) = line.strip_prefix("within:") {
            let secs = t.trim().strip_suffix('s').expect("`# within: N s`");
            e.within = Some(secs.trim().parse().expect("`# within: N s`"));
        } else if let Some(w) = line.strip_prefix("line-width:") {
            e.line_width = Some(w.trim().parse().expect("`# line-width: N`"));
        } else if line == "needs: landlock" {
            e.landlock = true;
        }
    }
    e
}

/// Copy a file or folder, keeping symlinks as symlinks.
fn copy(src: &Path, dst: &Path) {
    let meta = std::fs::symlink_metadata(src).unwrap();
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).unwrap(), dst).unwrap();
    } else if meta.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap().flatten() {
            copy(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::copy(src, dst).unwrap();
    }
}

/// Run one case; `Err` says what did not match, `Ok(false)` that it was skipped.
fn check(case: &Case) -> Result<bool, String> {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    if case.src.is_dir() {
        copy(&case.src, &ws);
    } else {
        std::fs::create_dir_all(&ws).unwrap();
        copy(&case.src, &ws.join(&case.pipeline));
    }
    let text = std::fs::read(ws.join(&case.pipeline)).unwrap();
    let want = expectations(&String::from_utf8_lossy(&text));
    if want.messages.is_empty() || want.exit == 0 {
        return Err("no `# expect:` or `# exit:` header".into());
    }
    if want.landlock && !crate::sandbox::landlock_required() {
        return Ok(false);
    }
    let t0 = std::time::Instant::now();
    let out = std::process::Command::new(BIN)
        .args(["run", &case.pipeline])
        .current_dir(&ws)
        .env("CLLM4REC_CACHE", tmp.path().join("cache"))
        .env_remove("CLLM4REC_LOG")
        .env_remove("CLLM4REC_SANDBOX")
        .output()
        .unwrap();
    let took = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let mut why = Vec::new();
    if let Some(limit) = want.within {
        println!("{}: refused in {took:.3} s", case.name);
        if took > limit {
            why.push(format!("took {took:.2} s, more than {limit} s"));
        }
    }
    if let Some(w) = want.line_width {
        if let Some(l) = err.lines().find(|l| l.chars().count() > w) {
            why.push(format!(
                "a line of stderr has {} characters, more than {w}",
                l.chars().count()
            ));
        }
    }
    if out.status.code() != Some(want.exit) {
        why.push(format!(
            "exit {:?}, expected {}",
            out.status.code(),
            want.exit
        ));
    }
    for m in &want.messages {
        if !err.contains(m.as_str()) {
            why.push(format!("no `{m}` in stderr"));
        }
    }
    if err.contains("panicked") {
        why.push("it panicked".into());
    }
    let records = walk_files(&tmp.path().join("cache/records"))
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .count();
    if records != want.records {
        why.push(format!(
            "{records} cache entries, expected {}",
            want.records
        ));
    }
    let stray: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "ws" && n != "cache")
        .collect();
    if !stray.is_empty() {
        why.push(format!("wrote outside the workspace: {stray:?}"));
    }
    if why.is_empty() {
        Ok(true)
    } else {
        Err(format!("{}\n--- stderr:\n{err}", why.join("; ")))
    }
}

#[test]
fn every_bad_input_gives_its_error() {
    let cases = cases();
    assert!(cases.len() >= 30, "the corpus is missing: {}", cases.len());
    let (mut failed, mut skipped) = (Vec::new(), Vec::new());
    for c in &cases {
        match check(c) {
            Ok(true) => {}
            Ok(false) => skipped.push(c.name.as_str()),
            Err(why) => failed.push(format!("{}: {why}", c.name)),
        }
    }
    let matched = cases.len() - failed.len() - skipped.len();
    println!("{matched}/{} bad inputs matched", cases.len());
    if !skipped.is_empty() {
        println!("SKIPPED (this kernel has no Landlock): {skipped:?}");
    }
    assert!(
        failed.is_empty(),
        "{matched}/{} bad inputs matched; these did not:\n{}",
        cases.len(),
        failed.join("\n\n")
    );
}
