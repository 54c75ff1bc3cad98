//! A cache folder on a full or a read-only file system: a small tmpfs, mounted for the test
//! (root only). Without root the tests print `SKIPPED`; `CLLM4REC_REQUIRE_MOUNT=1` (set by
//! `.ci/run`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{walk_files, Env};

/// A tmpfs mounted on a folder; unmounted on drop (also when the test panics).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_owned(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("CLLM4REC_REQUIRE_MOUNT").as_deref() == Ok("1") {
                    panic!("{test}: cannot mount a tmpfs (CLLM4REC_REQUIRE_MOUNT=1): {why}");
                }
                println!("SKIPPED disk::{test}: cannot mount a tmpfs (needs root): {why}");
                None
            }
        }
    }

    /// Remount with `opts`; retried while the kernel still holds files of the last run open
    /// ("mount point is busy" for a moment after a process exits).
    fn remount(&self, opts: &str) {
        for _ in 0..100 {
            let o = Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.dir)
                .output()
                .unwrap();
            if o.status.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("remount {opts} of {} failed", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_disk_during_a_commit_fails_cleanly_and_the_next_run_completes() {
    let e = Env::new();
    // `fill` fills the file system and still exits 0 while the marker file exists, so the
    // commit itself (the manifest, the syncs) hits ENOSPC.
    e.write(
        "full.yaml",
        "name: full\nstages:\n  small:\n    kind: command\n    cmd: [sh, -c, 'echo small > $CLLM4REC_OUT/x']\n  fill:\n    kind: command\n    needs: [small]\n    cmd: [sh, -c, 'if [ -e fill ]; then dd if=/dev/zero of=$CLLM4REC_OUT/big bs=4k 2>/dev/null; fi; echo done > $CLLM4REC_OUT/y; exit 0']\n",
    );
    e.write("fill", "");
    let Some(fs) = Tmpfs::mount(&e.path("cachefs"), "2m", "full_disk_commit") else {
        return;
    };
    let r = e.run_cache(&["run", "full.yaml"], "cachefs").fails(1);
    let err = r.stderr();
    assert!(
        err.contains("No space left on device") && err.contains(&*fs.dir.to_string_lossy()),
        "the error names ENOSPC and the path:\n{err}"
    );
    assert_eq!(e.records("cachefs"), 1, "only `small` is committed");
    assert!(walk_files(&e.path("cachefs/tmp")).is_empty());
    let v = e.run_cache(&["verify"], "cachefs");
    assert_eq!(v.code(), 0, "{}", v.stdout());

    // With space, the same key completes (no lock or partial entry is left in the way).
    std::fs::remove_file(e.path("fill")).unwrap();
    let r = e.run_cache(&["run", "full.yaml"], "cachefs").ok();
    assert_eq!(r.counts(), (1, 1));
    e.run_cache(&["verify"], "cachefs").ok();
}

#[test]
fn a_stage_that_fills_the_disk_fails_with_a_note_and_leaves_no_entry() {
    let e = Env::new();
    // The command's own write fails with ENOSPC; its log, on the same disk, cannot say so.
    e.write(
        "big.yaml",
        "name: big\nstages:\n  big:\n    kind: command\n    cmd: [sh, -c, 'head -c 4000000 /dev/zero > $CLLM4REC_OUT/big']\n",
    );
    let Some(fs) = Tmpfs::mount(&e.path("cachefs"), "1m", "stage_fills_disk") else {
        return;
    };
    let err = e
        .run_cache(&["run", "big.yaml"], "cachefs")
        .fails(1)
        .stderr();
    assert!(
        err.contains("the cache's file system is full") && err.contains(&*fs.dir.to_string_lossy()),
        "{err}"
    );
    assert_eq!(e.records("cachefs"), 0);
    assert!(walk_files(&e.path("cachefs/tmp")).is_empty());
    e.run_cache(&["verify"], "cachefs").ok();
}

#[test]
fn a_read_only_cache_serves_hits_and_refuses_misses_with_a_clear_error() {
    let e = Env::new();
    e.write(
        "ro.yaml",
        "name: ro\nparams: {n: 1}\nstages:\n  a:\n    kind: command\n    cmd: [sh, -c, 'echo a > $CLLM4REC_OUT/x']\n  b:\n    kind: command\n    needs: [a]\n    cmd: [sh, -c, 'echo ${params.n} > $CLLM4REC_OUT/y']\n",
    );
    let Some(fs) = Tmpfs::mount(&e.path("cachefs"), "4m", "read_only") else {
        return;
    };
    let first = e.run_cache(&["run", "ro.yaml"], "cachefs").ok();
    fs.remount("ro");
    // Everything cached: it runs from the read-only cache.
    let again = e.run_cache(&["run", "ro.yaml"], "cachefs").ok();
    assert_eq!(again.counts(), (0, 2));
    assert_eq!(again.outputs(), first.outputs());
    // A miss: a clear error naming the path and EROFS, nothing written.
    let r = e
        .run_cache(&["run", "ro.yaml", "--set", "params.n=2"], "cachefs")
        .fails(1);
    let err = r.stderr();
    assert!(
        err.contains("Read-only file system") && err.contains(&*fs.dir.to_string_lossy()),
        "{err}"
    );
    assert_eq!(e.records("cachefs"), 2);
    let v = e.run_cache(&["verify"], "cachefs");
    assert_eq!(v.code(), 0, "{}", v.stdout());
    // Writable again: the miss completes.
    fs.remount("rw");
    let r = e
        .run_cache(&["run", "ro.yaml", "--set", "params.n=2"], "cachefs")
        .ok();
    assert_eq!(r.counts(), (1, 1));
    e.run_cache(&["verify"], "cachefs").ok();
}

#[test]
fn an_empty_read_only_cache_folder_is_a_clear_error() {
    let e = Env::new();
    e.write(
        "p.yaml",
        "name: p\nstages:\n  a: {kind: command, cmd: [sh, -c, 'echo a > $CLLM4REC_OUT/x']}\n",
    );
    let Some(fs) = Tmpfs::mount(&e.path("cachefs"), "1m", "empty_read_only") else {
        return;
    };
    fs.remount("ro");
    let err = e.run_cache(&["run", "p.yaml"], "cachefs").fails(1).stderr();
    assert!(
        err.contains("Read-only file system") && err.contains(&*fs.dir.to_string_lossy()),
        "{err}"
    );
}
