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
    let p = e.run(&["plan", "p.yaml"]).ok().stdout();
    assert!(
        p.lines().any(|l| l.starts_with("a ") && l.ends_with("hit")),
        "{p}"
    );
    e.run(&["verify"]).ok();
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
