//! Integration tests: the real binary on scratch pipelines. One test binary, so the crate
//! links once.

mod support;

mod ablate;
mod caching;
mod commands;
mod data;
mod errors;
mod eval;
mod faults;
mod model;
mod slurm;
