//! The cache key of a stage instance: everything that determines its outputs, serialized
//! canonically (sorted maps, no whitespace) and hashed with blake3.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Bump when the key's serialization changes; every entry is then recomputed.
pub const KEY_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    pub format: u32,
    pub kind: String,
    /// The stage kind's implementation version.
    pub kind_version: u32,
    /// Fully resolved params, without `seed`.
    pub params: Map<String, Json>,
    /// Kind-specific resolved fields (`cmd`, `shell` of a `command` stage).
    pub spec: Map<String, Json>,
    /// The pipeline's shared params the stage references (`${params.x}`), resolved.
    pub shared: Map<String, Json>,
    /// The instance's matrix point.
    pub matrix: BTreeMap<String, Json>,
    pub seed: Json,
    /// Upstream stage name -> output hash (or, gathered, point label -> output hash).
    pub inputs: BTreeMap<String, InputKey>,
    /// `deps` path as written -> content hash.
    pub deps: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputKey {
    One(String),
    Gathered(BTreeMap<String, String>),
}

impl CacheKey {
    /// Canonical bytes: JSON with object keys sorted at every level, no whitespace.
    pub fn canonical(&self) -> String {
        String::from_utf8(self.canonical_bytes()).expect("JSON text is UTF-8")
    }

    pub fn hash(&self) -> String {
        blake3::hash(&self.canonical_bytes()).to_hex().to_string()
    }

    /// The key as `canonical_json(&serde_json::to_value(self))` writes it (the golden test
    /// pins that), written straight from the fields: a key is hashed once per instance per
    /// run, 10^5 times for a large sweep, and going through a `Value` copied every string.
    /// The fields go in sorted order, as a `Value`'s map would hold them.
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"deps\":");
        plain(&mut out, &self.deps);
        out.extend_from_slice(b",\"format\":");
        plain(&mut out, &self.format);
        out.extend_from_slice(b",\"inputs\":");
        plain(&mut out, &self.inputs);
        out.extend_from_slice(b",\"kind\":");
        plain(&mut out, &self.kind);
        out.extend_from_slice(b",\"kind_version\":");
        plain(&mut out, &self.kind_version);
        out.extend_from_slice(b",\"matrix\":");
        write_sorted(self.matrix.iter(), &mut out);
        out.extend_from_slice(b",\"params\":");
        write_sorted(self.params.iter(), &mut out);
        out.extend_from_slice(b",\"seed\":");
        write_canonical_bytes(&self.seed, &mut out);
        out.extend_from_slice(b",\"shared\":");
        write_sorted(self.shared.iter(), &mut out);
        out.extend_from_slice(b",\"spec\":");
        write_sorted(self.spec.iter(), &mut out);
        out.push(b'}');
        out
    }
}

/// A field whose plain serde_json form is already canonical: a number, a string, a sorted map
/// of strings.
fn plain<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("writing to memory");
}

/// Sorted-key JSON as a string (see `write_canonical`).
pub fn canonical_json(v: &Json) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

/// Sorted-key JSON, independent of how serde_json's map happens to be ordered.
pub fn write_canonical(v: &Json, out: &mut String) {
    let mut bytes = std::mem::take(out).into_bytes();
    write_canonical_bytes(v, &mut bytes);
    *out = String::from_utf8(bytes).expect("JSON text is UTF-8");
}

/// [`write_canonical`] into bytes: objects with their keys sorted, everything else as
/// serde_json writes it, all into the one buffer (a key is hashed once per instance per run,
/// so this runs 10^5 times for a large sweep).
fn write_canonical_bytes(v: &Json, out: &mut Vec<u8>) {
    match v {
        Json::Object(m) => write_sorted(m.iter(), out),
        Json::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_bytes(x, out);
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other).expect("writing to memory"),
    }
}

/// An object from its entries, keys sorted.
pub fn write_sorted<'a>(entries: impl Iterator<Item = (&'a String, &'a Json)>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Json)> = entries.collect();
    // serde_json's map and a BTreeMap are sorted already, unless `preserve_order` is on
    if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k).expect("writing to memory");
        out.push(b':');
        write_canonical_bytes(v, out);
    }
    out.push(b'}');
}

/// Human-readable reasons why `new` differs from `old` (empty when equal).
pub fn explain(old: &CacheKey, new: &CacheKey) -> Vec<String> {
    let mut out = Vec::new();
    if old.format != new.format {
        out.push(format!(
            "cache key format changed {} -> {}",
            old.format, new.format
        ));
    }
    if old.kind != new.kind {
        out.push(format!("kind changed `{}` -> `{}`", old.kind, new.kind));
    } else if old.kind_version != new.kind_version {
        out.push(format!(
            "stage version changed {} -> {}",
            old.kind_version, new.kind_version
        ));
    }
    diff_maps(
        "param",
        old.shared.iter().collect(),
        new.shared.iter().collect(),
        &mut out,
    );
    let shared_changed = old.shared != new.shared;
    diff_maps(
        "param",
        old.params.iter().collect(),
        new.params.iter().collect(),
        &mut out,
    );
    // A changed shared param also changes the settings it is spliced into: name it once.
    if !shared_changed {
        diff_maps(
            "setting",
            old.spec.iter().collect(),
            new.spec.iter().collect(),
            &mut out,
        );
    }
    diff_maps(
        "matrix value",
        old.matrix.iter().collect(),
        new.matrix.iter().collect(),
        &mut out,
    );
    if old.seed != new.seed {
        out.push(format!("seed changed {} -> {}", old.seed, new.seed));
    }
    for (k, v) in &new.inputs {
        match old.inputs.get(k) {
            None => out.push(format!("input `{k}` added")),
            Some(o) if o != v => out.push(format!("input `{k}` changed")),
            _ => {}
        }
    }
    out.extend(
        old.inputs
            .keys()
            .filter(|k| !new.inputs.contains_key(*k))
            .map(|k| format!("input `{k}` removed")),
    );
    for (k, v) in &new.deps {
        match old.deps.get(k) {
            None => out.push(format!("dep `{k}` added")),
            Some(o) if o != v => out.push(format!("dep `{k}` changed")),
            _ => {}
        }
    }
    out.extend(
        old.deps
            .keys()
            .filter(|k| !new.deps.contains_key(*k))
            .map(|k| format!("dep `{k}` removed")),
    );
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|r| seen.insert(r.clone()));
    out
}

fn diff_maps(
    what: &str,
    old: BTreeMap<&String, &Json>,
    new: BTreeMap<&String, &Json>,
    out: &mut Vec<String>,
) {
    for (k, v) in &new {
        match old.get(k) {
            None => out.push(format!("{what} `{k}` added ({})", short(v))),
            Some(o) if o != v => {
                out.push(format!("{what} `{k}` changed {} -> {}", short(o), short(v)))
            }
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(format!("{what} `{k}` removed"));
    }
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CacheKey {
        CacheKey {
            format: KEY_FORMAT,
            kind: "command".into(),
            kind_version: 1,
            params: json!({"lambda_c": 10, "b": {"z": 1, "a": [1, 2.5]}})
                .as_object()
                .unwrap()
                .clone(),
            spec: json!({"cmd": ["python3", "x.py"], "shell": false})
                .as_object()
                .unwrap()
                .clone(),
            shared: json!({"size": 3}).as_object().unwrap().clone(),
            matrix: BTreeMap::from([("lambda_c".to_owned(), json!(10))]),
            seed: json!(0),
            inputs: BTreeMap::from([
                ("tokenize".to_owned(), InputKey::One("ab".repeat(32))),
                (
                    "evaluate".to_owned(),
                    InputKey::Gathered(BTreeMap::from([(
                        "lambda_c=1".to_owned(),
                        "cd".repeat(32),
                    )])),
                ),
            ]),
            deps: BTreeMap::from([("prep.py".to_owned(), "ef".repeat(32))]),
        }
    }

    /// The key format is pinned: if this fails, the serialization changed, and that must come
    /// with a KEY_FORMAT bump and new golden values. The hash was checked with `b3sum`.
    #[test]
    fn golden_key_format() {
        let k = sample();
        assert_eq!(k.canonical(), GOLDEN_CANONICAL);
        assert_eq!(k.hash(), GOLDEN_HASH);
    }

    #[test]
    fn key_roundtrips_through_json() {
        let k = sample();
        let back: CacheKey = serde_json::from_str(&k.canonical()).unwrap();
        assert_eq!(back, k);
    }

    #[test]
    fn explains_changes() {
        let old = sample();
        let mut new = sample();
        new.params.insert("lambda_c".into(), json!(100));
        new.deps.insert("prep.py".into(), "00".repeat(32));
        new.inputs
            .insert("tokenize".into(), InputKey::One("11".repeat(32)));
        new.kind_version = 2;
        assert_eq!(
            explain(&old, &new),
            vec![
                "stage version changed 1 -> 2",
                "param `lambda_c` changed 10 -> 100",
                "input `tokenize` changed",
                "dep `prep.py` changed"
            ]
        );
        assert!(explain(&old, &old).is_empty());
    }

    const GOLDEN_CANONICAL: &str = concat!(
        r#"{"deps":{"prep.py":"efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef"},"format":1,"#,
        r#""inputs":{"evaluate":{"lambda_c=1":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"},"#,
        r#""tokenize":"abababababababababababababababababababababababababababababababab"},"#,
        r#""kind":"command","kind_version":1,"matrix":{"lambda_c":10},"params":{"b":{"a":[1,2.5],"z":1},"lambda_c":10},"#,
        r#""seed":0,"shared":{"size":3},"spec":{"cmd":["python3","x.py"],"shell":false}}"#
    );
    const GOLDEN_HASH: &str = "653cf4640393b25b7a23f497c5b2453de4229eca860f01a7d3f4c421562c4ecc";
}
