//! `export mlflow` and `export tensorboard` of the lambda sweep: they leave the cache as it
//! was, write the same bytes twice, and read back with MLflow's and TensorBoard's own Python
//! packages (`tests/reference/read_exports.py`; the interpreter in `CLLM4REC_PYTHON`, else
//! `python3`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value as Json;

use super::{cache_fingerprint, lambda, leak, python, python_has, repo, skip};
use crate::support::walk_files;

#[test]
fn exports_read_back_with_mlflow_and_tensorboard() {
    let l = lambda();
    let e = &l.env;
    let before = cache_fingerprint(&e.path("cache"));
    let mut mlflow_args = l.args(&["export", "mlflow"]);
    mlflow_args.push(leak(e.path("mlruns").display().to_string()));
    let mout = e.run(&mlflow_args).ok().stdout();
    let mut tb_args = l.args(&["export", "tensorboard"]);
    tb_args.push(leak(e.path("tb").display().to_string()));
    let tout = e.run(&tb_args).ok().stdout();
    assert!(mout.contains("with 9 runs"), "{mout}");
    assert!(tout.contains("of 6 runs"), "{tout}");
    assert!(
        tout.contains("left out ablate: no metrics or history"),
        "{tout}"
    );
    assert_eq!(
        before,
        cache_fingerprint(&e.path("cache")),
        "an export changed the cache"
    );
    e.run(&["verify"]).ok();
    // An export run again writes the same bytes.
    let files = |d: &str| {
        let mut v: Vec<(PathBuf, Vec<u8>)> = walk_files(&e.path(d))
            .into_iter()
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let (m1, t1) = (files("mlruns"), files("tb"));
    e.run(&mlflow_args).ok();
    e.run(&tb_args).ok();
    assert_eq!(m1, files("mlruns"));
    assert_eq!(t1, files("tb"));

    if !python_has("mlflow, tensorboard, pandas") {
        return skip(
            "exports_read_back_with_mlflow_and_tensorboard",
            &format!("{} cannot import mlflow, tensorboard and pandas", python()),
        );
    }
    let read = |mode: &str, dir: &str| -> Json {
        let out = Command::new(python())
            .args([&repo("tests/reference/read_exports.py"), mode])
            .arg(e.path(dir))
            .arg("lambda")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "read_exports.py {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // MLflow: mlflow.search_runs finds a run per instance with its params, metrics and tags.
    let runs = read("mlflow", "mlruns");
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 9);
    for r in runs {
        let label = r["run_name"].as_str().unwrap();
        let rec = l.record(label);
        assert_eq!(r["status"], "FINISHED");
        assert_eq!(r["tags"]["cllm4rec.key"], rec["key_hash"]);
        assert_eq!(r["tags"]["cllm4rec.output"], rec["output"]);
        assert_eq!(r["tags"]["mlflow.runName"], label);
        if let Some(c) = rec["git_commit"].as_str() {
            assert_eq!(r["tags"]["mlflow.source.git.commit"], c);
        }
        assert_eq!(r["params"]["seed"], "0");
        if let Some(m) = rec["metrics"].as_object() {
            for (k, v) in m.iter().filter(|(_, v)| v.is_number()) {
                let name = k.replace('@', "_at_");
                assert_eq!(
                    r["metrics"][&name].as_f64(),
                    v.as_f64(),
                    "{label} {k}: {}",
                    r["metrics"]
                );
            }
        }
    }
    let ft = runs
        .iter()
        .find(|r| r["run_name"] == "finetune[lambda_c=10]")
        .unwrap();
    // the resolved param is typed (lambda_c is a float); the matrix value is as written
    assert_eq!(ft["params"]["lambda_c"], "10.0");
    assert_eq!(ft["params"]["matrix.lambda_c"], "10");
    // finetuning's validation recall per epoch (0 = before finetuning, 1, 2) as steps
    let hist = ft["history"]["history/valid/recall_at_20"]
        .as_array()
        .unwrap();
    let steps: Vec<i64> = hist.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2]);
    let ablate = runs.iter().find(|r| r["run_name"] == "ablate").unwrap();
    let arts: Vec<&str> = ablate["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in ["sensitivity.svg", "curves.png", "table.md"] {
        assert!(arts.contains(&a), "{arts:?}");
    }
    // TensorBoard: the event reader finds each run's scalars at their steps.
    let tb = read("tensorboard", "tb/lambda");
    let ft = &tb["finetune[lambda_c=10]"];
    let loss = ft["history/train/loss"].as_array().unwrap();
    let steps: Vec<i64> = loss.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert_eq!(steps, [1, 2]);
    let ev = &tb["evaluate[lambda_c=1]"];
    let want = l.record("evaluate[lambda_c=1]")["metrics"]["recall@20"]
        .as_f64()
        .unwrap();
    let got = ev["recall@20"][0][1].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    assert_eq!(tb.as_object().unwrap().len(), 6);
}
