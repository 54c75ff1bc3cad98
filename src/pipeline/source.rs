//! A YAML file the user wrote, kept with its text and node positions for diagnostics.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::pipeline::spans::{SpanIndex, MAX_DEPTH};
use crate::pipeline::PipelineError;

/// The largest pipeline or template file that is read (16 MiB); real ones have a few KB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The refusal of a file longer than `MAX_FILE_BYTES`.
pub fn too_large(path: &Path, len: u64) -> PipelineError {
    Box::new(
        Diagnostic::at(
            path,
            "",
            None,
            format!(
                "the file is too large: {len} bytes (the limit is {} MiB)",
                MAX_FILE_BYTES >> 20
            ),
        )
        .with_hint(
            "pipeline and template files are YAML of a few KB; data belongs in stage inputs",
        ),
    )
    .into()
}

/// Read a YAML file the user wrote: refused before reading when its size is over
/// `MAX_FILE_BYTES` (and while reading, should it grow or be no regular file), and when it is
/// not UTF-8 (with the line of the first bad byte).
pub fn read_text(path: &Path) -> Result<String, PipelineError> {
    let read_err = |source| PipelineError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(path, len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line {line}: not valid UTF-8 (byte {})", at + 1),
        ))
    })
}

#[derive(Debug)]
pub struct Source {
    /// The path as the user gave it (or as found), for messages.
    pub path: PathBuf,
    pub text: String,
    pub spans: SpanIndex,
}

impl Source {
    pub fn new(path: PathBuf, text: String) -> Source {
        let spans = SpanIndex::build(&text);
        Source { path, text, spans }
    }

    /// The file as `T`; a file nested deeper than `MAX_DEPTH` is refused first, at the
    /// mapping or list that opens too deep.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        if let Some(pos) = self.spans.too_deep {
            return Err(Diagnostic::at(
                &self.path,
                &self.text,
                Some(pos),
                format!("mappings and lists nest more than {MAX_DEPTH} levels deep"),
            )
            .with_hint("a pipeline nests a few levels; look for a runaway `[` or `{`"));
        }
        serde_norway::from_str(&self.text).map_err(|e| self.from_serde(&e))
    }

    /// A diagnostic pointing at the key that names `yaml_path`.
    pub fn at_key(&self, yaml_path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.path, &self.text, self.spans.key(yaml_path), message)
    }

    /// A diagnostic pointing at the value at `yaml_path`.
    pub fn at_value(&self, yaml_path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.path, &self.text, self.spans.value(yaml_path), message)
    }

    /// Turn a serde_norway error into a diagnostic with its position and a hint.
    pub fn from_serde(&self, err: &serde_norway::Error) -> Diagnostic {
        let pos = err.location().map(|l| crate::diag::Pos {
            line: l.line(),
            col: l.column(),
        });
        let mut msg = err.to_string();
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        let hint = serde_hint(&msg);
        Diagnostic::at(&self.path, &self.text, pos, msg).with_hint_opt(hint)
    }
}

/// A hint for serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn serde_hint(msg: &str) -> Option<String> {
    if let Some(rest) = msg.split("unknown field `").nth(1) {
        let (field, tail) = rest.split_once('`')?;
        let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return Some(crate::diag::suggest(field, &expected, "allowed keys"));
    }
    if msg.contains("invalid type") {
        return Some("check the value's type against the pipeline format in README.md".to_owned());
    }
    if msg.contains("missing field") {
        return Some("add the field; README.md documents the pipeline format".to_owned());
    }
    None
}
