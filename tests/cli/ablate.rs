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
