//! Data errors name the file and, where there is one, the line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}:{line}: {message}", file.display())]
    Line {
        file: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    #[error("{0}")]
    Other(String),
}

impl DataError {
    pub fn line(file: &Path, line: u64, message: impl Into<String>) -> DataError {
        DataError::Line {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
    pub fn file(file: &Path, message: impl Into<String>) -> DataError {
        DataError::File {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}
