//! A small builder that drives the real binary in a scratch folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_cllm4rec-pipe");

pub struct Env {
    pub dir: tempfile::TempDir,
    /// Whether `command` stages run in the sandbox (the default).
    sandbox: bool,
}

pub struct Run {
    pub out: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code(),
            0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// The summary line of `run`: (ran, cached).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.stdout();
        let line = s
            .lines()
            .find(|l| l.contains(" instances: "))
            .unwrap_or_else(|| panic!("no summary in:\n{s}"));
        let num = |word: &str| -> usize {
            let i = line.find(word).unwrap();
            line[..i]
                .trim_end()
                .rsplit([' ', ',', ':'])
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        (num(" ran"), num(" cached"))
    }
    /// (label, output hash prefix) of each instance in the run table.
    pub fn outputs(&self) -> Vec<(String, String)> {
        self.stdout()
            .lines()
            .skip(1)
            .take_while(|l| !l.contains(" instances: "))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_owned(), f.get(2).copied().unwrap_or("").to_owned())
            })
            .collect()
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            sandbox: true,
        }
    }

    /// For fixtures whose stages signal the test through files in the scratch folder
    /// (`ran.log`, `started`): the sandbox refuses those writes (`CLLM4REC_SANDBOX=off`).
    pub fn unsandboxed() -> Env {
        Env {
            sandbox: false,
            ..Env::new()
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> &Env {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with_cache(args, &self.path("cache"))
    }

    pub fn command_with_cache(&self, args: &[&str], cache: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env("CLLM4REC_CACHE", cache)
            .env_remove("CLLM4REC_LOG");
        if self.sandbox {
            c.env_remove("CLLM4REC_SANDBOX");
        } else {
            c.env("CLLM4REC_SANDBOX", "off");
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run {
            out: self.command(args).output().unwrap(),
        }
    }

    /// The output folder of the instance that `show` with `args` prints, from `cache`.
    pub fn output_dir(&self, args: &[&str], cache: &str) -> PathBuf {
        let show = self.run_cache(args, cache).ok().stdout();
        PathBuf::from(
            show.lines()
                .find_map(|l| l.strip_prefix("output: "))
                .unwrap_or_else(|| panic!("no output folder in {show}")),
        )
    }

    pub fn run_cache(&self, args: &[&str], cache: &str) -> Run {
        Run {
            out: self
                .command_with_cache(args, &self.path(cache))
                .output()
                .unwrap(),
        }
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Number of record files in a cache folder.
    pub fn records(&self, cache: &str) -> usize {
        walk_files(&self.path(cache).join("records"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
    }

    /// Wait until `rel` exists (up to 20 s).
    pub fn wait_for(&self, rel: &str) {
        for _ in 0..2000 {
            if self.path(rel).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{rel} never appeared");
    }
}

pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The 18-instance shape of a 5-point lambda_c sweep; every stage logs its label to
/// `ran.log` so tests can count executions. `$SLEEP` slows each stage down.
pub fn sweep(sleep: &str) -> String {
    let s = sleep;
    format!(
        r#"name: sweep
params:
  size: 3
matrix:
  lambda_c: [0.01, 0.1, 1, 10, 100]
stages:
  ingest:
    kind: command
    cmd: ["sh", "-c", "echo ingest >> ran.log; sleep {s}; seq 5 > $CLLM4REC_OUT/rows.txt"]
    deps: [prep.sh]
  tokenize:
    kind: command
    needs: [ingest]
    cmd: ["sh", "-c", "echo tokenize >> ran.log; sleep {s}; head -n ${{params.size}} $CLLM4REC_IN_INGEST/rows.txt > $CLLM4REC_OUT/tok.txt"]
  pretrain:
    kind: command
    needs: [tokenize]
    params:
      lambda_c: ${{matrix.lambda_c}}
    cmd: ["sh", "-c", "echo pretrain-${{params.lambda_c}} >> ran.log; sleep {s}; cat $CLLM4REC_IN_TOKENIZE/tok.txt $CLLM4REC_PARAMS > $CLLM4REC_OUT/model.txt"]
  finetune:
    kind: command
    needs: [pretrain]
    cmd: ["sh", "-c", "echo finetune-${{matrix.lambda_c}} >> ran.log; sleep {s}; wc -c < $CLLM4REC_IN_PRETRAIN/model.txt > $CLLM4REC_OUT/ft.txt"]
  evaluate:
    kind: command
    needs: [finetune]
    cmd: "echo evaluate-${{matrix.lambda_c}} >> ran.log; sleep {s}; echo \"{{\\\"recall@20\\\": ${{matrix.lambda_c}}}}\" > $CLLM4REC_OUT/metrics.json"
    shell: true
  ablate:
    kind: command
    needs: ["evaluate[*]"]
    cmd: "echo ablate >> ran.log; ls $CLLM4REC_IN_EVALUATE > $CLLM4REC_OUT/points.txt; cat $CLLM4REC_IN_EVALUATE/*/metrics.json >> $CLLM4REC_OUT/points.txt"
    shell: true
"#
    )
}

pub fn sweep_env(sleep: &str) -> Env {
    let e = Env::unsandboxed();
    e.write("sweep.yaml", &sweep(sleep))
        .write("prep.sh", "echo prep\n");
    e
}

/// Lines of ran.log, sorted.
pub fn ran(e: &Env) -> Vec<String> {
    let mut v: Vec<String> = e.read("ran.log").lines().map(str::to_owned).collect();
    v.sort();
    v
}
