//! A YAML file the user wrote, kept with its text and node positions for diagnostics.

use std::path::PathBuf;

use crate::diag::Diagnostic;
use crate::pipeline::spans::SpanIndex;

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
