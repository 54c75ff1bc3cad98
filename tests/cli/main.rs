//! Integration tests: the real binary on scratch pipelines. One test binary, so the crate
//! links once.

#[path = "../common/smollm2.rs"]
mod common_smollm2;
mod support;

mod ablate;
mod audit;
mod bad_inputs;
mod baselines;
mod caching;
mod commands;
mod data;
mod disk;
mod errors;
mod eval;
mod faults;
mod fuzz;
mod gguf_tokenizer;
mod kill_loop;
mod layers;
mod llama_backbone;
mod model;
mod races;
mod report;
mod sandbox;
mod slurm;
