//! RecBole atomic files: `<name>.inter`, `<name>.item`, `<name>.user`, tab-separated with typed
//! headers (`user_id:token`, `rating:float`, `movie_title:token_seq`).

use std::path::{Path, PathBuf};

use crate::data::error::DataError;
use crate::data::lines::Lines;
use crate::data::raw::{ItemText, RawData, RawInteraction};

fn find_ext(dir: &Path, ext: &str) -> Result<Option<PathBuf>, DataError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::file(dir, format!("cannot list: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    if found.len() > 1 {
        return Err(DataError::file(
            dir,
            format!("more than one `.{ext}` file; keep one dataset per folder"),
        ));
    }
    Ok(found.pop())
}

/// Header fields as (name, type).
fn header(path: &Path, lines: &mut Lines) -> Result<Vec<(String, String)>, DataError> {
    let (n, h) = lines
        .next_line(false)?
        .ok_or_else(|| DataError::file(path, "empty file"))?;
    h.split('\t')
        .map(|f| {
            let (name, ty) = f.split_once(':').ok_or_else(|| {
                DataError::line(path, n, format!("header field `{f}` has no `:type`"))
            })?;
            Ok((name.trim().to_owned(), ty.trim().to_owned()))
        })
        .collect()
}

fn col(path: &Path, h: &[(String, String)], name: &str) -> Result<usize, DataError> {
    h.iter()
        .position(|(n, _)| n == name)
        .ok_or_else(|| DataError::line(path, 1, format!("missing column `{name}`")))
}

/// The text of a feature row: its token and token_seq fields other than the id.
fn text_of(h: &[(String, String)], f: &[&str], skip: usize) -> Vec<String> {
    h.iter()
        .zip(f)
        .enumerate()
        .filter(|(i, ((_, ty), v))| {
            *i != skip && (ty == "token" || ty == "token_seq") && !v.trim().is_empty()
        })
        .map(|(_, (_, v))| v.trim().to_owned())
        .collect()
}

pub fn read(dir: &Path) -> Result<RawData, DataError> {
    let inter = find_ext(dir, "inter")?
        .ok_or_else(|| DataError::file(dir, "no `.inter` file (RecBole atomic files)"))?;
    let mut data = RawData::default();
    let mut lines = Lines::open(&inter)?;
    let h = header(&inter, &mut lines)?;
    let (u, i) = (col(&inter, &h, "user_id")?, col(&inter, &h, "item_id")?);
    let r = h.iter().position(|(n, _)| n == "rating");
    let t = h.iter().position(|(n, _)| n == "timestamp");
    while let Some((n, line)) = lines.next_line(false)? {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != h.len() {
            return Err(DataError::line(
                &inter,
                n,
                format!("expected {} fields, found {}", h.len(), f.len()),
            ));
        }
        let num = |idx: Option<usize>, name: &str| -> Result<Option<f64>, DataError> {
            idx.map(|k| {
                f[k].trim().parse::<f64>().map_err(|_| {
                    DataError::line(&inter, n, format!("`{name}` is not a number: `{}`", f[k]))
                })
            })
            .transpose()
        };
        data.interactions.push(RawInteraction {
            user: f[u].to_owned(),
            item: f[i].to_owned(),
            rating: num(r, "rating")?,
            timestamp: num(t, "timestamp")?.map(|x| x as i64),
        });
    }
    data.files.push(inter);
    if let Some(item) = find_ext(dir, "item")? {
        let mut lines = Lines::open(&item)?;
        let h = header(&item, &mut lines)?;
        let id = col(&item, &h, "item_id")?;
        let title = h.iter().position(|(n, _)| n.contains("title"));
        while let Some((n, line)) = lines.next_line(false)? {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != h.len() {
                return Err(DataError::line(
                    &item,
                    n,
                    format!("expected {} fields, found {}", h.len(), f.len()),
                ));
            }
            let t = title.map(|k| f[k].trim().to_owned()).unwrap_or_default();
            let rest: Vec<String> = text_of(&h, &f, id)
                .into_iter()
                .filter(|x| *x != t)
                .collect();
            data.items.insert(
                f[id].to_owned(),
                ItemText {
                    title: t,
                    description: rest.join(", "),
                },
            );
        }
        data.files.push(item);
    }
    if let Some(user) = find_ext(dir, "user")? {
        let mut lines = Lines::open(&user)?;
        let h = header(&user, &mut lines)?;
        let id = col(&user, &h, "user_id")?;
        while let Some((n, line)) = lines.next_line(false)? {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != h.len() {
                return Err(DataError::line(
                    &user,
                    n,
                    format!("expected {} fields, found {}", h.len(), f.len()),
                ));
            }
            data.users
                .insert(f[id].to_owned(), text_of(&h, &f, id).join(", "));
        }
        data.files.push(user);
    }
    Ok(data)
}
