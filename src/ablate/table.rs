//! The ablation table: mean metrics per variant, the change against a reference variant and
//! paired p-values, stored as table.json and rendered as Markdown, CSV or LaTeX.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::ablate::budget::Budget;

/// One variant's value of one metric.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Mean over the variant's users.
    pub mean: f64,
    /// Standard error of the mean over users (the per-user spread / sqrt(users)).
    pub sem: f64,
    /// (mean - reference mean) / reference mean; None for the reference itself or when the
    /// reference mean is 0.
    pub change: Option<f64>,
    /// Paired t-test p-value against the reference (users both evaluated); None for the
    /// reference, or when the test is undefined (all differences equal).
    pub p_t: Option<f64>,
    /// Wilcoxon signed-rank p-value against the reference.
    pub p_wilcoxon: Option<f64>,
    /// Users paired with the reference.
    pub paired: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub variant: String,
    pub users: usize,
    /// One cell per metric, in `Table::metrics` order.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Table {
    /// The stage that made it.
    pub stage: String,
    pub reference: String,
    pub metrics: Vec<String>,
    pub rows: Vec<Row>,
    /// With `compute: true`: each variant's compute and the configurations chosen on
    /// validation within each budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// Output formats of `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Latex,
}

/// A p-value with three decimals, or in scientific notation below 0.001.
fn p_text(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p < 1e-3 => format!("{p:.2e}"),
        Some(p) => format!("{p:.3}"),
    }
}

fn change_text(c: Option<f64>) -> String {
    match c {
        None => "-".into(),
        Some(c) => format!("{:+.1}%", 100.0 * c),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

impl Cell {
    /// The mean, change, p_t and p_W as the Markdown table and the HTML report print them.
    pub fn texts(&self) -> [String; 4] {
        [
            format!("{:.4}", self.mean),
            change_text(self.change),
            p_text(self.p_t),
            p_text(self.p_wilcoxon),
        ]
    }
}

impl Table {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Markdown => self.markdown(),
            Format::Csv => self.csv(),
            Format::Latex => self.latex(),
        }
    }

    /// Every number at full precision, one row per variant.
    pub fn csv(&self) -> String {
        let mut out = String::from("variant,users");
        for m in &self.metrics {
            let _ = write!(
                out,
                ",{m},{m} sem,{m} change,{m} p_t,{m} p_wilcoxon,{m} paired"
            );
        }
        out.push('\n');
        for r in &self.rows {
            let _ = write!(out, "{},{}", csv_field(&r.variant), r.users);
            for c in &r.cells {
                let _ = write!(
                    out,
                    ",{},{},{},{},{},{}",
                    c.mean,
                    c.sem,
                    opt(c.change),
                    opt(c.p_t),
                    opt(c.p_wilcoxon),
                    c.paired
                );
            }
            out.push('\n');
        }
        out
    }

    /// What the table's numbers are (printed under the Markdown table and the report's).
    pub fn header_note(&self) -> String {
        format!(
            "Mean over users; change relative to `{}`; p-values of the two-sided paired t-test (p_t) and Wilcoxon signed-rank test (p_W) across users against it.",
            self.reference
        )
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("| variant | users |");
        let mut rule = String::from("|---|---:|");
        for m in &self.metrics {
            let _ = write!(out, " {m} | change | p_t | p_W |");
            rule.push_str("---:|---:|---:|---:|");
        }
        out.push('\n');
        out.push_str(&rule);
        out.push('\n');
        for r in &self.rows {
            let _ = write!(out, "| {} | {} |", md_escape(&r.variant), r.users);
            for c in &r.cells {
                let [mean, change, p_t, p_w] = c.texts();
                let _ = write!(out, " {mean} | {change} | {p_t} | {p_w} |");
            }
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.header_note());
        out.push('\n');
        if let Some(b) = &self.budget {
            out.push_str(&b.markdown());
        }
        out
    }

    pub fn latex(&self) -> String {
        let cols = "r".repeat(4 * self.metrics.len());
        let mut out = format!("\\begin{{tabular}}{{lr{cols}}}\n\\toprule\nvariant & users");
        for m in &self.metrics {
            let _ = write!(out, " & {} & change & $p_t$ & $p_W$", latex_escape(m));
        }
        out.push_str(" \\\\\n\\midrule\n");
        for r in &self.rows {
            let _ = write!(out, "{} & {}", latex_escape(&r.variant), r.users);
            for c in &r.cells {
                let [mean, change, p_t, p_w] = c.texts();
                let _ = write!(out, " & {mean} & {} & {p_t} & {p_w}", latex_escape(&change));
            }
            out.push_str(" \\\\\n");
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        match ch {
            '%' | '_' | '&' | '#' | '$' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '\\' => out.push_str("\\textbackslash{}"),
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let cell = |mean, change, p| Cell {
            mean,
            sem: 0.01,
            change,
            p_t: p,
            p_wilcoxon: p.map(|p: f64| p / 2.0),
            paired: 10,
        };
        Table {
            stage: "ablate".into(),
            reference: "lambda_c=1".into(),
            metrics: vec!["recall@20".into()],
            rows: vec![
                Row {
                    variant: "lambda_c=1".into(),
                    users: 10,
                    cells: vec![cell(0.2, None, None)],
                },
                Row {
                    variant: "lambda_c=10".into(),
                    users: 10,
                    cells: vec![cell(0.25, Some(0.25), Some(0.0004))],
                },
            ],
            budget: None,
        }
    }

    #[test]
    fn markdown_rows() {
        let md = table().markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| variant | users | recall@20 | change | p_t | p_W |"
        );
        assert_eq!(lines[2], "| lambda_c=1 | 10 | 0.2000 | - | - | - |");
        assert_eq!(
            lines[3],
            "| lambda_c=10 | 10 | 0.2500 | +25.0% | 4.00e-4 | 2.00e-4 |"
        );
    }

    #[test]
    fn csv_and_latex() {
        let t = table();
        let csv = t.csv();
        assert!(csv.starts_with("variant,users,recall@20,recall@20 sem,"));
        assert!(csv.contains("\nlambda_c=10,10,0.25,0.01,0.25,0.0004,0.0002,10\n"));
        let tex = t.latex();
        assert!(tex.contains("lambda\\_c=10 & 10 & 0.2500 & +25.0\\% & 4.00e-4 & 2.00e-4 \\\\"));
    }

    #[test]
    fn json_round_trip() {
        let t = table();
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Table>(&s).unwrap(), t);
    }
}
