//! First run computes, second reuses, changes rerun only what they affect.

use crate::support::{ran, sweep_env, Env};

#[test]
fn first_run_computes_second_reuses_everything() {
    let e = sweep_env("0");
    let r1 = e.run(&["run", "sweep.yaml"]).ok();
    assert_eq!(r1.counts(), (18, 0));
    assert_eq!(ran(&e).len(), 18);
    // the gather stage saw one folder per point, and their metrics
    let ablate = r1
        .outputs()
        .into_iter()
        .find(|(l, _)| l == "ablate")
        .unwrap();
    assert!(!ablate.1.is_empty());
    let r2 = e.run(&["run", "sweep.yaml"]).ok();
    assert_eq!(r2.counts(), (0, 18));
    assert_eq!(ran(&e).len(), 18, "a rerun executed something");
    assert_eq!(r1.outputs(), r2.outputs());
    // metrics table printed from the records
    assert!(r2.stdout().contains("recall@20"), "{}", r2.stdout());
    assert!(
        r2.stdout().contains("evaluate[lambda_c=0.01]  0.0100"),
        "{}",
        r2.stdout()
    );
}

#[test]
fn expansion_runs_shared_stages_once() {
    let e = sweep_env("0");
    e.run(&["run", "sweep.yaml"]).ok();
    let r = ran(&e);
    for (stage, n) in [
        ("ingest", 1),
        ("tokenize", 1),
        ("pretrain", 5),
        ("finetune", 5),
        ("evaluate", 5),
        ("ablate", 1),
    ] {
        assert_eq!(
            r.iter()
                .filter(|l| l.split('-').next() == Some(stage))
                .count(),
            n,
            "{stage}: {r:?}"
        );
    }
}

#[test]
fn matrix_change_reruns_only_new_points_and_plan_says_why() {
    let e = sweep_env("0");
    e.run(&["run", "sweep.yaml"]).ok();
    let plan = e
        .run(&[
            "plan",
            "sweep.yaml",
            "--set",
            "matrix.lambda_c=[0.01, 0.1, 1, 10, 1000]",
        ])
        .ok()
        .stdout();
    assert!(plan.contains("pretrain[lambda_c=1000]"), "{plan}");
    assert!(
        plan.lines()
            .any(|l| l.starts_with("pretrain[lambda_c=1000]") && l.contains("never run")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("pretrain[lambda_c=0.01]") && l.ends_with("hit")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("ablate") && l.contains("input `evaluate` is recomputed first")),
        "{plan}"
    );
    let r = e
        .run(&[
            "run",
            "sweep.yaml",
            "--set",
            "matrix.lambda_c=[0.01, 0.1, 1, 10, 1000]",
        ])
        .ok();
    // pretrain, finetune, evaluate at 1000 and the ablate that gathers them
    assert_eq!(r.counts(), (4, 14));
}

#[test]
fn param_change_reruns_affected_instances_only() {
    let e = sweep_env("0");
    e.run(&["run", "sweep.yaml"]).ok();
    let plan = e
        .run(&["plan", "sweep.yaml", "--set", "params.size=4"])
        .ok()
        .stdout();
    let line = |l: &str| plan.lines().find(|x| x.starts_with(l)).unwrap().to_owned();
    assert!(line("ingest").ends_with("hit"), "{plan}");
    assert!(
        line("tokenize").contains("miss: param `size` changed 3 -> 4"),
        "{plan}"
    );
    assert!(
        line("pretrain[lambda_c=0.1]").contains("input `tokenize` is recomputed first"),
        "{plan}"
    );
    std::fs::remove_file(e.path("ran.log")).unwrap();
    let r = e.run(&["run", "sweep.yaml", "--set", "params.size=4"]).ok();
    // ingest is reused; evaluate reruns but writes the same metrics, so ablate is reused too
    assert_eq!(r.counts(), (16, 2));
    assert!(
        r.stdout()
            .lines()
            .any(|l| l.starts_with("ablate") && l.contains("cached")),
        "{}",
        r.stdout()
    );
    assert!(!ran(&e).contains(&"ingest".to_owned()));
}

#[test]
fn stage_param_change_is_named_in_plan() {
    let e = Env::new();
    let yaml = |lr: &str| {
        format!("name: p\nstages:\n  train:\n    kind: command\n    params: {{lr: {lr}}}\n    cmd: [sh, -c, 'echo ${{params.lr}} > $CLLM4REC_OUT/lr']\n")
    };
    e.write("p.yaml", &yaml("1"));
    e.run(&["run", "p.yaml"]).ok();
    e.write("p.yaml", &yaml("10"));
    let plan = e.run(&["plan", "p.yaml"]).ok().stdout();
    assert!(plan.contains("miss: param `lr` changed 1 -> 10"), "{plan}");
    // the command saw its own param
    e.run(&["run", "p.yaml"]).ok();
    let show = e.run(&["show", "p.yaml", "train"]).ok().stdout();
    let out = show
        .lines()
        .find_map(|l| l.strip_prefix("output: "))
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&out).join("lr"))
            .unwrap()
            .trim(),
        "10"
    );
}

#[test]
fn dep_change_is_named_and_reruns() {
    let e = sweep_env("0");
    e.run(&["run", "sweep.yaml"]).ok();
    e.write("prep.sh", "echo changed\n");
    let plan = e.run(&["plan", "sweep.yaml"]).ok().stdout();
    assert!(plan.lines().next().is_some());
    assert!(
        plan.lines()
            .any(|l| l.starts_with("ingest") && l.contains("dep `prep.sh` changed")),
        "{plan}"
    );
    // ingest's output is the same, so everything downstream is still cached
    let r = e.run(&["run", "sweep.yaml"]).ok();
    assert_eq!(r.counts(), (1, 17));
}

#[test]
fn seed_is_in_the_key_and_the_params_file() {
    let e = Env::new();
    e.write(
        "p.yaml",
        "name: p\nparams: {seed: 5}\nstages:\n  a:\n    kind: command\n    cmd: [sh, -c, 'cp $CLLM4REC_PARAMS $CLLM4REC_OUT/p.json; echo $CLLM4REC_SEED > $CLLM4REC_OUT/seed']\n",
    );
    e.run(&["run", "p.yaml"]).ok();
    let show = e.run(&["show", "p.yaml", "a"]).ok().stdout();
    let out = std::path::PathBuf::from(
        show.lines()
            .find_map(|l| l.strip_prefix("output: "))
            .unwrap(),
    );
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("p.json")).unwrap()).unwrap();
    assert_eq!(params["params"]["seed"], 5);
    assert_eq!(
        std::fs::read_to_string(out.join("seed")).unwrap().trim(),
        "5"
    );
    let plan = e
        .run(&["plan", "p.yaml", "--set", "params.seed=6"])
        .ok()
        .stdout();
    assert!(plan.contains("seed changed 5 -> 6"), "{plan}");
}

#[test]
fn identical_runs_in_two_caches_give_identical_hashes() {
    let e = sweep_env("0");
    let a = e.run_cache(&["run", "sweep.yaml"], "cache-a").ok();
    let b = e.run_cache(&["run", "sweep.yaml"], "cache-b").ok();
    assert_eq!(a.outputs(), b.outputs());
}

#[test]
fn templates_fill_defaults_and_pipeline_values_win() {
    let e = Env::new();
    e.write(
        "stages/train.yaml",
        "# a template\nkind: command\nparams:\n  lr: 0.1   # learning rate\n  epochs: 2\ncmd: [sh, -c, 'echo ${params.lr} ${params.epochs} > $CLLM4REC_OUT/cfg']\n",
    );
    e.write(
        "pipelines/p.yaml",
        "name: p\nstages:\n  train:\n    use: stages/train.yaml\n    params: {lr: 0.5}\n",
    );
    e.run(&["run", "pipelines/p.yaml"]).ok();
    let show = e.run(&["show", "pipelines/p.yaml", "train"]).ok().stdout();
    let out = std::path::PathBuf::from(
        show.lines()
            .find_map(|l| l.strip_prefix("output: "))
            .unwrap(),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("cfg")).unwrap().trim(),
        "0.5 2"
    );
}
