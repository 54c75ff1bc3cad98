//! The ablate stage's plots, each as SVG and PNG: the sensitivity of every metric to a swept
//! parameter (error bars: one standard error of the mean over users) and the training curves
//! of each run. Text is drawn with the embedded DejaVu Sans (assets/fonts), so the PNGs look
//! the same on any machine and need no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value as Json;

use crate::ablate::budget::Budget;
use crate::ablate::gather::Run;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const WIDTH: u32 = 900;
const HEIGHT: u32 = 600;

fn register_font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| {
        ok = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded font cannot be read".into())
    }
}

fn color(i: usize) -> RGBColor {
    // Colour-blind-safe (Okabe-Ito), then the palette.
    const C: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    if i < C.len() {
        C[i]
    } else {
        let c = Palette99::pick(i).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

/// One metric's curve: (x, mean, standard error) per point.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// (label, colour index, (x, y) points).
type CurveSeries = (String, usize, Vec<(f64, f64)>);

/// A line chart of named (x, y) series, for the training curves.
struct Panel {
    title: String,
    x_desc: String,
    y_desc: String,
    series: Vec<CurveSeries>,
    /// Where the legend goes: upper right for losses, lower right for rising metrics.
    legend: SeriesLabelPosition,
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw the plot: {e:?}")
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
    (lo - 0.08 * span, hi + 0.08 * span)
}

fn draw_sensitivity<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    axis: &str,
    log_x: bool,
    series: &[Series],
) -> DrawResult {
    root.fill(&WHITE).map_err(err)?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (xmin, xmax) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]));
    let (ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let (ymin, ymax) = padded(ymin.min(0.0), ymax);
    let mut b = ChartBuilder::on(root);
    b.caption(
        format!("Sensitivity to {axis} (mean over users, error bars: ±1 standard error)"),
        ("sans-serif", 22),
    )
    .margin(20)
    .x_label_area_size(50)
    .y_label_area_size(70);
    let caption = format!("{axis}{}", if log_x { " (log scale)" } else { "" });
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(caption.as_str())
                .y_desc("metric value")
                .axis_desc_style(("sans-serif", 18))
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            for (i, s) in series.iter().enumerate() {
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().map(|p| (p.0, p.1)),
                        c.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(s.points.iter().map(|p| {
                        ErrorBar::new_vertical(p.0, p.1 - p.2, p.1, p.1 + p.2, c.filled(), 8)
                    }))
                    .map_err(err)?;
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|p| Circle::new((p.0, p.1), 4, c.filled())),
                    )
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_x {
        let chart = b
            .build_cartesian_2d((xmin / 2.0..xmax * 2.0).log_scale(), ymin..ymax)
            .map_err(err)?;
        body!(chart);
    } else {
        let (lo, hi) = padded(xmin, xmax);
        let chart = b.build_cartesian_2d(lo..hi, ymin..ymax).map_err(err)?;
        body!(chart);
    }
    root.present().map_err(err)
}

fn draw_panels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, panels: &[Panel]) -> DrawResult {
    root.fill(&WHITE).map_err(err)?;
    let cols = if panels.len() > 1 { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols);
    let areas = root.split_evenly((rows, cols));
    for (area, p) in areas.iter().zip(panels) {
        let xs = p.series.iter().flat_map(|s| s.2.iter().map(|q| q.0));
        let (xmin, xmax) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        let ys = p.series.iter().flat_map(|s| s.2.iter().map(|q| q.1));
        let (ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        let (xlo, xhi) = padded(xmin, xmax);
        let (ylo, yhi) = padded(ymin, ymax);
        let mut chart = ChartBuilder::on(area)
            .caption(p.title.as_str(), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(60)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(err)?;
        // Epochs are whole numbers: label only those ticks.
        let whole = |x: &f64| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round())
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_label_formatter(&whole)
            .x_desc(p.x_desc.as_str())
            .y_desc(p.y_desc.as_str())
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (name, i, pts) in &p.series {
            let c = color(*i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&q| Circle::new(q, 3, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(p.legend.clone())
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// The sensitivity plot of `series` against `axis`.
pub fn sensitivity(
    dir: &Path,
    stem: &str,
    axis: &str,
    log_x: bool,
    series: &[Series],
) -> DrawResult {
    register_font()?;
    if series.iter().all(|s| s.points.is_empty()) {
        return Ok(());
    }
    let svg = dir.join(format!("{stem}.svg"));
    draw_sensitivity(
        &SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area(),
        axis,
        log_x,
        series,
    )?;
    let png = dir.join(format!("{stem}.png"));
    let area = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
    draw_sensitivity(&area, axis, log_x, series)
}

fn num(v: &Json) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// The panels of the training curves: pretraining loss per phase, finetuning loss and
/// validation metric per epoch; a line per run.
fn panels(runs: &[Run], valid_metric: &str) -> Vec<Panel> {
    let mut collab = Vec::new();
    let mut content = Vec::new();
    let mut ft_loss = Vec::new();
    let mut ft_valid = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        // The colour: the run's position among the runs of its kind, so that a run keeps
        // its colour in both panels of its kind.
        let i = runs[..k].iter().filter(|o| o.stage == r.stage).count();
        let Some(epochs) = r.history.as_array() else {
            continue;
        };
        if r.stage == "pretrain" {
            for (phase, out) in [("collab", &mut collab), ("content", &mut content)] {
                let pts: Vec<(f64, f64)> = epochs
                    .iter()
                    .filter(|e| e["phase"] == phase)
                    .filter_map(|e| Some((num(&e["epoch"])?, num(&e["loss"])?)))
                    .collect();
                if !pts.is_empty() {
                    out.push((r.label.clone(), i, pts));
                }
            }
        } else {
            let loss: Vec<(f64, f64)> = epochs
                .iter()
                .filter_map(|e| Some((num(&e["epoch"])?, num(&e["train"]["loss"])?)))
                .collect();
            let valid: Vec<(f64, f64)> = epochs
                .iter()
                .filter_map(|e| Some((num(&e["epoch"])?, num(&e["valid"][valid_metric])?)))
                .collect();
            if !loss.is_empty() {
                ft_loss.push((r.label.clone(), i, loss));
            }
            if !valid.is_empty() {
                ft_valid.push((r.label.clone(), i, valid));
            }
        }
    }
    let panel = |title: &str, y: &str, series| Panel {
        title: title.into(),
        x_desc: "epoch".into(),
        y_desc: y.into(),
        series,
        legend: SeriesLabelPosition::UpperRight,
    };
    [
        panel(
            "Pretraining: collaborative LM",
            "loss per prediction",
            collab,
        ),
        panel("Pretraining: content LM", "loss per prediction", content),
        panel("Finetuning (RecLLM)", "training loss", ft_loss),
        Panel {
            legend: SeriesLabelPosition::LowerRight,
            ..panel(
                &format!("Finetuning: validation {valid_metric}"),
                valid_metric,
                ft_valid,
            )
        },
    ]
    .into_iter()
    .filter(|p| !p.series.is_empty())
    .collect()
}

/// The training curves of `runs`; nothing when no run has a history to draw.
pub fn curves(dir: &Path, stem: &str, runs: &[Run], valid_metric: &str) -> DrawResult {
    register_font()?;
    let ps = panels(runs, valid_metric);
    if ps.is_empty() {
        return Ok(());
    }
    let size = curves_size(&ps);
    let svg = dir.join(format!("{stem}.svg"));
    draw_panels(&SVGBackend::new(&svg, size).into_drawing_area(), &ps)?;
    let png = dir.join(format!("{stem}.png"));
    let area = BitMapBackend::new(&png, size).into_drawing_area();
    draw_panels(&area, &ps)
}

fn curves_size(panels: &[Panel]) -> (u32, u32) {
    (1200, if panels.len() > 2 { 900 } else { 450 })
}

/// The training curves of `runs` as SVG text (the same drawing as `curves`' SVG file);
/// None when no run has a history to draw.
pub fn curves_svg(runs: &[Run], valid_metric: &str) -> Result<Option<String>, String> {
    register_font()?;
    let ps = panels(runs, valid_metric);
    if ps.is_empty() {
        return Ok(None);
    }
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, curves_size(&ps)).into_drawing_area();
        draw_panels(&area, &ps)?;
    }
    Ok(Some(svg))
}

fn draw_budget<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, b: &Budget) -> DrawResult {
    root.fill(&WHITE).map_err(err)?;
    let xs = b.rows.iter().map(|r| r.flops);
    let (xmin, xmax) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, c), x| {
        (a.min(x), c.max(x))
    });
    let ys = b.rows.iter().flat_map(|r| [r.test, r.chosen_test]);
    let (ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, c), y| {
        (a.min(y), c.max(y))
    });
    let (ylo, yhi) = padded(ymin.min(0.0), ymax);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Test {} against training compute (line: chosen on validation; dots: every run)",
                b.metric
            ),
            ("sans-serif", 19),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((xmin / 1.5..xmax * 1.5).log_scale(), ylo..yhi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("model FLOPs of training (log scale)")
        .y_desc(format!("test {}", b.metric))
        .x_label_formatter(&|x: &f64| format!("{x:.0e}"))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, (method, pts)) in b.curves().iter().enumerate() {
        let c = color(i);
        // a step curve: the chosen configuration holds until a better one fits
        let mut steps = Vec::new();
        for (k, &(x, y)) in pts.iter().enumerate() {
            if k > 0 {
                steps.push((x, pts[k - 1].1));
            }
            steps.push((x, y));
        }
        chart
            .draw_series(LineSeries::new(steps, c.stroke_width(2)))
            .map_err(err)?
            .label(method.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2)));
        chart
            .draw_series(
                b.rows
                    .iter()
                    .filter(|r| &r.method == method)
                    .map(|r| Circle::new((r.flops, r.test), 3, c.mix(0.45).filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// The budget plot: each method's test metric against training FLOPs, as chosen on validation
/// within each budget, over every run's own point.
pub fn budget(dir: &Path, stem: &str, b: &Budget) -> DrawResult {
    register_font()?;
    if b.rows.is_empty() {
        return Ok(());
    }
    let svg = dir.join(format!("{stem}.svg"));
    draw_budget(
        &SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area(),
        b,
    )?;
    let png = dir.join(format!("{stem}.png"));
    let area = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
    draw_budget(&area, b)
}
