//! Stage kinds: what a stage of a given `kind` does. Each kind has a version that is part of
//! every cache key, so a change to its behaviour is a deliberate bump.

pub mod ablate;
pub mod command;
pub mod evaluate;
pub mod finetune;
pub mod ingest;
pub mod lightgcn;
pub mod multivae;
pub mod popular;
pub mod pretrain;
pub mod sandbox;
pub mod spawn;
pub mod tokenize;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::pipeline::schema::StageKinds;
pub use crate::pipeline::schema::{
    DefError, Kind, Needs, ParamError, Params, Progress, Slot, StageContext, StageError, StageKind,
};

/// A kind's typed params. The `Default` value holds every default, the one place they are
/// written (`stages/<kind>.yaml` lists the same, which a test checks); `REQUIRED` names the
/// params without one.
pub trait TypedParams: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    const REQUIRED: &'static [&'static str] = &[];
    /// Params added after cache entries of the kind were made, each with the value at which
    /// it computes what the kind computed before it existed. At that value the param is left
    /// out of the resolved JSON, and so of the cache key: those entries stay valid, and a
    /// pipeline that sets the value explicitly keeps its keys.
    fn added() -> Vec<(&'static str, Json)> {
        Vec::new()
    }
    /// Writes a param that has several spellings of one computation in one of them (e.g. a
    /// null that means a value known from the other params), before [`TypedParams::check`].
    fn normalize(&mut self) {}
    /// Checks beyond what the types say (ranges, combinations).
    fn check(&self) -> Result<(), ParamError> {
        Ok(())
    }
}

/// `StageKind::resolve` for a kind whose params are a `P`: deserialize (unknown params and
/// unknown choices refused, naming the param), fill in the defaults, check.
pub fn resolve<P: TypedParams>(params: Map<String, Json>) -> Result<Params, ParamError> {
    if let Some(r) = P::REQUIRED.iter().find(|r| !params.contains_key(**r)) {
        return Err(((*r).to_owned(), format!("`{r}` is required")));
    }
    let p: P = serde_path_to_error::deserialize(Json::Object(params)).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        let field = match path.split(['.', '[']).next() {
            Some(f) if !f.is_empty() && f != "?" => f.to_owned(),
            _ => msg.split('`').nth(1).unwrap_or("params").to_owned(),
        };
        let hint = if msg.starts_with("unknown field") {
            let expected: Vec<&str> = msg.split('`').skip(3).step_by(2).collect();
            format!(
                "; {}",
                crate::diag::suggest(&field, &expected, "known params")
            )
        } else {
            String::new()
        };
        if path == "." || msg.starts_with("unknown field") {
            (field, format!("{msg}{hint}"))
        } else {
            (field, format!("`{path}`: {msg}"))
        }
    })?;
    let mut p = p;
    p.normalize();
    p.check()?;
    let mut json = as_map(&p);
    for (k, before) in P::added() {
        if json.get(k) == Some(&before) {
            json.remove(k);
        }
    }
    Ok(Params::new(p, json))
}

/// `StageKind::defaults` for a kind whose params are a `P`.
pub fn defaults<P: TypedParams>() -> (Map<String, Json>, &'static [&'static str]) {
    let mut m = as_map(&P::default());
    for r in P::REQUIRED {
        m.remove(*r);
    }
    (m, P::REQUIRED)
}

fn as_map<P: Serialize>(p: &P) -> Map<String, Json> {
    match serde_json::to_value(p).expect("params serialize") {
        Json::Object(m) => m,
        other => panic!("params serialize to an object, not {other}"),
    }
}

/// The kinds this build knows.
pub struct Registry {
    kinds: Vec<Kind>,
}

impl Default for Registry {
    fn default() -> Self {
        let kinds: Vec<Arc<dyn StageKind>> = vec![
            Arc::new(command::Command),
            Arc::new(ingest::Ingest),
            Arc::new(tokenize::Tokenize),
            Arc::new(popular::Popular),
            Arc::new(pretrain::Pretrain),
            Arc::new(finetune::Finetune),
            Arc::new(evaluate::Evaluate),
            Arc::new(multivae::MultiVaeKind),
            Arc::new(lightgcn::LightGcnKind),
            Arc::new(ablate::Ablate),
        ];
        Registry {
            kinds: kinds.into_iter().map(Kind::new).collect(),
        }
    }
}

impl Registry {
    /// A registry of exactly these kinds (tests of the executor with kinds of their own).
    #[cfg(test)]
    pub(crate) fn of(kinds: Vec<Arc<dyn StageKind>>) -> Registry {
        Registry {
            kinds: kinds.into_iter().map(Kind::new).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<Kind> {
        self.kinds.iter().find(|k| k.name() == name).cloned()
    }
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
    pub fn all(&self) -> &[Kind] {
        &self.kinds
    }
}

/// The pipeline layer finds kinds by name through `pipeline::StageKinds`.
impl StageKinds for Registry {
    fn names(&self) -> Vec<&'static str> {
        Registry::names(self)
    }
    fn get(&self, name: &str) -> Option<Kind> {
        Registry::get(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether two param values are the same, numbers compared as numbers (`1` and `1.0`).
    fn same(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
            (Json::Array(x), Json::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Json::Object(x), Json::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn every_stage_template_lists_the_defaults_of_its_kind() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stages");
        for kind in Registry::default().all() {
            let path = root.join(format!("{}.yaml", kind.name()));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let t: Json = serde_norway::from_str(&text).unwrap();
            assert_eq!(t["kind"], kind.name(), "{}", path.display());
            let listed = t["params"].as_object().cloned().unwrap_or_default();
            let (defaults, required) = kind.defaults();
            for r in required {
                assert!(
                    !listed.contains_key(*r),
                    "{}: `{r}` is required, so the template must not give it a value",
                    path.display()
                );
            }
            for (k, v) in &defaults {
                let t = listed.get(k).unwrap_or_else(|| {
                    panic!("{}: the default `{k}: {v}` is not listed", path.display())
                });
                assert!(
                    same(t, v),
                    "{}: `{k}` is {t} in the template but {v} in the code",
                    path.display()
                );
            }
            for k in listed.keys() {
                assert!(
                    defaults.contains_key(k),
                    "{}: `{k}` is not a param of `{}`",
                    path.display(),
                    kind.name()
                );
            }
        }
    }

    /// Resolving gives every param its value, choices by name, and the same JSON for the same
    /// computation however it was written.
    #[test]
    fn resolved_params_fill_defaults_and_refuse_unknown_choices() {
        let kinds = Registry::default();
        let finetune = kinds.get("finetune").unwrap();
        let p = finetune.resolve(Map::new()).unwrap();
        assert_eq!(p.json(), &finetune.defaults().0);
        assert_eq!(p.json()["engine"], "auto");
        let typed: &finetune::FinetuneParams = p.get().unwrap();
        assert_eq!(typed.targets, finetune::Targets::Masked);

        let one = |v: Json| {
            let mut m = Map::new();
            m.insert("lambda_c".into(), v);
            finetune.resolve(m).unwrap().json().clone()
        };
        assert_eq!(one(1.into()), one(1.0.into()));

        let mut m = Map::new();
        m.insert("engine".into(), "fast".into());
        let (field, msg) = finetune.resolve(m).unwrap_err();
        assert_eq!(field, "engine");
        assert!(
            msg.contains("unknown variant `fast`, expected `auto` or `burn`"),
            "{msg}"
        );

        let mut m = Map::new();
        m.insert("epochs".into(), "ten".into());
        let (field, msg) = finetune.resolve(m).unwrap_err();
        assert_eq!(field, "epochs");
        assert!(msg.contains("invalid type"), "{msg}");

        let ingest = kinds.get("ingest").unwrap();
        let (field, msg) = ingest.resolve(Map::new()).unwrap_err();
        assert_eq!(
            (field.as_str(), msg.as_str()),
            ("format", "`format` is required")
        );
    }
}
