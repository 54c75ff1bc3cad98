//! `plan`: each instance's key, hit or miss, and why it misses, against the last record of the
//! same stage and matrix point.

use std::sync::Mutex;

use rayon::prelude::*;

use crate::cache::key::{explain, CacheKey, InputKey};
use crate::cache::statcache::StatCache;
use crate::cache::store::Store;
use crate::exec::keys::{instance_key, UNKNOWN};
use crate::exec::ExecError;
use crate::pipeline::Pipeline;

#[derive(Debug, Clone)]
pub struct PlanRow {
    pub label: String,
    /// None when an input must be recomputed first.
    pub key: Option<String>,
    pub hit: bool,
    pub reasons: Vec<String>,
}

pub fn plan(p: &Pipeline, store: &Store) -> Result<Vec<PlanRow>, ExecError> {
    let stat = Mutex::new(StatCache::load(&store.root.join("statcache.json")));
    let n = p.instances.len();
    let mut outputs: Vec<Option<String>> = vec![None; n];
    // Keys and cache lookups a depth at a time (an instance's inputs are all shallower), each
    // depth on all cores: the lookups are file reads, independent of each other.
    let mut depth = vec![0usize; n];
    for (i, inst) in p.instances.iter().enumerate() {
        depth[i] = inst
            .inputs
            .iter()
            .flat_map(|x| x.instances.iter())
            .map(|&j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (i, &d) in depth.iter().enumerate() {
        if waves.len() <= d {
            waves.resize_with(d + 1, Vec::new);
        }
        waves[d].push(i);
    }
    // A hit keeps its key hash only; a miss its key too, to say why it misses.
    enum Looked {
        Hit(String),
        Miss(Box<CacheKey>, String, bool),
    }
    let mut looked: Vec<Option<Looked>> = (0..n).map(|_| None).collect();
    for wave in waves {
        let found: Vec<_> = wave
            .par_iter()
            .map(|&i| {
                let (key, complete) = instance_key(p, i, &outputs, &stat)?;
                let key_hash = key.hash();
                let hit = if complete { store.hit(&key_hash) } else { None };
                Ok(match hit {
                    Some(h) => (Some(h.output), Looked::Hit(key_hash)),
                    None => (None, Looked::Miss(Box::new(key), key_hash, complete)),
                })
            })
            .collect::<Result<_, ExecError>>()?;
        for (i, (output, l)) in wave.into_iter().zip(found) {
            outputs[i] = output;
            looked[i] = Some(l);
        }
    }
    let mut rows = Vec::with_capacity(n);
    for (inst, l) in p.instances.iter().zip(looked) {
        let (key, key_hash, complete) = match l.expect("every depth was looked at") {
            Looked::Hit(key_hash) => {
                rows.push(PlanRow {
                    label: inst.label.clone(),
                    key: Some(key_hash),
                    hit: true,
                    reasons: Vec::new(),
                });
                continue;
            }
            Looked::Miss(key, key_hash, complete) => (key, key_hash, complete),
        };
        let pending: Vec<&str> = key
            .inputs
            .iter()
            .filter(|(_, v)| match v {
                InputKey::One(h) => h == UNKNOWN,
                InputKey::Gathered(m) => m.values().any(|h| h == UNKNOWN),
            })
            .map(|(k, _)| k.as_str())
            .collect();
        let history = store.history(&p.name, &inst.stage_name, &inst.point);
        let mut reasons = Vec::new();
        match history.last() {
            None => reasons.push("never run".to_owned()),
            Some(last) if last.key == key_hash => {
                reasons.push("its cache entry is gone (deleted or damaged)".to_owned())
            }
            Some(last) => {
                match store.read_record(&last.key) {
                    None => reasons.push("the last run's record is gone".to_owned()),
                    Some(rec) => {
                        reasons.extend(explain(&rec.key, &key).into_iter().filter(|r| {
                            !pending.iter().any(|s| *r == format!("input `{s}` changed"))
                        }));
                    }
                }
            }
        }
        reasons.extend(
            pending
                .iter()
                .map(|s| format!("input `{s}` is recomputed first")),
        );
        if reasons.is_empty() {
            reasons.push("its cache entry is gone".to_owned());
        }
        rows.push(PlanRow {
            label: inst.label.clone(),
            key: complete.then_some(key_hash),
            hit: false,
            reasons,
        });
    }
    stat.lock().expect("stat cache lock").save();
    Ok(rows)
}
