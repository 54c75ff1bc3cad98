//! The HTML report in a real browser: the quickstart's and the lambda sweep's pages against
//! what `run` and `table` print, a pipeline with failed and waiting instances, and every ready
//! pipeline and sweep.

use std::path::{Path, PathBuf};

use super::dom::{
    artifact, assert_links_resolve, browse, chromium, element, elements, lineage_naming,
    markdown_rows, rows,
};
use super::{blake3_hex, cache_fingerprint, lambda, repo, skip};
use crate::support::Env;

const QUICKSTART_SHORT: [&str; 4] = [
    "--set",
    "stages.pretrain.params.epochs=1",
    "--set",
    "stages.finetune.params.epochs=2",
];

#[test]
fn quickstart_report_in_chromium() {
    let Some(exe) = chromium() else {
        return skip("quickstart_report_in_chromium", "no chromium");
    };
    let e = Env::new();
    let qs = repo("pipelines/quickstart.yaml");
    let mut args = vec!["run", qs.as_str()];
    args.extend(QUICKSTART_SHORT);
    e.run(&args).ok();
    // The metrics table of a cached rerun is what the page must show.
    let rerun = e.run(&args).ok().stdout();
    let md_metrics: Vec<Vec<String>> = rerun
        .lines()
        .skip_while(|l| !l.starts_with("metrics "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(md_metrics.len(), 2, "{rerun}");
    let before = cache_fingerprint(&e.path("cache"));
    let page = e.path("quickstart.html");
    let mut rargs = vec!["report", qs.as_str(), "-o", page.to_str().unwrap()];
    rargs.extend(QUICKSTART_SHORT);
    let out = e.run(&rargs).ok().stdout();
    assert!(out.contains("7 instances, 7 cached"), "{out}");
    assert_eq!(
        before,
        cache_fingerprint(&e.path("cache")),
        "report changed the cache"
    );
    let dom = browse(&exe, &page, &artifact("quickstart.png"));
    // The metrics table: the same rows and values as `run` printed.
    let (table, _) = element(&dom, "table", "id=\"metrics-table\"", 0).expect("metrics table");
    assert_eq!(rows(table), md_metrics);
    // The training curves, drawn from the pretrain and finetune histories.
    let plots = elements(&dom, "figure", "data-plot=\"curves\"");
    assert_eq!(plots.len(), 1);
    assert!(plots[0].contains("<svg") && plots[0].contains("polyline"));
    // Every metric links to a lineage view that names ratings.csv and its blake3.
    let ratings = blake3_hex(&repo("data/ml-latest-small/ratings.csv"));
    assert_eq!(
        lineage_naming(&dom, "ratings.csv", &ratings),
        2,
        "{ratings}"
    );
    assert_links_resolve(&dom, table);
    // Every instance with its state, key, output, time, host and backend.
    let (inst, _) = element(&dom, "table", "id=\"instance-table\"", 0).unwrap();
    let rs = rows(inst);
    assert_eq!(rs.len(), 7);
    let pretrain = rs.iter().find(|r| r[0] == "pretrain").unwrap();
    assert_eq!(pretrain[1], "cached");
    assert_eq!(pretrain[9], "ndarray");
    assert!(pretrain[4].contains("\"epochs\":1"), "{pretrain:?}");
    assert!(pretrain[7].ends_with('s'));
    // `verify` after it: the cache is clean.
    e.run(&["verify"]).ok();
}

/// The lambda sweep's page: its table is `table`'s, its plots are there, every lineage link
/// resolves, and the report leaves the cache as it was.
#[test]
fn lambda_report_in_chromium() {
    let l = lambda();
    let e = &l.env;
    let md = &l.table;
    let before = cache_fingerprint(&e.path("cache"));
    let page = e.path("lambda.html");
    let mut rargs = l.args(&["report"]);
    rargs.extend(["-o", page.to_str().unwrap()]);
    e.run(&rargs).ok();
    assert_eq!(
        before,
        cache_fingerprint(&e.path("cache")),
        "report changed the cache"
    );
    e.run(&["verify"]).ok();
    match chromium() {
        None => skip("lambda_report_in_chromium", "no chromium"),
        Some(exe) => {
            let dom = browse(&exe, &page, &artifact("lambda.png"));
            let (t, _) = element(&dom, "table", "class=\"ablate\"", 0).expect("ablate table");
            let want = markdown_rows(md);
            assert_eq!(want.len(), 2, "{md}");
            assert_eq!(
                rows(t),
                want,
                "the page's table differs from `table`'s:\n{md}"
            );
            for plot in ["sensitivity.svg", "curves.svg"] {
                let f = elements(&dom, "figure", &format!("data-plot=\"{plot}\""));
                assert_eq!(f.len(), 1, "{plot}");
                assert!(f[0].contains("<svg"));
            }
            let ratings = blake3_hex(&repo("data/ml-latest-small/ratings.csv"));
            // the two evaluations and the ablate stage
            assert_eq!(lineage_naming(&dom, "ratings.csv", &ratings), 3);
            assert_links_resolve(&dom, t);
            let (inst, _) = element(&dom, "table", "id=\"instance-table\"", 0).unwrap();
            let rs = rows(inst);
            assert_eq!(rs.len(), 9);
            let ft = rs
                .iter()
                .find(|r| r[0].starts_with("finetune[lambda_c=10]"))
                .unwrap();
            assert_eq!(ft[3], "{\"lambda_c\":10}");
            let key = l.record("finetune[lambda_c=10]")["key_hash"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(inst.contains(&key), "the key of finetune[lambda_c=10]");
        }
    }
}

/// A pipeline of command stages where one fails: the report says which failed and which
/// never ran, the exports leave them out, and nothing is written into the cache.
#[test]
fn report_shows_failed_and_waiting_instances() {
    let e = Env::new();
    e.write(
        "p.yaml",
        r#"name: partial
matrix:
  x: [1, 2]
stages:
  prep:
    kind: command
    cmd: ["sh", "-c", "echo '{\"rows\": 3}' > $CLLM4REC_OUT/metrics.json"]
  train:
    kind: command
    needs: [prep]
    cmd: ["sh", "-c", "if [ ${matrix.x} = 2 ]; then echo boom; exit 3; fi; echo '{\"score\": 0.${matrix.x}}' > $CLLM4REC_OUT/metrics.json"]
  eval:
    kind: command
    needs: [train]
    cmd: ["sh", "-c", "echo ok > $CLLM4REC_OUT/done"]
"#,
    );
    e.run(&["run", "p.yaml", "--keep-going"]).fails(1);
    let before = cache_fingerprint(&e.path("cache"));
    let out = e.run(&["report", "p.yaml", "-o", "r.html"]).ok().stdout();
    assert!(
        out.contains("5 instances, 3 cached, 1 failed, 0 not run, 1 waiting for upstream"),
        "{out}"
    );
    let page = e.read("r.html");
    assert!(page.contains("data-state=\"failed\""));
    assert!(page.contains("boom"), "the failed stage's log tail");
    assert!(page.contains("data-state=\"waiting for upstream\""));
    // Self-contained: nothing is loaded from elsewhere.
    for attr in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(attr), "{attr}");
    }
    // It refuses to write into the cache, and leaves it as it was.
    let bad = e.run(&["report", "p.yaml", "-o", "cache/r.html"]).fails(2);
    assert!(
        bad.stderr().contains("inside the cache folder"),
        "{}",
        bad.stderr()
    );
    e.run(&["export", "mlflow", "p.yaml", "cache/mlruns"])
        .fails(2);
    let m = e
        .run(&["export", "mlflow", "p.yaml", "mlruns"])
        .ok()
        .stdout();
    assert!(m.contains("with 3 runs"), "{m}");
    assert!(m.contains("left out train[x=2]: failed"), "{m}");
    assert_eq!(before, cache_fingerprint(&e.path("cache")));
    e.run(&["verify"]).ok();
    // A pipeline never run: no cache to read.
    let none = e
        .run_cache(&["report", "p.yaml", "-o", "n.html"], "nowhere")
        .fails(2);
    assert!(none.stderr().contains("no cache at"), "{}", none.stderr());
}

/// `report` renders every ready pipeline and sweep, with nothing of it cached: every
/// instance is listed, as not run or waiting for upstream.
#[test]
fn report_renders_every_ready_pipeline() {
    let e = Env::new();
    std::fs::create_dir_all(e.path("cache/records")).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/amazon2014");
    let mut files: Vec<PathBuf> = ["pipelines", "sweeps"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(repo(d))
                .unwrap()
                .flatten()
                .map(|f| f.path())
        })
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut rendered = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut args = vec!["report".to_owned(), f.display().to_string()];
        if text.contains("amazon2014") && !shared.is_dir() {
            eprintln!(
                "SKIPPED report of {}: no ../shared/data/amazon2014",
                f.display()
            );
            continue;
        }
        if f.ends_with("sweeps/backbone.yaml") {
            let Some(gguf) = crate::common_smollm2::smollm2_gguf() else {
                eprintln!("SKIPPED report of {}: no SmolLM2 GGUF", f.display());
                continue;
            };
            args.extend(["--set".into(), format!("params.smollm2={}", gguf.display())]);
        }
        let page = e.path(&format!(
            "{}.html",
            f.file_stem().unwrap().to_string_lossy()
        ));
        args.extend(["-o".into(), page.display().to_string()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = e.run(&a).ok().stdout();
        // As many instances as `plan` finds, none cached.
        let mut plan_args = vec!["plan"];
        plan_args.extend(&a[1..a.len() - 2]);
        let plan = e.run(&plan_args).ok().stdout();
        let n = plan
            .lines()
            .find_map(|l| l.strip_suffix(" to run"))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{plan}"));
        assert!(
            out.contains(&format!(": {n} instances, 0 cached, 0 failed")),
            "{}: {out}",
            f.display()
        );
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.contains("id=\"instance-table\""));
        rendered += 1;
    }
    assert!(rendered >= 6, "{rendered} of {} rendered", files.len());
}
