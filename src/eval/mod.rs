//! Evaluation: ranking metrics, and scoring every test user with a model.

pub mod metrics;
pub mod scorer;
pub mod split;

pub use split::{EvalSplit, UserMetrics};
