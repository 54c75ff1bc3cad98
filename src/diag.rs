//! User-facing diagnostics: `file:line:col`, the offending line, a caret and a hint.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a source file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// An error tied to a place in a file the user wrote.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// The text of the offending line, when known.
    pub line_text: Option<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `file`, whose contents are `text` (used to quote the line).
    pub fn at(file: &Path, text: &str, pos: Option<Pos>, message: impl Into<String>) -> Self {
        let line_text = pos
            .and_then(|p| text.lines().nth(p.line.saturating_sub(1)))
            .map(str::to_owned);
        Diagnostic {
            message: message.into(),
            file: file.to_owned(),
            pos,
            line_text,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        match self.pos {
            Some(p) => write!(f, "  --> {}:{}:{}", self.file.display(), p.line, p.col)?,
            None => write!(f, "  --> {}", self.file.display())?,
        }
        if let (Some(p), Some(text)) = (self.pos, &self.line_text) {
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            let (text, caret) = excerpt(text, p.col.saturating_sub(1));
            write!(
                f,
                "\n{pad} |\n{num} | {text}\n{pad} | {}^",
                " ".repeat(caret)
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// The most characters of the offending line that a diagnostic quotes.
pub const EXCERPT_CHARS: usize = 200;

/// At most `EXCERPT_CHARS` characters of `line` around character `col` (0-based), with `...`
/// where it was cut, and the caret's column in what is returned.
fn excerpt(line: &str, col: usize) -> (String, usize) {
    let len = line.chars().count();
    if len <= EXCERPT_CHARS {
        return (line.to_owned(), col);
    }
    let col = col.min(len);
    let start = col
        .saturating_sub(EXCERPT_CHARS / 2)
        .min(len - EXCERPT_CHARS);
    let end = start + EXCERPT_CHARS;
    let mut out = String::new();
    if start > 0 {
        out.push_str("...");
    }
    out.extend(line.chars().skip(start).take(EXCERPT_CHARS));
    if end < len {
        out.push_str("...");
    }
    (out, col - start + if start > 0 { 3 } else { 0 })
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" when a candidate is close, else a list of what is allowed.
pub fn suggest(word: &str, candidates: &[&str], what: &str) -> String {
    match closest(word, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => format!("there are no {what}"),
        None => format!(
            "{what}: {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_column() {
        let d = Diagnostic::at(
            Path::new("p.yaml"),
            "a: 1\n  bad: 2\n",
            Some(Pos { line: 2, col: 3 }),
            "unknown key `bad`",
        )
        .with_hint("did you mean `bar`?");
        let s = d.to_string();
        assert_eq!(
            s,
            "unknown key `bad`\n  --> p.yaml:2:3\n  |\n2 |   bad: 2\n  |   ^\n  = hint: did you mean `bar`?"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(5000), "b".repeat(5000));
        let d = Diagnostic::at(
            Path::new("p.yaml"),
            &line,
            Some(Pos { line: 1, col: 5001 }),
            "here",
        );
        let s = d.to_string();
        let lines: Vec<&str> = s.lines().collect();
        let (quoted, caret) = (lines[3], lines[4]);
        assert!(quoted.len() <= EXCERPT_CHARS + 12, "{}", quoted.len());
        assert!(
            quoted.starts_with("1 | ...a") && quoted.ends_with("b..."),
            "{quoted}"
        );
        assert_eq!(quoted.find('X'), caret.find('^'), "the caret is under `X`");
        // near either end there is one cut only
        for (col, want) in [(1, "1 | aaa"), (10001, "1 | ...b")] {
            let d = Diagnostic::at(Path::new("p"), &line, Some(Pos { line: 1, col }), "x");
            let s = d.to_string();
            let lines: Vec<&str> = s.lines().collect();
            assert!(lines[3].starts_with(want), "{}", &lines[3][..20]);
            assert_eq!(lines[3].matches("...").count(), 1);
            let c = lines[4].find('^').unwrap();
            let ch = lines[3].as_bytes()[c];
            assert_eq!(ch, if col == 1 { b'a' } else { b'b' });
        }
        // short lines are quoted whole
        let d = Diagnostic::at(Path::new("p"), "a: 1", Some(Pos { line: 1, col: 4 }), "x");
        assert!(d.to_string().contains("1 | a: 1\n  |    ^"));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("lamda_c", ["lambda_c", "lr"]), Some("lambda_c"));
        assert_eq!(closest("zzz", ["lambda_c", "epochs"]), None);
    }
}
