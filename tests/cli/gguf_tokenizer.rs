//! `tokenizer: gguf` in the tokenize stage: the vocabulary of a GGUF file (a 1,024-token cut of
//! SmolLM2's in tests/fixtures/gguf-bpe, always; the real SmolLM2-135M-Instruct GGUF when
//! present), its file hashed into the key, and positioned errors for a bad setup.

use std::path::{Path, PathBuf};

use cllm4rec_pipe::text::binfmt::Corpus;
use serde_json::Value as Json;

use crate::support::Env;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// ingest of the small MovieLens fixture, then tokenize with `tok` (YAML flow-style params).
fn pipeline(tok: &str) -> String {
    format!(
        "name: g\nstages:\n  ingest:\n    kind: ingest\n    params: {{format: movielens, path: '{}', min_rating: 4.0}}\n  tokenize:\n    kind: tokenize\n    needs: [ingest]\n    params: {tok}\n",
        fixture("data/movielens").display()
    )
}

fn out_dir(e: &Env, stage: &str) -> PathBuf {
    let show = e.run(&["show", "p.yaml", stage]).ok().stdout();
    PathBuf::from(
        show.lines()
            .find_map(|l| l.strip_prefix("output: "))
            .unwrap_or_else(|| panic!("{show}")),
    )
}

fn json(p: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs the pipeline with the GGUF at `models/tok.gguf`; checks vocab.json and that user and
/// item ids start after the base vocabulary; returns the tokenize output folder.
fn tokenize_with(e: &Env, base: u64) -> PathBuf {
    e.write(
        "p.yaml",
        &pipeline("{tokenizer: gguf, tokenizer_file: models/tok.gguf}"),
    );
    e.run(&["run", "p.yaml"]).ok();
    let t = out_dir(e, "tokenize");
    let v = json(&t.join("vocab.json"));
    assert_eq!(v["tokenizer"], "gguf-smollm");
    assert_eq!(v["base_vocab"], base);
    assert_eq!(v["user_offset"], base);
    assert_eq!(v["users"], 3);
    assert_eq!(v["items"], 4);
    assert_eq!(v["item_offset"], base + 3);
    assert_eq!(v["eos"], 2);
    let base = base as u32;
    // collaborative documents: prompt `<user_u> has interacted with`, main text item tokens
    let collab = Corpus::read(&t.join("collab.tok")).unwrap();
    assert_eq!(collab.len(), 3);
    for d in 0..collab.len() {
        let (prompt, main) = collab.doc(d);
        assert!((base..base + 3).contains(&prompt[0]), "{prompt:?}");
        assert!(prompt[1..].iter().all(|&x| x < base), "{prompt:?}");
        assert!(!main.is_empty());
        assert!(main.iter().all(|&x| (base + 3..base + 7).contains(&x)));
    }
    // content documents: item text in base tokens only
    let content = Corpus::read(&t.join("content.tok")).unwrap();
    assert!(!content.is_empty());
    for d in 0..content.len() {
        assert!(content.doc(d).1.iter().all(|&x| x < base));
    }
    t
}

#[test]
fn tiny_gguf_vocabulary_and_its_hash_in_the_key() {
    let e = Env::new();
    std::fs::create_dir_all(e.path("models")).unwrap();
    std::fs::copy(
        fixture("gguf-bpe/tiny-smollm.gguf"),
        e.path("models/tok.gguf"),
    )
    .unwrap();
    let t = tokenize_with(&e, 1024);
    // the first item document is `<item_0> is described as:` + " Toy Story, The (1995). ..."
    let content = Corpus::read(&t.join("content.tok")).unwrap();
    let tok = cllm4rec_pipe::text::gguf_vocab::from_gguf(&e.path("models/tok.gguf")).unwrap();
    use cllm4rec_pipe::text::Tokenizer;
    assert_eq!(
        tok.decode(content.doc(0).1),
        " Toy Story, The (1995). Adventure, Animation"
    );
    // the file's content is in the key: the same is a hit, another under the same name a miss
    let again = e.run(&["run", "p.yaml"]).ok();
    assert_eq!(again.counts(), (0, 2));
    std::fs::copy(
        fixture("gguf-bpe/tiny-gpt2.gguf"),
        e.path("models/tok.gguf"),
    )
    .unwrap();
    let again = e.run(&["run", "p.yaml"]).ok();
    assert_eq!(again.counts(), (1, 1));
    let v = json(&out_dir(&e, "tokenize").join("vocab.json"));
    assert_eq!(v["tokenizer"], "gguf-gpt2");
    std::fs::copy(fixture("gguf-bpe/bad-pre.gguf"), e.path("models/tok.gguf")).unwrap();
    let err = e.run(&["run", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("p.yaml:9:")
            && err.contains("pre-tokenizer `qwen2` is not supported")
            && err.contains("tok.gguf"),
        "{err}"
    );
}

#[test]
fn smollm2_gguf_vocabulary() {
    let Some(gguf) = crate::common_smollm2::smollm2_gguf() else {
        return;
    };
    let e = Env::new();
    std::fs::create_dir_all(e.path("models")).unwrap();
    std::os::unix::fs::symlink(&gguf, e.path("models/tok.gguf")).unwrap();
    tokenize_with(&e, 49152);
}

/// `plan` exits 2 with an error at the stage's params.
#[track_caller]
fn bad(tok: &str, setup: impl Fn(&Env)) -> String {
    let e = Env::new();
    setup(&e);
    e.write("p.yaml", &pipeline(tok));
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(err.contains("p.yaml:9:"), "{err}");
    assert_eq!(e.records("cache"), 0);
    err
}

#[test]
fn bad_setups_are_positioned_errors() {
    let err = bad("{tokenizer: gguf}", |_| {});
    assert!(
        err.contains("`tokenizer: gguf` needs `tokenizer_file`"),
        "{err}"
    );
    let err = bad("{tokenizer: gguf, tokenizer_file: none.gguf}", |_| {});
    assert!(
        err.contains("cannot read GGUF file") && err.contains("none.gguf"),
        "{err}"
    );
    let err = bad("{tokenizer: gguf, tokenizer_file: x.gguf}", |e| {
        e.write("x.gguf", "not a gguf file\n");
    });
    assert!(err.contains("GGUF file") && err.contains("x.gguf"), "{err}");
    let err = bad("{tokenizer: gguf, tokenizer_file: models}", |e| {
        std::fs::create_dir_all(e.path("models")).unwrap();
    });
    assert!(err.contains("cannot read GGUF file"), "{err}");
    let err = bad("{tokenizer: gpt2, tokenizer_file: x.gguf}", |_| {});
    assert!(
        err.contains("`tokenizer_file` is only for `tokenizer: gguf`, not `gpt2`"),
        "{err}"
    );
    let err = bad("{tokenizer: llama}", |_| {});
    assert!(err.contains("this build has `gpt2` and `gguf`"), "{err}");
}
