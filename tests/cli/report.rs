//! `report`, `export mlflow`, `export tensorboard` and `run --progress json`.
//!
//! The report tests open the pages in a real headless Chromium (Debian's `chromium`; the
//! path in `CLLM4REC_CHROMIUM`, else `chromium` on PATH) and check the DOM it rendered; the
//! export tests read the exports back with the `mlflow` and `tensorboard` Python packages
//! (the interpreter in `CLLM4REC_PYTHON`, else `python3`). Without them the tests print
//! `SKIPPED ...`; CI sets `CLLM4REC_REQUIRE_REPORT_TOOLS=1`, which makes that a failure.
//! The quickstart and the lambda sweep run from their own files, shortened with `--set`
//! (fewer epochs, two lambda_c points) into a scratch cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use crate::support::{walk_files, Env};

fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn require() -> bool {
    std::env::var("CLLM4REC_REQUIRE_REPORT_TOOLS").is_ok_and(|v| v == "1")
}

fn skip(test: &str, why: &str) {
    assert!(
        !require(),
        "{test}: {why} (CLLM4REC_REQUIRE_REPORT_TOOLS=1)"
    );
    eprintln!("SKIPPED report::{test}: {why}");
}

fn chromium() -> Option<String> {
    let exe = std::env::var("CLLM4REC_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    Command::new(&exe)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| exe)
}

fn python() -> String {
    std::env::var("CLLM4REC_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_has(modules: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Headless Chromium: the DOM after the page's scripts ran, and a screenshot.
fn browse(exe: &str, page: &Path, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
        ]);
    };
    let mut c = Command::new(exe);
    common(&mut c);
    let out = c.args(["--dump-dom", &url]).output().unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Command::new(exe);
    common(&mut c);
    let s = c
        .args([
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1800",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        s.status.success() && shot.is_file(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    let png = std::fs::read(shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Where screenshots are kept for people to look at (the test's artifacts).
fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The first element `<tag ...>...</tag>` (not nested in itself) whose opening tag contains
/// `marker`, from `from` on: (its text, where it ends).
fn element<'a>(html: &'a str, tag: &str, marker: &str, from: usize) -> Option<(&'a str, usize)> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut at = from;
    loop {
        let s = at + html[at..].find(&open)?;
        let head_end = s + html[s..].find('>')?;
        if html[s..head_end].contains(marker) {
            let e = head_end + html[head_end..].find(&close)? + close.len();
            return Some((&html[s..e], e));
        }
        at = head_end;
    }
}

/// Every element `<tag ...>` in `html` whose opening tag contains `marker`.
fn elements<'a>(html: &'a str, tag: &str, marker: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((e, end)) = element(html, tag, marker, at) {
        out.push(e);
        at = end;
    }
    out
}

/// Text without tags, entities decoded (the few the report writes).
fn text(html: &str) -> String {
    let mut o = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => o.push(c),
            _ => {}
        }
    }
    o.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

/// The body rows of a table element, each as its cells' texts.
fn rows(table: &str) -> Vec<Vec<String>> {
    let body = element(table, "tbody", "", 0).map(|b| b.0).unwrap_or(table);
    elements(body, "tr", "")
        .into_iter()
        .map(|r| elements(r, "td", "").into_iter().map(text).collect())
        .collect()
}

/// The cells of the body rows of a Markdown table, each trimmed.
fn markdown_rows(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace("\\|", "|"))
                .collect()
        })
        .collect()
}

fn blake3_hex(path: &str) -> String {
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
fn cache_fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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

/// The lineage views of the page that name the raw file `name` with `hash`.
fn lineage_naming(dom: &str, name: &str, hash: &str) -> usize {
    elements(dom, "details", "class=\"lineage\"")
        .into_iter()
        .filter(|d| {
            elements(d, "tr", "")
                .iter()
                .any(|r| r.contains(name) && r.contains(hash))
        })
        .count()
}

/// Every lineage link in `part` of the page leads to an element of the page.
#[track_caller]
fn assert_links_resolve(dom: &str, part: &str) {
    let links = elements(part, "a", "href=\"#lineage-");
    assert!(!links.is_empty(), "no lineage links");
    for link in links {
        let id = link
            .split("href=\"#")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(dom.contains(&format!("id=\"{id}\"")), "dangling link {id}");
    }
}

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

const LAMBDA_SHORT: [&str; 6] = [
    "--set",
    "matrix.lambda_c=[1,10]",
    "--set",
    "stages.pretrain.params.epochs=1",
    "--set",
    "stages.finetune.params.epochs=2",
];

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn lambda_report_exports_and_progress() {
    let e = Env::new();
    // The run as a notebook would follow it: JSON lines on stdout.
    let mut args = vec!["run", leak(repo("sweeps/lambda.yaml"))];
    args.extend(LAMBDA_SHORT);
    args.extend(["--progress", "json", "-j", "2"]);
    let run = e.run(&args).ok();
    let events: Vec<Json> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}")))
        .collect();
    let count = |ev: &str| events.iter().filter(|v| v["event"] == ev).count();
    // 2 x (pretrain, finetune, evaluate) + ingest, tokenize, ablate
    assert_eq!(count("started"), 9, "{}", run.stdout());
    assert_eq!(count("done"), 9);
    // Pretraining: a collab and a content epoch per round; finetuning: epochs 1 and 2.
    let epochs = |label: &str| {
        events
            .iter()
            .filter(|v| v["event"] == "epoch" && v["instance"] == label)
            .count()
    };
    assert_eq!(epochs("pretrain[lambda_c=1]"), 2);
    assert_eq!(epochs("finetune[lambda_c=10]"), 2);
    for v in &events {
        assert!(v["time"].is_string(), "{v}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["ran"], 9);
    assert_eq!(last["failed"], 0);
    let eval1 = last["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == "evaluate[lambda_c=1]")
        .unwrap();
    assert!(eval1["metrics"]["recall@20"].is_number());
    let done_ft = events
        .iter()
        .find(|v| v["event"] == "done" && v["instance"] == "finetune[lambda_c=1]")
        .unwrap();
    assert!(done_ft["seconds"].as_f64().unwrap() > 0.0);
    let mut rest = vec![leak(repo("sweeps/lambda.yaml"))];
    rest.extend(LAMBDA_SHORT);
    let before = cache_fingerprint(&e.path("cache"));

    // The report against `table`.
    let page = e.path("lambda.html");
    let mut rargs = vec!["report"];
    rargs.extend(&rest);
    rargs.extend(["-o", page.to_str().unwrap()]);
    e.run(&rargs).ok();
    let mut targs = vec!["table"];
    targs.extend(&rest);
    let md = e.run(&targs).ok().stdout();
    let mut mlflow_args = vec!["export", "mlflow"];
    mlflow_args.extend(&rest);
    mlflow_args.push(leak(e.path("mlruns").display().to_string()));
    let mout = e.run(&mlflow_args).ok().stdout();
    let mut tb_args = vec!["export", "tensorboard"];
    tb_args.extend(&rest);
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
        "report or export changed the cache"
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

    // The records, to compare the exports with.
    let records: Vec<Json> = walk_files(&e.path("cache/records"))
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    let record = |label: &str| {
        records
            .iter()
            .find(|r| r["label"] == label && r["pipeline"] == "lambda")
            .unwrap_or_else(|| panic!("no record of {label}"))
    };

    match chromium() {
        None => skip("lambda_report_exports_and_progress (report)", "no chromium"),
        Some(exe) => {
            let dom = browse(&exe, &page, &artifact("lambda.png"));
            let (t, _) = element(&dom, "table", "class=\"ablate\"", 0).expect("ablate table");
            let want = markdown_rows(&md);
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
            let key = record("finetune[lambda_c=10]")["key_hash"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(inst.contains(&key), "the key of finetune[lambda_c=10]");
        }
    }

    if !python_has("mlflow, tensorboard, pandas") {
        return skip(
            "lambda_report_exports_and_progress (exports)",
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
        let rec = record(label);
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
    assert_eq!(ft["params"]["lambda_c"], "10");
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
    let want = record("evaluate[lambda_c=1]")["metrics"]["recall@20"]
        .as_f64()
        .unwrap();
    let got = ev["recall@20"][0][1].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    assert_eq!(tb.as_object().unwrap().len(), 6);
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
