//! Where each node of a YAML file sits, so that errors found after deserializing can still
//! point at `file:line:col`. Paths are dotted: `stages.prep.needs.0`.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

use crate::diag::Pos;

#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    /// path -> (position of the mapping key, position of the value)
    nodes: HashMap<String, (Option<Pos>, Pos)>,
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
    /// reports syntax errors with their own positions.
    pub fn build(text: &str) -> SpanIndex {
        let mut index = SpanIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
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
