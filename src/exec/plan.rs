//! `plan`: each instance's key, hit or miss, and why it misses, against the last record of the
//! same stage and matrix point.

use std::sync::Mutex;

use crate::cache::key::{explain, InputKey};
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
    let mut outputs: Vec<Option<String>> = vec![None; p.instances.len()];
    let mut rows = Vec::new();
    for (i, inst) in p.instances.iter().enumerate() {
        let (key, complete) = instance_key(p, i, &outputs, &stat)?;
        let key_hash = key.hash();
        if complete {
            if let Some(rec) = store.lookup(&key_hash) {
                outputs[i] = Some(rec.output);
                rows.push(PlanRow {
                    label: inst.label.clone(),
                    key: Some(key_hash),
                    hit: true,
                    reasons: Vec::new(),
                });
                continue;
            }
        }
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
