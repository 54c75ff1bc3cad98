//! The outputs of `ingest`: split tables, id maps with text, reviews, stats.json.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::data::error::DataError;
use crate::data::process::{Interactions, StepCounts};
use crate::data::raw::RawData;
use crate::data::split::{Split, SplitCounts};

fn writer(dir: &Path, name: &str) -> Result<csv::Writer<BufWriter<File>>, DataError> {
    let p = dir.join(name);
    let f = File::create(&p).map_err(|e| DataError::file(&p, format!("cannot create: {e}")))?;
    Ok(csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(BufWriter::new(f)))
}

fn io(path: &Path) -> impl Fn(csv::Error) -> DataError + '_ {
    move |e| DataError::file(path, format!("cannot write: {e}"))
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    pub density: f64,
    pub splits: SplitCounts,
    pub steps: StepCounts,
    /// Share of items with a title or description.
    pub items_with_text: f64,
    /// Share of users with text (tags, features).
    pub users_with_text: f64,
    /// Interactions (of the kept ones) that have review text.
    pub reviews: usize,
    /// What a cold split holds out whole, `items` or `users` (absent for per-user splits):
    /// after `items`, evaluation ranks only the held-out items (`eval::EvalSplit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold: Option<&'static str>,
}

/// Write every output into `out`; returns the stats.
pub fn write(
    out: &Path,
    x: &Interactions,
    raw: &RawData,
    split: &Split,
    counts: SplitCounts,
    steps: StepCounts,
    cold: Option<&'static str>,
) -> Result<Stats, DataError> {
    for (name, rows) in [
        ("train.csv", &split.train),
        ("valid.csv", &split.valid),
        ("test.csv", &split.test),
    ] {
        let p = out.join(name);
        let mut w = writer(out, name)?;
        w.write_record(["user", "item", "rating", "timestamp"])
            .map_err(io(&p))?;
        for &r in rows {
            let rating = x.rating[r].map(|v| v.to_string()).unwrap_or_default();
            let ts = x.timestamp[r].map(|v| v.to_string()).unwrap_or_default();
            w.write_record([x.user[r].to_string(), x.item[r].to_string(), rating, ts])
                .map_err(io(&p))?;
        }
        w.flush()
            .map_err(|e| DataError::file(&p, format!("cannot write: {e}")))?;
    }
    let p = out.join("items.csv");
    let mut w = writer(out, "items.csv")?;
    w.write_record(["item", "original_id", "title", "description"])
        .map_err(io(&p))?;
    let mut items_with_text = 0;
    for (i, id) in x.item_ids.iter().enumerate() {
        let t = raw.items.get(id).cloned().unwrap_or_default();
        if !t.title.is_empty() || !t.description.is_empty() {
            items_with_text += 1;
        }
        w.write_record([i.to_string(), id.clone(), t.title, t.description])
            .map_err(io(&p))?;
    }
    w.flush()
        .map_err(|e| DataError::file(&p, format!("cannot write: {e}")))?;
    let p = out.join("users.csv");
    let mut w = writer(out, "users.csv")?;
    w.write_record(["user", "original_id", "text"])
        .map_err(io(&p))?;
    let mut users_with_text = 0;
    for (u, id) in x.user_ids.iter().enumerate() {
        let t = raw.users.get(id).cloned().unwrap_or_default();
        if !t.is_empty() {
            users_with_text += 1;
        }
        w.write_record([u.to_string(), id.clone(), t])
            .map_err(io(&p))?;
    }
    w.flush()
        .map_err(|e| DataError::file(&p, format!("cannot write: {e}")))?;
    let p = out.join("reviews.csv");
    let mut w = writer(out, "reviews.csv")?;
    w.write_record(["user", "item", "text"]).map_err(io(&p))?;
    let mut reviews = 0;
    for r in 0..x.len() {
        let (u, i) = (x.user[r] as usize, x.item[r] as usize);
        if let Some(t) = raw
            .reviews
            .get(&(x.user_ids[u].clone(), x.item_ids[i].clone()))
        {
            reviews += 1;
            w.write_record([u.to_string(), i.to_string(), t.clone()])
                .map_err(io(&p))?;
        }
    }
    w.flush()
        .map_err(|e| DataError::file(&p, format!("cannot write: {e}")))?;
    let (nu, ni) = (x.user_ids.len(), x.item_ids.len());
    let stats = Stats {
        users: nu,
        items: ni,
        interactions: x.len(),
        density: x.len() as f64 / (nu as f64 * ni as f64),
        splits: counts,
        steps,
        items_with_text: items_with_text as f64 / ni as f64,
        users_with_text: users_with_text as f64 / nu as f64,
        reviews,
        cold,
    };
    let p = out.join("stats.json");
    let mut text = serde_json::to_string_pretty(&json!(stats)).expect("plain data");
    text.push('\n');
    File::create(&p)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| DataError::file(&p, format!("cannot write: {e}")))?;
    Ok(stats)
}
