//! The cache key of an instance, from its resolved definition and its inputs' output hashes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::cache::key::{CacheKey, InputKey, KEY_FORMAT};
use crate::cache::statcache::StatCache;
use crate::exec::ExecError;
use crate::pipeline::model::point_label;
use crate::pipeline::Pipeline;

/// Stands for an input whose output is not known yet (in `plan`).
pub const UNKNOWN: &str = "?";

/// The key of instance `i`. Inputs whose output is `None` are written as `UNKNOWN`; the
/// second value says whether every input was known.
pub fn instance_key(
    p: &Pipeline,
    i: usize,
    outputs: &[Option<String>],
    stat: &Mutex<StatCache>,
) -> Result<(CacheKey, bool), ExecError> {
    let inst = &p.instances[i];
    let kind = &inst.kind;
    let mut complete = true;
    let mut out = |j: usize| -> String {
        outputs[j].clone().unwrap_or_else(|| {
            complete = false;
            UNKNOWN.to_owned()
        })
    };
    let mut inputs = BTreeMap::new();
    for input in &inst.inputs {
        let v = if input.gather {
            InputKey::Gathered(
                input
                    .instances
                    .iter()
                    .map(|&j| (point_label(&p.instances[j].point, &p.axes), out(j)))
                    .collect(),
            )
        } else {
            InputKey::One(out(input.instances[0]))
        };
        inputs.insert(input.stage.clone(), v);
    }
    let mut deps = BTreeMap::new();
    for d in &inst.deps {
        let h = stat
            .lock()
            .expect("stat cache lock")
            .hash_path(&d.abs)
            .map_err(|e| {
                let msg = match &e {
                    crate::cache::hash::HashError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        format!(
                            "dep `{}` of `{}` not found (looked for `{}`)",
                            d.rel,
                            inst.label,
                            d.abs.display()
                        )
                    }
                    other => format!("dep `{}` of `{}`: {other}", d.rel, inst.label),
                };
                ExecError::Dep(Box::new(
                    d.origin
                        .at_value(&d.yaml_path, msg)
                        .with_hint("deps are relative to the pipeline file's folder"),
                ))
            })?;
        deps.insert(d.rel.clone(), h);
    }
    let mut spec = inst.spec.clone();
    if let (true, Some(backend)) = (kind.computes_on_backend(), crate::model::backend::KEY) {
        spec.insert("backend".into(), backend.into());
    }
    let key = CacheKey {
        format: KEY_FORMAT,
        kind: kind.name().to_owned(),
        kind_version: kind.version(),
        params: inst.params.json().clone(),
        spec,
        shared: inst.shared.clone(),
        matrix: inst.point.clone(),
        seed: inst.seed.into(),
        inputs,
        deps,
    };
    Ok((key, complete))
}
