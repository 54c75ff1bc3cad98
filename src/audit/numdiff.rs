//! How far apart two tables of numbers are: the largest absolute difference between numeric
//! cells of two CSV/TSV files or numbers of two JSON documents, with where it is.

use std::path::Path;

use serde_json::Value as Json;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct NumDiff {
    /// The largest |a - b| over numbers present in both, and where.
    pub max_abs: Option<(f64, String)>,
    /// Numbers that differ.
    pub numbers: usize,
    /// Other differences: text cells, missing or extra rows, keys or elements.
    pub other: usize,
}

impl NumDiff {
    fn number(&mut self, a: f64, b: f64, at: impl FnOnce() -> String) {
        if a.to_bits() == b.to_bits() || a == b {
            return;
        }
        self.numbers += 1;
        let d = (a - b).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        if self.max_abs.as_ref().is_none_or(|(m, _)| d > *m) {
            self.max_abs = Some((d, at()));
        }
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.max_abs {
            Some((d, at)) => parts.push(format!(
                "{} number(s) differ, largest absolute difference {d:e} at {at}",
                self.numbers
            )),
            None => parts.push("no number differs".to_owned()),
        }
        if self.other > 0 {
            parts.push(format!("{} other difference(s)", self.other));
        }
        parts.join("; ")
    }
}

/// Compare two files as tables of numbers, by extension (`.csv`, `.tsv`, `.json`); None for
/// other files or unreadable ones.
pub fn diff_files(a: &Path, b: &Path) -> Option<NumDiff> {
    let ext = a.extension()?.to_str()?.to_ascii_lowercase();
    let (ta, tb) = (std::fs::read(a).ok()?, std::fs::read(b).ok()?);
    match ext.as_str() {
        "csv" => Some(diff_csv(&ta, &tb, b',')),
        "tsv" => Some(diff_csv(&ta, &tb, b'\t')),
        "json" => {
            let (ja, jb) = (
                serde_json::from_slice::<Json>(&ta).ok()?,
                serde_json::from_slice::<Json>(&tb).ok()?,
            );
            let mut d = NumDiff::default();
            diff_json(&ja, &jb, "", &mut d);
            Some(d)
        }
        _ => None,
    }
}

fn rows(bytes: &[u8], delim: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim)
        .from_reader(bytes)
        .records()
        .map(|r| {
            r.map(|r| r.iter().map(str::to_owned).collect())
                .unwrap_or_default()
        })
        .collect()
}

pub fn diff_csv(a: &[u8], b: &[u8], delim: u8) -> NumDiff {
    let (ra, rb) = (rows(a, delim), rows(b, delim));
    // A first row with a cell that is not a number is a header: name columns by it.
    let header: Option<&Vec<String>> = ra
        .first()
        .filter(|r| r.iter().any(|c| c.trim().parse::<f64>().is_err()));
    let mut d = NumDiff::default();
    for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
        for j in 0..x.len().max(y.len()) {
            let (cx, cy) = (x.get(j), y.get(j));
            if cx == cy {
                continue;
            }
            let num = |c: Option<&String>| c.and_then(|c| c.trim().parse::<f64>().ok());
            match (num(cx), num(cy)) {
                (Some(p), Some(q)) => d.number(p, q, || {
                    let col = header
                        .and_then(|h| h.get(j))
                        .map(|n| format!("column `{n}`"))
                        .unwrap_or_else(|| format!("column {}", j + 1));
                    format!("line {}, {col}", i + 1)
                }),
                _ => d.other += 1,
            }
        }
    }
    d.other += ra.len().abs_diff(rb.len());
    d
}

pub fn diff_json(a: &Json, b: &Json, at: &str, d: &mut NumDiff) {
    let here = || {
        if at.is_empty() {
            "the top level".to_owned()
        } else {
            format!("`{at}`")
        }
    };
    let join = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}.{k}")
        }
    };
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => d.number(p, q, here),
            _ => d.other += usize::from(x != y),
        },
        (Json::Object(x), Json::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff_json(v, w, &join(k), d),
                    None => d.other += 1,
                }
            }
            d.other += y.keys().filter(|k| !x.contains_key(*k)).count();
        }
        (Json::Array(x), Json::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff_json(v, w, &join(&i.to_string()), d);
            }
            d.other += x.len().abs_diff(y.len());
        }
        (x, y) => d.other += usize::from(x != y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_largest_difference_names_line_and_column() {
        let a = b"user,score,name\n1,0.5,a\n2,0.25,b\n";
        let b = b"user,score,name\n1,0.5,a\n2,0.75,c\n";
        let d = diff_csv(a, b, b',');
        assert_eq!(d.max_abs, Some((0.5, "line 3, column `score`".to_owned())));
        assert_eq!((d.numbers, d.other), (1, 1));
    }

    #[test]
    fn csv_extra_rows_count_as_other_differences() {
        let d = diff_csv(b"1,2\n", b"1,2\n3,4\n", b',');
        assert_eq!(d.max_abs, None);
        assert_eq!(d.other, 1);
    }

    #[test]
    fn json_walks_nested_numbers() {
        let mut d = NumDiff::default();
        diff_json(
            &json!({"a": {"b": [1.0, 2.0]}, "c": 3}),
            &json!({"a": {"b": [1.0, 2.125]}, "c": 2.5, "e": 1}),
            "",
            &mut d,
        );
        assert_eq!(d.max_abs, Some((0.5, "`c`".to_owned())));
        assert_eq!((d.numbers, d.other), (2, 1));
        assert!(d
            .describe()
            .contains("largest absolute difference 5e-1 at `c`"));
    }

    #[test]
    fn equal_documents_have_no_difference() {
        let mut d = NumDiff::default();
        diff_json(&json!({"a": [1, 2]}), &json!({"a": [1, 2]}), "", &mut d);
        assert_eq!(d, NumDiff::default());
    }
}
