//! The model: the compute backend and the GPT-2 backbone that CLLM4Rec extends with user and
//! item tokens.

pub mod backbone;
pub mod backend;
pub mod baselines;
pub mod cllm4rec;
pub mod dropout;
pub mod flops;
pub mod fused;
pub mod gpt2;
pub mod llama;
mod params;
pub mod trainer;

pub use gpt2::{Gpt2, Gpt2Config, Gpt2Error};
pub use llama::{Llama, LlamaConfig, LlamaError};
