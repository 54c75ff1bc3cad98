//! Sweep axes: the cartesian product of the axes, minus `exclude`, plus `include`.

use std::collections::HashSet;

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::diag::Diagnostic;
use crate::pipeline::model::Point;
use crate::pipeline::source::Source;

/// The most points a matrix may have before `exclude` (a guard against a typo that would
/// expand a sweep past what any cluster runs, or past memory).
pub const MAX_POINTS: usize = 100_000;

/// Axes in declaration order and every point of the sweep.
pub fn expand(
    matrix: &IndexMap<String, Json>,
    src: &Source,
) -> Result<(Vec<String>, Vec<Point>), Box<Diagnostic>> {
    let mut axes: Vec<(String, Vec<Json>)> = Vec::new();
    for (name, v) in matrix {
        if name == "include" || name == "exclude" {
            continue;
        }
        let path = format!("matrix.{name}");
        if !valid_axis_name(name) {
            return Err(Box::new(
                src.at_key(&path, format!("invalid axis name `{name}`"))
                    .with_hint("axis names use letters, digits, `_` and `-`"),
            ));
        }
        match v {
            Json::Array(vals) if !vals.is_empty() => axes.push((name.clone(), dedup(vals))),
            Json::Array(_) => {
                return Err(Box::new(
                    src.at_value(&path, format!("axis `{name}` has no values")),
                ))
            }
            _ => {
                return Err(Box::new(
                    src.at_value(&path, format!("axis `{name}` must be a list of values"))
                        .with_hint(format!("write `{name}: [a, b, c]`")),
                ))
            }
        }
    }
    let names: Vec<String> = axes.iter().map(|(n, _)| n.clone()).collect();
    let size = axes
        .iter()
        .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
        .filter(|&n| n <= MAX_POINTS);
    if size.is_none() {
        return Err(Box::new(
            src.at_key(
                "matrix",
                format!("the matrix has more than {MAX_POINTS} points (the product of its axes)"),
            )
            .with_hint("split the sweep, or use `include` for the points you need"),
        ));
    }
    let mut points: Vec<Point> = vec![Point::new()];
    for (name, vals) in &axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                vals.iter().map(move |v| {
                    let mut q = p.clone();
                    q.insert(name.clone(), v.clone());
                    q
                })
            })
            .collect();
    }
    if let Some(ex) = matrix.get("exclude") {
        let filters = point_list(ex, "matrix.exclude", &names, src, false)?;
        points.retain(|p| {
            !filters
                .iter()
                .any(|f| f.iter().all(|(k, v)| p.get(k) == Some(v)))
        });
    }
    if let Some(inc) = matrix.get("include") {
        let mut have: HashSet<String> = points.iter().map(canonical).collect();
        for p in point_list(inc, "matrix.include", &names, src, true)? {
            if have.insert(canonical(&p)) {
                points.push(p);
            }
        }
    }
    if points.is_empty() {
        return Err(Box::new(
            src.at_key("matrix", "the matrix has no points left after `exclude`"),
        ));
    }
    Ok((names, points))
}

fn valid_axis_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The values in order, each once (by a hash set: an axis may hold 10^5 values).
fn dedup(vals: &[Json]) -> Vec<Json> {
    let mut seen: HashSet<String> = HashSet::new();
    vals.iter()
        .filter(|v| seen.insert(canonical(*v)))
        .cloned()
        .collect()
}

/// A value's JSON text, as equality's stand-in: equal values print the same (a point is a
/// sorted map), and values that differ print differently (`1`, `1.0` and `"1"` too).
fn canonical<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data")
}

/// A list of partial (exclude) or full (include) points.
fn point_list(
    v: &Json,
    path: &str,
    axes: &[String],
    src: &Source,
    full: bool,
) -> Result<Vec<Point>, Box<Diagnostic>> {
    let Json::Array(items) = v else {
        return Err(Box::new(
            src.at_value(path, format!("`{path}` must be a list of points"))
                .with_hint("write `- {axis: value}` entries"),
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}.{i}");
        let Json::Object(m) = item else {
            return Err(Box::new(
                src.at_value(&ipath, "a matrix point must be a map of axis to value"),
            ));
        };
        let mut p = Point::new();
        for (k, val) in m {
            if !axes.contains(k) {
                let names: Vec<&str> = axes.iter().map(String::as_str).collect();
                return Err(Box::new(
                    src.at_key(&format!("{ipath}.{k}"), format!("unknown axis `{k}`"))
                        .with_hint(crate::diag::suggest(k, &names, "axes")),
                ));
            }
            p.insert(k.clone(), val.clone());
        }
        if full {
            if let Some(missing) = axes.iter().find(|a| !p.contains_key(*a)) {
                return Err(Box::new(
                    src.at_value(&ipath, format!("included point lacks axis `{missing}`"))
                        .with_hint("an included point names a value for every axis"),
                ));
            }
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Json) -> IndexMap<String, Json> {
        serde_json::from_value::<serde_json::Map<String, Json>>(v)
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn product_exclude_include() {
        let src = Source::new("t.yaml".into(), String::new());
        let mx = m(
            json!({"a": [1, 2], "b": ["x", "y"], "exclude": [{"a": 1, "b": "y"}], "include": [{"a": 3, "b": "x"}]}),
        );
        let (axes, pts) = expand(&mx, &src).unwrap();
        assert_eq!(axes, vec!["a", "b"]);
        let labels: Vec<String> = pts
            .iter()
            .map(|p| crate::pipeline::model::point_label(p, &axes))
            .collect();
        assert_eq!(labels, vec!["a=1,b=x", "a=2,b=x", "a=2,b=y", "a=3,b=x"]);
    }

    #[test]
    fn include_must_be_full() {
        let src = Source::new("t.yaml".into(), String::new());
        let mx = m(json!({"a": [1], "b": [2], "include": [{"a": 3}]}));
        assert!(expand(&mx, &src)
            .unwrap_err()
            .message
            .contains("lacks axis `b`"));
    }
}
