//! A generic table of interactions: CSV, TSV (read with line numbers) or Parquet (read with
//! Polars), with optional item and user text tables in the same formats. Text for an id that
//! has no interaction is an error.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::data::error::DataError;
use crate::data::raw::{ItemText, RawData, RawInteraction};
use crate::data::readers::csv_records;

#[derive(Debug, Clone)]
pub struct TableOptions {
    pub user_col: String,
    pub item_col: String,
    pub rating_col: Option<String>,
    pub time_col: Option<String>,
    /// A table with `item_col`, an optional `title` column, and any text columns.
    pub item_text: Option<PathBuf>,
    /// A table with `user_col` and any text columns.
    pub user_text: Option<PathBuf>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            user_col: "user".into(),
            item_col: "item".into(),
            rating_col: None,
            time_col: None,
            item_text: None,
            user_text: None,
        }
    }
}

enum Kind {
    Delimited(u8),
    Parquet,
}

fn kind_of(path: &Path) -> Result<Kind, DataError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".csv") {
        Ok(Kind::Delimited(b','))
    } else if name.ends_with(".tsv") || name.ends_with(".txt") {
        Ok(Kind::Delimited(b'\t'))
    } else if name.ends_with(".parquet") {
        Ok(Kind::Parquet)
    } else {
        Err(DataError::file(
            path,
            "unknown table type: name it .csv, .tsv or .parquet (optionally .gz for text)",
        ))
    }
}

/// Every row as strings (None for a null), columns in the order of `cols`; `f` gets a row
/// label for errors ("line N" or "row N").
fn rows(
    path: &Path,
    cols: &[&str],
    mut f: impl FnMut(&dyn Fn(String) -> DataError, &[Option<&str>]) -> Result<(), DataError>,
) -> Result<(), DataError> {
    match kind_of(path)? {
        Kind::Delimited(d) => csv_records(path, d, cols, |line, fields| {
            let err = |m: String| DataError::line(path, line, m);
            let v: Vec<Option<&str>> = fields
                .iter()
                .map(|s| if s.is_empty() { None } else { Some(*s) })
                .collect();
            f(&err, &v)
        }),
        Kind::Parquet => {
            let file = std::fs::File::open(path)
                .map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
            let df = ParquetReader::new(file)
                .finish()
                .map_err(|e| DataError::file(path, format!("not a readable Parquet file: {e}")))?;
            let mut columns: Vec<Column> = Vec::new();
            for c in cols {
                let col = df
                    .column(c)
                    .map_err(|_| DataError::file(path, format!("missing column `{c}`")))?;
                columns.push(
                    col.cast(&DataType::String)
                        .map_err(|e| DataError::file(path, format!("column `{c}`: {e}")))?,
                );
            }
            let cas: Vec<&StringChunked> = columns
                .iter()
                .map(|c| c.str().expect("cast to string"))
                .collect();
            for row in 0..df.height() {
                let v: Vec<Option<&str>> = cas.iter().map(|c| c.get(row)).collect();
                let err = |m: String| DataError::file(path, format!("row {}: {m}", row + 1));
                f(&err, &v)?;
            }
            Ok(())
        }
    }
}

pub fn read(path: &Path, o: &TableOptions) -> Result<RawData, DataError> {
    let mut cols: Vec<&str> = vec![&o.user_col, &o.item_col];
    cols.extend(o.rating_col.as_deref());
    cols.extend(o.time_col.as_deref());
    let mut data = RawData::default();
    rows(path, &cols, |err, v| {
        let need = |k: usize| {
            v[k].map(str::to_owned)
                .ok_or_else(|| err(format!("`{}` is empty", cols[k])))
        };
        let (user, item) = (need(0)?, need(1)?);
        let mut k = 2;
        let mut num = |name: &Option<String>| -> Result<Option<f64>, DataError> {
            let Some(n) = name else { return Ok(None) };
            let s = v[k];
            k += 1;
            s.map(|s| {
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| err(format!("`{n}` is not a number: `{s}`")))
            })
            .transpose()
        };
        let rating = num(&o.rating_col)?;
        let timestamp = num(&o.time_col)?.map(|t| t as i64);
        data.interactions.push(RawInteraction {
            user,
            item,
            rating,
            timestamp,
        });
        Ok(())
    })?;
    data.files.push(path.to_owned());
    let known_items: HashSet<String> = data.interactions.iter().map(|r| r.item.clone()).collect();
    let known_users: HashSet<String> = data.interactions.iter().map(|r| r.user.clone()).collect();
    if let Some(t) = &o.item_text {
        for (id, title, desc) in text_table(t, &o.item_col, &known_items, "item")? {
            data.items.insert(
                id,
                ItemText {
                    title,
                    description: desc,
                },
            );
        }
        data.files.push(t.clone());
    }
    if let Some(t) = &o.user_text {
        for (id, title, desc) in text_table(t, &o.user_col, &known_users, "user")? {
            let text = [title, desc]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            data.users.insert(id, text);
        }
        data.files.push(t.clone());
    }
    Ok(data)
}

/// (id, title, description) rows of a text table; every id must be known.
fn text_table(
    path: &Path,
    id_col: &str,
    known: &HashSet<String>,
    what: &str,
) -> Result<Vec<(String, String, String)>, DataError> {
    let header: Vec<String> = match kind_of(path)? {
        Kind::Delimited(d) => {
            let mut r = csv::ReaderBuilder::new()
                .delimiter(d)
                .from_reader(crate::data::lines::open(path)?);
            r.headers()
                .map_err(|e| DataError::line(path, 1, format!("bad header: {e}")))?
                .iter()
                .map(str::to_owned)
                .collect()
        }
        Kind::Parquet => {
            let file = std::fs::File::open(path)
                .map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
            let mut r = ParquetReader::new(file);
            let schema = r
                .schema()
                .map_err(|e| DataError::file(path, format!("not a readable Parquet file: {e}")))?;
            schema.iter_names().map(|n| n.to_string()).collect()
        }
    };
    let mut cols: Vec<&str> = vec![id_col];
    cols.extend(header.iter().map(String::as_str).filter(|c| *c != id_col));
    let title = cols.iter().position(|c| *c == "title");
    let mut out = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    rows(path, &cols, |err, v| {
        let id = v[0]
            .ok_or_else(|| err(format!("`{id_col}` is empty")))?
            .to_owned();
        if !known.contains(&id) {
            return Err(err(format!(
                "text for unknown {what} `{id}`: it has no interaction"
            )));
        }
        if seen.insert(id.clone(), ()).is_some() {
            return Err(err(format!("{what} `{id}` has text twice")));
        }
        let t = title.and_then(|k| v[k]).unwrap_or("").trim().to_owned();
        let desc: Vec<&str> = (1..cols.len())
            .filter(|&k| Some(k) != title)
            .filter_map(|k| v[k])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        out.push((id, t, desc.join(", ")));
        Ok(())
    })?;
    Ok(out)
}
