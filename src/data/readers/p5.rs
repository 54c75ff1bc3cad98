//! P5-style data (as in ../shared/data/amazon2014): `user_sequence.txt` (a user id, then the
//! user's items oldest first) and `items.tsv` (`p5_item_id asin title attributes|...`). The
//! position in a user's sequence is the timestamp. Text for an item that no user has is an
//! error.

use std::path::Path;

use crate::data::error::DataError;
use crate::data::lines::{find, Lines};
use crate::data::raw::{ItemText, RawData, RawInteraction};

pub fn read(dir: &Path) -> Result<RawData, DataError> {
    let seq = find(dir, &["user_sequence.txt"])
        .ok_or_else(|| DataError::file(dir, "no `user_sequence.txt` (P5 format)"))?;
    let mut data = RawData::default();
    let mut lines = Lines::open(&seq)?;
    while let Some((n, line)) = lines.next_line(false)? {
        let mut f = line.split_whitespace();
        let Some(user) = f.next() else { continue };
        let items: Vec<&str> = f.collect();
        if items.is_empty() {
            return Err(DataError::line(
                &seq,
                n,
                format!("user `{user}` has no items"),
            ));
        }
        for (pos, item) in items.into_iter().enumerate() {
            data.interactions.push(RawInteraction {
                user: user.to_owned(),
                item: item.to_owned(),
                rating: None,
                timestamp: Some(pos as i64),
            });
        }
    }
    data.files.push(seq);
    if let Some(tsv) = find(dir, &["items.tsv"]) {
        let known: std::collections::HashSet<&str> =
            data.interactions.iter().map(|r| r.item.as_str()).collect();
        let mut lines = Lines::open(&tsv)?;
        let (_, head) = lines
            .next_line(false)?
            .ok_or_else(|| DataError::file(&tsv, "empty file"))?;
        let cols: Vec<&str> = head.split('\t').collect();
        let idx = |name: &str| cols.iter().position(|c| *c == name);
        let asin = idx("asin").ok_or_else(|| DataError::line(&tsv, 1, "missing column `asin`"))?;
        let title =
            idx("title").ok_or_else(|| DataError::line(&tsv, 1, "missing column `title`"))?;
        let extra: Vec<usize> = (0..cols.len())
            .filter(|&i| i != asin && i != title && cols[i] != "p5_item_id")
            .collect();
        let mut items = std::collections::HashMap::new();
        while let Some((n, line)) = lines.next_line(false)? {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != cols.len() {
                return Err(DataError::line(
                    &tsv,
                    n,
                    format!(
                        "expected {} tab-separated fields, found {}",
                        cols.len(),
                        f.len()
                    ),
                ));
            }
            if !known.contains(f[asin]) {
                return Err(DataError::line(
                    &tsv,
                    n,
                    format!(
                        "text for unknown item `{}`: no user in user_sequence.txt has it",
                        f[asin]
                    ),
                ));
            }
            let desc: Vec<String> = extra
                .iter()
                .map(|&i| {
                    f[i].split('|')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
                .collect();
            items.insert(
                f[asin].to_owned(),
                ItemText {
                    title: f[title].trim().to_owned(),
                    description: desc.join(", "),
                },
            );
        }
        data.items = items;
        data.files.push(tsv);
    }
    Ok(data)
}
