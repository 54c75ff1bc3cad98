//! The `tokenize` kind: turn an `ingest` output into the collaborative, content and
//! recommendation corpora (binary token files), the vocabulary map and token counts.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, Slot, StageContext, StageError, StageKind,
    TypedParams,
};
use crate::pipeline::Instance;
use crate::text::binfmt::Corpus;
use crate::text::docs::{placeholders, stats, tail, Template, Vocab};
use crate::text::{self, Tokenizer};

/// The params of a `tokenize` stage (stages/tokenize.yaml documents each).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizeParams {
    pub tokenizer: String,
    /// With `tokenizer: gguf`: the GGUF model file whose vocabulary to use, relative to the
    /// pipeline file (hashed into the key like a dep).
    pub tokenizer_file: Option<String>,
    pub collab_prompt: String,
    pub review_prompt: String,
    pub item_prompt: String,
    pub user_prompt: String,
    pub rec_prompt: String,
    /// Items in a collaborative main text or a recommendation prompt (the most recent kept);
    /// `None`: no cap (the authors' code: only the training length cuts).
    pub max_items: Option<usize>,
    /// Tokens of a content main text; `None`: no cap.
    pub max_text_tokens: Option<usize>,
}

impl Default for TokenizeParams {
    fn default() -> Self {
        TokenizeParams {
            tokenizer: "gpt2".into(),
            tokenizer_file: None,
            collab_prompt: "{user} has interacted with".into(),
            review_prompt: "{user} writes the following review for {item}:".into(),
            item_prompt: "{item} is described as:".into(),
            user_prompt: "{user} is described as:".into(),
            rec_prompt: "{user} has interacted with {items}, {user} will interact with".into(),
            max_items: None,
            max_text_tokens: None,
        }
    }
}

impl TypedParams for TokenizeParams {
    fn check(&self) -> Result<(), ParamError> {
        check_templates(self)?;
        match (self.tokenizer.as_str(), &self.tokenizer_file) {
            // read and checked with the files (`check_files`)
            ("gguf", Some(_)) => Ok(()),
            (_, Some(_)) => Err((
                "tokenizer_file".into(),
                format!(
                    "`tokenizer_file` is only for `tokenizer: gguf`, not `{}`",
                    self.tokenizer
                ),
            )),
            (name, None) => {
                let tok = text::by_name(name).map_err(|m| ("tokenizer".to_owned(), m))?;
                templates(self, tok.as_ref()).map(|_| ())
            }
        }
    }
}

pub struct Tokenize;

impl TokenizeParams {
    /// The tokenizer, a GGUF file's read from under `workdir`: (param name, message).
    fn tokenizer(&self, workdir: &Path) -> Result<Box<dyn Tokenizer>, (String, String)> {
        let file = self.tokenizer_file.as_ref().map(|f| workdir.join(f));
        text::load(&self.tokenizer, file.as_deref()).map_err(|m| {
            let at = if self.tokenizer_file.is_some() {
                "tokenizer_file"
            } else {
                "tokenizer"
            };
            (at.to_owned(), m)
        })
    }
}

struct Templates {
    collab: Template,
    review: Template,
    item: Template,
    user: Template,
    rec: Template,
}

/// Each template param: its text, what a document it starts is rendered for, and the
/// placeholders it must have (the only ones it may have: a placeholder without a value, such
/// as `{user}` in the prompt of an item's description, has nothing to be rendered as).
type TemplateParam<'a> = (&'static str, &'a str, &'static str, &'static [&'static str]);

fn template_params(p: &TokenizeParams) -> [TemplateParam<'_>; 5] {
    const USER: &[&str] = &["user"];
    const ITEM: &[&str] = &["item"];
    const USER_ITEM: &[&str] = &["user", "item"];
    const USER_ITEMS: &[&str] = &["user", "items"];
    [
        ("collab_prompt", p.collab_prompt.as_str(), "a user", USER),
        (
            "review_prompt",
            p.review_prompt.as_str(),
            "a user's review of an item",
            USER_ITEM,
        ),
        ("item_prompt", p.item_prompt.as_str(), "an item alone", ITEM),
        ("user_prompt", p.user_prompt.as_str(), "a user alone", USER),
        (
            "rec_prompt",
            p.rec_prompt.as_str(),
            "a user and their items",
            USER_ITEMS,
        ),
    ]
}

/// Check every template's placeholders (no tokenizer needed): (param name, message).
fn check_templates(p: &TokenizeParams) -> Result<(), (String, String)> {
    for (name, text, what, needs) in template_params(p) {
        let used = placeholders(text).map_err(|m| (name.to_owned(), m))?;
        let list = |xs: &[&str]| {
            xs.iter()
                .map(|x| format!("`{{{x}}}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        if let Some(bad) = used.iter().find(|u| !needs.contains(*u)) {
            return Err((
                name.to_owned(),
                format!(
                    "`{name}` cannot use `{{{bad}}}`: it is rendered for {what}, so it may use {} only",
                    list(needs)
                ),
            ));
        }
        if let Some(n) = needs.iter().find(|n| !used.contains(*n)) {
            return Err((name.to_owned(), format!("`{name}` must contain `{{{n}}}`")));
        }
    }
    Ok(())
}

fn templates(p: &TokenizeParams, tok: &dyn Tokenizer) -> Result<Templates, (String, String)> {
    check_templates(p)?;
    let parse = |name: &str, t: &str| Template::parse(t, tok).map_err(|m| (name.to_owned(), m));
    Ok(Templates {
        collab: parse("collab_prompt", &p.collab_prompt)?,
        review: parse("review_prompt", &p.review_prompt)?,
        item: parse("item_prompt", &p.item_prompt)?,
        user: parse("user_prompt", &p.user_prompt)?,
        rec: parse("rec_prompt", &p.rec_prompt)?,
    })
}

impl StageKind for Tokenize {
    fn name(&self) -> &'static str {
        "tokenize"
    }

    fn version(&self) -> u32 {
        // 2: a recommendation prompt for each user without training items (cold users);
        // outputs are unchanged where every user has training items
        2
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<TokenizeParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<TokenizeParams>()
    }

    fn needs(&self) -> Needs {
        Needs::Slots(&[Slot {
            role: "ingest",
            kinds: &["ingest"],
            required: true,
            many: false,
        }])
    }

    fn check_files(&self, inst: &Instance, workdir: &Path) -> Result<(), ParamError> {
        let p: &TokenizeParams = inst.params_as();
        if p.tokenizer_file.is_some() {
            let tok = p.tokenizer(workdir)?;
            templates(p, tok.as_ref())?;
        }
        Ok(())
    }

    fn implicit_deps(&self, inst: &Instance) -> Vec<(String, String)> {
        let p: &TokenizeParams = inst.params_as();
        p.tokenizer_file
            .iter()
            .map(|f| ("tokenizer_file".to_owned(), f.clone()))
            .collect()
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &TokenizeParams = ctx.params();
        let tok = p
            .tokenizer(ctx.workdir)
            .map_err(|(_, m)| StageError::Failed(m))?;
        let t = templates(p, tok.as_ref()).map_err(|(_, m)| StageError::Failed(m))?;
        let (_, input) = ctx.input("ingest")?;
        let fail = |m: String| StageError::Failed(m);
        let data = IngestOutput::read(input).map_err(fail)?;
        let v = Vocab {
            base: tok.vocab_size(),
            users: data.users.len() as u32,
            items: data.items.len() as u32,
        };

        // Training items per user, oldest first when there are timestamps.
        let mut by_user: Vec<Vec<(i64, usize, u32)>> = vec![Vec::new(); data.users.len()];
        for (row, &(u, i, ts)) in data.train.iter().enumerate() {
            by_user[u as usize].push((ts.unwrap_or(0), row, i));
        }
        let mut collab = Corpus::new();
        let mut rec = Corpus::new();
        let (mut collab_cut, mut rec_cut) = (0, 0);
        for (u, rows) in by_user.iter_mut().enumerate() {
            if rows.is_empty() {
                // A user without training items (a cold-users split) has no collaborative
                // document, but a recommendation prompt: the user's token is all it holds.
                rec.push(
                    &t.rec.render(&v, Some(u as u32), None, &[]),
                    &[],
                    Some(u as u32),
                    None,
                );
                continue;
            }
            rows.sort_unstable();
            let items: Vec<u32> = rows.iter().map(|r| r.2).collect();
            let u = u as u32;
            let (kept, cut) = tail(&items, p.max_items.unwrap_or(usize::MAX));
            collab.push(
                &t.collab.render(&v, Some(u), None, &[]),
                &kept.iter().map(|&i| v.item(i)).collect::<Vec<_>>(),
                Some(u),
                None,
            );
            collab_cut += cut as usize;
            rec.push(&t.rec.render(&v, Some(u), None, kept), &[], Some(u), None);
            rec_cut += cut as usize;
        }

        let mut content = Corpus::new();
        let mut text_cut = 0;
        let mut encode = |s: &str| {
            let mut ids = tok.encode(&format!(" {}", s.trim()));
            if let Some(max) = p.max_text_tokens.filter(|&m| ids.len() > m) {
                ids.truncate(max);
                text_cut += 1;
            }
            ids
        };
        let train: HashSet<(u32, u32)> = data.train.iter().map(|&(u, i, _)| (u, i)).collect();
        let reviews: Vec<&(u32, u32, String)> = data
            .reviews
            .iter()
            .filter(|(u, i, _)| train.contains(&(*u, *i)))
            .collect();
        let source = if !reviews.is_empty() {
            for (u, i, text) in reviews {
                content.push(
                    &t.review.render(&v, Some(*u), Some(*i), &[]),
                    &encode(text),
                    Some(*u),
                    Some(*i),
                );
            }
            "reviews"
        } else {
            for (i, text) in data.items.iter().enumerate() {
                if !text.is_empty() {
                    content.push(
                        &t.item.render(&v, None, Some(i as u32), &[]),
                        &encode(text),
                        None,
                        Some(i as u32),
                    );
                }
            }
            for (u, text) in data.users.iter().enumerate() {
                if !text.is_empty() {
                    content.push(
                        &t.user.render(&v, Some(u as u32), None, &[]),
                        &encode(text),
                        Some(u as u32),
                        None,
                    );
                }
            }
            "item and user text"
        };

        let out = ctx.out;
        let w = |name: &str, c: &Corpus| {
            c.write(&out.join(name))
                .map_err(|e| StageError::Failed(format!("cannot write {name}: {e}")))
        };
        w("collab.tok", &collab)?;
        w("content.tok", &content)?;
        w("rec.tok", &rec)?;
        let vocab = json!({
            "tokenizer": tok.name(),
            "base_vocab": v.base,
            "users": v.users,
            "items": v.items,
            "user_offset": v.base,
            "item_offset": v.base + v.users,
            "vocab_size": v.size(),
            "eos": tok.eos(),
        });
        let stats = json!({
            "content_source": source,
            "collab": stats(&collab, collab_cut),
            "content": stats(&content, text_cut),
            "rec": stats(&rec, rec_cut),
        });
        for (name, value) in [("vocab.json", vocab), ("stats.json", stats)] {
            let text = serde_json::to_string_pretty(&value).expect("plain data") + "\n";
            std::fs::write(out.join(name), text)
                .map_err(|e| StageError::Failed(format!("cannot write {name}: {e}")))?;
        }
        let mut log = ctx.log;
        let _ = writeln!(
            log,
            "{} collaborative, {} content ({source}), {} recommendation documents",
            collab.len(),
            content.len(),
            rec.len()
        );
        Ok(())
    }
}

/// The tables `ingest` writes, read back.
pub struct IngestOutput {
    pub train: Vec<(u32, u32, Option<i64>)>,
    /// Item text (title and description joined) by dense id.
    pub items: Vec<String>,
    pub users: Vec<String>,
    pub reviews: Vec<(u32, u32, String)>,
}

fn read_csv(
    path: &Path,
    mut f: impl FnMut(&csv::StringRecord) -> Result<(), String>,
) -> Result<(), String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        f(&rec).map_err(|m| {
            format!(
                "{}:{}: {m}",
                path.display(),
                rec.position().map(|p| p.line()).unwrap_or(0)
            )
        })?;
    }
    Ok(())
}

fn num<T: std::str::FromStr>(rec: &csv::StringRecord, k: usize) -> Result<T, String> {
    rec.get(k)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("field {k} is not a number"))
}

impl IngestOutput {
    pub fn read(dir: &Path) -> Result<IngestOutput, String> {
        let mut train = Vec::new();
        read_csv(&dir.join("train.csv"), |r| {
            train.push((
                num(r, 0)?,
                num(r, 1)?,
                r.get(3).and_then(|s| s.parse().ok()),
            ));
            Ok(())
        })?;
        let mut items = BTreeMap::new();
        read_csv(&dir.join("items.csv"), |r| {
            let text = [r.get(2).unwrap_or(""), r.get(3).unwrap_or("")]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(". ");
            items.insert(num::<u32>(r, 0)?, text);
            Ok(())
        })?;
        let mut users = BTreeMap::new();
        read_csv(&dir.join("users.csv"), |r| {
            users.insert(num::<u32>(r, 0)?, r.get(2).unwrap_or("").to_owned());
            Ok(())
        })?;
        let mut reviews = Vec::new();
        read_csv(&dir.join("reviews.csv"), |r| {
            reviews.push((num(r, 0)?, num(r, 1)?, r.get(2).unwrap_or("").to_owned()));
            Ok(())
        })?;
        let dense = |m: &BTreeMap<u32, String>, what: &str| -> Result<Vec<String>, String> {
            if m.keys().copied().eq(0..m.len() as u32) {
                Ok(m.values().cloned().collect())
            } else {
                Err(format!("{what}.csv ids are not 0..{}", m.len()))
            }
        };
        Ok(IngestOutput {
            train,
            items: dense(&items, "items")?,
            users: dense(&users, "users")?,
            reviews,
        })
    }
}
