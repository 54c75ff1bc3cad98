//! One reader per input format; each streams its files and names the file and line of a bad row.

pub mod amazon;
pub mod movielens;
pub mod p5;
pub mod pylit;
pub mod recbole;
pub mod table;

use std::path::Path;

use crate::data::error::DataError;
use crate::data::lines;
use crate::data::raw::RawData;

/// The input formats `ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// ratings.csv + movies.csv + tags.csv, or ml-100k's u.data + u.item.
    Movielens,
    /// RecBole atomic files (.inter, .item, .user).
    Recbole,
    /// Amazon 2014 or 2018 5-core reviews with their metadata.
    Amazon,
    /// user_sequence.txt + items.tsv.
    P5,
    /// A generic CSV, TSV or Parquet table of (user, item[, rating, timestamp]).
    Table,
}

/// Read every record of a delimited file with a header, checking that `required` columns are
/// there; `f` gets the line number and the fields in the order of `required`.
pub fn csv_records(
    path: &Path,
    delimiter: u8,
    required: &[&str],
    mut f: impl FnMut(u64, &[&str]) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(lines::open(path)?);
    let headers = rdr
        .headers()
        .map_err(|e| DataError::line(path, 1, describe(&e, "bad header")))?
        .clone();
    let idx: Vec<usize> = required
        .iter()
        .map(|name| {
            headers
                .iter()
                .position(|h| h.trim() == *name)
                .ok_or_else(|| {
                    DataError::line(
                        path,
                        1,
                        format!(
                            "missing column `{name}` (the header has: {})",
                            headers.iter().collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line() + 1;
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                return Err(DataError::line(path, line, describe(&e, "cannot parse")));
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(line);
        if rec.len() == 1 && rec[0].trim().is_empty() {
            continue;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(idx.len());
        for (k, &i) in idx.iter().enumerate() {
            fields.push(rec.get(i).ok_or_else(|| {
                DataError::line(
                    path,
                    line,
                    format!("missing field `{}` (truncated line?)", required[k]),
                )
            })?);
        }
        f(line, &fields)?;
    }
}

/// A csv error: I/O failures (a corrupt gzip stream) are named as such.
fn describe(e: &csv::Error, what: &str) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => format!("cannot read (corrupt or truncated file?): {io}"),
        _ => format!("{what}: {e}"),
    }
}

/// Read a dataset. `path` is a folder, or for `table` a file.
pub fn read(
    format: Format,
    path: &Path,
    table: &table::TableOptions,
) -> Result<RawData, DataError> {
    match format {
        Format::Movielens => movielens::read(path),
        Format::Recbole => recbole::read(path),
        Format::Amazon => amazon::read(path),
        Format::P5 => p5::read(path),
        Format::Table => table::read(path, table),
    }
}
