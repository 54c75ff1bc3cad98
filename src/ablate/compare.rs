//! From variants to the table: means, standard errors, change against the reference and
//! paired tests over the users both evaluated.

use crate::ablate::gather::Variant;
use crate::ablate::stats::{paired_t, wilcoxon};
use crate::ablate::table::{Cell, Row, Table};

/// Mean and standard error of the mean (sample standard deviation / sqrt(n)).
pub fn mean_sem(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

fn finite(p: f64) -> Option<f64> {
    p.is_finite().then_some(p)
}

/// The table of `variants` against the one labelled `reference` (default: the first).
pub fn compare(
    stage: &str,
    variants: &[Variant],
    reference: Option<&str>,
) -> Result<Table, String> {
    let first = variants
        .first()
        .ok_or("an `ablate` stage needs at least one evaluation among its inputs (a stage that writes per_user.csv)")?;
    let labels: Vec<&str> = variants.iter().map(|v| v.label.as_str()).collect();
    let r = match reference {
        None => 0,
        Some(name) => labels.iter().position(|l| *l == name).ok_or_else(|| {
            format!(
                "`reference`: no variant `{name}`; {}",
                crate::diag::suggest(name, &labels, "variants")
            )
        })?,
    };
    let metrics = first.metrics.clone();
    // Column of each metric in each variant.
    let mut cols: Vec<Vec<usize>> = Vec::new();
    for v in variants {
        let c = metrics
            .iter()
            .map(|m| v.metrics.iter().position(|x| x == m))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                format!(
                    "variants `{}` and `{}` report different metrics ({} vs {})",
                    first.label,
                    v.label,
                    first.metrics.join(", "),
                    v.metrics.join(", ")
                )
            })?;
        cols.push(c);
    }
    let refv = &variants[r];
    let mut rows = Vec::new();
    for (vi, v) in variants.iter().enumerate() {
        let mut cells = Vec::new();
        for (mi, _) in metrics.iter().enumerate() {
            let col = cols[vi][mi];
            let rcol = cols[r][mi];
            let values: Vec<f64> = v.users.values().map(|x| x[col]).collect();
            let (mean, sem) = mean_sem(&values);
            let (x, y): (Vec<f64>, Vec<f64>) = v
                .users
                .iter()
                .filter_map(|(u, x)| refv.users.get(u).map(|y| (x[col], y[rcol])))
                .unzip();
            let (rmean, _) = mean_sem(&refv.users.values().map(|x| x[rcol]).collect::<Vec<_>>());
            let is_ref = vi == r;
            cells.push(Cell {
                mean,
                sem,
                change: (!is_ref && rmean != 0.0)
                    .then(|| (mean - rmean) / rmean)
                    .and_then(finite),
                p_t: (!is_ref).then(|| paired_t(&x, &y).p).and_then(finite),
                p_wilcoxon: (!is_ref).then(|| wilcoxon(&x, &y).p).and_then(finite),
                paired: x.len(),
            });
        }
        rows.push(Row {
            variant: v.label.clone(),
            users: v.users.len(),
            cells,
        });
    }
    Ok(Table {
        stage: stage.to_owned(),
        reference: refv.label.clone(),
        metrics,
        rows,
        budget: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn variant(label: &str, values: &[(u64, f64)]) -> Variant {
        Variant {
            label: label.into(),
            point: Vec::new(),
            metrics: vec!["recall@20".into()],
            users: values
                .iter()
                .map(|&(u, v)| (u, vec![v]))
                .collect::<BTreeMap<_, _>>(),
            stage: "evaluate".into(),
            instance: format!("evaluate[{label}]"),
            compute: None,
        }
    }

    #[test]
    fn pairs_by_user_and_reports_change() {
        // Reference on users 0..4; the variant also has user 9, which is not paired.
        let a = variant("a", &[(0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)]);
        let b = variant("b", &[(0, 0.2), (1, 0.2), (2, 0.5), (3, 0.5), (9, 1.0)]);
        let t = compare("ablate", &[a, b], Some("a")).unwrap();
        assert_eq!(t.reference, "a");
        let (ra, rb) = (&t.rows[0].cells[0], &t.rows[1].cells[0]);
        assert!(ra.change.is_none() && ra.p_t.is_none() && ra.paired == 4);
        assert_eq!(rb.paired, 4);
        assert!((rb.mean - 0.48).abs() < 1e-12);
        assert!((rb.change.unwrap() - (0.48 - 0.25) / 0.25).abs() < 1e-12);
        // d = [0.1, 0, 0.2, 0.1] (pairs by user; user 9 left out): t = 0.1 / (0.08165 / 2).
        let d = [0.2 - 0.1, 0.0, 0.5 - 0.3, 0.5 - 0.4];
        let p = crate::ablate::stats::paired_t(&d, &[0.0; 4]).p;
        assert!((rb.p_t.unwrap() - p).abs() < 1e-15);
        // mean_sem: sample sd of [0.1, 0.2, 0.3, 0.4] is 0.129099..., / 2.
        assert!((ra.sem - 0.12909944487358055 / 2.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_reference_is_an_error() {
        let a = variant("lambda_c=1", &[(0, 0.1)]);
        let e = compare("ablate", &[a], Some("lambda_c=1.0")).unwrap_err();
        assert!(e.contains("no variant `lambda_c=1.0`"), "{e}");
        assert!(compare("ablate", &[], None).is_err());
    }
}
