//! From stage definitions to the instance DAG: check references, find each stage's axes,
//! order the stages (a cycle is an error that prints it), and instantiate every stage once per
//! distinct point of the axes it depends on.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::diag::{suggest, Diagnostic};
use crate::pipeline::interp::{self, Ref};
use crate::pipeline::load::{Shared, StageDef};
use crate::pipeline::matrix;
use crate::pipeline::model::{point_label, Dep, InputRef, Instance, Pipeline, Point, Stage};
use crate::pipeline::order::order_stages;
use crate::pipeline::roles::need_roles;
use crate::pipeline::source::Source;
use crate::pipeline::workspace;
use crate::pipeline::PipelineError;

pub fn expand(
    name: String,
    src: Arc<Source>,
    dir: PathBuf,
    shared: Shared,
    defs: Vec<StageDef>,
) -> Result<Pipeline, PipelineError> {
    let (axes, points) = matrix::expand(&shared.matrix, &src)?;
    let param_axes = pipeline_param_axes(&shared.params, &axes, &src)?;

    // Which axes each stage references itself.
    let mut own_axes: Vec<BTreeSet<String>> = Vec::new();
    let mut shared_used: Vec<BTreeSet<String>> = Vec::new();
    for def in &defs {
        let (a, used) = stage_refs(def, &shared.params, &param_axes, &axes)?;
        own_axes.push(a);
        shared_used.push(used);
    }

    let order = order_stages(&defs, &src)?;
    let index: HashMap<&str, usize> = defs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let roles: Vec<Vec<Option<&'static str>>> = defs
        .iter()
        .map(|d| need_roles(d, &defs, &index, &src))
        .collect::<Result<_, _>>()?;
    let mut stage_axes: Vec<BTreeSet<String>> = vec![BTreeSet::new(); defs.len()];
    for &i in &order {
        let mut a = own_axes[i].clone();
        for n in defs[i].needs.iter().filter(|n| !n.gather) {
            a.extend(stage_axes[index[n.stage.as_str()]].iter().cloned());
        }
        stage_axes[i] = a;
    }
    let ordered_axes = |set: &BTreeSet<String>| {
        axes.iter()
            .filter(|a| set.contains(*a))
            .cloned()
            .collect::<Vec<_>>()
    };

    let stages: Vec<Stage> = defs
        .iter()
        .enumerate()
        .map(|(i, d)| Stage {
            name: d.name.clone(),
            kind: d.kind.clone(),
            needs: d.needs.clone(),
            axes: ordered_axes(&stage_axes[i]),
            resources: d.resources.clone(),
            bit_exact: d.bit_exact,
        })
        .collect();

    // Instances, stage by stage in topological order.
    let mut instances: Vec<Instance> = Vec::new();
    let mut by_stage: Vec<Vec<usize>> = vec![Vec::new(); defs.len()];
    let ws = workspace::root(&dir);
    let mut buckets: HashMap<(usize, Vec<String>), HashMap<String, Vec<usize>>> = HashMap::new();
    let mut resolver = ParamResolver {
        params: &shared.params,
        memo: HashMap::new(),
    };
    for &i in &order {
        let def = &defs[i];
        let st = &stages[i];
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for full in &points {
            let point: Point = st
                .axes
                .iter()
                .map(|a| (a.clone(), full[a].clone()))
                .collect();
            let plabel = point_label(&point, &axes);
            if !seen.insert(plabel.clone()) {
                continue;
            }
            let label = if plabel.is_empty() {
                def.name.clone()
            } else {
                format!("{}[{plabel}]", def.name)
            };
            let mut inst = instantiate(def, &point, label, &mut resolver, &dir, &ws, &src)?;
            for name in &shared_used[i] {
                let v = resolver
                    .get(name, &point)
                    .map_err(|m| Box::new(src.at_value(&format!("params.{name}"), m)))?;
                inst.shared.insert(name.clone(), v);
            }
            inst.stage = i;
            inst.resources = st.resources.clone();
            for (n, role) in def.needs.iter().zip(&roles[i]) {
                let u = index[n.stage.as_str()];
                let shared_axes: Vec<String> = stages[u]
                    .axes
                    .iter()
                    .filter(|a| point.contains_key(*a))
                    .cloned()
                    .collect();
                let want = values_key(&point, &shared_axes);
                // `u`'s instances by their values on the axes shared with this one, built once
                // per (stage, shared axes) when first needed (`u` is complete by then): a
                // lookup per need, not a scan of `u`'s instances, which made expansion
                // quadratic in the sweep.
                let bucket = buckets
                    .entry((u, shared_axes))
                    .or_insert_with_key(|(_, shared)| {
                        let mut m: HashMap<String, Vec<usize>> = HashMap::new();
                        for &j in &by_stage[u] {
                            m.entry(values_key(&instances[j].point, shared))
                                .or_default()
                                .push(j);
                        }
                        m
                    });
                let matching: Vec<usize> = bucket.get(&want).cloned().unwrap_or_default();
                debug_assert!(n.gather || matching.len() == 1);
                inst.inputs.push(InputRef {
                    stage: n.stage.clone(),
                    gather: n.gather,
                    kind: defs[u].kind.name(),
                    role: *role,
                    instances: matching,
                });
            }
            def.kind
                .check_files(&inst, &dir)
                .and_then(|()| def.kind.check_inputs(&inst, &instances))
                .map_err(|e| param_error(def, &inst.label, &src, e))?;
            for (param, rel) in def.kind.implicit_deps(&inst) {
                let (origin, yaml_path) = def
                    .param_origin
                    .get(&param)
                    .cloned()
                    .unwrap_or((src.clone(), def.path.clone()));
                inst.deps.push(Dep {
                    abs: dir.join(&rel),
                    rel,
                    origin,
                    yaml_path,
                });
            }
            by_stage[i].push(instances.len());
            instances.push(inst);
        }
    }
    Ok(Pipeline {
        name,
        source: src,
        dir,
        axes,
        points,
        stages,
        instances,
    })
}

/// A point's values on `axes`, as one string (JSON values, so `1` and `"1"` differ).
fn values_key(point: &Point, axes: &[String]) -> String {
    let mut k = String::new();
    for a in axes {
        k.push_str(&serde_json::to_string(&point[a]).expect("plain data"));
        k.push('\0');
    }
    k
}

/// For each pipeline param, the axes it references (through other params too).
fn pipeline_param_axes(
    params: &Map<String, Json>,
    axes: &[String],
    src: &Source,
) -> Result<HashMap<String, BTreeSet<String>>, Box<Diagnostic>> {
    let mut direct: HashMap<String, (BTreeSet<String>, BTreeSet<String>)> = HashMap::new();
    for (k, v) in params {
        let mut refs = Vec::new();
        interp::refs_in_value(v, &format!("params.{k}"), &mut refs);
        let (mut ax, mut ps) = (BTreeSet::new(), BTreeSet::new());
        for (path, r) in refs {
            match r.map_err(|m| Box::new(src.at_value(&path, m)))? {
                Ref::Matrix(a) => {
                    check_axis(&a, axes, src, &path)?;
                    ax.insert(a);
                }
                Ref::Param(p) => {
                    if !params.contains_key(&p[0]) {
                        return Err(unknown_param(&p, params, src, &path));
                    }
                    ps.insert(p[0].clone());
                }
            }
        }
        direct.insert(k.clone(), (ax, ps));
    }
    let mut out = HashMap::new();
    for k in params.keys() {
        let mut acc = BTreeSet::new();
        let mut stack = vec![(k.clone(), vec![k.clone()])];
        while let Some((cur, trail)) = stack.pop() {
            let (ax, ps) = &direct[&cur];
            acc.extend(ax.iter().cloned());
            for p in ps {
                if trail.contains(p) {
                    let mut cycle = trail.clone();
                    cycle.push(p.clone());
                    return Err(Box::new(src.at_value(
                        &format!("params.{k}"),
                        format!(
                            "params reference each other in a cycle: {}",
                            cycle.join(" -> ")
                        ),
                    )));
                }
                let mut t = trail.clone();
                t.push(p.clone());
                stack.push((p.clone(), t));
            }
        }
        out.insert(k.clone(), acc);
    }
    Ok(out)
}

fn check_axis(a: &str, axes: &[String], src: &Source, path: &str) -> Result<(), Box<Diagnostic>> {
    if axes.iter().any(|x| x == a) {
        return Ok(());
    }
    let names: Vec<&str> = axes.iter().map(String::as_str).collect();
    Err(Box::new(
        src.at_value(path, format!("unknown matrix axis `{a}`"))
            .with_hint(suggest(a, &names, "axes")),
    ))
}

fn unknown_param(
    p: &[String],
    params: &Map<String, Json>,
    src: &Source,
    path: &str,
) -> Box<Diagnostic> {
    let names: Vec<&str> = params.keys().map(String::as_str).collect();
    Box::new(
        src.at_value(path, format!("unknown param `{}`", p.join(".")))
            .with_hint(suggest(&p[0], &names, "pipeline params")),
    )
}

/// Check a stage's references; return the axes it references (directly or via pipeline
/// params) and the pipeline params it uses (other than `seed`).
fn stage_refs(
    def: &StageDef,
    shared: &Map<String, Json>,
    param_axes: &HashMap<String, BTreeSet<String>>,
    axes: &[String],
) -> Result<(BTreeSet<String>, BTreeSet<String>), Box<Diagnostic>> {
    // (file, YAML path, reference, whether the stage's own params are in scope)
    type Found = (Arc<Source>, String, Result<Ref, String>, bool);
    let mut found: Vec<Found> = Vec::new();
    for (k, v) in &def.params {
        let (s, p) = def.param_origin[k].clone();
        let mut refs = Vec::new();
        interp::refs_in_value(v, "", &mut refs);
        found.extend(
            refs.into_iter()
                .map(|(sub, r)| (s.clone(), join(&p, &sub), r, false)),
        );
    }
    if let Some((cmd, s, p)) = &def.cmd {
        let mut refs = Vec::new();
        interp::refs_in_value(cmd, "", &mut refs);
        found.extend(
            refs.into_iter()
                .map(|(sub, r)| (s.clone(), join(p, &sub), r, true)),
        );
    }
    for (d, s, p) in &def.deps {
        match interp::refs_in(d) {
            Ok(rs) => found.extend(rs.into_iter().map(|r| (s.clone(), p.clone(), Ok(r), true))),
            Err(e) => found.push((s.clone(), p.clone(), Err(e), true)),
        }
    }
    let mut out = BTreeSet::new();
    let mut uses_shared = BTreeSet::new();
    if !def.params.contains_key("seed") && shared.contains_key("seed") {
        uses_shared.insert("seed".to_owned());
    }
    for (s, path, r, stage_scope) in found {
        match r.map_err(|m| Box::new(s.at_value(&path, m)))? {
            Ref::Matrix(a) => {
                check_axis(&a, axes, &s, &path)?;
                out.insert(a);
            }
            Ref::Param(p) => {
                if stage_scope && def.params.contains_key(&p[0]) {
                    continue; // the stage's own param; its references are counted above
                }
                if !shared.contains_key(&p[0]) {
                    let mut b = unknown_param(&p, shared, &s, &path);
                    if !stage_scope && def.params.contains_key(&p[0]) {
                        b.hint = Some(
                            "inside `params`, `${params.x}` names the pipeline's shared params"
                                .into(),
                        );
                    }
                    return Err(b);
                }
                uses_shared.insert(p[0].clone());
            }
        }
    }
    for p in &uses_shared {
        out.extend(param_axes[p].iter().cloned());
    }
    uses_shared.remove("seed");
    Ok((out, uses_shared))
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_owned(),
        (true, _) => b.to_owned(),
        _ => format!("{a}.{b}"),
    }
}

/// Resolves pipeline params at a point, memoised per (param, point).
struct ParamResolver<'a> {
    params: &'a Map<String, Json>,
    memo: HashMap<(String, String), Json>,
}

impl ParamResolver<'_> {
    fn get(&mut self, name: &str, point: &Point) -> Result<Json, String> {
        let memo_key = (
            name.to_owned(),
            serde_json::to_string(point).unwrap_or_default(),
        );
        if let Some(v) = self.memo.get(&memo_key) {
            return Ok(v.clone());
        }
        let raw = self
            .params
            .get(name)
            .ok_or_else(|| format!("unknown param `{name}`"))?
            .clone();
        let v = interp::interpolate(&raw, &mut |r| self.lookup(r, point))?;
        self.memo.insert(memo_key, v.clone());
        Ok(v)
    }

    fn lookup(&mut self, r: &Ref, point: &Point) -> Result<Json, String> {
        match r {
            Ref::Matrix(a) => point
                .get(a)
                .cloned()
                .ok_or_else(|| format!("axis `{a}` is not set here")),
            Ref::Param(p) => {
                let top = self.get(&p[0], point)?;
                descend(&top, &p[1..])
                    .ok_or_else(|| format!("`{}` has no `{}`", p[0], p[1..].join(".")))
            }
        }
    }
}

fn descend(v: &Json, rest: &[String]) -> Option<Json> {
    let mut m = Map::new();
    m.insert(String::new(), v.clone());
    let mut path = vec![String::new()];
    path.extend(rest.iter().cloned());
    interp::get_path(&m, &path).cloned()
}

fn instantiate(
    def: &StageDef,
    point: &Point,
    label: String,
    res: &mut ParamResolver,
    dir: &std::path::Path,
    ws: &std::path::Path,
    src: &Arc<Source>,
) -> Result<Instance, Box<Diagnostic>> {
    // Stage params: references name the pipeline's shared params.
    let mut params = Map::new();
    for (k, v) in &def.params {
        let (s, p) = &def.param_origin[k];
        let rv = interp::interpolate(v, &mut |r| res.lookup(r, point))
            .map_err(|m| Box::new(s.at_value(p, m)))?;
        params.insert(k.clone(), rv);
    }
    let (seed, seed_at) = match params.remove("seed") {
        Some(s) => (s, def.param_origin["seed"].clone()),
        None if res.params.contains_key("seed") => (
            res.get("seed", point)
                .map_err(|m| Box::new(src.at_value("params.seed", m)))?,
            (src.clone(), "params.seed".to_owned()),
        ),
        None => (Json::from(0), (src.clone(), String::new())),
    };
    // One seed, one computation: a negative seed is refused rather than read as another.
    let Some(seed_value) = seed.as_u64() else {
        return Err(Box::new(seed_at.0.at_value(
            &seed_at.1,
            format!("`seed` must be a non-negative integer, found `{seed}`"),
        )));
    };
    // cmd and deps: the stage's own params first, then the shared ones.
    let mut stage_scope = |r: &Ref| -> Result<Json, String> {
        if let Ref::Param(p) = r {
            if p[0] == "seed" {
                return descend(&seed, &p[1..]).ok_or_else(|| "`seed` has no fields".to_owned());
            }
            if let Some(v) = params.get(&p[0]) {
                return descend(v, &p[1..])
                    .ok_or_else(|| format!("`{}` has no `{}`", p[0], p[1..].join(".")));
            }
        }
        res.lookup(r, point)
    };
    let mut spec = Map::new();
    if let Some((cmd, s, p)) = &def.cmd {
        let c =
            interp::interpolate(cmd, &mut stage_scope).map_err(|m| Box::new(s.at_value(p, m)))?;
        spec.insert("cmd".into(), c);
        spec.insert("shell".into(), Json::Bool(def.shell));
    }
    let mut deps = Vec::new();
    for (d, s, p) in &def.deps {
        let rel = interp::as_text(
            &interp::interpolate(&Json::String(d.clone()), &mut stage_scope)
                .map_err(|m| Box::new(s.at_value(p, m)))?,
        );
        workspace::check_dep(&rel, dir, ws)
            .map_err(|(m, hint)| Box::new(s.at_value(p, m).with_hint(hint)))?;
        deps.push(Dep {
            abs: dir.join(&rel),
            rel,
            origin: s.clone(),
            yaml_path: p.clone(),
        });
    }
    let params = def
        .kind
        .resolve(params)
        .map_err(|e| param_error(def, &label, src, e))?;
    Ok(Instance {
        stage: 0,
        stage_name: def.name.clone(),
        kind: def.kind.clone(),
        label,
        point: point.clone(),
        params,
        seed: seed_value,
        spec,
        shared: Map::new(),
        deps,
        inputs: Vec::new(),
        resources: Default::default(),
    })
}

/// A param error of instance `label`, positioned where the param was written (else at the
/// stage's `params`).
fn param_error(
    def: &StageDef,
    label: &str,
    src: &Arc<Source>,
    (at, msg): (String, String),
) -> Box<Diagnostic> {
    let (s, p) = def
        .param_origin
        .get(&at)
        .cloned()
        .unwrap_or((src.clone(), format!("{}.params", def.path)));
    Box::new(s.at_value(&p, format!("{label}: {msg}")))
}

/// Reference for tests and tools: the instance labels of a pipeline.
pub fn labels(p: &Pipeline) -> Vec<String> {
    p.instances.iter().map(|i| i.label.clone()).collect()
}
