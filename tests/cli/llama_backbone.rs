//! A Llama-family GGUF as CLLM4Rec's backbone, end to end through the real binary: the tiny
//! Llama of tests/fixtures/llama-tok (which carries a 1,024-token SmolLM2 tokenizer cut, so
//! the one file is both `tokenizer_file` and `backbone`) through tokenize -> pretrain ->
//! finetune -> evaluate, pretrained and frozen (the paper's setting) and randomly initialised
//! (`init: random`, LLM-Scratch).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::support::Env;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn pipeline(tokenizer: &str) -> String {
    format!(
        "name: l
stages:
  ingest:
    kind: ingest
    params: {{format: movielens, path: '{data}', min_rating: 4.0}}
  tokenize:
    kind: tokenize
    needs: [ingest]
    params: {tokenizer}
  pretrain:
    kind: pretrain
    needs: [tokenize]
    params: {{backbone: models/llama.gguf, epochs: 1, batch_size: 2, content_vocab: corpus, n_positions: 64}}
  finetune:
    kind: finetune
    needs: [pretrain, tokenize, ingest]
    params: {{epochs: 2, lr: 0.001, batch_size: 2}}
  evaluate:
    kind: evaluate
    needs: [ingest, tokenize, finetune]
  pretrain-scratch:
    kind: pretrain
    needs: [tokenize]
    params: {{backbone: models/llama.gguf, init: random, epochs: 1, batch_size: 2, content_vocab: corpus}}
",
        data = fixture("data/movielens").display()
    )
}

fn env() -> Env {
    let e = Env::new();
    std::fs::create_dir_all(e.path("models")).unwrap();
    std::fs::copy(fixture("llama-tok/model.gguf"), e.path("models/llama.gguf")).unwrap();
    e.write(
        "p.yaml",
        &pipeline("{tokenizer: gguf, tokenizer_file: models/llama.gguf}"),
    );
    e
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

/// The tensor names of a safetensors file.
fn tensor_names(p: &Path) -> Vec<String> {
    let bytes = std::fs::read(p).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn a_frozen_pretrained_gguf_is_kept_beside_a_checkpoint_of_the_tables() {
    let e = env();
    let first = e.run(&["run", "p.yaml"]).ok();
    let source = std::fs::read(e.path("models/llama.gguf")).unwrap();
    for stage in ["pretrain", "finetune"] {
        let out = out_dir(&e, stage);
        let info = json(&out.join("model.json"));
        assert_eq!(info["arch"], "llama", "{stage}: {info}");
        assert_eq!(info["backbone_file"], "backbone.gguf");
        assert_eq!(info["frozen"], true);
        assert_eq!(info["vocab_size"], 1024);
        assert_eq!(info["n_layer"], 2);
        assert_eq!(info["n_head"], 4);
        // the rotary tables reach only as far as the stage's longest sequence
        assert_eq!(info["llama"]["max_position_embeddings"], 64);
        assert_eq!(info["llama"]["num_key_value_heads"], 2);
        assert!(std::fs::read(out.join("backbone.gguf")).unwrap() == source);
        assert_eq!(
            tensor_names(&out.join("checkpoint.safetensors")),
            [
                "collab_items",
                "collab_users",
                "content_items",
                "content_users"
            ],
            "{stage}: only the trained tables are in the checkpoint"
        );
    }
    let metrics = json(&out_dir(&e, "evaluate").join("metrics.json"));
    assert_eq!(metrics["model"], "cllm4rec");
    assert!(metrics["recall@20"].as_f64().is_some(), "{metrics}");

    // LLM-Scratch: the file's shape, random weights, trained (not frozen), all in the checkpoint
    let scratch = out_dir(&e, "pretrain-scratch");
    let info = json(&scratch.join("model.json"));
    assert_eq!(info["arch"], "llama");
    assert_eq!(info["frozen"], false);
    assert!(info.get("backbone_file").is_none(), "{info}");
    assert!(!scratch.join("backbone.gguf").exists());
    let names = tensor_names(&scratch.join("checkpoint.safetensors"));
    assert!(
        names.contains(&"backbone.embed_tokens.weight".to_owned())
            && names.contains(&"backbone.layers.1.mlp.down_proj.weight".to_owned())
            && !names.iter().any(|n| n.contains("rope")),
        "{names:?}"
    );

    // deterministic: a second cache gives the same output hashes
    let again = e.run_cache(&["run", "p.yaml"], "cache2").ok();
    assert_eq!(first.outputs(), again.outputs());
}

#[test]
fn a_gguf_backbone_with_another_tokenizer_fails_naming_both_sizes() {
    let e = env();
    e.write("p.yaml", &pipeline("{tokenizer: gpt2}"));
    let r = e.run(&["run", "p.yaml"]).fails(1);
    let err = r.stderr();
    assert!(
        err.contains("the backbone has 1024 word embeddings but the tokenizer 50257 words")
            && err.contains("tokenizer: gguf"),
        "{err}"
    );
    assert_eq!(e.records("cache"), 2, "ingest and tokenize only");
}

/// A Llama backbone has no dropout here: a non-zero `dropout` is refused before anything
/// runs, naming the file, the line and the param; its default (null) means none.
#[test]
fn dropout_on_a_llama_backbone_is_refused_naming_the_param() {
    let e = env();
    let text = pipeline("{tokenizer: gguf, tokenizer_file: models/llama.gguf}").replace(
        "epochs: 1, batch_size: 2, content_vocab: corpus, n_positions: 64",
        "epochs: 1, batch_size: 2, content_vocab: corpus, n_positions: 64, dropout: 0.1",
    );
    e.write("p.yaml", &text);
    let r = e.run(&["run", "p.yaml"]).fails(2);
    let err = r.stderr();
    assert!(
        err.contains("p.yaml:13") && err.contains("a Llama backbone has no dropout"),
        "{err}"
    );
    assert_eq!(e.records("cache"), 0, "nothing ran");
}
