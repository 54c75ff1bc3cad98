//! `${params.x}` and `${matrix.axis}` references inside YAML values.
//!
//! A string that is exactly one reference takes the referenced value with its type
//! (`lr: ${params.lr}` stays a number); a reference inside a longer string is spliced in as
//! text. `$${` writes a literal `${`.

use serde_json::Value as Json;

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `${params.a.b}`: a path into params.
    Param(Vec<String>),
    /// `${matrix.axis}`
    Matrix(String),
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Param(p) => write!(f, "${{params.{}}}", p.join(".")),
            Ref::Matrix(a) => write!(f, "${{matrix.{a}}}"),
        }
    }
}

enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Ref(Ref),
}

fn parse_ref(body: &str) -> Result<Ref, String> {
    let body = body.trim();
    let (scope, rest) = body.split_once('.').unwrap_or((body, ""));
    let bad_path = rest.is_empty() || rest.split('.').any(str::is_empty);
    match scope {
        "params" if !bad_path => Ok(Ref::Param(rest.split('.').map(str::to_owned).collect())),
        "matrix" if !bad_path && !rest.contains('.') => Ok(Ref::Matrix(rest.to_owned())),
        "params" | "matrix" => Err(format!("malformed reference `${{{body}}}`")),
        _ => Err(format!(
            "unknown reference `${{{body}}}`: references start with `params.` or `matrix.`"
        )),
    }
}

fn pieces(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut text = String::new();
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix("${") {
            text.push_str(&rest[..i]);
            text.push_str("${");
            rest = stripped;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = body_start
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            text.push_str(&rest[..i]);
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            out.push(Piece::Ref(parse_ref(&body_start[..end])?));
            rest = &body_start[end + 1..];
        } else {
            text.push_str(&rest[..=i]);
            rest = after;
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text.into()));
    }
    Ok(out)
}

/// Every reference in a string.
pub fn refs_in(s: &str) -> Result<Vec<Ref>, String> {
    Ok(pieces(s)?
        .into_iter()
        .filter_map(|p| if let Piece::Ref(r) = p { Some(r) } else { None })
        .collect())
}

/// Every reference in a value, with the dotted sub-path of the string that holds it.
pub fn refs_in_value(v: &Json, path: &str, out: &mut Vec<(String, Result<Ref, String>)>) {
    match v {
        Json::String(s) => match refs_in(s) {
            Ok(rs) => out.extend(rs.into_iter().map(|r| (path.to_owned(), Ok(r)))),
            Err(e) => out.push((path.to_owned(), Err(e))),
        },
        Json::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| refs_in_value(x, &sub(path, &i.to_string()), out)),
        Json::Object(m) => m
            .iter()
            .for_each(|(k, x)| refs_in_value(x, &sub(path, k), out)),
        _ => {}
    }
}

fn sub(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_owned()
    } else {
        format!("{path}.{child}")
    }
}

/// The text a value contributes when spliced into a longer string.
pub fn as_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replace every reference in `v` using `lookup`.
pub fn interpolate(
    v: &Json,
    lookup: &mut dyn FnMut(&Ref) -> Result<Json, String>,
) -> Result<Json, String> {
    Ok(match v {
        Json::String(s) => {
            let mut ps = pieces(s)?;
            if ps.len() == 1 {
                if let Piece::Ref(r) = &ps[0] {
                    return lookup(r);
                }
            }
            let mut out = String::new();
            for p in ps.drain(..) {
                match p {
                    Piece::Text(t) => out.push_str(&t),
                    Piece::Ref(r) => out.push_str(&as_text(&lookup(&r)?)),
                }
            }
            Json::String(out)
        }
        Json::Array(a) => Json::Array(
            a.iter()
                .map(|x| interpolate(x, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), interpolate(x, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Follow a dotted path into a params map.
pub fn get_path<'a>(root: &'a serde_json::Map<String, Json>, path: &[String]) -> Option<&'a Json> {
    let (first, rest) = path.split_first()?;
    let mut cur = root.get(first)?;
    for seg in rest {
        cur = match cur {
            Json::Object(m) => m.get(seg)?,
            Json::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn look(r: &Ref) -> Result<Json, String> {
        match r {
            Ref::Param(p) if p == &["lr".to_owned()] => Ok(json!(0.5)),
            Ref::Matrix(a) if a == "lambda_c" => Ok(json!(10)),
            other => Err(format!("unknown {other}")),
        }
    }

    #[test]
    fn whole_reference_keeps_type_and_splices_in_text() {
        assert_eq!(
            interpolate(&json!("${params.lr}"), &mut look).unwrap(),
            json!(0.5)
        );
        assert_eq!(
            interpolate(&json!("lr=${params.lr},l=${matrix.lambda_c}"), &mut look).unwrap(),
            json!("lr=0.5,l=10")
        );
        assert_eq!(
            interpolate(&json!(["a", {"b": "${matrix.lambda_c}"}]), &mut look).unwrap(),
            json!(["a", {"b": 10}])
        );
    }

    #[test]
    fn escapes_and_errors() {
        assert_eq!(
            interpolate(&json!("cost $5 $${x}"), &mut look).unwrap(),
            json!("cost $5 ${x}")
        );
        assert!(refs_in("${params.lr").unwrap_err().contains("unterminated"));
        assert!(refs_in("${foo.bar}")
            .unwrap_err()
            .contains("unknown reference"));
        assert!(refs_in("${matrix.a.b}").unwrap_err().contains("malformed"));
        assert_eq!(
            refs_in("${params.a.b}").unwrap(),
            vec![Ref::Param(vec!["a".into(), "b".into()])]
        );
    }
}
