//! Amazon review data. 2014: `reviews_<Category>_5.json.gz` (JSON lines) with
//! `meta_<Category>.json.gz` (Python dict literals). 2018: `<Category>_5.json.gz` with
//! `meta_<Category>.json.gz` (JSON lines). Meta files cover the whole catalogue, so their
//! items that have no interactions are ignored.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::data::error::DataError;
use crate::data::lines::Lines;
use crate::data::raw::{ItemText, RawData, RawInteraction};
use crate::data::readers::pylit;

fn files(dir: &Path) -> Result<(PathBuf, Option<PathBuf>), DataError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::file(dir, format!("cannot list: {e}")))?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let reviews: Vec<&PathBuf> = names
        .iter()
        .filter(|p| {
            let n = name(p);
            !n.starts_with("meta_") && (n.ends_with("_5.json") || n.ends_with("_5.json.gz"))
        })
        .collect();
    let meta: Vec<&PathBuf> = names
        .iter()
        .filter(|p| name(p).starts_with("meta_"))
        .collect();
    match (reviews.as_slice(), meta.as_slice()) {
        ([r], [m]) => Ok(((*r).clone(), Some((*m).clone()))),
        ([r], []) => Ok(((*r).clone(), None)),
        ([], _) => Err(DataError::file(dir, "no review file: expected `reviews_<Category>_5.json.gz` (2014) or `<Category>_5.json.gz` (2018)")),
        _ => Err(DataError::file(dir, "more than one review or meta file; keep one category per folder")),
    }
}

fn str_field<'a>(v: &'a Json, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Json::as_str)
}

pub fn read(dir: &Path) -> Result<RawData, DataError> {
    let (reviews, meta) = files(dir)?;
    let mut data = RawData::default();
    let mut lines = Lines::open(&reviews)?;
    while let Some((n, line)) = lines.next_line(false)? {
        if line.trim().is_empty() {
            continue;
        }
        let v: Json = serde_json::from_str(&line)
            .map_err(|e| DataError::line(&reviews, n, format!("not a JSON object: {e}")))?;
        let user = str_field(&v, "reviewerID")
            .ok_or_else(|| DataError::line(&reviews, n, "missing `reviewerID`"))?;
        let item =
            str_field(&v, "asin").ok_or_else(|| DataError::line(&reviews, n, "missing `asin`"))?;
        let rating = match v.get("overall") {
            None | Some(Json::Null) => None,
            Some(x) => Some(x.as_f64().ok_or_else(|| {
                DataError::line(&reviews, n, format!("`overall` is not a number: {x}"))
            })?),
        };
        let timestamp = v.get("unixReviewTime").and_then(Json::as_i64);
        let text = str_field(&v, "reviewText").unwrap_or("").trim();
        if !text.is_empty() {
            data.reviews
                .insert((user.to_owned(), item.to_owned()), text.to_owned());
        }
        data.interactions.push(RawInteraction {
            user: user.to_owned(),
            item: item.to_owned(),
            rating,
            timestamp,
        });
    }
    data.files.push(reviews);
    if let Some(meta) = meta {
        let wanted: std::collections::HashSet<&str> =
            data.interactions.iter().map(|r| r.item.as_str()).collect();
        let mut items = std::collections::HashMap::new();
        let mut lines = Lines::open(&meta)?;
        while let Some((n, line)) = lines.next_line(false)? {
            if line.trim().is_empty() {
                continue;
            }
            let v = match serde_json::from_str::<Json>(&line) {
                Ok(v) => v,
                Err(_) => pylit::parse(&line).map_err(|e| {
                    DataError::line(
                        &meta,
                        n,
                        format!("not a JSON object nor a Python dict literal: {e}"),
                    )
                })?,
            };
            let asin =
                str_field(&v, "asin").ok_or_else(|| DataError::line(&meta, n, "missing `asin`"))?;
            if wanted.contains(asin) {
                items.insert(asin.to_owned(), item_text(&v));
            }
        }
        data.items = items;
        data.files.push(meta);
    }
    Ok(data)
}

/// Title, then brand, categories and (2018) description as one line.
fn item_text(v: &Json) -> ItemText {
    let mut parts: Vec<String> = Vec::new();
    if let Some(b) = str_field(v, "brand").filter(|b| !b.trim().is_empty()) {
        parts.push(b.trim().to_owned());
    }
    let mut cats: Vec<String> = Vec::new();
    let mut add = |c: &Json| {
        if let Some(s) = c.as_str() {
            let s = s.trim().to_owned();
            if !s.is_empty() && !cats.contains(&s) {
                cats.push(s);
            }
        }
    };
    // 2014: categories = [[..], [..]]; 2018: category = [..]
    for c in v
        .get("categories")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        match c {
            Json::Array(a) => a.iter().for_each(&mut add),
            other => add(other),
        }
    }
    v.get("category")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .for_each(&mut add);
    parts.extend(cats);
    if let Some(d) = v.get("description") {
        let d = match d {
            Json::Array(a) => a
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            Json::String(s) => s.clone(),
            _ => String::new(),
        };
        if !d.trim().is_empty() {
            parts.push(d.trim().to_owned());
        }
    }
    ItemText {
        title: str_field(v, "title").unwrap_or("").trim().to_owned(),
        description: parts.join(", "),
    }
}
