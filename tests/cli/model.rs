//! CLLM4Rec stages end to end on a small synthetic dataset: they run, evaluate, and give
//! byte-identical checkpoints when run twice.

use std::fmt::Write;

use crate::support::Env;

/// 40 users with 6 items each out of 30, in two taste groups.
fn dataset() -> String {
    let mut s = String::from("user,item,rating,timestamp\n");
    for u in 0..40 {
        let group = u % 2;
        for k in 0..6 {
            let item = group * 15 + (u * 7 + k * 3) % 15;
            let _ = writeln!(s, "u{u},i{item},5,{}", u * 10 + k);
        }
    }
    s
}

const PIPELINE: &str = r#"name: tiny
stages:
  ingest:
    kind: ingest
    params: {format: table, path: data.csv, rating_col: rating, time_col: timestamp}
  tokenize:
    kind: tokenize
    needs: [ingest]
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, epochs: 1, batch_size: 16}
  finetune:
    kind: finetune
    needs: [pretrain, tokenize, ingest]
    params: {epochs: 1, lr: 0.01, batch_size: 16}
  evaluate:
    kind: evaluate
    needs: [ingest, tokenize, finetune]
"#;

#[test]
fn cllm4rec_runs_evaluates_and_is_bit_reproducible() {
    let e = Env::new();
    e.write("data.csv", &dataset()).write("p.yaml", PIPELINE);
    let a = e.run_cache(&["run", "p.yaml"], "c1").ok();
    let b = e.run_cache(&["run", "p.yaml"], "c2").ok();
    assert_eq!(
        a.outputs(),
        b.outputs(),
        "two runs must give identical checkpoints and metrics"
    );
    let show = e
        .run_cache(&["show", "p.yaml", "evaluate"], "c1")
        .ok()
        .stdout();
    assert!(show.contains("\"model\": \"cllm4rec\""), "{show}");
    assert!(show.contains("\"recall@20\""), "{show}");
    let show = e
        .run_cache(&["show", "p.yaml", "finetune"], "c1")
        .ok()
        .stdout();
    let dir = show
        .lines()
        .find_map(|l| l.strip_prefix("output: "))
        .unwrap()
        .to_owned();
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in ["checkpoint.safetensors", "model.json", "history.json"] {
        assert!(files.contains(&f.to_owned()), "{files:?}");
    }
    let history: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(&dir).join("history.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "epoch 0 and epoch 1");
}

#[test]
fn bad_model_params_are_errors_with_position() {
    let e = Env::new();
    e.write("data.csv", &dataset())
        .write("p.yaml", &PIPELINE.replace("n_embd: 16", "n_embd: 15"));
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("`n_embd` (15) must be a positive multiple of `n_head` (2)"),
        "{err}"
    );
    e.write(
        "p.yaml",
        &PIPELINE.replace("lr: 0.01", "lr: 0.01, targets: some"),
    );
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("`targets`: unknown variant `some`, expected `masked` or `all`"),
        "{err}"
    );
    e.write(
        "p.yaml",
        &PIPELINE.replace(
            "epochs: 1, batch_size: 16}",
            "epochs: 1, batch_size: 16, engine: fast}",
        ),
    );
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("`engine`: unknown variant `fast`, expected `auto` or `burn`"),
        "{err}"
    );
}

/// (output folder, log file) of a stage.
#[cfg(not(any(feature = "tch", feature = "cuda")))]
fn output_and_log(e: &Env, args: &[&str], cache: &str) -> (String, String) {
    let show = e.run_cache(args, cache).ok().stdout();
    let get = |key: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` in {show}"))
            .trim()
            .to_owned()
    };
    (get("output:"), get("log:"))
}

/// The fused CPU trainer (the default for a GPT-2 on the CPU backend) and the burn model
/// (`engine: burn`) train the same model: the same losses epoch by epoch, up to rounding. The
/// `tch` and `cuda` builds always train with the burn model.
#[cfg(not(any(feature = "tch", feature = "cuda")))]
#[test]
fn the_fused_trainer_and_the_burn_model_give_the_same_losses() {
    let e = Env::new();
    e.write("data.csv", &dataset()).write("p.yaml", PIPELINE);
    let burn = [
        "--set",
        "stages.pretrain.params.engine=burn",
        "--set",
        "stages.finetune.params.engine=burn",
    ];
    e.run_cache(&["run", "p.yaml"], "fused").ok();
    e.run_cache(&[&["run", "p.yaml"][..], &burn].concat(), "burn")
        .ok();
    for stage in ["pretrain", "finetune"] {
        let (fused_dir, fused_log) = output_and_log(&e, &["show", "p.yaml", stage], "fused");
        let (burn_dir, burn_log) = output_and_log(
            &e,
            &[&["show", "p.yaml", stage][..], &burn].concat(),
            "burn",
        );
        let log = |p: &str| std::fs::read_to_string(p).unwrap();
        assert!(
            log(&fused_log).contains("trainer: fused CPU"),
            "{}",
            log(&fused_log)
        );
        assert!(
            log(&burn_log).contains("trainer: burn model"),
            "{}",
            log(&burn_log)
        );
        let losses = |dir: &str| -> Vec<f64> {
            let h: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(std::path::Path::new(dir).join("history.json")).unwrap(),
            )
            .unwrap();
            h.as_array()
                .unwrap()
                .iter()
                .filter_map(|e| {
                    e.get("loss")
                        .or_else(|| e.get("train").and_then(|t| t.get("loss")))
                })
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let (a, b) = (losses(&fused_dir), losses(&burn_dir));
        assert!(
            !a.is_empty() && a.len() == b.len(),
            "{stage}: {a:?} vs {b:?}"
        );
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-4 * y.abs(),
                "{stage}: losses {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn a_diverging_run_stops_naming_the_epoch_and_batch() {
    let e = Env::new();
    // An absurd learning rate blows the embeddings up to ~1e30 after one step; their layer
    // norms overflow and the next loss is not finite.
    e.write("data.csv", &dataset()).write(
        "p.yaml",
        &PIPELINE.replace(
            "epochs: 1, batch_size: 16}",
            "epochs: 1, batch_size: 16, lr: 1.0e+30}",
        ),
    );
    let r = e.run(&["run", "p.yaml"]).fails(1);
    let err = r.stderr();
    assert!(
        err.contains("non-finite loss") && err.contains("epoch 1, batch"),
        "{err}"
    );
    assert!(
        !r.stdout()
            .lines()
            .any(|l| l.starts_with("pretrain") && l.contains("ran")),
        "{}",
        r.stdout()
    );
}
