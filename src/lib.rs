//! cllm4rec-pipe: CLLM4Rec as a declarative, content-hashed experiment pipeline.

pub mod ablate;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod data;
pub mod diag;
pub mod eval;
pub mod exec;
pub mod gguf;
pub mod kinds;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod text;
pub mod util;
