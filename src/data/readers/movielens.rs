//! MovieLens: `ratings.csv`, `movies.csv`, `tags.csv` (ml-latest-small, ml-latest, ml-25m) or
//! ml-100k's tab-separated `u.data` with `u.item` (latin-1, `|`-separated, genre flags).

use std::path::Path;

use crate::data::error::DataError;
use crate::data::lines::{find, Lines};
use crate::data::raw::{ItemText, RawData, RawInteraction};
use crate::data::readers::csv_records;

const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

pub fn read(dir: &Path) -> Result<RawData, DataError> {
    if let Some(ratings) = find(dir, &["ratings.csv"]) {
        return read_latest(dir, &ratings);
    }
    if let Some(udata) = find(dir, &["u.data"]) {
        return read_100k(dir, &udata);
    }
    Err(DataError::file(dir, "no MovieLens ratings here: expected `ratings.csv` (ml-latest, ml-25m) or `u.data` (ml-100k)"))
}

fn parse<T: std::str::FromStr>(
    file: &Path,
    line: u64,
    field: &str,
    value: &str,
) -> Result<T, DataError> {
    value
        .trim()
        .parse()
        .map_err(|_| DataError::line(file, line, format!("`{field}` is not a number: `{value}`")))
}

fn read_latest(dir: &Path, ratings: &Path) -> Result<RawData, DataError> {
    let mut data = RawData::default();
    csv_records(
        ratings,
        b',',
        &["userId", "movieId", "rating", "timestamp"],
        |line, f| {
            data.interactions.push(RawInteraction {
                user: f[0].to_owned(),
                item: f[1].to_owned(),
                rating: Some(parse(ratings, line, "rating", f[2])?),
                timestamp: Some(parse(ratings, line, "timestamp", f[3])?),
            });
            Ok(())
        },
    )?;
    data.files.push(ratings.to_owned());
    if let Some(movies) = find(dir, &["movies.csv"]) {
        csv_records(&movies, b',', &["movieId", "title", "genres"], |_, f| {
            let genres = if f[2] == "(no genres listed)" {
                String::new()
            } else {
                f[2].split('|').collect::<Vec<_>>().join(", ")
            };
            data.items.insert(
                f[0].to_owned(),
                ItemText {
                    title: f[1].to_owned(),
                    description: genres,
                },
            );
            Ok(())
        })?;
        data.files.push(movies);
    }
    if let Some(tags) = find(dir, &["tags.csv"]) {
        let mut per_user: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        csv_records(&tags, b',', &["userId", "movieId", "tag"], |_, f| {
            let v = per_user.entry(f[0].to_owned()).or_default();
            let tag = f[2].trim().to_owned();
            if !tag.is_empty() && !v.contains(&tag) {
                v.push(tag);
            }
            Ok(())
        })?;
        data.users = per_user
            .into_iter()
            .map(|(u, t)| (u, t.join(", ")))
            .collect();
        data.files.push(tags);
    }
    Ok(data)
}

fn read_100k(dir: &Path, udata: &Path) -> Result<RawData, DataError> {
    let mut data = RawData::default();
    let mut lines = Lines::open(udata)?;
    while let Some((n, line)) = lines.next_line(false)? {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            return Err(DataError::line(
                udata,
                n,
                format!(
                    "expected 4 tab-separated fields (user, item, rating, timestamp), found {}",
                    f.len()
                ),
            ));
        }
        data.interactions.push(RawInteraction {
            user: f[0].trim().to_owned(),
            item: f[1].trim().to_owned(),
            rating: Some(parse(udata, n, "rating", f[2])?),
            timestamp: Some(parse(udata, n, "timestamp", f[3])?),
        });
    }
    data.files.push(udata.to_owned());
    if let Some(uitem) = find(dir, &["u.item"]) {
        let mut lines = Lines::open(&uitem)?;
        while let Some((n, line)) = lines.next_line(true)? {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('|').collect();
            if f.len() < 5 + ML100K_GENRES.len() {
                return Err(DataError::line(
                    &uitem,
                    n,
                    format!(
                        "expected {} `|`-separated fields, found {}",
                        5 + ML100K_GENRES.len(),
                        f.len()
                    ),
                ));
            }
            let genres: Vec<&str> = f[5..5 + ML100K_GENRES.len()]
                .iter()
                .zip(ML100K_GENRES)
                .filter(|(flag, _)| flag.trim() == "1")
                .map(|(_, g)| g)
                .collect();
            data.items.insert(
                f[0].to_owned(),
                ItemText {
                    title: f[1].to_owned(),
                    description: genres.join(", "),
                },
            );
        }
        data.files.push(uitem);
    }
    Ok(data)
}
