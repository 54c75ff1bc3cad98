//! Pipeline files: parse (`raw`), resolve (`load`, `expand`), and the validated `model`.

pub mod expand;
pub mod interp;
pub mod load;
pub mod matrix;
pub mod model;
mod order;
pub mod raw;
mod roles;
pub mod schema;
pub mod source;
pub mod spans;
pub mod workspace;

use std::path::PathBuf;

use crate::diag::Diagnostic;

pub use load::load;
pub use model::{Instance, Pipeline, Point};
pub use schema::StageKinds;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Diag(#[from] Box<Diagnostic>),
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad `--set {arg}`: {message}\n  = hint: {hint}")]
    Set {
        arg: String,
        message: String,
        hint: String,
    },
}
