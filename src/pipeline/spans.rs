//! Where each node of a YAML file sits, so that errors found after deserializing can still
//! point at `file:line:col`. Paths are dotted: `stages.prep.needs.0`.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

use crate::diag::Pos;

/// How deep mappings and lists may nest in a pipeline or template file. Real files nest a
/// handful of levels. The bound is checked here, before the file goes to serde_norway, whose
/// parser takes time quadratic in the nesting: 45 s for `x: [[[[...]]]]` 100,000 deep
/// (200 KB), 80 s for `{a: {a: ...}}` as deep, before its own recursion limit refuses them.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    /// path -> (position of the mapping key, position of the value)
    nodes: HashMap<String, (Option<Pos>, Pos)>,
    /// Where a mapping or list opens deeper than `MAX_DEPTH` levels (or where the scanner
    /// gave up on flow nesting deeper than 255); indexing stopped there.
    pub too_deep: Option<Pos>,
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

impl SpanIndex {
    /// Index every node of `text`. A syntax error yields an empty index: the serde parser
    /// reports syntax errors with their own positions. Nesting deeper than `MAX_DEPTH` stops
    /// the indexing, with `too_deep` set to where it happened.
    pub fn build(text: &str) -> SpanIndex {
        let mut index = SpanIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, span) = match parser.next_event() {
                Some(Ok(e)) => e,
                // The scanner's own bound on flow nesting (255 `[`/`{`), which it may reach
                // before the first of them is an event: a line of brackets is lexed ahead.
                Some(Err(e)) if e.info() == "recursion limit exceeded" => {
                    let m = e.marker();
                    index.too_deep = Some(Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    });
                    break;
                }
                _ => break,
            };
            let pos = Pos {
                line: span.start.line(),
                col: span.start.col() + 1,
            };
            let opens = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
            let is_node = opens || matches!(event, Event::Scalar(..) | Event::Alias(..));
            if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
                stack.pop();
                continue;
            }
            if !is_node {
                continue;
            }
            if opens && stack.len() >= MAX_DEPTH {
                index.too_deep = Some(pos);
                break;
            }
            // Where does this node go?
            let path = match stack.last_mut() {
                None => Some((String::new(), None)),
                Some(Frame::Seq { path, next }) => {
                    let p = join(path, &next.to_string());
                    *next += 1;
                    Some((p, None))
                }
                Some(Frame::Map { path, key }) => match key.take() {
                    Some((k, kpos)) => Some((join(path, &k), Some(kpos))),
                    None => {
                        let name = match &event {
                            Event::Scalar(s, ..) => s.to_string(),
                            _ => "?".to_owned(),
                        };
                        *key = Some((name, pos));
                        None
                    }
                },
            };
            match path {
                Some((p, kpos)) => {
                    index.nodes.entry(p.clone()).or_insert((kpos, pos));
                    match event {
                        Event::MappingStart(..) => stack.push(Frame::Map { path: p, key: None }),
                        Event::SequenceStart(..) => stack.push(Frame::Seq { path: p, next: 0 }),
                        _ => {}
                    }
                }
                None if opens => {
                    // A complex mapping key: index nothing inside it.
                    let junk = "\u{0}key".to_owned();
                    match event {
                        Event::MappingStart(..) => stack.push(Frame::Map {
                            path: junk,
                            key: None,
                        }),
                        _ => stack.push(Frame::Seq {
                            path: junk,
                            next: 0,
                        }),
                    }
                }
                None => {}
            }
        }
        index
    }

    /// Position of the value at `path`, or of its closest indexed ancestor.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.lookup(path).map(|(_, v)| v)
    }

    /// Position of the key that names `path` (its value when it has no key).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.lookup(path).map(|(k, v)| k.unwrap_or(v))
    }

    fn lookup(&self, path: &str) -> Option<(Option<Pos>, Pos)> {
        let mut p = path;
        loop {
            if let Some(found) = self.nodes.get(p) {
                return Some(*found);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return self.nodes.get("").copied(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_deeper_than_the_bound_is_found_early() {
        let deep = |open: &str, close: &str, n: usize| {
            format!("name: p\nx: {}1{}\n", open.repeat(n), close.repeat(n))
        };
        // 128 levels in all (the top mapping is one) are fine, one more is not
        assert_eq!(SpanIndex::build(&deep("[", "]", 127)).too_deep, None);
        assert_eq!(
            SpanIndex::build(&deep("[", "]", 128)).too_deep,
            Some(Pos { line: 2, col: 131 })
        );
        assert_eq!(
            SpanIndex::build(&deep("{a: ", "}", 200)).too_deep,
            Some(Pos {
                line: 2,
                col: 4 + 127 * 4
            })
        );
        // block nesting counts the same
        let block = format!("x:\n{}a\n", "- ".repeat(200));
        assert_eq!(
            SpanIndex::build(&block).too_deep,
            Some(Pos {
                line: 2,
                col: 1 + 127 * 2
            })
        );
        // 100,000 deep: the scanner's own flow bound, at the 256th `[`, in well under a second
        let t0 = std::time::Instant::now();
        let idx = SpanIndex::build(&deep("[", "]", 100_000));
        assert_eq!(idx.too_deep, Some(Pos { line: 2, col: 259 }));
        assert!(t0.elapsed().as_secs_f64() < 0.5, "{:?}", t0.elapsed());
    }

    #[test]
    fn finds_keys_values_and_list_items() {
        let text = "name: x\nstages:\n  prep:\n    needs: [a, b]\n    params:\n      lr: 0.1\n";
        let idx = SpanIndex::build(text);
        assert_eq!(idx.key("stages.prep"), Some(Pos { line: 3, col: 3 }));
        assert_eq!(
            idx.value("stages.prep.needs.1"),
            Some(Pos { line: 4, col: 16 })
        );
        assert_eq!(
            idx.key("stages.prep.params.lr"),
            Some(Pos { line: 6, col: 7 })
        );
        assert_eq!(
            idx.value("stages.prep.params.lr"),
            Some(Pos { line: 6, col: 11 })
        );
        // unknown paths fall back to the closest ancestor
        assert_eq!(
            idx.value("stages.prep.params.nope"),
            Some(Pos { line: 6, col: 7 })
        );
    }
}
