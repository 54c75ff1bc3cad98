//! Reproducibility audits from the cache: the lineage of every metric back to the raw files
//! (`audit`), a self-contained bundle of it and its re-verification (`audit --bundle`,
//! `audit --check`), and re-execution of cached instances into a scratch folder
//! (`reproduce`). None of this writes into the cache.

pub mod bundle;
pub mod check;
pub mod lineage;
pub mod numdiff;
pub mod reproduce;
pub mod resolve;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Exec(#[from] crate::exec::ExecError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Hash(#[from] crate::cache::hash::HashError),
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AuditError {
    let context = context.into();
    move |source| AuditError::Io { context, source }
}
