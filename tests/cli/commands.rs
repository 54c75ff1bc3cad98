//! graph, status, show, gc, hash.

use crate::support::{sweep_env, walk_files, Env};

#[test]
fn graph_dot_and_mermaid_list_instances_and_edges() {
    let e = sweep_env("0");
    let dot = e.run(&["graph", "sweep.yaml"]).ok().stdout();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert_eq!(dot.matches("->").count(), 1 + 5 + 5 + 5 + 5, "{dot}");
    assert!(dot.contains("pretrain[lambda_c=0.1]"));
    let mm = e
        .run(&["graph", "sweep.yaml", "--format", "mermaid"])
        .ok()
        .stdout();
    assert!(
        mm.starts_with("flowchart LR") && mm.matches("-->").count() == 21,
        "{mm}"
    );
}

#[test]
fn status_and_show() {
    let e = sweep_env("0");
    let s = e.run(&["status", "sweep.yaml"]).ok().stdout();
    assert_eq!(s.lines().filter(|l| l.contains(" no")).count(), 18, "{s}");
    e.run(&["run", "sweep.yaml"]).ok();
    let s = e.run(&["status", "sweep.yaml"]).ok().stdout();
    assert_eq!(s.lines().filter(|l| l.contains(" yes ")).count(), 18, "{s}");
    let show = e.run(&["show", "sweep.yaml", "evaluate"]).ok().stdout();
    assert_eq!(show.matches("== evaluate[").count(), 5);
    assert!(
        show.contains("\"recall@20\": 0.01")
            && show.contains("\"key_hash\"")
            && show.contains("\"host\""),
        "{show}"
    );
    let err = e.run(&["show", "sweep.yaml", "evaluat"]).fails(2).stderr();
    assert!(err.contains("did you mean `evaluate`?"), "{err}");
}

/// `plan p.yaml` reports stage `stage` as a cache hit.
fn assert_plan_hit(e: &Env, stage: &str) {
    let p = e.run(&["plan", "p.yaml"]).ok().stdout();
    assert!(
        p.lines()
            .any(|l| l.starts_with(&format!("{stage} ")) && l.ends_with("hit")),
        "{p}"
    );
}

#[test]
fn gc_removes_unreferenced_objects_and_old_records() {
    let e = Env::new();
    let yaml = |v: &str| {
        format!("name: p\nstages:\n  a:\n    kind: command\n    params: {{v: {v}}}\n    cmd: [sh, -c, 'echo {v} > $CLLM4REC_OUT/x']\n")
    };
    for v in ["1", "2", "3"] {
        e.write("p.yaml", &yaml(v));
        e.run(&["run", "p.yaml"]).ok();
    }
    assert_eq!(e.records("cache"), 3);
    let g = e.run(&["gc"]).ok().stdout();
    assert!(g.contains("removed 0 records and 0 objects"), "{g}");
    let g = e.run(&["gc", "--keep-last", "1"]).ok().stdout();
    assert!(g.contains("removed 2 records and 2 objects"), "{g}");
    assert_eq!(e.records("cache"), 1);
    // the last one is still a hit
    assert_plan_hit(&e, "a");
    e.run(&["verify"]).ok();
}

#[test]
fn a_cache_hit_becomes_the_latest_entry_that_gc_keeps() {
    let e = Env::new();
    let yaml = |v: &str| {
        format!("name: p\nstages:\n  a:\n    kind: command\n    params: {{v: {v}}}\n    cmd: [sh, -c, 'echo {v} > $CLLM4REC_OUT/x']\n")
    };
    let links = || {
        walk_files(&e.path("cache/index"))
            .into_iter()
            .filter(|f| f.extension().is_some_and(|x| x == "latest"))
            .collect::<Vec<_>>()
    };
    for v in ["1", "2"] {
        e.write("p.yaml", &yaml(v));
        e.run(&["run", "p.yaml"]).ok();
    }
    // v=1 again: a cache hit, which makes its entry the latest of stage `a`. The second time
    // its index link is gone (a cache from before the links): the hit reads the history.
    e.write("p.yaml", &yaml("1"));
    for drop_links in [false, true] {
        if drop_links {
            links()
                .iter()
                .for_each(|f| std::fs::remove_file(f).unwrap());
        }
        let r = e.run(&["run", "p.yaml"]).ok().stdout();
        assert!(r.contains("1 cached"), "{r}");
        assert_eq!(links().len(), 1);
        // The link names the run's key (its first 32 hex digits): v=1's record.
        let target = std::fs::read_link(&links()[0]).unwrap();
        let target = target.to_str().unwrap().to_owned();
        assert_eq!(target.len(), 32);
        let named: Vec<_> = walk_files(&e.path("cache/records"))
            .into_iter()
            .filter(|f| {
                f.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&target)
            })
            .collect();
        assert_eq!(named.len(), 1, "{target}");
        let record = std::fs::read_to_string(&named[0]).unwrap();
        assert!(record.contains("echo 1 >"), "{record}");
    }
    let g = e.run(&["gc", "--keep-last", "1"]).ok().stdout();
    assert!(g.contains("removed 1 records and 1 objects"), "{g}");
    assert_plan_hit(&e, "a");
    e.run(&["verify"]).ok();
}

#[test]
fn a_printing_command_whose_reader_goes_away_ends_without_a_panic() {
    use std::io::{BufRead, BufReader};
    let e = Env::new();
    // A graph far larger than a pipe's buffer: the writer is still writing when `head` is gone.
    let xs: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    e.write(
        "p.yaml",
        &format!(
            "name: p\nmatrix:\n  x: [{}]\nstages:\n  a: {{kind: command, cmd: [sh, -c, 'echo ${{matrix.x}} > $CLLM4REC_OUT/x']}}\n",
            xs.join(",")
        ),
    );
    let mut child = e.spawn(&["graph", "p.yaml"]);
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("digraph"), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn verify_lists_orphans_and_gc_clears_them() {
    let e = Env::new();
    e.write(
        "p.yaml",
        "name: p\nstages:\n  a: {kind: command, cmd: [sh, -c, 'echo 1 > $CLLM4REC_OUT/x']}\n",
    );
    e.run(&["run", "p.yaml"]).ok();
    for f in walk_files(&e.path("cache/records")) {
        std::fs::remove_file(f).unwrap();
    }
    let v = e.run(&["verify"]).fails(1).stdout();
    assert!(v.contains("orphaned"), "{v}");
    e.run(&["gc"]).ok();
    e.run(&["verify"]).ok();
}

#[test]
fn hash_matches_b3sum_format() {
    let e = Env::new();
    e.write("f", "hello");
    let out = e.run(&["hash", "f"]).ok().stdout();
    assert_eq!(
        out,
        "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f  f\n"
    );
}
