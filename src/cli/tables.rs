//! Text output of the commands: aligned tables, graphs, log tails.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value as Json;

use crate::cache::record::Hit;
use crate::cache::store::Store;
use crate::exec::plan::PlanRow;
use crate::exec::scheduler::{Status, Summary};
use crate::pipeline::Pipeline;

/// Left-aligned columns separated by two spaces.
fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Written in place (a sweep's run table has a row per instance: 10^5 at times).
    let line: usize = widths.iter().sum::<usize>() + 2 * cols + 1;
    let mut out = String::with_capacity(rows.len() * line);
    for r in rows {
        let start = out.len();
        for (c, s) in r.iter().enumerate() {
            if c > 0 {
                out.push_str("  ");
            }
            out.push_str(s);
            let pad = widths[c].saturating_sub(s.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    }
    out
}

fn short(h: &str) -> String {
    match h.get(..12) {
        Some(s) => s.to_owned(),
        None => h.chars().take(12).collect(),
    }
}

pub fn run_table(p: &Pipeline, s: &Summary) -> String {
    let mut rows = vec![vec![
        "stage".to_owned(),
        "status".into(),
        "output".into(),
        "time".into(),
    ]];
    for (i, inst) in p.instances.iter().enumerate() {
        let (st, out, time) = match (&s.status[i], &s.records[i]) {
            (Status::Ran, Some(r)) => ("ran", short(&r.output), format!("{:.2}s", r.duration_s)),
            (Status::Cached, Some(r)) => ("cached", short(&r.output), String::new()),
            (Status::Failed(_), _) => ("FAILED", String::new(), String::new()),
            _ => ("skipped", String::new(), String::new()),
        };
        rows.push(vec![inst.label.clone(), st.into(), out, time]);
    }
    let count = |f: fn(&Status) -> bool| s.status.iter().filter(|x| f(x)).count();
    let mut out = render(&rows);
    let _ = writeln!(
        out,
        "{} instances: {} ran, {} cached, {} failed, {} skipped",
        s.status.len(),
        count(|x| *x == Status::Ran),
        count(|x| *x == Status::Cached),
        count(|x| matches!(x, Status::Failed(_))),
        count(|x| *x == Status::Skipped)
    );
    out
}

/// What `run --progress json` says last: the counts of `run_table`, and per instance its
/// status, output and metrics.
pub fn run_json(p: &Pipeline, s: &Summary) -> Json {
    let count = |f: fn(&Status) -> bool| s.status.iter().filter(|x| f(x)).count();
    let instances: Vec<Json> = p
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let status = match &s.status[i] {
                Status::Ran => "ran",
                Status::Cached => "cached",
                Status::Failed(_) => "failed",
                Status::Skipped => "skipped",
            };
            let rec = s.records[i].as_ref();
            serde_json::json!({
                "instance": inst.label,
                "status": status,
                "output": rec.map(|r| r.output.clone()),
                "seconds": rec.map(|r| r.duration_s),
                "metrics": rec.and_then(|r| r.metrics.clone()),
            })
        })
        .collect();
    serde_json::json!({
        "pipeline": p.name,
        "instances": s.status.len(),
        "ran": count(|x| *x == Status::Ran),
        "cached": count(|x| *x == Status::Cached),
        "failed": count(|x| matches!(x, Status::Failed(_))),
        "skipped": count(|x| *x == Status::Skipped),
        "error": s.error.as_ref().map(|e| e.to_string()),
        "results": instances,
    })
}

/// The numeric top-level values of every `metrics.json`, one row per instance.
pub fn metrics_table(p: &Pipeline, records: &[Option<Hit>]) -> String {
    let with: Vec<(&str, &serde_json::Map<String, Json>)> = p
        .instances
        .iter()
        .zip(records)
        .filter_map(|(i, r)| {
            r.as_ref()?
                .metrics
                .as_ref()?
                .as_object()
                .map(|m| (i.label.as_str(), m))
        })
        .collect();
    let names: BTreeSet<&String> = crate::report::metric_names(with.iter().map(|(_, m)| *m));
    if names.is_empty() {
        return String::new();
    }
    let mut rows = vec![std::iter::once("metrics".to_owned())
        .chain(names.iter().map(|n| n.to_string()))
        .collect::<Vec<_>>()];
    for (label, m) in with {
        let mut row = vec![label.to_owned()];
        for n in &names {
            row.push(m.get(*n).map(crate::report::fmt_metric).unwrap_or_default());
        }
        rows.push(row);
    }
    format!("\n{}", render(&rows))
}

pub fn plan_table(rows: &[PlanRow]) -> String {
    let mut t = vec![vec!["stage".to_owned(), "key".into(), "plan".into()]];
    for r in rows {
        let key = r.key.as_deref().map(short).unwrap_or_else(|| "?".into());
        let what = if r.hit {
            "hit".to_owned()
        } else {
            format!("miss: {}", r.reasons.join("; "))
        };
        t.push(vec![r.label.clone(), key, what]);
    }
    let hits = rows.iter().filter(|r| r.hit).count();
    let mut out = render(&t);
    let _ = writeln!(
        out,
        "{} instances: {hits} cached, {} to run",
        rows.len(),
        rows.len() - hits
    );
    out
}

pub fn status_table(p: &Pipeline, store: &Store, rows: &[PlanRow]) -> String {
    let mut t = vec![vec![
        "stage".to_owned(),
        "cached".into(),
        "output".into(),
        "finished".into(),
    ]];
    for (inst, r) in p.instances.iter().zip(rows) {
        let rec = r
            .key
            .as_deref()
            .filter(|_| r.hit)
            .and_then(|k| store.lookup(k));
        match rec {
            Some(rec) => t.push(vec![
                inst.label.clone(),
                "yes".into(),
                short(&rec.output),
                rec.ended,
            ]),
            None => t.push(vec![
                inst.label.clone(),
                "no".into(),
                String::new(),
                String::new(),
            ]),
        }
    }
    render(&t)
}

fn node_id(i: usize) -> String {
    format!("n{i}")
}

pub fn graph_dot(p: &Pipeline) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n",
        p.name.replace('"', "'")
    );
    for (i, inst) in p.instances.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {} [label=\"{}\\n({})\"];",
            node_id(i),
            inst.label.replace('"', "'"),
            inst.kind
        );
    }
    for (i, inst) in p.instances.iter().enumerate() {
        for input in &inst.inputs {
            for &j in &input.instances {
                let _ = writeln!(out, "  {} -> {};", node_id(j), node_id(i));
            }
        }
    }
    out.push_str("}\n");
    out
}

pub fn graph_mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, inst) in p.instances.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}[\"{}\"]",
            node_id(i),
            inst.label.replace('"', "'")
        );
    }
    for (i, inst) in p.instances.iter().enumerate() {
        for input in &inst.inputs {
            for &j in &input.instances {
                let _ = writeln!(out, "  {} --> {}", node_id(j), node_id(i));
            }
        }
    }
    out
}

/// The last `n` lines of a log, indented, for a failure message.
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::from("  (the log is empty)\n");
    }
    let start = lines.len().saturating_sub(n);
    let mut out = format!("  last {} line(s) of the log:\n", lines.len() - start);
    for l in &lines[start..] {
        let _ = writeln!(out, "  | {l}");
    }
    out
}
