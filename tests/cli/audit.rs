//! `audit` (lineage, bundle, check) and `reproduce` on small pipelines.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value as Json;

use crate::support::{sweep_env, Env};

/// Every file and folder under `dir`: path -> (mode, size, mtime, bytes of files).
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u64, i64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let bytes = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p.strip_prefix(dir).unwrap().display().to_string(),
                (m.mode(), m.len(), m.mtime(), m.mtime_nsec(), bytes),
            );
        }
    }
    out
}

fn b3(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

/// ingest -> popular -> evaluate on the embedded MovieLens data (a few seconds).
fn movielens_env() -> Env {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e = Env::new();
    e.write(
        "p.yaml",
        &format!(
            "name: m\nstages:\n  ingest:\n    kind: ingest\n    params: {{format: movielens, path: '{}', min_rating: 4.0}}\n  popular:\n    kind: popular\n    needs: [ingest]\n  evaluate:\n    kind: evaluate\n    needs: [ingest, popular]\n",
            root.join("data/ml-latest-small").display()
        ),
    );
    e
}

#[test]
fn audit_traces_a_metric_to_the_raw_ratings_file() {
    let e = movielens_env();
    e.run(&["run", "p.yaml"]).ok();
    let ratings = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-latest-small/ratings.csv");
    let want = b3(&ratings);

    let text = e.run(&["audit", "p.yaml", "evaluate"]).ok().stdout();
    assert!(
        text.lines()
            .any(|l| l.contains(&want) && l.contains("ml-latest-small/ratings.csv")),
        "no line names ratings.csv with its blake3 {want}:\n{text}"
    );
    assert!(text.contains("metric  recall@20"), "{text}");
    assert!(
        text.contains("lineage     ingest -> popular -> evaluate"),
        "{text}"
    );

    let json: Json = serde_json::from_str(
        &e.run(&["audit", "p.yaml", "--format", "json"])
            .ok()
            .stdout(),
    )
    .unwrap();
    // Without a stage: every cached instance with metrics, here only `evaluate`.
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    let t = &targets[0];
    assert_eq!(t["label"], "evaluate");
    assert_eq!(
        t["lineage"],
        serde_json::json!(["ingest", "popular", "evaluate"])
    );
    let recall = t["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "recall@20")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert_eq!(Some(recall), t["metrics_json"]["recall@20"].as_f64());
    let raw = json["raw_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["abs"]
                .as_str()
                .unwrap()
                .ends_with("ml-latest-small/ratings.csv")
        })
        .expect("ratings.csv among the raw files");
    assert_eq!(raw["hash"], want.as_str());
    assert_eq!(raw["used_by"], serde_json::json!(["ingest"]));
    assert!(t["raw_files"]
        .as_array()
        .unwrap()
        .contains(&raw["abs"].clone()));
    // Every upstream instance with its kind, version, seed, key, output, tool and host.
    let nodes = json["instances"].as_array().unwrap();
    let ingest = nodes.iter().find(|n| n["label"] == "ingest").unwrap();
    assert_eq!(ingest["kind"], "ingest");
    assert_eq!(ingest["key"]["seed"], 0);
    assert_eq!(ingest["key"]["params"]["min_rating"], 4.0);
    assert_eq!(ingest["deps"][0]["recorded"], ingest["deps"][0]["current"]);
    for n in nodes {
        for f in [
            "key_hash",
            "output",
            "tool_version",
            "host",
            "started",
            "duration_s",
        ] {
            assert!(!n[f].is_null(), "{f} missing in {n}");
        }
    }

    // The bundle checks, and a tampered metric is caught and named.
    e.run(&["audit", "p.yaml", "evaluate", "--bundle", "appendix"])
        .ok();
    for f in [
        "bundle.json",
        "lineage.json",
        "audit.txt",
        "pipeline/p.yaml",
    ] {
        assert!(e.path("appendix").join(f).is_file(), "{f} not bundled");
    }
    assert_eq!(
        e.read("appendix/pipeline/p.yaml"),
        e.read("p.yaml"),
        "the exact pipeline text"
    );
    let ok = e.run(&["audit", "--check", "appendix"]).ok().stdout();
    assert!(ok.contains(" 0 failed"), "{ok}");
    assert!(ok.contains("ratings.csv` matches"), "{ok}");
    let m = e.read("appendix/outputs/evaluate/metrics.json");
    let tampered = m.replacen("\"recall@20\": 0.", "\"recall@20\": 0.9", 1);
    assert_ne!(m, tampered);
    e.write("appendix/outputs/evaluate/metrics.json", &tampered);
    let bad = e.run(&["audit", "--check", "appendix"]).fails(1).stdout();
    assert!(
        bad.contains("FAILED  `outputs/evaluate/metrics.json` was modified"),
        "{bad}"
    );

    // Another pipeline with the same instance under another name: cached, and audited under
    // its own name, not the name the record was written with.
    e.write(
        "q.yaml",
        &e.read("p.yaml").replace("  evaluate:", "  most-popular:"),
    );
    let run = e.run(&["run", "q.yaml"]).ok().stdout();
    assert!(run.contains("most-popular  cached"), "{run}");
    e.run(&["audit", "q.yaml", "--bundle", "appendix-q"]).ok();
    let bundle = e.read("appendix-q/bundle.json");
    assert!(
        e.path("appendix-q/outputs/most-popular/metrics.json")
            .is_file(),
        "{bundle}"
    );
    let ok = e.run(&["audit", "--check", "appendix-q"]).ok().stdout();
    assert!(ok.contains(" 0 failed"), "{ok}");
}

/// Three command stages: a raw data folder, a cleaned table, metrics from it.
fn command_env() -> Env {
    let e = Env::new();
    e.write("data/raw.csv", "user,item,score\n1,2,0.5\n2,3,0.25\n")
        .write(
            "p.yaml",
            r#"name: c
stages:
  prep:
    kind: command
    shell: true
    cmd: "tr a-z A-Z < data/raw.csv > $CLLM4REC_OUT/clean.csv"
    deps: [data]
  score:
    kind: command
    needs: [prep]
    shell: true
    cmd: "n=$(wc -l < $CLLM4REC_IN_PREP/clean.csv); echo \"{\\\"recall@20\\\": 0.$n}\" > $CLLM4REC_OUT/metrics.json"
  noisy:
    kind: command
    needs: [prep]
    shell: true
    cmd: "date +%s%N > $CLLM4REC_OUT/t.txt; printf 'a,b\n1,0.%s\n' $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') > $CLLM4REC_OUT/table.csv"
  loose:
    kind: command
    shell: true
    bit_exact: false
    cmd: "date +%s%N > $CLLM4REC_OUT/t.txt"
"#,
        );
    e
}

#[test]
fn reproduce_all_is_identical_and_leaves_the_cache_untouched() {
    let e = sweep_env("0");
    e.run(&["run", "sweep.yaml"]).ok();
    let before = snapshot(&e.path("cache"));
    let r = e.run(&["reproduce", "sweep.yaml", "--all"]).ok().stdout();
    assert!(r.contains("18 instances: 18 identical, 0 differ"), "{r}");
    assert!(r.contains("ablate"), "{r}");
    let one = e
        .run(&["reproduce", "sweep.yaml", "--all", "--sample", "2"])
        .ok()
        .stdout();
    assert!(one.contains("reproducing 2 of 18 instance(s)"), "{one}");
    assert!(one.contains("2 instances: 2 identical"), "{one}");
    assert!(
        before == snapshot(&e.path("cache")),
        "reproduce changed the cache folder"
    );
    // The scratch folder is removed unless --keep.
    let scratch = e.path("scratch");
    std::fs::create_dir(&scratch).unwrap();
    e.run(&["reproduce", "sweep.yaml", "ingest", "--scratch", "scratch"])
        .ok();
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    let kept = e
        .run(&[
            "reproduce",
            "sweep.yaml",
            "ingest",
            "--scratch",
            "scratch",
            "--keep",
        ])
        .ok()
        .stdout();
    assert!(kept.contains("kept the reproduced outputs"), "{kept}");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 1);

    // A gathering stage without metrics is audited when named, with every point upstream.
    let a = e.run(&["audit", "sweep.yaml", "ablate"]).ok().stdout();
    assert!(a.contains("metrics     none recorded"), "{a}");
    assert_eq!(a.matches("  input       evaluate = ").count(), 5, "{a}");
    assert!(a.contains("(evaluate[lambda_c=100])"), "{a}");
    // Without a stage: the five evaluate instances, which have metrics.
    let all = e.run(&["audit", "sweep.yaml"]).ok().stdout();
    assert_eq!(all.matches("\n== evaluate[").count(), 5, "{all}");
}

#[test]
fn reproduce_names_the_files_of_a_nondeterministic_stage() {
    let e = command_env();
    e.run(&["run", "p.yaml"]).ok();
    let before = snapshot(&e.path("cache"));
    let r = e.run(&["reproduce", "p.yaml", "noisy"]).fails(1);
    let out = r.stdout();
    assert!(out.contains("noisy  DIFFERS"), "{out}");
    assert!(out.contains("`t.txt` differs"), "{out}");
    assert!(
        out.contains("`table.csv` differs: 1 number(s) differ, largest absolute difference")
            && out.contains("at line 2, column `b`"),
        "{out}"
    );
    assert!(out.contains("1 instances: 0 identical, 1 differ"), "{out}");
    // Declared not bit-exact: reported, not a failure.
    let loose = e.run(&["reproduce", "p.yaml", "loose"]).ok().stdout();
    assert!(
        loose.contains("differs (not declared bit-exact)"),
        "{loose}"
    );
    assert!(loose.contains("`t.txt` differs"), "{loose}");
    let det = e.run(&["reproduce", "p.yaml", "score"]).ok().stdout();
    assert!(det.contains("1 instances: 1 identical"), "{det}");
    assert!(before == snapshot(&e.path("cache")));
    // The audit says which stages are bit-exact.
    let a = e.run(&["audit", "p.yaml", "loose"]).ok().stdout();
    assert!(a.contains("not declared bit-exact"), "{a}");
}

#[test]
fn check_fails_on_a_changed_raw_file_and_an_added_file() {
    let e = command_env();
    e.run(&["run", "p.yaml"]).ok();
    let want = b3(&e.path("data/raw.csv"));
    let text = e.run(&["audit", "p.yaml"]).ok().stdout();
    let line = format!("{want}  {:>10}  data/raw.csv", 33);
    assert!(text.contains(&line), "{line} not in:\n{text}");
    e.run(&["audit", "p.yaml", "--bundle", "b", "--format", "json"])
        .ok();
    e.run(&["audit", "--check", "b"]).ok();
    // A bundle folder is never overwritten.
    let again = e.run(&["audit", "p.yaml", "--bundle", "b"]).fails(2);
    assert!(
        again.stderr().contains("is not empty"),
        "{}",
        again.stderr()
    );

    e.write("data/raw.csv", "user,item,score\n1,2,0.5\n");
    e.write("b/extra.txt", "x");
    let bad = e.run(&["audit", "--check", "b"]).fails(1).stdout();
    assert!(bad.contains("raw.csv` has changed"), "{bad}");
    assert!(
        bad.contains("`extra.txt` is not part of the bundle"),
        "{bad}"
    );
    // The audit of the changed pipeline: its instance is no longer cached.
    let gone = e.run(&["audit", "p.yaml", "score"]).fails(1);
    assert!(
        gone.stderr().contains("not cached: score"),
        "{}",
        gone.stderr()
    );
}

#[test]
fn bit_exact_must_be_a_boolean() {
    let e = Env::new();
    e.write(
        "p.yaml",
        "name: x\nstages:\n  a:\n    kind: command\n    cmd: [true]\n    bit_exact: maybe\n",
    );
    let r = e.run(&["plan", "p.yaml"]).fails(2);
    assert!(r.stderr().contains("p.yaml:6"), "{}", r.stderr());
}
