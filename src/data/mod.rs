//! Datasets: readers for the common recommender formats, the cleaning steps, splits, outputs.

pub mod error;
pub mod lines;
pub mod process;
pub mod raw;
pub mod readers;
pub mod rng;
pub mod split;
pub mod write;

pub use error::DataError;
