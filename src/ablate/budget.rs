//! The budget view of an `ablate` stage (`compute: true`): what each variant's model cost to
//! train (model FLOPs, `model::flops`; CPU seconds, added by `table` from the cache's
//! records), and, per method, the configuration chosen on validation within each budget, with
//! its test metric. A method is the evaluate stage a variant came from (`cllm4rec[...]`,
//! `multi-vae[...]`); the selection criterion is the one finetuning keeps its epoch by:
//! Recall@20 + Recall@40 + NDCG@100 on the validation split, of each run's kept epoch.

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The validation metrics the criterion adds up: those finetuning and the baselines validate
/// with, whose sum is `UserMetrics::criterion` (src/eval/split.rs) there.
pub const CRITERION: [&str; 3] = ["recall@20", "recall@40", "ndcg@100"];

/// One variant: what it cost, how it did on validation and on test, and what validation
/// chooses among its method's variants that cost no more.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetRow {
    pub method: String,
    pub variant: String,
    /// The evaluate instance's label (`stage[point]`), by which `table` finds the training
    /// stages upstream of it.
    pub instance: String,
    /// Model FLOPs of training from the start, validation scoring included.
    pub flops: f64,
    /// The selection criterion on validation.
    pub valid: f64,
    /// The test metric (`Budget::metric`).
    pub test: f64,
    /// The variant of the same method with the best `valid` among those with at most this
    /// one's FLOPs (on a tie, the cheaper).
    pub chosen: String,
    pub chosen_test: f64,
    /// CPU seconds of the training stages upstream (their records'), where each was measured
    /// alone; filled in by `table`, never stored.
    #[serde(skip)]
    pub cpu_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Budget {
    /// The test metric reported and plotted.
    pub metric: String,
    pub rows: Vec<BudgetRow>,
}

/// One evaluated variant's inputs to the budget view.
pub struct Costed<'a> {
    pub method: &'a str,
    pub variant: &'a str,
    pub instance: String,
    /// The evaluate stage's compute.json.
    pub compute: Option<&'a Json>,
    pub test: f64,
}

/// The criterion from a compute.json's `valid` metrics.
fn criterion(valid: &Json) -> Option<f64> {
    CRITERION
        .iter()
        .map(|m| valid.get(m).and_then(Json::as_f64))
        .sum()
}

impl Budget {
    /// Rows in method order (first appearance), each method's by FLOPs. Every variant must
    /// carry its compute and validation metrics.
    pub fn new(metric: &str, variants: &[Costed]) -> Result<Budget, String> {
        let mut methods: Vec<&str> = Vec::new();
        let mut rows = Vec::new();
        for v in variants {
            let no = |what: &str| {
                format!(
                    "`compute`: variant `{}` has no {what} (its evaluate stage's compute.json): \
                     its model was not made by a stage that counts its FLOPs and keeps its \
                     validation metrics (pretrain alone, most-popular, a command stage)",
                    v.variant
                )
            };
            let c = v.compute.ok_or_else(|| no("compute"))?;
            let flops = c
                .get("flops")
                .and_then(Json::as_f64)
                .ok_or_else(|| no("`flops`"))?;
            let valid = c
                .get("valid")
                .and_then(criterion)
                .ok_or_else(|| no("validation metrics"))?;
            if !methods.contains(&v.method) {
                methods.push(v.method);
            }
            rows.push(BudgetRow {
                method: v.method.to_owned(),
                variant: v.variant.to_owned(),
                instance: v.instance.clone(),
                flops,
                valid,
                test: v.test,
                chosen: String::new(),
                chosen_test: f64::NAN,
                cpu_s: None,
            });
        }
        rows.sort_by(|a, b| {
            let m = |r: &BudgetRow| methods.iter().position(|m| *m == r.method);
            m(a).cmp(&m(b)).then(a.flops.total_cmp(&b.flops))
        });
        for k in 0..rows.len() {
            let best = (0..rows.len())
                .filter(|&j| rows[j].method == rows[k].method && rows[j].flops <= rows[k].flops)
                .fold(None::<usize>, |b, j| match b {
                    Some(b) if rows[b].valid >= rows[j].valid => Some(b),
                    _ => Some(j),
                })
                .expect("a row is within its own budget");
            rows[k].chosen = rows[best].variant.clone();
            rows[k].chosen_test = rows[best].test;
        }
        Ok(Budget {
            metric: metric.to_owned(),
            rows,
        })
    }

    /// The methods in order.
    pub fn methods(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r.method.as_str()) {
                out.push(&r.method);
            }
        }
        out
    }

    /// Each method's curve: (FLOPs, the test metric of the configuration chosen within them).
    pub fn curves(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        self.methods()
            .into_iter()
            .map(|m| {
                let pts = self
                    .rows
                    .iter()
                    .filter(|r| r.method == m)
                    .map(|r| (r.flops, r.chosen_test))
                    .collect();
                (m.to_owned(), pts)
            })
            .collect()
    }

    pub fn markdown(&self) -> String {
        let m = &self.metric;
        let cpu = self.rows.iter().any(|r| r.cpu_s.is_some());
        let mut out = format!(
            "\n### Compute, and the configuration chosen on validation within each budget\n\n\
             | method | variant | FLOPs |{} valid | {m} | chosen within its FLOPs | its {m} |\n\
             |---|---|---:|{}---:|---:|---|---:|\n",
            if cpu { " CPU s |" } else { "" },
            if cpu { "---:|" } else { "" },
        );
        for r in &self.rows {
            let _ = write!(out, "| {} | {} | {:.3e} |", r.method, r.variant, r.flops);
            if cpu {
                match r.cpu_s {
                    Some(s) => {
                        let _ = write!(out, " {s:.0} |");
                    }
                    None => out.push_str(" - |"),
                }
            }
            let _ = writeln!(
                out,
                " {:.4} | {:.4} | {} | {:.4} |",
                r.valid, r.test, r.chosen, r.chosen_test
            );
        }
        let _ = writeln!(
            out,
            "\nFLOPs: model FLOPs of training from the start (matrix products, forward and \
             backward, validation scoring included; src/model/flops.rs). valid: Recall@20 + \
             Recall@40 + NDCG@100 of the run's kept epoch on the validation split, the \
             criterion by which each method's configuration is chosen among those of at most \
             the row's FLOPs; {m} is on the test split.{}",
            if cpu {
                " CPU s: user + system seconds of the training stages, each measured while \
                 no other stage ran (`-`: one was not)."
            } else {
                ""
            }
        );
        out.push_str(&self.summary());
        out
    }

    /// Where the methods stand at their largest budgets; then the first method against each
    /// other: the gap between their chosen curves at every budget either ran, where their
    /// curves cross, and where the first method's would reach the other's best on a
    /// least-squares line through its curve against log10 FLOPs. A chosen curve holds from a
    /// method's cheapest run on, flat after its largest (a larger budget can still choose the
    /// cheaper configuration).
    pub fn summary(&self) -> String {
        let curves = self.curves();
        let mut out = String::from("\n");
        let metric = &self.metric;
        for (m, pts) in &curves {
            if let Some(&(f, v)) = pts.last() {
                let _ = writeln!(
                    out,
                    "- {m}: {metric} {v:.4} at its largest budget, {f:.3e} FLOPs."
                );
            }
        }
        let at =
            |pts: &[(f64, f64)], x: f64| pts.iter().take_while(|p| p.0 <= x).last().map(|p| p.1);
        let Some((a, pa)) = curves.first() else {
            return out;
        };
        for (b, pb) in curves.iter().skip(1) {
            let lo = pa[0].0.max(pb[0].0);
            let mut xs: Vec<f64> = pa
                .iter()
                .chain(pb.iter())
                .map(|p| p.0)
                .filter(|&x| x >= lo)
                .collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            let diffs: Vec<(f64, f64)> = xs
                .iter()
                .filter_map(|&x| Some((x, at(pa, x)? - at(pb, x)?)))
                .collect();
            let gaps: Vec<String> = diffs
                .iter()
                .map(|(x, d)| format!("{d:+.4} at {x:.3e}"))
                .collect();
            let _ = write!(
                out,
                "- {a} minus {b}, at every budget from {lo:.3e} FLOPs on: {}",
                gaps.join(", ")
            );
            let crossings: Vec<String> = diffs
                .windows(2)
                .filter(|w| (w[0].1 > 0.0) != (w[1].1 > 0.0))
                .map(|w| format!("{:.3e}", w[1].0))
                .collect();
            if crossings.is_empty() {
                let _ = writeln!(out, ". The curves do not cross.");
            } else {
                let _ = writeln!(out, ". They cross at {} FLOPs.", crossings.join(", "));
            }
            let (Some(&(_, best_a)), Some(&(_, best_b))) = (pa.last(), pb.last()) else {
                continue;
            };
            if best_a >= best_b {
                continue;
            }
            // y = c + s log10(x), least squares over the first method's budgets
            let n = pa.len() as f64;
            let lx: Vec<f64> = pa.iter().map(|p| p.0.log10()).collect();
            let (mx, my) = (
                lx.iter().sum::<f64>() / n,
                pa.iter().map(|p| p.1).sum::<f64>() / n,
            );
            let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
            let sxy: f64 = lx.iter().zip(pa).map(|(x, p)| (x - mx) * (p.1 - my)).sum();
            if pa.len() < 2 || sxx == 0.0 {
                continue;
            }
            let slope = sxy / sxx;
            if slope > 0.0 {
                let x = 10f64.powf(mx + (best_b - my) / slope);
                let _ = writeln!(
                    out,
                    "  Extrapolated: {a}'s {metric} rises {slope:.4} per tenfold FLOPs (a \
                     least-squares line through its {} budgets against log10 FLOPs); on that line \
                     it reaches {b}'s {best_b:.4} at {x:.1e} FLOPs.",
                    pa.len()
                );
            } else {
                let _ = writeln!(
                    out,
                    "  Extrapolated: {a}'s {metric} does not rise with compute over its {} \
                     budgets ({slope:+.4} per tenfold FLOPs on a least-squares line): no \
                     crossover with {b} on that trend.",
                    pa.len()
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn costed<'a>(method: &'a str, variant: &'a str, c: &'a Json, test: f64) -> Costed<'a> {
        Costed {
            method,
            variant,
            instance: format!("{method}[{variant}]"),
            compute: Some(c),
            test,
        }
    }

    fn c(flops: f64, r20: f64) -> Json {
        json!({"flops": flops, "valid": {"recall@20": r20, "recall@40": 0.0, "ndcg@100": 0.0}})
    }

    #[test]
    fn each_budget_takes_the_best_validation_that_fits() {
        let (a, b, c3, d) = (c(3e9, 0.30), c(1e9, 0.20), c(2e9, 0.10), c(5e9, 0.25));
        let e = c(2e9, 0.5);
        let v = [
            costed("cllm4rec", "x=3", &a, 0.31),
            costed("cllm4rec", "x=1", &b, 0.21),
            costed("cllm4rec", "x=2", &c3, 0.12),
            costed("cllm4rec", "x=5", &d, 0.40),
            costed("vae", "e=1", &e, 0.35),
        ];
        let t = Budget::new("recall@20", &v).unwrap();
        let got: Vec<(&str, &str, f64)> = t
            .rows
            .iter()
            .map(|r| (r.variant.as_str(), r.chosen.as_str(), r.chosen_test))
            .collect();
        // by FLOPs; x=2 is worse on validation than x=1, x=5 worse than x=3: not taken
        assert_eq!(
            got,
            [
                ("x=1", "x=1", 0.21),
                ("x=2", "x=1", 0.21),
                ("x=3", "x=3", 0.31),
                ("x=5", "x=3", 0.31),
                ("e=1", "e=1", 0.35)
            ]
        );
        let s = t.summary();
        assert!(
            s.contains("- cllm4rec: recall@20 0.3100 at its largest budget, 5.000e9 FLOPs."),
            "{s}"
        );
        // from 2e9 on (vae's only budget, flat after it): 0.21 - 0.35, 0.31 - 0.35, 0.31 - 0.35
        assert!(
            s.contains("- cllm4rec minus vae, at every budget from 2.000e9 FLOPs on: -0.1400 at 2.000e9, -0.0400 at 3.000e9, -0.0400 at 5.000e9. The curves do not cross."),
            "{s}"
        );
        // the line through (9, 0.21), (log10 2e9, 0.21), (log10 3e9, 0.31), (log10 5e9, 0.31)
        let lx = [9.0, 2e9f64.log10(), 3e9f64.log10(), 5e9f64.log10()];
        let ys = [0.21, 0.21, 0.31, 0.31];
        let (mx, my) = (lx.iter().sum::<f64>() / 4.0, ys.iter().sum::<f64>() / 4.0);
        let slope = lx
            .iter()
            .zip(&ys)
            .map(|(x, y)| (x - mx) * (y - my))
            .sum::<f64>()
            / lx.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
        let x = 10f64.powf(mx + (0.35 - my) / slope);
        assert!(
            s.contains(&format!("rises {slope:.4} per tenfold FLOPs")),
            "{s}"
        );
        assert!(
            s.contains(&format!("reaches vae's 0.3500 at {x:.1e} FLOPs")),
            "{s}"
        );
    }

    #[test]
    fn cpu_seconds_show_where_measured() {
        let (a, b) = (c(1e9, 0.2), c(2e9, 0.3));
        let v = [costed("m", "x=1", &a, 0.2), costed("m", "x=2", &b, 0.3)];
        let mut t = Budget::new("recall@20", &v).unwrap();
        assert!(!t.markdown().contains("CPU s"), "no record read: no column");
        t.rows[0].cpu_s = Some(12.4);
        let md = t.markdown();
        assert!(md.contains("| m | x=1 | 1.000e9 | 12 | 0.2000 |"), "{md}");
        assert!(md.contains("| m | x=2 | 2.000e9 | - | 0.3000 |"), "{md}");
    }

    #[test]
    fn a_variant_without_compute_is_named() {
        let none = json!({"flops": 1.0, "valid": null});
        let e = Budget::new(
            "recall@20",
            &[costed("popular", "most-popular", &none, 0.1)],
        )
        .unwrap_err();
        assert!(
            e.contains("`most-popular` has no validation metrics"),
            "{e}"
        );
    }
}
