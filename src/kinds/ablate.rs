//! The `ablate` kind: gathers evaluations (every matrix point of a gathered `evaluate[*]`, or
//! named evaluate stages) into one table with the change against a reference variant and
//! paired significance tests across users; plots the sensitivity to a swept axis and the
//! training curves of the pretrain/finetune runs among its inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::ablate::budget::{Budget, Costed};
use crate::ablate::compare::{compare, mean_sem};
use crate::ablate::gather::collect;
use crate::ablate::plot::{self, Series};
use crate::ablate::table::Format;
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, Slot, StageContext, StageError, StageKind,
    TypedParams,
};
use crate::pipeline::Instance;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AblateParams {
    /// The variant the others are compared with (a matrix point such as `lambda_c=1`, or a
    /// stage name); default: the first.
    pub reference: Option<String>,
    /// The matrix axis of the sensitivity plot; default: the only axis of the variants, if
    /// its values are numbers. `none`: no sensitivity plot.
    pub axis: Option<String>,
    /// A logarithmic x axis for the sensitivity plot.
    pub log_x: bool,
    /// Draw the plots (SVG and PNG).
    pub plots: bool,
    /// The validation metric of the finetuning curves.
    pub curve_metric: String,
    /// Add each variant's compute (model FLOPs, and CPU seconds in `table`) and, per method
    /// (evaluate stage), the configuration chosen on validation within each budget to the
    /// table, and plot `compute_metric` against FLOPs (budget.svg/.png).
    pub compute: bool,
    /// The test metric of the budget view.
    pub compute_metric: String,
    /// Which method each gathered evaluate stage's variants count toward in the budget view,
    /// e.g. `{cllm4rec-smollm2: cllm4rec}` (default: each stage is its own method), so that
    /// configurations a matrix cannot hold (another backbone and tokenizer) are chosen among
    /// with the rest of their method's.
    pub methods: BTreeMap<String, String>,
}

impl Default for AblateParams {
    fn default() -> Self {
        AblateParams {
            reference: None,
            axis: None,
            log_x: true,
            plots: true,
            curve_metric: "recall@20".into(),
            compute: false,
            compute_metric: "recall@20".into(),
            methods: BTreeMap::new(),
        }
    }
}

impl TypedParams for AblateParams {
    fn added() -> Vec<(&'static str, Json)> {
        vec![("methods", Json::Object(Map::new()))]
    }

    fn check(&self) -> Result<(), ParamError> {
        if !self.methods.is_empty() && !self.compute {
            return Err((
                "methods".into(),
                "`methods` groups variants for the budget view: it needs `compute: true`".into(),
            ));
        }
        Ok(())
    }
}

pub struct Ablate;

/// The file names of the outputs.
pub const TABLE_JSON: &str = "table.json";

impl StageKind for Ablate {
    fn name(&self) -> &'static str {
        "ablate"
    }

    fn version(&self) -> u32 {
        // 2: a run keeps its colour in every panel of the training curves; then the params
        // `compute` and `compute_metric` (with `compute: false`, version 2's outputs), and
        // `methods` (empty: as before)
        2
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<AblateParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<AblateParams>()
    }

    fn needs(&self) -> Needs {
        Needs::Slots(&[
            Slot {
                role: "variants",
                kinds: &["evaluate"],
                required: true,
                many: true,
            },
            Slot {
                role: "runs",
                kinds: &["pretrain", "finetune"],
                required: false,
                many: true,
            },
        ])
    }

    /// `methods` names evaluate stages this one gathers; with `compute: true`, no variant
    /// scores most-popular, which counts no FLOPs (a command stage's model is checked when
    /// the table is made: its model.json may count them).
    fn check_inputs(&self, inst: &Instance, instances: &[Instance]) -> Result<(), ParamError> {
        let p: &AblateParams = inst.params_as();
        let variants: Vec<_> = inst
            .inputs
            .iter()
            .filter(|i| i.role == Some("variants"))
            .collect();
        if let Some(stage) = p
            .methods
            .keys()
            .find(|s| !variants.iter().any(|v| v.stage == **s))
        {
            let names: Vec<&str> = variants.iter().map(|v| v.stage.as_str()).collect();
            return Err((
                "methods".into(),
                format!(
                    "`{stage}` is not an evaluate stage this ablate gathers ({})",
                    names.join(", ")
                ),
            ));
        }
        if p.compute {
            for e in variants
                .iter()
                .flat_map(|v| &v.instances)
                .map(|&j| &instances[j])
            {
                if let Some(m) = e.inputs.iter().find(|i| i.kind == "popular") {
                    return Err((
                        "compute".into(),
                        format!(
                            "variant `{}` has no compute: its model `{}` (most-popular) counts \
                             no FLOPs; leave it out of this ablate, or set `compute: false`",
                            e.label, m.stage
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &AblateParams = ctx.params();
        let fail = StageError::Failed;
        let inputs = &ctx.instance.inputs;
        let order: Vec<String> = inputs.iter().map(|i| i.stage.clone()).collect();
        let of = |role: &'static str| inputs.iter().filter(move |i| i.role == Some(role));
        let evaluations: Vec<&str> = of("variants").map(|i| i.stage.as_str()).collect();
        let trainings: Vec<(&str, &'static str)> =
            of("runs").map(|i| (i.stage.as_str(), i.kind)).collect();
        let gathered: Vec<&str> = inputs
            .iter()
            .filter(|i| i.gather)
            .map(|i| i.stage.as_str())
            .collect();
        let (variants, runs) =
            collect(ctx.inputs, &order, &gathered, &evaluations, &trainings).map_err(fail)?;
        let mut table =
            compare(&ctx.instance.stage_name, &variants, p.reference.as_deref()).map_err(fail)?;
        if p.compute {
            let col = table
                .metrics
                .iter()
                .position(|m| *m == p.compute_metric)
                .ok_or_else(|| {
                    fail(format!(
                        "`compute_metric`: the evaluations report no `{}` ({})",
                        p.compute_metric,
                        table.metrics.join(", ")
                    ))
                })?;
            let costed: Vec<Costed> = variants
                .iter()
                .zip(&table.rows)
                .map(|(v, r)| Costed {
                    method: p.methods.get(&v.stage).unwrap_or(&v.stage),
                    variant: &v.label,
                    instance: v.instance.clone(),
                    compute: v.compute.as_ref(),
                    test: r.cells[col].mean,
                })
                .collect();
            table.budget = Some(Budget::new(&p.compute_metric, &costed).map_err(fail)?);
        }
        let w = |name: &str, text: String| {
            std::fs::write(ctx.out.join(name), text)
                .map_err(|e| StageError::Failed(format!("cannot write {name}: {e}")))
        };
        w(
            TABLE_JSON,
            serde_json::to_string_pretty(&table).expect("plain data") + "\n",
        )?;
        w("table.csv", table.render(Format::Csv))?;
        w("table.md", table.render(Format::Markdown))?;
        if !p.plots {
            return Ok(());
        }
        // The sensitivity axis: named, or the only axis every variant has, if numeric.
        let axis = match p.axis.as_deref() {
            Some("none") => None,
            Some(a) => Some(a.to_owned()),
            None => {
                let first: Vec<&String> = variants
                    .first()
                    .map(|v| v.point.iter().map(|(k, _)| k).collect())
                    .unwrap_or_default();
                match first.as_slice() {
                    [a] if variants.iter().all(|v| {
                        v.point.len() == 1
                            && &v.point[0].0 == *a
                            && v.point[0].1.parse::<f64>().is_ok()
                    }) =>
                    {
                        Some((*a).clone())
                    }
                    _ => None,
                }
            }
        };
        if let Some(axis) = axis {
            let mut series = Vec::new();
            for (mi, m) in table.metrics.iter().enumerate() {
                let mut points = Vec::new();
                for v in &variants {
                    let Some(x) = v
                        .point
                        .iter()
                        .find(|(k, _)| *k == axis)
                        .and_then(|(_, x)| x.parse::<f64>().ok())
                    else {
                        continue;
                    };
                    if p.log_x && x <= 0.0 {
                        return Err(fail(format!(
                            "`log_x`: `{axis}` = {x} cannot be drawn on a log axis; set `log_x: false`"
                        )));
                    }
                    let col = v.metrics.iter().position(|n| n == m).unwrap_or(mi);
                    let values: Vec<f64> = v.users.values().map(|r| r[col]).collect();
                    let (mean, sem) = mean_sem(&values);
                    points.push((x, mean, sem));
                }
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                series.push(Series {
                    name: m.clone(),
                    points,
                });
            }
            if series.iter().all(|s| s.points.is_empty()) {
                return Err(fail(format!(
                    "`axis`: no variant has a numeric `{axis}`; variants: {}",
                    variants
                        .iter()
                        .map(|v| v.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            plot::sensitivity(ctx.out, "sensitivity", &axis, p.log_x, &series).map_err(fail)?;
        }
        plot::curves(ctx.out, "curves", &runs, &p.curve_metric).map_err(fail)?;
        if let Some(b) = &table.budget {
            plot::budget(ctx.out, "budget", b).map_err(fail)?;
        }
        Ok(())
    }
}
