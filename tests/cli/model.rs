//! CLLM4Rec stages end to end on a small synthetic dataset (with item titles): they run, evaluate, and give
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

/// A title for each of the 30 items, in words of its taste group: the content LM's corpus.
fn titles() -> String {
    let words = [["red", "fast", "loud"], ["blue", "slow", "quiet"]];
    let mut s = String::from("item,title\n");
    for item in 0..30 {
        let w = &words[item / 15];
        let _ = writeln!(s, "i{item},{} {} {item}", w[item % 3], w[(item + 1) % 3]);
    }
    s
}

/// A stage output's history.json.
fn history(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("history.json")).unwrap()).unwrap()
}

/// A test folder with the dataset, the item titles and [`PIPELINE`] as `p.yaml`.
fn tiny_env() -> Env {
    let e = Env::new();
    e.write("data.csv", &dataset())
        .write("items.csv", &titles())
        .write("p.yaml", PIPELINE);
    e
}

const PIPELINE: &str = r#"name: tiny
stages:
  ingest:
    kind: ingest
    params: {format: table, path: data.csv, rating_col: rating, time_col: timestamp, item_text: items.csv}
  tokenize:
    kind: tokenize
    needs: [ingest]
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, epochs: 1, content_warmup: 1, batch_size: 16}
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
    let e = tiny_env();
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
    let dir = e.output_dir(&["show", "p.yaml", "finetune"], "c1");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in ["checkpoint.safetensors", "model.json", "history.json"] {
        assert!(files.contains(&f.to_owned()), "{files:?}");
    }
    let history = history(&dir);
    assert_eq!(history.as_array().unwrap().len(), 2, "epoch 0 and epoch 1");
    // `content_epochs` (default): a content LM epoch after the RecLLM epoch
    assert_eq!(history[1]["content"]["phase"], "content", "{history}");
    assert!(
        history[1]["content"]["loss"]
            .as_f64()
            .is_some_and(|l| l.is_finite() && l > 0.0),
        "{history}"
    );
    // without them, no content epoch, and another model
    let off = ["--set", "stages.finetune.params.content_epochs=false"];
    let c = e
        .run_cache(&[&["run", "p.yaml"][..], &off].concat(), "c3")
        .ok();
    let dir = e.output_dir(&[&["show", "p.yaml", "finetune"][..], &off].concat(), "c3");
    let history = std::fs::read_to_string(dir.join("history.json")).unwrap();
    assert!(!history.contains("\"content\""), "{history}");
    let finetune = |r: &crate::support::Run| {
        r.outputs()
            .into_iter()
            .find(|(stage, _)| stage == "finetune")
            .unwrap()
            .1
    };
    assert_ne!(
        finetune(&a),
        finetune(&c),
        "content epochs change the finetuned model"
    );
}

#[test]
fn bad_model_params_are_errors_with_position() {
    let e = Env::new();
    e.write("data.csv", &dataset())
        .write("items.csv", &titles())
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
            "content_warmup: 1, batch_size: 16}",
            "content_warmup: 1, batch_size: 16, engine: fast}",
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
/// (`engine: burn`) train the same model: the same losses epoch by epoch, up to rounding,
/// finetuning's content epochs (with their own Adam) included. The `tch` and `cuda` builds
/// always train with the burn model.
#[cfg(not(any(feature = "tch", feature = "cuda")))]
#[test]
fn the_fused_trainer_and_the_burn_model_give_the_same_losses() {
    let e = tiny_env();
    e.write(
        "p.yaml",
        &PIPELINE.replace("{epochs: 1, lr: 0.01,", "{epochs: 2, lr: 0.01,"),
    );
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
            history(std::path::Path::new(dir))
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|e| {
                    let train = e.get("train").and_then(|t| t.get("loss"));
                    let content = e.get("content").and_then(|t| t.get("loss"));
                    [e.get("loss"), train, content]
                })
                .flatten()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let (a, b) = (losses(&fused_dir), losses(&burn_dir));
        // pretrain: a warm-up, a collaborative and a content epoch; finetune: two RecLLM and
        // two content epochs
        let n = if stage == "pretrain" { 3 } else { 4 };
        assert!(a.len() == n && b.len() == n, "{stage}: {a:?} vs {b:?}");
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
    e.write("data.csv", &dataset())
        .write("items.csv", &titles())
        .write(
            "p.yaml",
            &PIPELINE.replace(
                "content_warmup: 1, batch_size: 16}",
                "content_warmup: 1, batch_size: 16, lr: 1.0e+30}",
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

/// Content warm-up epochs train the content LM alone (no pull toward the collaborative tables,
/// which are still random), as the authors' code does; the rounds after them are regularized.
/// Both trainers (the `tch` and `cuda` builds train with the burn model either way).
#[test]
fn content_warmup_epochs_are_unregularized() {
    let e = tiny_env();
    for engine in ["auto", "burn"] {
        // (PIPELINE's pretrain has one warm-up epoch)
        let set = format!("stages.pretrain.params.engine={engine}");
        e.run(&["run", "p.yaml", "--set", &set]).ok();
        let h = history(&e.output_dir(&["show", "p.yaml", "pretrain", "--set", &set], "cache"));
        let phases: Vec<&str> = h
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["warmup", "collab", "content"], "{engine}: {h}");
        // loss per prediction over NLL per prediction: 1 + the regularization's share
        let ratio = |i: usize| h[i]["loss"].as_f64().unwrap() / h[i]["nll"].as_f64().unwrap();
        assert!(
            (ratio(0) - 1.0).abs() < 1e-6,
            "{engine}: the warm-up epoch is not regularized: {h}"
        );
        // (here about 2e-4)
        assert!(
            ratio(2) - 1.0 > 1e-5,
            "{engine}: a round's content epoch is regularized: {h}"
        );
    }
}

/// `first_target: false` (the authors' code: each document's first main-text token is input
/// but no target; `kinds::pretrain`'s unit test checks the targets) and `batching: sequential`
/// change the losses (against first targets and bucketed batches), and the fused trainer and
/// the burn model still agree on them.
#[test]
fn first_target_and_batching_change_the_losses_alike_in_both_trainers() {
    let e = tiny_env();
    let losses = |engine: &str, first: bool, batching: &str| -> Vec<f64> {
        let set = [
            format!("stages.pretrain.params.engine={engine}"),
            format!("stages.pretrain.params.first_target={first}"),
            format!("stages.pretrain.params.batching={batching}"),
        ];
        let mut args = vec!["run", "p.yaml"];
        for s in &set {
            args.extend(["--set", s.as_str()]);
        }
        e.run(&args).ok();
        args[0] = "show";
        args.insert(2, "pretrain");
        let h = history(&e.output_dir(&args, "cache"));
        h.as_array()
            .unwrap()
            .iter()
            .map(|x| x["loss"].as_f64().unwrap())
            .collect()
    };
    let close = |a: &[f64], b: &[f64]| {
        a.len() == 3
            && a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4 * y.abs())
    };
    let bucketed = losses("auto", true, "bucket");
    for (first, batching) in [(false, "bucket"), (true, "sequential")] {
        let (fused, burn) = (
            losses("auto", first, batching),
            losses("burn", first, batching),
        );
        assert!(
            close(&fused, &burn),
            "{first} {batching}: fused {fused:?}, burn {burn:?}"
        );
        assert!(
            !close(&fused, &bucketed),
            "{first} {batching}: {fused:?} as with first targets and bucketed batches"
        );
    }
}

/// The bytes of the tensor `name` of a stage's checkpoint.safetensors.
fn tensor(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().to_vec()
}

/// `keep: lowest-loss` (the authors' code, docs/fidelity.md 8) writes each side's tables from
/// the epoch where that side's LM had its lowest loss: here a strong regularizer keeps the
/// rounds' content losses above the unregularized warm-up's, so the content tables are those
/// of the same run cut after that warm-up epoch, and the collaborative tables those of the run
/// cut after its best collaborative epoch (a run is a prefix of a longer one: dropout masks
/// and shuffles depend on the epoch, not on what follows).
#[test]
fn keep_lowest_loss_writes_each_sides_tables_of_its_best_epoch() {
    let e = tiny_env();
    let sets = |extra: &[String]| -> Vec<String> {
        let mut v = vec!["stages.pretrain.params.lambda_c=1000".to_owned()];
        v.extend(extra.iter().cloned());
        v.into_iter()
            .flat_map(|s| ["--set".to_owned(), s])
            .collect()
    };
    let run = |extra: &[String]| -> std::path::PathBuf {
        let set = sets(extra);
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        e.run(&[&["run", "p.yaml"][..], &set].concat()).ok();
        e.output_dir(
            &[&["show", "p.yaml", "pretrain"][..], &set].concat(),
            "cache",
        )
    };
    let p = |k: &str, v: &str| format!("stages.pretrain.params.{k}={v}");
    let kept = run(&[
        p("epochs", "3"),
        p("content_warmup", "2"),
        p("keep", "lowest-loss"),
    ]);
    let h = history(&kept);
    let best = |phases: &[&str]| -> (String, usize) {
        let mut best: Option<(f64, String, usize)> = None;
        for x in h.as_array().unwrap() {
            let phase = x["phase"].as_str().unwrap();
            let loss = x["loss"].as_f64().unwrap();
            if phases.contains(&phase) && best.as_ref().is_none_or(|b| loss < b.0) {
                best = Some((
                    loss,
                    phase.to_owned(),
                    x["epoch"].as_u64().unwrap() as usize,
                ));
            }
        }
        let (_, phase, e) = best.unwrap();
        (phase, e)
    };
    let (collab_phase, k) = best(&["collab"]);
    let (content_phase, m) = best(&["warmup", "content"]);
    assert_eq!(
        (collab_phase.as_str(), content_phase.as_str()),
        ("collab", "warmup"),
        "{h}"
    );
    let last = run(&[p("epochs", "3"), p("content_warmup", "2")]);
    let cut_collab = run(&[p("epochs", &k.to_string()), p("content_warmup", "2")]);
    let cut_content = run(&[p("epochs", "0"), p("content_warmup", &m.to_string())]);
    for t in ["collab_users", "collab_items"] {
        assert!(tensor(&kept, t) == tensor(&cut_collab, t), "{t}");
    }
    for t in ["content_users", "content_items"] {
        assert!(tensor(&kept, t) == tensor(&cut_content, t), "{t}");
    }
    // (the content corpus has item documents only: the content user table stays as it was)
    assert!(
        tensor(&kept, "content_items") != tensor(&last, "content_items"),
        "the last epoch's"
    );
}
