//! `report` and `export`: pages and exports drawn from the cache, which they only read.

use std::path::Path;

use crate::audit::lineage::normalize;
use crate::audit::resolve::open_read_only;
use crate::cli::args::{Cli, ExportTo, PipelineArgs};
use crate::cli::CliError;
use crate::kinds::Registry;
use crate::pipeline;
use crate::report::{html, mlflow, tensorboard, view};

/// An output path inside the cache folder is refused: these commands never write there.
fn outside_cache(cli: &Cli, path: &Path, what: &str) -> Result<(), CliError> {
    let cache = normalize(&cli.cache_root());
    let cache = std::fs::canonicalize(&cache).unwrap_or(cache);
    let mut out = normalize(path);
    // The nearest existing folder above it, resolved, decides (symlinks included).
    let mut probe = out.clone();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if let Ok(real) = std::fs::canonicalize(&probe) {
        if let Ok(rest) = out.strip_prefix(&probe) {
            out = real.join(rest);
        }
    }
    if out.starts_with(&cache) {
        return Err(CliError::Usage(format!(
            "{what} `{}` is inside the cache folder `{}`; write it elsewhere (the cache is only read)",
            path.display(),
            cache.display()
        )));
    }
    Ok(())
}

fn load_view<'a>(
    cli: &Cli,
    pl: &'a pipeline::Pipeline,
    p: &PipelineArgs,
) -> Result<view::View<'a>, CliError> {
    let store = open_read_only(&cli.cache_root())?;
    Ok(view::read(pl, &store, &p.sets)?)
}

pub fn report(
    cli: &Cli,
    p: &PipelineArgs,
    output: &Path,
    kinds: &Registry,
) -> Result<i32, CliError> {
    let pl = pipeline::load(&p.pipeline, &p.sets, kinds)?;
    outside_cache(cli, output, "the report")?;
    let v = load_view(cli, &pl, p)?;
    let page = html::render(&v).map_err(CliError::Usage)?;
    crate::report::write_atomic(output, page.as_bytes()).map_err(|e| {
        CliError::Usage(format!(
            "cannot write the report `{}`: {e}",
            output.display()
        ))
    })?;
    let count = |w: &str| v.count(w);
    println!(
        "wrote {} ({} bytes): {} instances, {} cached, {} failed, {} not run, {} waiting for upstream",
        output.display(),
        page.len(),
        v.instances.len(),
        count("cached"),
        count("failed"),
        count("not run"),
        count("waiting for upstream"),
    );
    Ok(0)
}

pub fn export(cli: &Cli, to: &ExportTo, kinds: &Registry) -> Result<i32, CliError> {
    let (p, dir) = match to {
        ExportTo::Mlflow { p, dir } | ExportTo::Tensorboard { p, dir } => (p, dir),
    };
    let pl = pipeline::load(&p.pipeline, &p.sets, kinds)?;
    outside_cache(cli, dir, "the export folder")?;
    let v = load_view(cli, &pl, p)?;
    let fail = |e: String| CliError::Usage(format!("export: {e}"));
    let skipped = match to {
        ExportTo::Mlflow { .. } => {
            let s = mlflow::export(&v, dir).map_err(fail)?;
            println!(
                "wrote MLflow experiment `{}` (id {}) with {} runs to {}; read it with MLFLOW_ALLOW_FILE_STORE=true and tracking URI file:{}",
                pl.name,
                s.experiment_id,
                s.runs,
                s.dir.display(),
                normalize(dir).display()
            );
            s.skipped
        }
        ExportTo::Tensorboard { .. } => {
            let s = tensorboard::export(&v, dir).map_err(fail)?;
            let points: usize = s.runs.iter().map(|r| r.1).sum();
            println!(
                "wrote TensorBoard event files of {} runs ({points} scalar points) to {}; view them with `tensorboard --logdir {}`",
                s.runs.len(),
                s.dir.display(),
                normalize(dir).display()
            );
            s.skipped
        }
    };
    for (label, why) in skipped {
        println!("  left out {label}: {why}");
    }
    Ok(0)
}
