//! Throughput of the Llama backbone at SmolLM2-135M's shape (random initialisation): one
//! training step's forward and backward (every parameter trained, loss on all logits) and an
//! inference forward, batch 8 x 64 tokens by default; with `CLLM4REC_SMOLLM2_GGUF` set, also
//! the time to load that GGUF. Not run by CI.
//!
//!     cargo bench --bench llama_throughput      (env: BATCH=8 SEQ=64 STEPS=3)
//!
//! `benches/llama.sh` runs it beside the same model in PyTorch.

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use cllm4rec_pipe::model::backend::{infer_device, train_device};
use cllm4rec_pipe::model::{Llama, LlamaConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (batch, seq, steps) = (env("BATCH", 8), env("SEQ", 64), env("STEPS", 3));
    let config = LlamaConfig::smollm2_135m();
    let tokens = (batch * seq) as f64;
    let ids = |device| {
        let ids: Vec<i64> = (0..batch * seq)
            .map(|i| (i * 7919 % 49152) as i64)
            .collect();
        Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), device)
    };
    println!(
        "SmolLM2-135M shape, batch {batch} x {seq} tokens, {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let device = train_device();
    let start = Instant::now();
    let model = config.init(0, &device);
    println!("init: {:.2?}", start.elapsed());
    let input = ids(&device);
    for step in 0..=steps {
        let start = Instant::now();
        let (logits, _) = model.forward(input.clone(), None);
        let loss = logits.powi_scalar(2).mean();
        let grads = loss.backward();
        drop(grads);
        let s = start.elapsed().as_secs_f64();
        let what = if step == 0 { "warm-up" } else { "step" };
        println!(
            "forward+backward {what}: {s:.2} s, {:.1} tokens/s",
            tokens / s
        );
    }

    let device = infer_device();
    let model: Llama = config.init(0, &device);
    let input = ids(&device);
    for step in 0..=steps {
        let start = Instant::now();
        let (logits, _) = model.forward(input.clone(), None);
        let _ = logits.into_data();
        let s = start.elapsed().as_secs_f64();
        let what = if step == 0 { "warm-up" } else { "step" };
        println!(
            "forward (inference) {what}: {s:.2} s, {:.1} tokens/s",
            tokens / s
        );
    }

    if let Some(path) = std::env::var_os("CLLM4REC_SMOLLM2_GGUF") {
        let start = Instant::now();
        let model = Llama::from_gguf(path.as_ref(), &infer_device());
        match model {
            Ok(_) => println!("GGUF load: {:.2?}", start.elapsed()),
            Err(e) => println!("GGUF load failed: {e}"),
        }
    }
}
