//! The tiny models as GGUF files (llama.cpp names, attn_q / attn_k rows permuted for
//! llama.cpp's RoPE) and the GGUF loader's errors, from byte-edited copies of them.

use std::path::Path;

use cllm4rec_pipe::gguf::Gguf;
use cllm4rec_pipe::model::backend::infer_device;
use cllm4rec_pipe::model::llama::RopeScaling;
use cllm4rec_pipe::model::{Llama, LlamaConfig, LlamaError};

use crate::{check_against_transformers, fixture};

#[test]
fn the_gguf_files_compute_what_transformers_computes() {
    for name in ["llama-tiny", "llama-tiny-linear"] {
        let model = Llama::from_gguf(&fixture(name).join("model.gguf"), &infer_device()).unwrap();
        check_against_transformers(&model, name);
    }
}

#[test]
fn the_config_from_gguf_metadata_is_the_config_json_one() {
    for name in ["llama-tiny", "llama-tiny-linear"] {
        let file = Gguf::open(&fixture(name).join("model.gguf")).unwrap();
        let from_gguf = LlamaConfig::from_gguf(&file).unwrap();
        let from_json = LlamaConfig::from_hf_json(&fixture(name).join("config.json")).unwrap();
        // GGUF stores epsilon as an f32; head_dim is always explicit.
        assert_eq!(from_gguf.rms_norm_eps, 1e-6f32 as f64);
        let expected = LlamaConfig {
            head_dim: Some(from_json.head_dim()),
            rms_norm_eps: 1e-6f32 as f64,
            ..from_json
        };
        assert_eq!(from_gguf, expected, "{name}");
    }
    let linear = Gguf::open(&fixture("llama-tiny-linear").join("model.gguf")).unwrap();
    let linear = LlamaConfig::from_gguf(&linear).unwrap();
    assert_eq!(linear.rope_scaling, RopeScaling::Linear { factor: 2.5 });
    assert!(
        !linear.tie_word_embeddings,
        "an `output.weight` unties the head"
    );
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name).join("model.gguf")).unwrap()
}

/// Byte offset just after the first occurrence of the length-prefixed string `s`.
fn after(b: &[u8], s: &str) -> usize {
    let mut needle = (s.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(s.as_bytes());
    let at = (b.windows(needle.len()))
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("`{s}` not in the file"));
    at + needle.len()
}

/// Overwrites the first occurrence of the length-prefixed string `from` with `to`, which has
/// the same length.
fn rename(b: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let end = after(b, from);
    b[end - to.len()..end].copy_from_slice(to.as_bytes());
}

fn load(bytes: Vec<u8>) -> Result<Llama, LlamaError> {
    let file = Gguf::from_bytes(Path::new("edited.gguf"), bytes)?;
    let config = LlamaConfig::from_gguf(&file)?;
    Llama::from_gguf_file(&config, &file, &infer_device())
}

fn error(bytes: Vec<u8>) -> String {
    match load(bytes) {
        Ok(_) => panic!("an edited file loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn another_architecture_is_refused_by_name() {
    let mut b = bytes("llama-tiny");
    // The value of `general.architecture`: type u32, length u64, then the string.
    let at = after(&b, "general.architecture") + 4 + 8;
    assert_eq!(&b[at..at + 5], b"llama");
    b[at..at + 5].copy_from_slice(b"mamba");
    let msg = error(b);
    assert!(msg.contains("`edited.gguf`"), "{msg}");
    assert!(
        msg.contains("`general.architecture` = \"mamba\" is not supported"),
        "{msg}"
    );
}

#[test]
fn an_unsupported_rope_scaling_is_refused_by_name() {
    let mut b = bytes("llama-tiny-linear");
    rename(&mut b, "linear", "llama3");
    let msg = error(b);
    assert!(
        msg.contains("`llama.rope.scaling.type` = \"llama3\" is not supported"),
        "{msg}"
    );
}

#[test]
fn a_missing_key_is_named() {
    let mut b = bytes("llama-tiny");
    rename(
        &mut b,
        "llama.feed_forward_length",
        "llama.feed_forward_lengtx",
    );
    let msg = error(b);
    assert!(msg.contains("edited.gguf"), "{msg}");
    assert!(msg.contains("`llama.feed_forward_length`"), "{msg}");
}

#[test]
fn missing_misshaped_and_unexpected_tensors_are_named() {
    let mut b = bytes("llama-tiny");
    rename(&mut b, "blk.1.ffn_up.weight", "blk.1.ffn_uq.weight");
    let msg = error(b);
    assert!(
        msg.contains(
            "`edited.gguf`: missing tensor `blk.1.ffn_up.weight`, expected shape [64, 32]"
        ),
        "{msg}"
    );

    // The tensor info: name, u32 dimension count, u64 dimensions (ggml order [in, out]).
    let mut b = bytes("llama-tiny");
    let at = after(&b, "blk.0.attn_k.weight") + 4;
    let (ne0, ne1) = (b[at..at + 8].to_vec(), b[at + 8..at + 16].to_vec());
    assert_eq!(ne0, 32u64.to_le_bytes());
    b[at..at + 8].copy_from_slice(&ne1);
    b[at + 8..at + 16].copy_from_slice(&ne0);
    let msg = error(b);
    assert!(
        msg.contains("tensor `blk.0.attn_k.weight` has shape [32, 16], expected [16, 32]"),
        "{msg}"
    );

    // One layer fewer in the metadata (a u32) leaves layer 1's nine tensors unused.
    let mut b = bytes("llama-tiny");
    let at = after(&b, "llama.block_count") + 4;
    assert_eq!(b[at..at + 4], 2u32.to_le_bytes());
    b[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
    let msg = error(b);
    assert!(
        msg.contains("unexpected tensor `blk.1.") && msg.contains("and 8 more"),
        "{msg}"
    );
}
