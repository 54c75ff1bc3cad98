//! `table`: the metric tables of a pipeline's `ablate` stages, read from the cache without
//! running anything; `--check FILE` compares them with a committed file. Also the tables and
//! plots printed at the end of `run`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::ablate::table::{Format, Table};
use crate::cache::record::Hit;
use crate::cache::store::Store;
use crate::cli::CliError;
use crate::exec::plan;
use crate::kinds::ablate::TABLE_JSON;
use crate::pipeline::Pipeline;

fn read_table(dir: &Path) -> Result<Table, String> {
    let path = dir.join(TABLE_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The tables of `tables` (label, table) in one text: one table as it is, several each
/// under a line naming its stage instance.
fn join(tables: &[(String, Table)], format: Format) -> String {
    let mut out = String::new();
    for (k, (label, t)) in tables.iter().enumerate() {
        if tables.len() > 1 {
            if k > 0 {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "{}",
                match format {
                    Format::Markdown => format!("### {label}\n"),
                    Format::Csv => format!("# {label}"),
                    Format::Latex => format!("% {label}"),
                }
            );
        }
        out.push_str(&t.render(format));
    }
    out
}

/// The stage kinds whose CPU time a budget row counts: those that train a model.
const TRAINING: [&str; 4] = ["pretrain", "finetune", "multivae", "lightgcn"];

/// The CPU seconds of the training stages upstream of the instance labelled `label`, from
/// their records; None if one of them has none (it ran beside another stage) or the label
/// names no instance of this pipeline.
fn training_cpu_s(
    pl: &Pipeline,
    rows: &[plan::PlanRow],
    store: &Store,
    label: &str,
) -> Option<f64> {
    let start = pl.instances.iter().position(|i| i.label == label)?;
    let mut seen = vec![false; pl.instances.len()];
    let mut stack = vec![start];
    let mut total = 0.0;
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let inst = &pl.instances[i];
        if TRAINING.iter().any(|k| inst.kind == *k) {
            let rec = rows[i].key.as_deref().and_then(|k| store.lookup(k))?;
            total += rec.cpu_s?;
        }
        stack.extend(inst.inputs.iter().flat_map(|x| x.instances.iter().copied()));
    }
    Some(total)
}

/// Runs `table`: prints the tables (exit 0), or with `check`, compares them with the file
/// (exit 1 if it differs). An `ablate` instance that is not cached is an error naming every
/// instance that would have to run.
pub fn table(
    pl: &Pipeline,
    file_arg: &Path,
    store: &Store,
    format: Format,
    check: Option<&PathBuf>,
) -> Result<i32, CliError> {
    let ablates: Vec<usize> = (0..pl.instances.len())
        .filter(|&i| pl.instances[i].kind == "ablate")
        .collect();
    if ablates.is_empty() {
        return Err(CliError::Usage(format!(
            "pipeline `{}` has no `ablate` stage to make a table from (see stages/ablate.yaml)",
            pl.name
        )));
    }
    let rows = plan::plan(pl, store)?;
    if ablates.iter().any(|&i| !rows[i].hit) {
        eprintln!(
            "error: the table of `{}` is not in the cache; these stage instances have not run (run the pipeline first):",
            pl.name
        );
        for r in rows.iter().filter(|r| !r.hit) {
            eprintln!("  {}  ({})", r.label, r.reasons.join("; "));
        }
        return Err(CliError::Quiet(1));
    }
    let mut tables = Vec::new();
    for &i in &ablates {
        let rec = rows[i]
            .key
            .as_deref()
            .and_then(|k| store.lookup(k))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "`{}`: its cache record is gone",
                    pl.instances[i].label
                ))
            })?;
        let mut t = read_table(&store.object_data(&rec.output)).map_err(CliError::Usage)?;
        if let Some(b) = &mut t.budget {
            for r in &mut b.rows {
                r.cpu_s = training_cpu_s(pl, &rows, store, &r.instance);
            }
        }
        tables.push((pl.instances[i].label.clone(), t));
    }
    let text = join(&tables, format);
    let Some(file) = check else {
        print!("{text}");
        return Ok(0);
    };
    let want = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("--check `{}`: {e}", file.display())))?;
    if want == text {
        eprintln!("{} matches the table of `{}`", file.display(), pl.name);
        return Ok(0);
    }
    eprintln!(
        "error: {} differs from the table of `{}` in the cache",
        file.display(),
        pl.name
    );
    let (a, b): (Vec<&str>, Vec<&str>) = (want.lines().collect(), text.lines().collect());
    for k in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            eprintln!("  line {}:", k + 1);
            eprintln!("  - {}", x.copied().unwrap_or("(end of file)"));
            eprintln!("  + {}", y.copied().unwrap_or("(end of table)"));
            break;
        }
    }
    eprintln!(
        "  regenerate it with `cllm4rec-pipe table {} --format FORMAT > {}`",
        file_arg.display(),
        file.display()
    );
    Err(CliError::Quiet(1))
}

/// After `run`: the table and the plot files of each `ablate` instance that finished.
pub fn after_run(pl: &Pipeline, store: &Store, records: &[Option<Hit>]) -> String {
    let mut out = String::new();
    for (inst, rec) in pl.instances.iter().zip(records) {
        let (true, Some(rec)) = (inst.kind == "ablate", rec) else {
            continue;
        };
        let dir = store.object_data(&rec.output);
        let Ok(t) = read_table(&dir) else {
            continue;
        };
        let _ = writeln!(out, "\n{}\n", inst.label);
        out.push_str(&t.markdown());
        let plots: Vec<String> = [
            "sensitivity.png",
            "sensitivity.svg",
            "curves.png",
            "curves.svg",
        ]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
        if !plots.is_empty() {
            let _ = writeln!(out, "\nplots:");
            for p in plots {
                let _ = writeln!(out, "  {p}");
            }
        }
    }
    out
}
