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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Registry;

    /// The key of the `finetune` instance of a pipeline whose finetune stage has `params`.
    fn finetune_key(params: &str) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = format!(
            "name: p\nstages:\n  ingest: {{kind: ingest, params: {{format: movielens, path: d}}}}\n  \
             tokenize: {{kind: tokenize, needs: [ingest]}}\n  \
             pretrain: {{kind: pretrain, needs: [tokenize]}}\n  \
             finetune: {{kind: finetune, needs: [pretrain, tokenize, ingest], params: {params}}}\n"
        );
        let p = crate::pipeline::load::load_text(
            &tmp.path().join("p.yaml"),
            yaml,
            &[],
            &Registry::default(),
        )
        .unwrap();
        let i = p
            .instances
            .iter()
            .position(|i| i.label == "finetune")
            .unwrap();
        let stat = Mutex::new(StatCache::load(&tmp.path().join("statcache.json")));
        let outputs = vec![None; p.instances.len()];
        let (key, complete) = instance_key(&p, i, &outputs, &stat).unwrap();
        assert!(!complete);
        key.hash()
    }

    #[test]
    fn the_key_hashes_the_resolved_params() {
        let short = finetune_key("{lambda_c: 1}");
        let written_out = finetune_key(
            "{epochs: 150, lr: 0.0001, batch_size: 64, mask_ratio: 0.2, targets: masked, \
             lambda_c: 1.0, engine: auto}",
        );
        assert_eq!(
            short, written_out,
            "defaults left out or written out: one key"
        );
        assert_eq!(short, finetune_key("{}"));
        assert_ne!(short, finetune_key("{epochs: 11}"));
    }
}
