//! `report`, `export mlflow`, `export tensorboard` and `run --progress json`, by concept:
//! the page in a browser (`page`, with `dom` to read it), the exports read back with the
//! tools' own libraries (`exports`) and the JSON progress stream (`progress`).
//!
//! Without Chromium or the Python packages the tests print `SKIPPED ...`; CI sets
//! `CLLM4REC_REQUIRE_REPORT_TOOLS=1`, which makes that a failure. The quickstart and the lambda
//! sweep run from their own files, shortened with `--set` (fewer epochs, two lambda_c points);
//! the lambda sweep runs once for all the tests here (`lambda`).

mod dom;
mod exports;
mod page;
mod progress;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::support::{walk_files, Env};

pub fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

pub fn require() -> bool {
    std::env::var("CLLM4REC_REQUIRE_REPORT_TOOLS").is_ok_and(|v| v == "1")
}

pub fn skip(test: &str, why: &str) {
    assert!(
        !require(),
        "{test}: {why} (CLLM4REC_REQUIRE_REPORT_TOOLS=1)"
    );
    eprintln!("SKIPPED report::{test}: {why}");
}

pub fn python() -> String {
    std::env::var("CLLM4REC_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn python_has(modules: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn blake3_hex(path: &str) -> String {
    let out = Command::new(crate::support::BIN)
        .args(["hash", path])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A hash of every file of the cache (path, bytes), to show a command left it alone.
pub fn cache_fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walk_files(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_default();
            (p, blake3::hash(&b).as_bytes().to_vec())
        })
        .collect();
    v.sort();
    v
}

pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub const LAMBDA_SHORT: [&str; 6] = [
    "--set",
    "matrix.lambda_c=[1,10]",
    "--set",
    "stages.pretrain.params.epochs=1",
    "--set",
    "stages.finetune.params.epochs=2",
];

/// The lambda sweep, shortened, run once (with `--progress json`, two at a time) into a cache
/// of its own for every test of this module, which only read it.
pub struct Lambda {
    pub env: Env,
    /// What the run printed on stdout: its JSON lines.
    pub progress: String,
    /// `table`'s Markdown of it.
    pub table: String,
    /// Its records.
    records: Vec<Json>,
}

static LAMBDA: OnceLock<Lambda> = OnceLock::new();

/// Removes the shared sweep's folder when the test process exits (a static is never dropped).
extern "C" fn remove_lambda() {
    if let Some(l) = LAMBDA.get() {
        let _ = std::fs::remove_dir_all(l.env.dir.path());
    }
}

pub fn lambda() -> &'static Lambda {
    LAMBDA.get_or_init(|| {
        let env = Env::new();
        let mut args = vec!["run", leak(repo("sweeps/lambda.yaml"))];
        args.extend(LAMBDA_SHORT);
        args.extend(["--progress", "json", "-j", "2"]);
        let progress = env.run(&args).ok().stdout();
        let mut targs = vec!["table", leak(repo("sweeps/lambda.yaml"))];
        targs.extend(LAMBDA_SHORT);
        let table = env.run(&targs).ok().stdout();
        let records = walk_files(&env.path("cache/records"))
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect();
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(remove_lambda) };
        Lambda {
            env,
            progress,
            table,
            records,
        }
    })
}

impl Lambda {
    /// `cmd`, then the sweep's file and its `--set`s.
    pub fn args(&self, cmd: &[&'static str]) -> Vec<&'static str> {
        let mut a = cmd.to_vec();
        a.push(leak(repo("sweeps/lambda.yaml")));
        a.extend(LAMBDA_SHORT);
        a
    }

    /// The record of the instance `label`.
    pub fn record(&self, label: &str) -> &Json {
        self.records
            .iter()
            .find(|r| r["label"] == label && r["pipeline"] == "lambda")
            .unwrap_or_else(|| panic!("no record of {label}"))
    }
}
