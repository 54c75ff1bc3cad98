//! The sandbox of `command` stages (Landlock): writes go only into `$CLLM4REC_OUT`,
//! `$TMPDIR` and `/dev`. On a kernel without Landlock these tests print `SKIPPED`;
//! `CLLM4REC_REQUIRE_LANDLOCK=1` (set by `.ci/run`) makes that a failure.

use crate::support::{walk_files, Env};

/// Whether this kernel has Landlock (else a skip, or a failure when it is required).
pub fn landlock_required() -> bool {
    if cllm4rec_pipe::kinds::sandbox::landlock_abi().is_some() {
        return true;
    }
    if std::env::var("CLLM4REC_REQUIRE_LANDLOCK").as_deref() == Ok("1") {
        panic!("this kernel has no Landlock, and CLLM4REC_REQUIRE_LANDLOCK=1");
    }
    println!("SKIPPED sandbox: this kernel has no Landlock");
    false
}

/// Tries to write into the workspace, beside it, into the cache and into /tmp, and records
/// which attempts succeeded; then uses what it may use: `$TMPDIR`, `mktemp`, `/dev/null`.
const PROBE: &str = r#"name: p
stages:
  probe:
    kind: command
    shell: true
    cmd: |
      for f in in-workspace.txt ../beside-workspace.txt $CLLM4REC_CACHE_ROOT/records/x /tmp/cllm4rec-sandbox-probe-$$; do
        if echo x > $f 2>/dev/null; then echo "wrote $f" >> $CLLM4REC_OUT/report; rm -f $f; else echo "refused" >> $CLLM4REC_OUT/report; fi
      done
      mkdir -p sub && echo "made sub" >> $CLLM4REC_OUT/report
      echo scratch > $TMPDIR/s && t=$(mktemp) && echo temp > $t && echo y > /dev/null
      cat $TMPDIR/s $t >> $CLLM4REC_OUT/report
"#;

fn probe(e: &Env) -> String {
    e.write("p.yaml", PROBE);
    let cache = e.path("cache");
    let r = e
        .command(&["run", "p.yaml"])
        .env("CLLM4REC_CACHE_ROOT", &cache)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report = walk_files(&cache.join("objects"))
        .into_iter()
        .find(|p| p.ends_with("data/report"))
        .unwrap();
    std::fs::read_to_string(report).unwrap()
}

#[test]
fn a_command_stage_writes_only_into_its_output_and_scratch_folders() {
    if !landlock_required() {
        return;
    }
    let e = Env::new();
    let report = probe(&e);
    assert_eq!(
        report, "refused\nrefused\nrefused\nrefused\nscratch\ntemp\n",
        "every write outside was refused, $TMPDIR and /dev/null work"
    );
    assert!(!e.path("in-workspace.txt").exists() && !e.path("sub").exists());
    // the scratch folder goes with the work folder
    assert!(walk_files(&e.path("cache/tmp")).is_empty());
}

#[test]
fn the_sandbox_can_be_turned_off() {
    let e = Env::unsandboxed();
    let report = probe(&e);
    assert!(
        report.starts_with("wrote in-workspace.txt\nwrote ../beside-workspace.txt\n")
            && report.contains("made sub"),
        "{report}"
    );
}
