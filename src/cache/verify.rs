//! `verify`: rehash the store and report what is damaged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use crate::cache::hash;
use crate::cache::record::Manifest;
use crate::cache::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A file's bytes differ from the manifest.
    Corrupt {
        object: String,
        file: String,
    },
    /// A file is shorter than the manifest says.
    Truncated {
        object: String,
        file: String,
        size: u64,
        expected: u64,
    },
    MissingFile {
        object: String,
        file: String,
    },
    ExtraFile {
        object: String,
        file: String,
    },
    /// The manifest is missing, unreadable, or names another hash.
    BadManifest {
        object: String,
        why: String,
    },
    /// No record points to the object.
    Orphaned {
        object: String,
    },
    /// A record names an object that is not there.
    MissingObject {
        key: String,
        object: String,
    },
    UnreadableRecord {
        key: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Corrupt { object, file } => write!(
                f,
                "corrupt    {object}  {file}: content does not match its hash"
            ),
            Problem::Truncated {
                object,
                file,
                size,
                expected,
            } => {
                write!(
                    f,
                    "truncated  {object}  {file}: {size} bytes, expected {expected}"
                )
            }
            Problem::MissingFile { object, file } => {
                write!(f, "missing    {object}  {file}: file is gone")
            }
            Problem::ExtraFile { object, file } => {
                write!(f, "corrupt    {object}  {file}: file not in the manifest")
            }
            Problem::BadManifest { object, why } => {
                write!(f, "corrupt    {object}  manifest: {why}")
            }
            Problem::Orphaned { object } => write!(
                f,
                "orphaned   {object}  no record points to it (`gc` removes it)"
            ),
            Problem::MissingObject { key, object } => {
                write!(f, "missing    {object}  the output of record {key} is gone")
            }
            Problem::UnreadableRecord { key } => write!(f, "corrupt    record {key}: unreadable"),
        }
    }
}

/// Check one object's files against its manifest.
pub fn check_object(store: &Store, object: &str) -> Vec<Problem> {
    let dir = store.object_dir(object);
    let o = object.to_owned();
    let manifest: Manifest = match fs::read(dir.join("manifest.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(why) => return vec![Problem::BadManifest { object: o, why }],
    };
    if manifest.hash != object || hash::tree_hash(&manifest.files) != object {
        return vec![Problem::BadManifest {
            object: o,
            why: "its file list does not hash to the object's name".into(),
        }];
    }
    let mut out = Vec::new();
    let on_disk: BTreeMap<String, (std::path::PathBuf, fs::Metadata)> =
        match hash::walk(&dir.join("data")) {
            Ok(v) => v.into_iter().map(|(r, p, m)| (r, (p, m))).collect(),
            Err(e) => {
                return vec![Problem::BadManifest {
                    object: o,
                    why: e.to_string(),
                }]
            }
        };
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for f in &manifest.files {
        match on_disk.get(&f.path) {
            None => out.push(Problem::MissingFile {
                object: o.clone(),
                file: f.path.clone(),
            }),
            Some((_, m)) if m.len() < f.size => out.push(Problem::Truncated {
                object: o.clone(),
                file: f.path.clone(),
                size: m.len(),
                expected: f.size,
            }),
            Some((p, _)) => match hash::hash_file(p) {
                Ok(h) if h.to_hex().as_str() == f.hash => {}
                _ => out.push(Problem::Corrupt {
                    object: o.clone(),
                    file: f.path.clone(),
                }),
            },
        }
    }
    for rel in on_disk.keys().filter(|r| !listed.contains(r.as_str())) {
        out.push(Problem::ExtraFile {
            object: o.clone(),
            file: rel.clone(),
        });
    }
    out
}

/// Rehash every object; report damaged, orphaned and missing ones.
pub fn verify(store: &Store) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut referenced = BTreeSet::new();
    for (key, rec) in store.all_records() {
        match rec {
            Some(r) => {
                if !store.object_dir(&r.output).exists() {
                    problems.push(Problem::MissingObject {
                        key,
                        object: r.output.clone(),
                    });
                }
                referenced.insert(r.output);
            }
            None => problems.push(Problem::UnreadableRecord { key }),
        }
    }
    for object in store.all_objects() {
        problems.extend(check_object(store, &object));
        if !referenced.contains(&object) {
            problems.push(Problem::Orphaned { object });
        }
    }
    problems
}
