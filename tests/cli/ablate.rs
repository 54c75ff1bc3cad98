//! The `ablate` stage and the `table` command on a tiny CLLM4Rec sweep: the table, plots,
//! cache hits, `table --check`, and the ready sweeps and pipelines loading.

use std::path::{Path, PathBuf};

use crate::support::Env;

/// 40 users with 6 items each out of 30, in two taste groups (as in model.rs).
fn dataset() -> String {
    let mut s = String::from("user,item,rating,timestamp\n");
    for u in 0..40 {
        let group = u % 2;
        for k in 0..6 {
            let item = group * 15 + (u * 7 + k * 3) % 15;
            s.push_str(&format!("u{u},i{item},5,{}\n", u * 10 + k));
        }
    }
    s
}

const STAGES: &str = r#"
  ingest:
    kind: ingest
    params: {format: table, path: data.csv, rating_col: rating, time_col: timestamp}
  tokenize:
    kind: tokenize
    needs: [ingest]
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, epochs: 2, batch_size: 16, lambda_c: "${matrix.lambda_c}"}
  finetune:
    kind: finetune
    needs: [pretrain, tokenize, ingest]
    params: {epochs: 2, lr: 0.01, batch_size: 16, lambda_c: "${matrix.lambda_c}"}
  evaluate:
    kind: evaluate
    needs: [ingest, tokenize, finetune]
"#;

fn sweep() -> String {
    format!(
        "name: tiny\nmatrix:\n  lambda_c: [0.1, 1, 10]\nstages:{STAGES}  ablate:\n    kind: ablate\n    needs: [\"evaluate[*]\", \"pretrain[*]\", \"finetune[*]\"]\n    params: {{reference: lambda_c=1}}\n"
    )
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn ablate_tables_plots_and_checks() {
    let e = Env::new();
    e.write("data.csv", &dataset()).write("p.yaml", &sweep());
    let first = e.run_cache(&["run", "p.yaml"], "c1").ok();
    let out = first.stdout();
    assert!(
        out.contains("| variant | users | recall@20 | change | p_t | p_W |"),
        "{out}"
    );
    assert!(
        out.contains("plots:") && out.contains("sensitivity.png"),
        "{out}"
    );

    let dir = e.output_dir(&["show", "p.yaml", "ablate"], "c1");
    let table = json(&dir.join("table.json"));
    let rows = table["rows"].as_array().unwrap();
    let labels: Vec<&str> = rows
        .iter()
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["lambda_c=0.1", "lambda_c=1", "lambda_c=10"]);
    assert_eq!(table["reference"], "lambda_c=1");
    assert_eq!(
        table["metrics"],
        serde_json::json!(["recall@20", "recall@40", "ndcg@100"])
    );
    // The means are those evaluate reported (computed there from the rankings, here from
    // per_user.csv).
    let eval_dir = |point: &str| {
        let show = e
            .run_cache(&["show", "p.yaml", "evaluate"], "c1")
            .ok()
            .stdout();
        let section = show
            .split("== ")
            .find(|s| s.starts_with(&format!("evaluate[{point}]")))
            .unwrap()
            .to_owned();
        PathBuf::from(
            section
                .lines()
                .find_map(|l| l.strip_prefix("output: "))
                .unwrap(),
        )
    };
    for (k, point) in ["lambda_c=0.1", "lambda_c=1", "lambda_c=10"]
        .iter()
        .enumerate()
    {
        let m = json(&eval_dir(point).join("metrics.json"));
        for (c, name) in ["recall@20", "recall@40", "ndcg@100"].iter().enumerate() {
            let mean = rows[k]["cells"][c]["mean"].as_f64().unwrap();
            assert!(
                (mean - m[name].as_f64().unwrap()).abs() < 1e-9,
                "{point} {name}"
            );
        }
    }
    // The reference has no change or p-values; the others are paired on all 40 users.
    assert!(rows[1]["cells"][0]["p_t"].is_null());
    assert_eq!(rows[0]["cells"][2]["paired"], 40);
    // Plots: PNG and SVG, with the axis named.
    for f in ["sensitivity.png", "curves.png"] {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{f}");
    }
    let svg = std::fs::read_to_string(dir.join("sensitivity.svg")).unwrap();
    assert!(svg.contains("lambda_c (log scale)") && svg.contains("recall@20"));
    let curves = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(curves.contains("Pretraining: collaborative LM") && curves.contains("epoch"));

    // A second run is all cache hits; a run in another cache gives the same outputs (plots
    // included: the ablate output hash is the same).
    let again = e.run_cache(&["run", "p.yaml"], "c1").ok();
    assert_eq!(again.counts(), (0, 12));
    let other = e.run_cache(&["run", "p.yaml"], "c2").ok();
    assert_eq!(first.outputs(), other.outputs());

    // `table` prints the stage's table.md; csv and latex render the same table.
    let md = e.run_cache(&["table", "p.yaml"], "c1").ok().stdout();
    assert_eq!(md, std::fs::read_to_string(dir.join("table.md")).unwrap());
    let csv = e
        .run_cache(&["table", "p.yaml", "--format", "csv"], "c1")
        .ok()
        .stdout();
    assert_eq!(csv, std::fs::read_to_string(dir.join("table.csv")).unwrap());
    let tex = e
        .run_cache(&["table", "p.yaml", "--format", "latex"], "c1")
        .ok()
        .stdout();
    assert!(
        tex.starts_with("\\begin{tabular}") && tex.contains("lambda\\_c=10 & 40 &"),
        "{tex}"
    );

    // --check: the same text passes, another fails naming the line.
    e.write("results.md", &md);
    e.run_cache(&["table", "p.yaml", "--check", "results.md"], "c1")
        .ok();
    e.write("results.md", &md.replacen("lambda_c=10", "lambda_c=11", 1));
    let bad = e
        .run_cache(&["table", "p.yaml", "--check", "results.md"], "c1")
        .fails(1);
    assert!(
        bad.stderr().contains("results.md differs"),
        "{}",
        bad.stderr()
    );
    assert!(
        bad.stderr().contains("- | lambda_c=11 |"),
        "{}",
        bad.stderr()
    );

    // Nothing cached: `table` says which instances have not run, runs nothing, exits 1.
    let cold = e.run_cache(&["table", "p.yaml"], "c3").fails(1);
    assert!(
        cold.stderr().contains("not in the cache"),
        "{}",
        cold.stderr()
    );
    assert!(
        cold.stderr().contains("pretrain[lambda_c=0.1]"),
        "{}",
        cold.stderr()
    );
    assert!(cold.stdout().is_empty());
    assert_eq!(e.records("c3"), 0);
}

#[test]
fn named_variants_and_evaluation_from_pretraining() {
    let e = Env::new();
    let p = format!(
        "name: named\nmatrix:\n  lambda_c: [1]\nstages:{STAGES}  no-finetune:\n    kind: evaluate\n    needs: [ingest, tokenize, pretrain]\n  ablate:\n    kind: ablate\n    needs: [evaluate, no-finetune, finetune]\n    params: {{reference: evaluate}}\n"
    );
    e.write("data.csv", &dataset()).write("p.yaml", &p);
    e.run_cache(&["run", "p.yaml"], "c").ok();
    let dir = e.output_dir(&["show", "p.yaml", "ablate"], "c");
    let table = json(&dir.join("table.json"));
    let labels: Vec<&str> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["evaluate", "no-finetune"]);
    // Named variants have no axis: no sensitivity plot; finetuning curves, no pretraining ones.
    assert!(!dir.join("sensitivity.png").exists());
    assert!(dir.join("curves.png").is_file());
    let curves = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(curves.contains("Finetuning (RecLLM)") && !curves.contains("Pretraining"));

    // A reference that is not a variant fails the stage, naming the variants.
    let bad = p.replace("{reference: evaluate}", "{reference: evaluat}");
    e.write("p.yaml", &bad);
    let r = e.run_cache(&["run", "p.yaml"], "c").fails(1);
    assert!(
        r.stderr().contains("no variant `evaluat`") && r.stderr().contains("evaluate"),
        "{}",
        r.stderr()
    );
}

#[test]
fn table_needs_an_ablate_stage() {
    let e = Env::new();
    e.write(
        "p.yaml",
        "name: x\nstages:\n  a:\n    kind: command\n    cmd: [\"true\"]\n",
    );
    let r = e.run(&["table", "p.yaml"]).fails(2);
    assert!(
        r.stderr().contains("has no `ablate` stage"),
        "{}",
        r.stderr()
    );
}

#[test]
fn ready_sweeps_and_pipelines_plan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e = Env::new();
    for (file, instances) in [
        ("sweeps/lambda.yaml", 18),
        ("sweeps/backbone-size.yaml", 12),
        ("pipelines/ablations.yaml", 21),
        ("pipelines/paper-table.yaml", 19),
    ] {
        let path = root.join(file);
        let r = e.run(&["plan", path.to_str().unwrap()]).ok();
        assert!(
            r.stdout()
                .contains(&format!("{instances} instances: 0 cached")),
            "{file}: {}",
            r.stdout()
        );
    }
    // the pretrained-vs-scratch sweep needs the SmolLM2 file (its tokenizer is checked at load)
    if let Some(gguf) = crate::common_smollm2::smollm2_gguf() {
        let path = root.join("sweeps/backbone.yaml");
        let set = format!("params.smollm2={}", gguf.display());
        let r = e.run(&["plan", path.to_str().unwrap(), "--set", &set]).ok();
        assert!(
            r.stdout().contains("13 instances: 0 cached"),
            "{}",
            r.stdout()
        );
    }
}

/// `compute: true`: every trainer counts its model FLOPs (finetuning on top of its
/// pretraining's), evaluate passes them on with the kept epoch's validation metrics, the
/// table chooses each method's configuration on validation within each budget, `table` adds
/// the CPU seconds of the training stages (kept with `--jobs 1`), and budget.svg plots it.
#[test]
fn budget_tables_count_compute_and_choose_on_validation() {
    let e = Env::new();
    let p = r#"name: budget
matrix:
  ft: [1, 3]
  vae: [2, 4]
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
    params: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, epochs: 1, content_warmup: 1, batch_size: 16}
  finetune:
    kind: finetune
    needs: [pretrain, tokenize, ingest]
    params: {epochs: "${matrix.ft}", lr: 0.01, batch_size: 16}
  cllm4rec:
    kind: evaluate
    needs: [ingest, tokenize, finetune]
  vae-train:
    kind: multivae
    needs: [ingest]
    params: {epochs: "${matrix.vae}", hidden: 8, latent: 4, batch_size: 10}
  multi-vae:
    kind: evaluate
    needs: [ingest, vae-train]
  ablate:
    kind: ablate
    needs: ["cllm4rec[*]", "multi-vae[*]"]
    params: {compute: true, axis: none}
"#;
    e.write("data.csv", &dataset()).write("p.yaml", p);
    let first = e.run_cache(&["run", "p.yaml", "--jobs", "1"], "c1").ok();
    let model = |stage: &str, point: &str| {
        let dir = e.output_dir(&["show", "p.yaml", stage, "--set", point], "c1");
        json(&dir.join("model.json"))
    };
    // pretraining's FLOPs are its epochs'; each finetuning run adds its own to them
    let pre = e.output_dir(&["show", "p.yaml", "pretrain"], "c1");
    let history = json(&pre.join("history.json"));
    let epochs: f64 = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["flops"].as_f64().unwrap())
        .sum();
    let pre_flops = json(&pre.join("model.json"))["flops"].as_f64().unwrap();
    assert!(epochs > 0.0 && pre_flops == epochs, "{pre_flops} {epochs}");
    let ft1 = model("finetune", "matrix.ft=[1]")["flops"]
        .as_f64()
        .unwrap();
    let ft3 = model("finetune", "matrix.ft=[3]")["flops"]
        .as_f64()
        .unwrap();
    assert!(
        ft1 > pre_flops && ft3 - pre_flops > 2.0 * (ft1 - pre_flops),
        "{ft1} {ft3}"
    );
    let vae = model("vae-train", "matrix.vae=[4]");
    assert!(vae["flops"].as_f64().unwrap() > 0.0 && vae["valid"]["recall@20"].is_number());

    let dir = e.output_dir(&["show", "p.yaml", "ablate"], "c1");
    let table = json(&dir.join("table.json"));
    let rows = table["budget"]["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["cllm4rec", "cllm4rec", "multi-vae", "multi-vae"]);
    assert_eq!(rows[0]["flops"].as_f64().unwrap(), ft1);
    // each row's choice: the method's best validation among the rows of at most its FLOPs
    // (rows come by FLOPs; on a tie, the cheaper)
    for r in rows {
        let best = rows
            .iter()
            .filter(|o| o["method"] == r["method"] && o["flops"].as_f64() <= r["flops"].as_f64())
            .fold(None::<&serde_json::Value>, |b, o| match b {
                Some(b) if b["valid"].as_f64() >= o["valid"].as_f64() => Some(b),
                _ => Some(o),
            })
            .unwrap();
        assert_eq!(r["chosen"], best["variant"], "{r}");
        assert_eq!(r["chosen_test"], best["test"], "{r}");
    }
    let svg = std::fs::read_to_string(dir.join("budget.svg")).unwrap();
    assert!(svg.contains("model FLOPs of training") && svg.contains("multi-vae"));

    // `table` adds the CPU seconds from the records; the stage's own table.md has none
    let md = e.run_cache(&["table", "p.yaml"], "c1").ok().stdout();
    assert!(
        md.contains("| method | variant | FLOPs | CPU s | valid |"),
        "{md}"
    );
    let stored = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(
        stored.contains("| method | variant | FLOPs | valid |"),
        "{stored}"
    );
    let cpu_rows = md
        .lines()
        .filter(|l| l.starts_with("| cllm4rec | ") || l.starts_with("| multi-vae | "));
    for l in cpu_rows {
        let cpu = l.split(" | ").nth(3).unwrap();
        assert!(cpu.parse::<f64>().is_ok(), "{l}");
    }
    // the outputs (compute.json included) are the same from run to run
    let other = e.run_cache(&["run", "p.yaml"], "c3").ok();
    assert_eq!(first.outputs(), other.outputs());

    // a variant whose model does not count its FLOPs is named
    let bad = format!(
        "{}  popular:\n    kind: popular\n    needs: [ingest]\n  most-popular:\n    kind: evaluate\n    needs: [ingest, popular]\n  ablate2:\n    kind: ablate\n    needs: [\"cllm4rec[*]\", most-popular]\n    params: {{compute: true, axis: none}}\n",
        p
    );
    e.write("bad.yaml", &bad);
    let fail = e.run_cache(&["plan", "bad.yaml"], "c1").fails(2);
    assert!(
        fail.stderr().contains("bad.yaml")
            && fail
                .stderr()
                .contains("variant `most-popular` has no compute: its model `popular`"),
        "{}",
        fail.stderr()
    );

    // `methods` counts one stage's variants toward another's method: Multi-VAE's runs join
    // CLLM4Rec's choices, and a row may choose one of them
    let grouped = format!(
        "{p}  ablate3:\n    kind: ablate\n    needs: [\"cllm4rec[*]\", \"multi-vae[*]\"]\n    params: {{compute: true, axis: none, methods: {{multi-vae: cllm4rec}}}}\n"
    );
    e.write("grouped.yaml", &grouped);
    e.run_cache(&["run", "grouped.yaml"], "c1").ok();
    let dir3 = e.output_dir(&["show", "grouped.yaml", "ablate3"], "c1");
    let rows3 = json(&dir3.join("table.json"))["budget"]["rows"].clone();
    let rows3 = rows3.as_array().unwrap();
    assert!(rows3.iter().all(|r| r["method"] == "cllm4rec"), "{rows3:?}");
    // (rows by FLOPs: on a tie of validation, the cheaper)
    let best = rows3
        .iter()
        .fold(None::<&serde_json::Value>, |b, o| match b {
            Some(b) if b["valid"].as_f64() >= o["valid"].as_f64() => Some(b),
            _ => Some(o),
        })
        .unwrap();
    let largest = rows3
        .iter()
        .max_by(|a, b| {
            a["flops"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["flops"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(largest["chosen"], best["variant"], "{rows3:?}");
    // without it, the same rows as two methods (ablate's own key unchanged by the new param)
    let plain_key = |y: &str| {
        e.run_cache(&["plan", y], "c1")
            .ok()
            .stdout()
            .lines()
            .find(|l| l.starts_with("ablate "))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
            .unwrap()
    };
    e.write(
        "empty.yaml",
        &p.replace(
            "{compute: true, axis: none}",
            "{compute: true, axis: none, methods: {}}",
        ),
    );
    assert_eq!(plain_key("p.yaml"), plain_key("empty.yaml"));

    // a stage it does not gather, or `methods` without `compute`, is refused before anything
    // runs, naming the file and the param (the fresh cache c4 stays empty)
    e.write(
        "typo.yaml",
        &grouped.replace("{multi-vae: cllm4rec}", "{multivae: cllm4rec}"),
    );
    let fail = e.run_cache(&["run", "typo.yaml"], "c4").fails(2);
    assert!(
        fail.stderr().contains("typo.yaml")
            && fail.stderr().contains(
                "`multivae` is not an evaluate stage this ablate gathers (cllm4rec, multi-vae)"
            ),
        "{}",
        fail.stderr()
    );
    assert!(
        !e.path("c4").join("records").exists()
            || std::fs::read_dir(e.path("c4").join("records"))
                .unwrap()
                .next()
                .is_none()
    );
    e.write(
        "nocompute.yaml",
        &grouped.replace("compute: true, axis: none, methods", "axis: none, methods"),
    );
    let fail = e.run_cache(&["plan", "nocompute.yaml"], "c1").fails(2);
    assert!(
        fail.stderr().contains("nocompute.yaml")
            && fail.stderr().contains("it needs `compute: true`"),
        "{}",
        fail.stderr()
    );
}
