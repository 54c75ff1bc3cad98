//! `gc` racing running pipelines, and a record whose object is gone.

use std::time::Duration;

use crate::support::{walk_files, Env};

/// `up` (size) -> `down` (sleeps `delay`, then reads up's object).
const GC_YAML: &str = "name: g\nparams: {size: 3, delay: 0}\nstages:\n  up:\n    kind: command\n    cmd: [sh, -c, 'seq ${params.size} > $CLLM4REC_OUT/rows']\n  down:\n    kind: command\n    needs: [up]\n    cmd: [sh, -c, 'sleep ${params.delay}; cp $CLLM4REC_IN_UP/rows $CLLM4REC_OUT/copy']\n";

#[test]
fn gc_never_deletes_what_a_running_pipeline_is_about_to_use() {
    let e = Env::new();
    e.write("g.yaml", GC_YAML);
    let set = |size: u32, delay: &str| {
        vec![
            "run".to_owned(),
            "g.yaml".to_owned(),
            "--set".to_owned(),
            format!("params.size={size}"),
            "--set".to_owned(),
            format!("params.delay={delay}"),
        ]
    };
    let strs = |v: &[String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
    let run = |v: Vec<String>| {
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        e.run(&a).ok()
    };
    // size 3 is older than size 4: `gc --keep-last 1` would delete size 3's `up` entry, which
    // runner A is about to read after its sleep.
    run(set(3, "0"));
    run(set(4, "0"));
    // And an orphan, so that gc has something it may delete at once.
    e.write(
        "o.yaml",
        "name: o\nstages:\n  o: {kind: command, cmd: [sh, -c, 'echo o > $CLLM4REC_OUT/o']}\n",
    );
    e.run(&["run", "o.yaml"]).ok();
    for f in walk_files(&e.path("cache/records")) {
        if std::fs::read_to_string(&f)
            .unwrap()
            .contains("\"pipeline\": \"o\"")
        {
            std::fs::remove_file(f).unwrap();
        }
    }

    let spawn = |v: Vec<String>| {
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        e.spawn(&a)
    };
    let a = spawn(set(3, "1.5"));
    let b = spawn(set(4, "1.5"));
    std::thread::sleep(Duration::from_millis(400));
    let t0 = std::time::Instant::now();
    let gcs: Vec<_> = (0..2)
        .map(|_| e.spawn(&["gc", "--keep-last", "1"]))
        .collect();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for (name, o, args) in [("A", &a, set(3, "1.5")), ("B", &b, set(4, "1.5"))] {
        assert!(
            o.status.success(),
            "runner {name} ({}) failed while gc ran:\n{}",
            strs(&args),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut waited = false;
    for g in gcs {
        let g = g.wait_with_output().unwrap();
        assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
        waited |= String::from_utf8_lossy(&g.stderr).contains("waiting for running pipelines");
    }
    assert!(waited, "gc did not wait for the running pipelines");
    assert!(
        t0.elapsed() > Duration::from_millis(800),
        "gc finished before the runners did"
    );
    // The runners' outputs are whole; what gc kept is consistent.
    e.run(&["verify"]).ok();
    // `--keep-last 1` kept one entry per stage (which one depends on which runner was last).
    assert_eq!(e.records("cache"), 2);
}

#[test]
fn keep_last_keeps_what_the_last_run_used() {
    let e = Env::new();
    e.write("g.yaml", GC_YAML);
    for size in ["3", "4", "3"] {
        e.run(&["run", "g.yaml", "--set", &format!("params.size={size}")])
            .ok();
    }
    // the last run only reused size 3's entries: they are the last ones, and stay
    let g = e.run(&["gc", "--keep-last", "1"]).ok().stdout();
    assert!(g.contains("removed 2 records"), "{g}");
    let p = e.run(&["plan", "g.yaml"]).ok().stdout();
    assert!(
        ["up ", "down "]
            .iter()
            .all(|s| p.lines().any(|l| l.starts_with(s) && l.ends_with("hit"))),
        "{p}"
    );
}

#[test]
fn a_record_whose_object_is_gone_is_reported_and_recomputed() {
    let e = Env::new();
    e.write("g.yaml", GC_YAML);
    let first = e.run(&["run", "g.yaml"]).ok();
    let up = first.outputs()[0].1.clone();
    let obj = std::fs::read_dir(e.path("cache/objects").join(&up[..2]))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&up))
        .unwrap();
    let name = obj.file_name().unwrap().to_string_lossy().into_owned();
    // (objects are sealed read-only; root removes them anyway, others need the bits back)
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&obj)
        .status();
    std::fs::remove_dir_all(&obj).unwrap();
    let v = e.run(&["verify"]).fails(1).stdout();
    assert!(
        v.lines()
            .any(|l| l.starts_with("missing") && l.contains(&name) && l.contains("is gone")),
        "{v}"
    );
    let r = e.run(&["run", "g.yaml"]).ok();
    assert_eq!(r.counts(), (1, 1), "only `up` is recomputed");
    assert_eq!(r.outputs(), first.outputs());
    e.run(&["verify"]).ok();
}
