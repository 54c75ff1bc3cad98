//! Paired significance tests across users, as Elliot reports them: the paired t-test and the
//! Wilcoxon signed-rank test, both two-sided. The reference values in the tests come from
//! scipy 1.x (`scipy.stats.ttest_rel`, `scipy.stats.wilcoxon(..., method="approx")`).

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// A test's statistic and two-sided p-value. `p` is NaN when the test is undefined (no
/// differences, or all differences equal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    pub statistic: f64,
    pub p: f64,
}

const UNDEFINED: TestResult = TestResult {
    statistic: f64::NAN,
    p: f64::NAN,
};

/// The paired t-test of `x` against `y` (same length, paired by position): t = mean(d) /
/// (sd(d) / sqrt(n)) with d = x - y and sd with n - 1 degrees of freedom; p = 2 P(T > |t|)
/// for Student's t with n - 1 degrees of freedom (`scipy.stats.ttest_rel`).
pub fn paired_t(x: &[f64], y: &[f64]) -> TestResult {
    assert_eq!(x.len(), y.len(), "paired samples");
    let n = x.len();
    if n < 2 {
        return UNDEFINED;
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    if var == 0.0 || !var.is_finite() {
        return UNDEFINED;
    }
    let t = mean / (var / n as f64).sqrt();
    let Ok(dist) = StudentsT::new(0.0, 1.0, (n - 1) as f64) else {
        return UNDEFINED;
    };
    TestResult {
        statistic: t,
        p: (2.0 * dist.sf(t.abs())).min(1.0),
    }
}

/// The Wilcoxon signed-rank test of `x` against `y`: zero differences are dropped
/// (`zero_method="wilcox"`), the absolute differences ranked with ties given their average
/// rank, and the sum of the positive ranks R+ compared with its mean n(n+1)/4 under the normal
/// approximation, its variance n(n+1)(2n+1)/24 reduced by sum(t^3 - t)/48 over tied groups,
/// without continuity correction (scipy's defaults `correction=False`; `method="approx"`).
/// The statistic is min(R+, R-), as scipy reports it.
pub fn wilcoxon(x: &[f64], y: &[f64]) -> TestResult {
    assert_eq!(x.len(), y.len(), "paired samples");
    let mut d: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(a, b)| a - b)
        .filter(|v| *v != 0.0)
        .collect();
    let n = d.len();
    if n == 0 {
        return UNDEFINED;
    }
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let (mut r_plus, mut r_minus, mut ties) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && d[j + 1].abs() == d[i].abs() {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let rank = (i + j + 2) as f64 / 2.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        for v in &d[i..=j] {
            if *v > 0.0 {
                r_plus += rank;
            } else {
                r_minus += rank;
            }
        }
        i = j + 1;
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - ties / 48.0;
    if var <= 0.0 {
        return UNDEFINED;
    }
    let z = (r_plus - mean) / var.sqrt();
    let normal = Normal::standard();
    TestResult {
        statistic: f64::min(r_plus, r_minus),
        p: (2.0 * normal.sf(z.abs())).min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    // Reference values: scipy (see REFERENCE below), computed once.
    include!("stats_reference.rs");

    #[test]
    fn paired_t_matches_scipy() {
        for (name, x, y, t, p, _, _) in REFERENCE {
            let r = paired_t(x, y);
            assert!(
                close(r.statistic, *t, 1e-9),
                "{name}: t {} vs {t}",
                r.statistic
            );
            assert!(close(r.p, *p, 1e-6), "{name}: p {} vs {p}", r.p);
        }
    }

    #[test]
    fn wilcoxon_matches_scipy() {
        for (name, x, y, _, _, w, p) in REFERENCE {
            let r = wilcoxon(x, y);
            assert!(
                close(r.statistic, *w, 1e-12),
                "{name}: W {} vs {w}",
                r.statistic
            );
            assert!(close(r.p, *p, 1e-6), "{name}: p {} vs {p}", r.p);
        }
    }

    #[test]
    fn undefined_tests_are_nan() {
        let x = [0.1, 0.2, 0.3];
        assert!(paired_t(&x, &x).p.is_nan());
        assert!(wilcoxon(&x, &x).p.is_nan());
        assert!(paired_t(&[1.0], &[0.0]).p.is_nan());
    }
}
