//! A deterministic fuzz run of the pipeline loader, inside `cargo test`: a seed corpus (valid
//! pipelines in `tests/fuzz/corpus/` and `pipelines/`, broken ones in `tests/bad/`) mutated a
//! few thousand times with byte, token and line edits and random `--set` overrides. Every
//! load must return a pipeline or an error with a message; a panic is a failure (the input is
//! printed and saved). `CLLM4REC_FUZZ_SEED` and `CLLM4REC_FUZZ_ITERS` change the run;
//! `fuzz/` has the cargo-fuzz target for long runs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cllm4rec_pipe::kinds::Registry;
use cllm4rec_pipe::pipeline::load::load_text;

const SEED: u64 = 0x5eed_c11e_4e0c;
const ITERS: usize = 20_000;

const TOKENS: &[&str] = &[
    "${",
    "}",
    "${params.",
    "${matrix.",
    "$${",
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "-",
    ",",
    "*",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "'",
    "\"",
    "#",
    "~",
    "null",
    "true",
    "1e309",
    "-0",
    "18446744073709551616",
    "name: ",
    "params:",
    "matrix:",
    "exclude:",
    "include:",
    "stages:",
    "kind: ",
    "use: ",
    "needs: ",
    "needs: [",
    "[*]",
    "cmd: ",
    "shell: true",
    "deps: ",
    "resources: ",
    "cpus: ",
    "open_params: true",
    "seed: ",
    "command",
    "ingest",
    "tokenize",
    "pretrain",
    "finetune",
    "evaluate",
    "popular",
    "stages/command.yaml",
    "stages/ingest.yaml",
    "../",
    "/",
    "\t",
    "\u{feff}",
    "é",
    "\0",
    "<<: ",
    "? ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
];

const SETS: &[&str] = &[
    "params.x=1",
    "params.seed=2",
    "params.size=[1",
    "matrix.lambda_c=[1, 10]",
    "matrix.lambda_c=[]",
    "matrix.new=[1]",
    "stages.a.params.x=1",
    "stages.nope.params.x=1",
    "stages.prep.params.lr=0.1",
    "params.=1",
    "=1",
    "bogus",
    "params.data=../../x",
    "name=other",
];

/// splitmix64: small, fast and replayable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(root: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["tests/fuzz/corpus", "pipelines", "tests/bad"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files.push(p.join("pipeline.yaml"));
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn line_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push((start, b.len()));
    }
    out
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let pos = |rng: &mut Rng, b: &Vec<u8>| rng.below(b.len() + 1);
    match rng.below(9) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            const B: &[u8] = b"\n :-[]{}$&*!#'\"\t\x00\xff,.0";
            let i = rng.below(input.len());
            input[i] = B[rng.below(B.len())];
        }
        2 | 3 => {
            let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
            let i = pos(rng, input);
            input.splice(i..i, t.iter().copied());
        }
        4 if !input.is_empty() => {
            let i = rng.below(input.len());
            let n = 1 + rng.below(16.min(input.len() - i));
            input.drain(i..i + n);
        }
        5 if !input.is_empty() => {
            let i = rng.below(input.len());
            let n = 1 + rng.below(64.min(input.len() - i));
            let chunk: Vec<u8> = input[i..i + n].to_vec();
            let j = pos(rng, input);
            input.splice(j..j, chunk);
        }
        6 => {
            let other = &corpus[rng.below(corpus.len())];
            let i = pos(rng, input);
            let j = rng.below(other.len() + 1);
            input.truncate(i);
            input.extend_from_slice(&other[j..]);
        }
        7 => {
            let lines = line_spans(input);
            if lines.len() >= 2 {
                let (a, b) = (lines[rng.below(lines.len())], lines[rng.below(lines.len())]);
                let la = input[a.0..a.1].to_vec();
                match rng.below(3) {
                    0 => {
                        input.drain(a.0..a.1);
                    }
                    1 => {
                        input.splice(b.0..b.0, la);
                    }
                    _ => {
                        // move line a before line b
                        input.drain(a.0..a.1);
                        let at = if b.0 > a.0 {
                            b.0 - la.len().min(b.0 - a.0)
                        } else {
                            b.0
                        };
                        let at = at.min(input.len());
                        input.splice(at..at, la);
                    }
                }
            }
        }
        _ => {
            let lines = line_spans(input);
            if !lines.is_empty() {
                let (s, e) = lines[rng.below(lines.len())];
                if rng.below(2) == 0 {
                    input.splice(s..s, *b"  ");
                } else if input[s..e].starts_with(b"  ") {
                    input.drain(s..s + 2);
                }
            }
        }
    }
    input.truncate(64 * 1024);
}

#[test]
fn the_loader_never_panics_on_mutated_pipelines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = std::env::var("CLLM4REC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let iters = std::env::var("CLLM4REC_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERS);
    let corpus = seeds(root);
    assert!(corpus.len() >= 50, "seed corpus: {}", corpus.len());
    // A workspace with the real templates, so that `use:` resolves.
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("stages")).unwrap();
    for e in std::fs::read_dir(root.join("stages")).unwrap().flatten() {
        std::fs::copy(e.path(), ws.path().join("stages").join(e.file_name())).unwrap();
    }
    let file = ws.path().join("p.yaml");
    let kinds = Registry::default();
    let mut rng = Rng(seed);
    let (mut loaded, mut rejected) = (0usize, 0usize);
    let mut panics: Vec<String> = Vec::new();
    let t0 = std::time::Instant::now();
    // Quiet panics here: they are counted and reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..iters {
        let mut input = corpus[rng.below(corpus.len())].clone();
        // the first pass loads every seed unchanged
        if i >= corpus.len() {
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut input, &corpus);
            }
        }
        let sets: Vec<String> = (0..rng.below(3).saturating_sub(1))
            .map(|_| SETS[rng.below(SETS.len())].to_owned())
            .collect();
        let text = String::from_utf8_lossy(&input).into_owned();
        let r = catch_unwind(AssertUnwindSafe(|| {
            load_text(&file, text.clone(), &sets, &kinds).map(|p| p.instances.len())
        }));
        match r {
            Ok(Ok(_)) => loaded += 1,
            Ok(Err(e)) => {
                let msg = e.to_string();
                if msg.trim().is_empty() {
                    panics.push(format!("an empty error message for input {i}:\n{text}"));
                }
                rejected += 1;
            }
            Err(p) => {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let saved = std::env::temp_dir().join(format!("cllm4rec-fuzz-panic-{i}.yaml"));
                let _ = std::fs::write(&saved, &input);
                panics.push(format!(
                    "input {i} (sets {sets:?}, saved to {}) panicked: {what}\n{text}",
                    saved.display()
                ));
            }
        }
    }
    std::panic::set_hook(hook);
    println!(
        "fuzz: {iters} inputs from {} seeds (seed {seed:#x}) in {:.1}s: {loaded} loaded, \
         {rejected} rejected with an error, {} panics",
        corpus.len(),
        t0.elapsed().as_secs_f64(),
        panics.len()
    );
    assert!(panics.is_empty(), "{}", panics.join("\n\n"));
    assert!(
        loaded > iters / 50,
        "too few inputs loaded ({loaded}): the mutations never reach expansion"
    );
}
