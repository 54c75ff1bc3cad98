//! Read a pipeline file: parse, apply templates and `--set` overrides, check every key and
//! reference, and hand a `StageDef` per stage to `expand`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use serde_norway::Value as Yaml;

use crate::diag::{suggest, Diagnostic};
use crate::pipeline::expand;
use crate::pipeline::model::{Need, Pipeline};
use crate::pipeline::raw::{RawPipeline, RawResources, RawStage};
use crate::pipeline::schema::{Kind, StageKinds};
use crate::pipeline::source::{self, Source};
use crate::pipeline::PipelineError;

/// A stage after its template and overrides were merged in, before expansion.
#[derive(Debug)]
pub struct StageDef {
    pub name: String,
    pub kind: Kind,
    pub needs: Vec<Need>,
    pub params: Map<String, Json>,
    /// Which file (and YAML path) each top-level param came from.
    pub param_origin: BTreeMap<String, (Arc<Source>, String)>,
    pub cmd: Option<(Json, Arc<Source>, String)>,
    pub shell: bool,
    pub deps: Vec<(String, Arc<Source>, String)>,
    pub resources: RawResources,
    /// `bit_exact:` as written (stage, else template); `None` means the kind's default.
    pub bit_exact: Option<bool>,
    /// YAML path of the stage in the pipeline file.
    pub path: String,
}

/// Pipeline-level values shared by every stage, after `--set`.
#[derive(Debug)]
pub struct Shared {
    pub params: Map<String, Json>,
    pub matrix: IndexMap<String, Json>,
}

/// Load and validate a pipeline file. `sets` are `--set key=value` overrides.
pub fn load(
    path: &Path,
    sets: &[String],
    kinds: &dyn StageKinds,
) -> Result<Pipeline, PipelineError> {
    let text = source::read_text(path)?;
    load_text(path, text, sets, kinds)
}

/// Load a pipeline from its text, as if read from `path` (whose folder is the pipeline's
/// folder: templates and relative paths start there).
pub fn load_text(
    path: &Path,
    text: String,
    sets: &[String],
    kinds: &dyn StageKinds,
) -> Result<Pipeline, PipelineError> {
    if text.len() as u64 > source::MAX_FILE_BYTES {
        return Err(source::too_large(path, text.len() as u64));
    }
    let src = Arc::new(Source::new(path.to_owned(), text));
    let raw: RawPipeline = src.parse().map_err(Box::new)?;
    let dir = absolute_dir(path)?;

    let mut shared = Shared {
        params: yaml_map_to_json(&raw.params, "params", &src)?,
        matrix: raw
            .matrix
            .iter()
            .map(|(k, v)| Ok((k.clone(), yaml_to_json(v, &format!("matrix.{k}"), &src)?)))
            .collect::<Result<_, Box<Diagnostic>>>()?,
    };
    if raw.name.trim().is_empty() {
        return Err(Box::new(src.at_value("name", "the pipeline `name` is empty")).into());
    }
    if raw.stages.is_empty() {
        return Err(Box::new(src.at_key("stages", "the pipeline has no stages")).into());
    }
    let mut stage_sets: BTreeMap<String, Vec<(Vec<String>, Json)>> = BTreeMap::new();
    for s in sets {
        apply_set(s, &mut shared, &mut stage_sets, &raw.stages)?;
    }

    let mut templates: BTreeMap<PathBuf, (Arc<Source>, RawStage)> = BTreeMap::new();
    let mut defs = Vec::new();
    for (name, stage) in &raw.stages {
        let spath = format!("stages.{name}");
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || name.is_empty()
        {
            return Err(Box::new(
                src.at_key(&spath, format!("invalid stage name `{name}`"))
                    .with_hint("stage names use letters, digits, `_` and `-`"),
            )
            .into());
        }
        let template = match &stage.use_ {
            Some(u) => Some(load_template(
                u,
                &dir,
                &src,
                &format!("{spath}.use"),
                &mut templates,
            )?),
            None => None,
        };
        let mut def = merge(name, stage, template.as_ref(), &src, &raw.resources, kinds)?;
        for (keypath, value) in stage_sets.remove(name).unwrap_or_default() {
            set_path(&mut def.params, &keypath, value);
            def.param_origin
                .entry(keypath[0].clone())
                .or_insert_with(|| (src.clone(), format!("{spath}.params")));
        }
        defs.push(def);
    }
    expand::expand(raw.name, src, dir, shared, defs)
}

fn absolute_dir(path: &Path) -> Result<PathBuf, PipelineError> {
    let abs = std::path::absolute(path).map_err(|e| PipelineError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    Ok(abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/")))
}

/// Find `stages/x.yaml` relative to the pipeline's folder or any folder above it.
pub fn find_template(rel: &str, dir: &Path) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_owned());
    }
    dir.ancestors().map(|d| d.join(p)).find(|c| c.is_file())
}

fn load_template(
    rel: &str,
    dir: &Path,
    src: &Source,
    at: &str,
    cache: &mut BTreeMap<PathBuf, (Arc<Source>, RawStage)>,
) -> Result<(Arc<Source>, RawStage), PipelineError> {
    let found = find_template(rel, dir).ok_or_else(|| {
        Box::new(
            src.at_value(at, format!("template `{rel}` not found"))
                .with_hint("`use` paths are looked up from the pipeline's folder upwards, e.g. `use: stages/command.yaml`"),
        )
    })?;
    if let Some(t) = cache.get(&found) {
        return Ok(t.clone());
    }
    let text = source::read_text(&found)?;
    let tsrc = Arc::new(Source::new(found.clone(), text));
    let t: RawStage = tsrc.parse().map_err(Box::new)?;
    if t.use_.is_some() || t.needs.is_some() {
        let key = if t.use_.is_some() { "use" } else { "needs" };
        return Err(Box::new(tsrc.at_key(key, format!("a template cannot set `{key}`"))).into());
    }
    if t.kind.is_none() {
        return Err(Box::new(tsrc.at_key("", "a template must name its `kind`")).into());
    }
    cache.insert(found, (tsrc.clone(), t.clone()));
    Ok((tsrc, t))
}

fn merge(
    name: &str,
    stage: &RawStage,
    template: Option<&(Arc<Source>, RawStage)>,
    src: &Arc<Source>,
    default_resources: &RawResources,
    kinds: &dyn StageKinds,
) -> Result<StageDef, PipelineError> {
    let spath = format!("stages.{name}");
    if stage.open_params.is_some() {
        return Err(Box::new(src.at_key(
            &format!("{spath}.open_params"),
            "`open_params` belongs in a template",
        ))
        .into());
    }
    let kind = match (&stage.kind, template.and_then(|(_, t)| t.kind.clone())) {
        (Some(k), Some(tk)) if *k != tk => {
            return Err(Box::new(src.at_value(
                &format!("{spath}.kind"),
                format!("stage kind `{k}` differs from its template's kind `{tk}`"),
            ))
            .into())
        }
        (Some(k), _) => k.clone(),
        (None, Some(tk)) => tk,
        (None, None) => {
            return Err(Box::new(
                src.at_key(&spath, format!("stage `{name}` has no `kind`"))
                    .with_hint(format!(
                        "add `kind: <kind>` (one of {}) or `use: stages/<kind>.yaml`",
                        kinds
                            .names()
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
            )
            .into())
        }
    };
    let Some(kind) = kinds.get(&kind) else {
        let at = if stage.kind.is_some() {
            format!("{spath}.kind")
        } else {
            format!("{spath}.use")
        };
        return Err(Box::new(
            src.at_value(&at, format!("unknown stage kind `{kind}`"))
                .with_hint(suggest(&kind, &kinds.names(), "known kinds")),
        )
        .into());
    };

    // Params: template values, then the stage's.
    let mut params = Map::new();
    let mut param_origin = BTreeMap::new();
    if let Some((tsrc, t)) = template {
        if let Some(tp) = &t.params {
            params = yaml_map_to_json(tp, "params", tsrc)?;
            for k in params.keys() {
                param_origin.insert(k.clone(), (tsrc.clone(), format!("params.{k}")));
            }
        }
    }
    if let Some(sp) = &stage.params {
        let own = yaml_map_to_json(sp, &format!("{spath}.params"), src)?;
        let strict = template
            .map(|(_, t)| !t.open_params.unwrap_or(false))
            .unwrap_or(false);
        // A template's params are its interface: the stage may set those, the kind's own
        // (those with a default and those it requires) and `seed`.
        let (kind_defaults, required) = kind.defaults();
        for (k, v) in own {
            if strict
                && !params.contains_key(&k)
                && !kind_defaults.contains_key(&k)
                && !required.contains(&k.as_str())
                && k != "seed"
            {
                let known: Vec<&str> = params.keys().map(String::as_str).collect();
                let tname = template
                    .map(|(s, _)| s.path.display().to_string())
                    .unwrap_or_default();
                return Err(Box::new(
                    src.at_key(
                        &format!("{spath}.params.{k}"),
                        format!("unknown param `{k}` for a `{kind}` stage"),
                    )
                    .with_hint(format!(
                        "{} (the params of `{tname}`)",
                        suggest(&k, &known, "known params")
                    )),
                )
                .into());
            }
            param_origin.insert(k.clone(), (src.clone(), format!("{spath}.params.{k}")));
            deep_merge(&mut params, k, v);
        }
    }

    let (tsrc, t) = match template {
        Some((s, t)) => (Some(s), Some(t)),
        None => (None, None),
    };
    let cmd = match (&stage.cmd, t.and_then(|t| t.cmd.as_ref())) {
        (Some(c), _) => Some((
            yaml_to_json(c, &format!("{spath}.cmd"), src)?,
            src.clone(),
            format!("{spath}.cmd"),
        )),
        (None, Some(c)) => {
            let ts = tsrc.expect("template source");
            Some((yaml_to_json(c, "cmd", ts)?, ts.clone(), "cmd".to_owned()))
        }
        (None, None) => None,
    };
    let shell = stage.shell.or(t.and_then(|t| t.shell)).unwrap_or(false);
    let deps = match (&stage.deps, t.and_then(|t| t.deps.as_ref())) {
        (Some(d), _) => d
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), src.clone(), format!("{spath}.deps.{i}")))
            .collect(),
        (None, Some(d)) => {
            let ts = tsrc.expect("template source");
            d.iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), ts.clone(), format!("deps.{i}")))
                .collect()
        }
        (None, None) => Vec::new(),
    };
    let resources = stage
        .resources
        .clone()
        .unwrap_or_default()
        .or(&t.and_then(|t| t.resources.clone()).unwrap_or_default())
        .or(default_resources);
    if resources.cpus == Some(0) {
        return Err(Box::new(src.at_value(
            &format!("{spath}.resources.cpus"),
            "`cpus` must be at least 1",
        ))
        .into());
    }

    let mut needs = Vec::new();
    for (i, n) in stage.needs.iter().flatten().enumerate() {
        let (stage_name, gather) = match n.strip_suffix("[*]") {
            Some(s) => (s.trim(), true),
            None => (n.trim(), false),
        };
        if stage_name.is_empty() || stage_name.contains(['[', ']', ' ']) {
            return Err(Box::new(
                src.at_value(&format!("{spath}.needs.{i}"), format!("malformed need `{n}`"))
                    .with_hint("write `stage` for the matching instance, or `stage[*]` to gather every instance"),
            )
            .into());
        }
        if needs.iter().any(|x: &Need| x.stage == stage_name) {
            return Err(Box::new(src.at_value(
                &format!("{spath}.needs.{i}"),
                format!("stage `{stage_name}` is needed twice"),
            ))
            .into());
        }
        needs.push(Need {
            stage: stage_name.to_owned(),
            gather,
        });
    }

    let def = StageDef {
        name: name.to_owned(),
        kind,
        needs,
        params,
        param_origin,
        cmd,
        shell,
        deps,
        resources,
        bit_exact: stage.bit_exact.or(t.and_then(|t| t.bit_exact)),
        path: spath,
    };
    def.kind.check_def(&def).map_err(|(at, msg, hint)| {
        let (s, p) = match at.as_str() {
            "cmd" => def
                .cmd
                .as_ref()
                .map(|(_, s, p)| (s.clone(), p.clone()))
                .unwrap_or((src.clone(), def.path.clone())),
            other => (src.clone(), format!("{}.{other}", def.path)),
        };
        Box::new(s.at_value(&p, msg).with_hint_opt(hint))
    })?;
    Ok(def)
}

/// Insert `v` at `k`, merging nested maps rather than replacing them.
fn deep_merge(into: &mut Map<String, Json>, k: String, v: Json) {
    match (into.get_mut(&k), v) {
        (Some(Json::Object(dst)), Json::Object(src)) => {
            for (k2, v2) in src {
                deep_merge(dst, k2, v2);
            }
        }
        (_, v) => {
            into.insert(k, v);
        }
    }
}

fn set_path(root: &mut Map<String, Json>, path: &[String], value: Json) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = root;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| Json::Object(Map::new()));
        if !entry.is_object() {
            *entry = Json::Object(Map::new());
        }
        cur = entry.as_object_mut().expect("object");
    }
    cur.insert(last.clone(), value);
}

/// `--set params.x=1`, `--set matrix.axis=[1,2]`, `--set stages.NAME.params.x=1`.
fn apply_set(
    s: &str,
    shared: &mut Shared,
    stage_sets: &mut BTreeMap<String, Vec<(Vec<String>, Json)>>,
    stages: &IndexMap<String, RawStage>,
) -> Result<(), PipelineError> {
    let bad = |msg: String, hint: &str| PipelineError::Set {
        arg: s.to_owned(),
        message: msg,
        hint: hint.to_owned(),
    };
    let (key, val) = s.split_once('=').ok_or_else(|| {
        bad(
            "expected `key=value`".into(),
            "e.g. `--set params.lambda_c=10`",
        )
    })?;
    let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(bad(
            format!("malformed key `{key}`"),
            "keys are dotted paths such as `params.lr`",
        ));
    }
    let value: Json = match serde_norway::from_str::<Yaml>(val) {
        Ok(Yaml::Null) if val.trim().is_empty() => Json::String(String::new()),
        Ok(y) => yaml_to_json_plain(&y)
            .map_err(|m| bad(m, "values are YAML: `1`, `0.1`, `abc`, `[1, 2]`"))?,
        Err(_) => Json::String(val.to_owned()),
    };
    match path[0].as_str() {
        "params" if path.len() >= 2 => set_path(&mut shared.params, &path[1..], value),
        "matrix" if path.len() == 2 => {
            let v = match value {
                Json::Array(a) => Json::Array(a),
                scalar => Json::Array(vec![scalar]),
            };
            shared.matrix.insert(path[1].clone(), v);
        }
        "stages" if path.len() >= 4 && path[2] == "params" => {
            if !stages.contains_key(&path[1]) {
                let names: Vec<&str> = stages.keys().map(String::as_str).collect();
                return Err(bad(
                    format!("unknown stage `{}`", path[1]),
                    &suggest(&path[1], &names, "stages"),
                ));
            }
            stage_sets
                .entry(path[1].clone())
                .or_default()
                .push((path[3..].to_vec(), value));
        }
        _ => {
            return Err(bad(
                format!("cannot set `{key}`"),
                "`--set` takes `params.<name>`, `matrix.<axis>` or `stages.<stage>.params.<name>`",
            ))
        }
    }
    Ok(())
}

fn yaml_map_to_json(
    m: &IndexMap<String, Yaml>,
    path: &str,
    src: &Source,
) -> Result<Map<String, Json>, Box<Diagnostic>> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), yaml_to_json(v, &format!("{path}.{k}"), src)?)))
        .collect()
}

/// YAML -> JSON, with a positioned error for what JSON cannot hold.
pub fn yaml_to_json(v: &Yaml, path: &str, src: &Source) -> Result<Json, Box<Diagnostic>> {
    yaml_to_json_plain(v).map_err(|m| Box::new(src.at_value(path, m)))
}

fn yaml_to_json_plain(v: &Yaml) -> Result<Json, String> {
    Ok(match v {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| format!("non-finite number `{n}` is not allowed"))?
            }
        }
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(seq) => Json::Array(
            seq.iter()
                .map(yaml_to_json_plain)
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => return Err("map keys must be strings".to_owned()),
                };
                out.insert(key, yaml_to_json_plain(v)?);
            }
            Json::Object(out)
        }
        Yaml::Tagged(t) => return Err(format!("YAML tags such as `{}` are not supported", t.tag)),
    })
}
