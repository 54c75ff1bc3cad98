//! Bad pipelines: each error names file:line:col, quotes the line, and leaves no cache entry.

use crate::support::Env;

/// Run `plan` and `run` on a bad pipeline; both exit 2 with the same message and nothing is cached.
#[track_caller]
fn bad(yaml: &str) -> String {
    let e = Env::new();
    e.write("prep.sh", "x");
    e.write("p.yaml", yaml);
    let plan = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    let run = e.run(&["run", "p.yaml"]).fails(2).stderr();
    assert_eq!(plan, run);
    assert_eq!(e.records("cache"), 0);
    assert!(!e.path("ran.log").exists(), "a stage ran");
    run
}

#[test]
fn cycle_prints_the_cycle_with_position() {
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    needs: [b]\n    cmd: [sh, -c, 'echo a >> ran.log']\n  b:\n    kind: command\n    needs: [a]\n    cmd: [sh, -c, 'echo b >> ran.log']\n");
    assert!(
        err.contains("the stages form a cycle: a -> b -> a"),
        "{err}"
    );
    assert!(err.contains("p.yaml:5:13"), "{err}");
    assert!(err.contains("needs: ["), "quotes the line: {err}");
}

#[test]
fn self_cycle() {
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    needs: [a]\n    cmd: [true]\n");
    assert!(err.contains("cycle: a -> a"), "{err}");
}

#[test]
fn unknown_key_shows_position_caret_and_suggestion() {
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    cmdd: [true]\n");
    assert!(err.contains("unknown field `cmdd`"), "{err}");
    assert!(err.contains("p.yaml:5:5"), "{err}");
    assert!(err.contains("5 |     cmdd: [true]"), "{err}");
    assert!(err.contains("    ^"), "{err}");
    assert!(err.contains("hint: did you mean `cmd`?"), "{err}");
}

#[test]
fn unknown_top_level_key() {
    let err = bad("name: p\nparms: {a: 1}\nstages:\n  a: {kind: command, cmd: [true]}\n");
    assert!(
        err.contains("unknown field `parms`")
            && err.contains("p.yaml:2:1")
            && err.contains("did you mean `params`?"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_field() {
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    shell: maybe\n    cmd: [true]\n");
    assert!(
        err.contains("shell") && err.contains("expected a boolean"),
        "{err}"
    );
    assert!(err.contains("p.yaml:5:12"), "{err}");
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    needs: b\n    cmd: [true]\n");
    assert!(
        err.contains("needs") && err.contains("p.yaml:5:12"),
        "{err}"
    );
}

#[test]
fn missing_dep_names_it_with_position() {
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    cmd: [sh, -c, 'echo a >> ran.log']\n    deps: [prep.sh, data/missing.csv]\n");
    assert!(
        err.contains("dep `data/missing.csv` of `a` not found"),
        "{err}"
    );
    assert!(err.contains("p.yaml:6:21"), "{err}");
}

#[test]
fn unknown_need_suggests_closest_stage() {
    let err = bad("name: p\nstages:\n  tokenize: {kind: command, cmd: [true]}\n  train:\n    kind: command\n    needs: [tokenise]\n    cmd: [true]\n");
    assert!(
        err.contains("needs unknown stage `tokenise`")
            && err.contains("did you mean `tokenize`?")
            && err.contains("p.yaml:6:13"),
        "{err}"
    );
}

#[test]
fn bad_references() {
    let err = bad("name: p\nparams: {lr: 1}\nstages:\n  a:\n    kind: command\n    cmd: [echo, '${params.lrr}']\n");
    assert!(
        err.contains("unknown param `lrr`")
            && err.contains("did you mean `lr`?")
            && err.contains("p.yaml:6:17"),
        "{err}"
    );
    let err = bad("name: p\nmatrix: {lambda_c: [1]}\nstages:\n  a:\n    kind: command\n    cmd: [echo, '${matrix.lambda}']\n");
    assert!(
        err.contains("unknown matrix axis `lambda`") && err.contains("did you mean `lambda_c`?"),
        "{err}"
    );
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    cmd: [echo, '${params.x']\n");
    assert!(err.contains("unterminated"), "{err}");
}

#[test]
fn unknown_kind_and_cmd_string_without_shell() {
    let err = bad("name: p\nstages:\n  a:\n    kind: comand\n    cmd: [true]\n");
    assert!(
        err.contains("unknown stage kind `comand`")
            && err.contains("did you mean `command`?")
            && err.contains("p.yaml:4:11"),
        "{err}"
    );
    let err = bad("name: p\nstages:\n  a:\n    kind: command\n    cmd: echo hi\n");
    assert!(
        err.contains("a `cmd` string needs `shell: true`") && err.contains("p.yaml:5:10"),
        "{err}"
    );
}

#[test]
fn template_param_typo_is_an_error() {
    let e = Env::new();
    e.write(
        "stages/train.yaml",
        "kind: command\nparams:\n  lambda_c: 1\ncmd: [true]\n",
    );
    e.write(
        "p.yaml",
        "name: p\nstages:\n  t:\n    use: stages/train.yaml\n    params: {lamda_c: 10}\n",
    );
    let err = e.run(&["run", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("unknown param `lamda_c`")
            && err.contains("did you mean `lambda_c`?")
            && err.contains("p.yaml:5:14"),
        "{err}"
    );
}

#[test]
fn yaml_syntax_error_has_position() {
    let err = bad("name: p\nstages:\n  a: {kind: command\n");
    assert!(err.contains("p.yaml:"), "{err}");
}

#[test]
fn bad_set_argument() {
    let e = Env::new();
    e.write(
        "p.yaml",
        "name: p\nstages:\n  a: {kind: command, cmd: [true]}\n",
    );
    let err = e
        .run(&["plan", "p.yaml", "--set", "stages.b.params.x=1"])
        .fails(2)
        .stderr();
    assert!(err.contains("unknown stage `b`"), "{err}");
    let err = e
        .run(&["plan", "p.yaml", "--set", "nope"])
        .fails(2)
        .stderr();
    assert!(err.contains("expected `key=value`"), "{err}");
}

#[test]
fn a_file_over_16_mib_is_refused_before_it_is_read() {
    let e = Env::new();
    e.write("p.yaml", "");
    // sparse, and all NUL bytes: reading it would fail as not UTF-8, not as too large
    std::fs::File::options()
        .write(true)
        .open(e.path("p.yaml"))
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let t0 = std::time::Instant::now();
    let err = e.run(&["run", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("the file is too large: 17825792 bytes (the limit is 16 MiB)")
            && err.contains("--> p.yaml"),
        "{err}"
    );
    assert!(t0.elapsed().as_secs_f64() < 1.0, "{:?}", t0.elapsed());
    // a template too
    e.write("p.yaml", "name: p\nstages:\n  a:\n    use: big.yaml\n");
    std::fs::write(e.path("big.yaml"), "").unwrap();
    std::fs::File::options()
        .write(true)
        .open(e.path("big.yaml"))
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    let err = e.run(&["run", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("the file is too large: 16777217 bytes") && err.contains("big.yaml"),
        "{err}"
    );
}
