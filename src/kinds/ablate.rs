//! The `ablate` kind: gathers evaluations (every matrix point of a gathered `evaluate[*]`, or
//! named evaluate stages) into one table with the change against a reference variant and
//! paired significance tests across users; plots the sensitivity to a swept axis and the
//! training curves of the pretrain/finetune runs among its inputs.

use serde::Deserialize;

use crate::ablate::compare::{compare, mean_sem};
use crate::ablate::gather::collect;
use crate::ablate::plot::{self, Series};
use crate::ablate::table::Format;
use crate::kinds::{params_of, StageContext, StageError, StageKind};
use crate::pipeline::Instance;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblateParams {
    /// The variant the others are compared with (a matrix point such as `lambda_c=1`, or a
    /// stage name); default: the first.
    #[serde(default)]
    pub reference: Option<String>,
    /// The matrix axis of the sensitivity plot; default: the only axis of the variants, if
    /// its values are numbers. `none`: no sensitivity plot.
    #[serde(default)]
    pub axis: Option<String>,
    /// A logarithmic x axis for the sensitivity plot.
    #[serde(default = "yes")]
    pub log_x: bool,
    /// Draw the plots (SVG and PNG).
    #[serde(default = "yes")]
    pub plots: bool,
    /// The validation metric of the finetuning curves.
    #[serde(default = "recall20")]
    pub curve_metric: String,
}

fn yes() -> bool {
    true
}
fn recall20() -> String {
    "recall@20".into()
}

pub struct Ablate;

/// The file names of the outputs.
pub const TABLE_JSON: &str = "table.json";

impl StageKind for Ablate {
    fn name(&self) -> &'static str {
        "ablate"
    }

    fn version(&self) -> u32 {
        // 2: a run keeps its colour in every panel of the training curves.
        2
    }

    fn check_instance(&self, inst: &Instance) -> Result<(), (String, String)> {
        let _: AblateParams = params_of(inst)?;
        Ok(())
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: AblateParams = params_of(ctx.instance).map_err(|(_, m)| StageError::Failed(m))?;
        let fail = StageError::Failed;
        let order: Vec<String> = ctx
            .instance
            .inputs
            .iter()
            .map(|i| i.stage.clone())
            .collect();
        let (variants, runs) = collect(ctx.inputs, &order).map_err(fail)?;
        let table =
            compare(&ctx.instance.stage_name, &variants, p.reference.as_deref()).map_err(fail)?;
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
        Ok(())
    }
}
