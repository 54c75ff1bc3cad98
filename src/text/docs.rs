//! The documents of CLLM4Rec's soft+hard prompting, as token ids with the prompt/main
//! boundary kept:
//! - collaborative: prompt `<user_i> has interacted with`, main text = the user's training items;
//! - content: `<user_i> writes the following review for <item_j>:` + review, or, without
//!   reviews, `<item_j> is described as:` + item text and `<user_i> is described as:` + user text;
//! - recommendation: `<user_i> has interacted with <item> <item> ..., <user_i> will interact with`.
//!
//! `{user}`, `{item}` and `{items}` in a template become user/item tokens, which sit after the
//! base vocabulary (`<user_i>` = base + i, `<item_j>` = base + users + j).

use serde::Serialize;

use crate::text::binfmt::Corpus;
use crate::text::Tokenizer;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Vocab {
    pub base: u32,
    pub users: u32,
    pub items: u32,
}

impl Vocab {
    pub fn user(&self, u: u32) -> u32 {
        self.base + u
    }
    pub fn item(&self, i: u32) -> u32 {
        self.base + self.users + i
    }
    pub fn size(&self) -> u32 {
        self.base + self.users + self.items
    }
}

#[derive(Debug, Clone)]
pub struct Templates {
    pub collab: String,
    pub review: String,
    pub item: String,
    pub user: String,
    pub rec: String,
}

enum Piece {
    Text(Vec<u32>),
    User,
    Item,
    Items,
}

/// A piece of a template as written: text, or a placeholder's name.
enum Part<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The one reading of the template syntax: text and `{user}`, `{item}`, `{items}`
/// placeholders; an unclosed `{` or an unknown name is an error.
fn parts(tpl: &str) -> Result<Vec<Part<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = tpl;
    while let Some(i) = rest.find('{') {
        let j = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in template `{tpl}`"))?
            + i;
        out.push(Part::Text(&rest[..i]));
        match &rest[i + 1..j] {
            name @ ("user" | "item" | "items") => out.push(Part::Placeholder(name)),
            other => return Err(format!("unknown placeholder `{{{other}}}` in template `{tpl}`: use {{user}}, {{item}} or {{items}}")),
        }
        rest = &rest[j + 1..];
    }
    out.push(Part::Text(rest));
    Ok(out)
}

/// The placeholders of a template, in order, without tokenizing it; an unclosed `{` or an
/// unknown name is an error.
pub fn placeholders(tpl: &str) -> Result<Vec<&str>, String> {
    Ok(parts(tpl)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Placeholder(name) => Some(name),
            Part::Text(_) => None,
        })
        .collect())
}

/// A template parsed once: text pieces pre-tokenized.
pub struct Template {
    pieces: Vec<Piece>,
    /// Token count without `{items}`.
    fixed_len: usize,
}

impl Template {
    pub fn parse(tpl: &str, tok: &dyn Tokenizer) -> Result<Template, String> {
        let parts = parts(tpl)?;
        let mut pieces = Vec::new();
        for (k, part) in parts.iter().enumerate() {
            match *part {
                Part::Text(text) => {
                    // A user/item token stands for a word with its leading space: the space
                    // before a placeholder is not encoded separately.
                    let before_placeholder = k + 1 < parts.len();
                    let text = if before_placeholder {
                        text.trim_end_matches(' ')
                    } else {
                        text
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(tok.encode(text)));
                    }
                }
                Part::Placeholder(name) => pieces.push(match name {
                    "user" => Piece::User,
                    "item" => Piece::Item,
                    _ => Piece::Items,
                }),
            }
        }
        let fixed_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::User | Piece::Item => 1,
                Piece::Items => 0,
            })
            .sum();
        Ok(Template { pieces, fixed_len })
    }

    pub fn uses(&self, what: &str) -> bool {
        self.pieces.iter().any(|p| {
            matches!(
                (p, what),
                (Piece::User, "user") | (Piece::Item, "item") | (Piece::Items, "items")
            )
        })
    }

    pub fn render(
        &self,
        v: &Vocab,
        user: Option<u32>,
        item: Option<u32>,
        items: &[u32],
    ) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.fixed_len + items.len());
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::User => {
                    out.push(v.user(user.expect("template with {user} rendered without a user")))
                }
                Piece::Item => {
                    out.push(v.item(item.expect("template with {item} rendered without an item")))
                }
                Piece::Items => out.extend(items.iter().map(|&i| v.item(i))),
            }
        }
        out
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct CorpusStats {
    pub docs: usize,
    pub tokens: usize,
    pub prompt_tokens: usize,
    pub main_tokens: usize,
    /// Documents whose item list or text was cut to the maximum length.
    pub truncated: usize,
}

pub fn stats(c: &Corpus, truncated: usize) -> CorpusStats {
    let prompt: usize = c.prompt_len.iter().map(|&p| p as usize).sum();
    CorpusStats {
        docs: c.len(),
        tokens: c.tokens.len(),
        prompt_tokens: prompt,
        main_tokens: c.tokens.len() - prompt,
        truncated,
    }
}

/// The last `max` items (the most recent when `items` is in time order), and whether it cut.
pub fn tail(items: &[u32], max: usize) -> (&[u32], bool) {
    if items.len() > max {
        (&items[items.len() - max..], true)
    } else {
        (items, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::gpt2::Gpt2;

    #[test]
    fn renders_prompts_with_user_and_item_tokens() {
        let tok = Gpt2::new();
        let v = Vocab {
            base: 50257,
            users: 10,
            items: 5,
        };
        let t = Template::parse(
            "{user} has interacted with {items}, {user} will interact with",
            &tok,
        )
        .unwrap();
        let ids = t.render(&v, Some(3), None, &[0, 4]);
        // <user_3> = 50260, <item_0> = 50267, <item_4> = 50271; text pieces are GPT-2 BPE
        let mut want = vec![50260];
        want.extend(tok.encode(" has interacted with"));
        want.extend([50267, 50271]);
        want.extend(tok.encode(","));
        want.push(50260);
        want.extend(tok.encode(" will interact with"));
        assert_eq!(ids, want);
        assert_eq!(
            tok.decode(
                &ids.iter()
                    .copied()
                    .filter(|&t| t < 50257)
                    .collect::<Vec<_>>()
            ),
            " has interacted with, will interact with"
        );
        assert!(Template::parse("{usr} x", &tok).is_err());
    }
}
