//! `audit` and `reproduce`.

use crate::audit::reproduce::{self as repro, Outcome, Row};
use crate::audit::resolve::{open_read_only, resolve};
use crate::audit::{bundle, check, lineage, AuditError};
use crate::cache::hash;
use crate::cli::args::{AuditArgs, AuditFormat, Cli, ReproduceArgs};
use crate::cli::CliError;
use crate::kinds::Registry;
use crate::pipeline::{self, Pipeline};

impl From<AuditError> for CliError {
    fn from(e: AuditError) -> CliError {
        match e {
            AuditError::Usage(m) => CliError::Usage(m),
            AuditError::Exec(e) => CliError::Exec(e),
            other => {
                eprintln!("error: {other}");
                CliError::Quiet(1)
            }
        }
    }
}

/// The instances of `stage`, or a usage error naming the closest stage.
fn stage_instances(p: &Pipeline, stage: &str) -> Result<Vec<usize>, CliError> {
    let Some(si) = p.stage_index(stage) else {
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "no stage `{stage}` in `{}`; {}",
            p.name,
            crate::diag::suggest(stage, &names, "stages")
        )));
    };
    Ok((0..p.instances.len())
        .filter(|&i| p.instances[i].stage == si)
        .collect())
}

pub fn audit(cli: &Cli, a: &AuditArgs, kinds: &Registry) -> Result<i32, CliError> {
    if let Some(dir) = &a.check {
        let root = cli.cache_root();
        let store = open_read_only(&root).ok();
        let report = check::check(dir, store.as_ref())?;
        print!("{}", report.render());
        let h = hash::hash_dir(dir)
            .map(|(h, _)| h)
            .map_err(AuditError::from)?;
        println!(
            "bundle `{}` (bundle hash {h}): {} check(s) passed, {} failed",
            dir.display(),
            report.passed(),
            report.problems()
        );
        return Ok(if report.problems() == 0 { 0 } else { 1 });
    }
    let path = a
        .pipeline
        .as_ref()
        .expect("clap requires it without --check");
    let p = pipeline::load(path, &a.sets, kinds)?;
    let store = open_read_only(&cli.cache_root())?;
    let resolved = resolve(&p, &store)?;
    let targets: Vec<usize> = match &a.stage {
        Some(s) => {
            let all = stage_instances(&p, s)?;
            let missing: Vec<&str> = all
                .iter()
                .filter(|&&i| resolved.records[i].is_none())
                .map(|&i| p.instances[i].label.as_str())
                .collect();
            if !missing.is_empty() {
                eprintln!(
                    "error: not cached: {}; run `cllm4rec-pipe run {}` first (`plan` says why)",
                    missing.join(", "),
                    path.display()
                );
                return Err(CliError::Quiet(1));
            }
            all
        }
        None => {
            let with_metrics: Vec<usize> = (0..p.instances.len())
                .filter(|&i| {
                    resolved.records[i]
                        .as_ref()
                        .is_some_and(|r| r.metrics.is_some())
                })
                .collect();
            if with_metrics.is_empty() {
                eprintln!(
                    "error: no cached instance of `{}` has metrics; run it first, or name a stage to audit",
                    p.name
                );
                return Err(CliError::Quiet(1));
            }
            with_metrics
        }
    };
    let l = lineage::build(&p, &resolved, &targets, &a.sets)?;
    match a.format {
        AuditFormat::Text => print!("{}", lineage::render_text(&l)),
        AuditFormat::Json => println!("{}", serde_json::to_string_pretty(&l).expect("plain data")),
    }
    if let Some(dir) = &a.bundle {
        let h = bundle::write_bundle(dir, &p, &store, &l)?;
        let msg = format!(
            "bundle written to `{}` (bundle hash {h}); re-verify it with `cllm4rec-pipe audit --check {}`",
            dir.display(),
            dir.display()
        );
        match a.format {
            AuditFormat::Text => println!("\n{msg}"),
            AuditFormat::Json => eprintln!("{msg}"),
        }
    }
    Ok(0)
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

fn print_row(r: &Row, width: usize) {
    let rec = r.recorded.as_deref().map(short).unwrap_or("-");
    let time = format!("{:.2}s", r.seconds);
    match &r.outcome {
        Outcome::Identical => println!("{:width$}  identical  {rec}  {time}", r.label),
        Outcome::Differs {
            bit_exact,
            now,
            files,
        } => {
            let word = if *bit_exact {
                "DIFFERS"
            } else {
                "differs (not declared bit-exact)"
            };
            println!(
                "{:width$}  {word}  {} (recorded {rec})  {time}",
                r.label,
                short(now)
            );
            for f in files {
                println!("{:width$}    {f}", "");
            }
        }
        Outcome::Failed(m, tail) => {
            println!("{:width$}  FAILED  {m}  {time}", r.label);
            print!("{tail}");
        }
        Outcome::NotCached => println!(
            "{:width$}  not cached (run the pipeline first; nothing to compare with)",
            r.label
        ),
    }
}

pub fn reproduce(cli: &Cli, a: &ReproduceArgs, kinds: &Registry) -> Result<i32, CliError> {
    let p = pipeline::load(&a.p.pipeline, &a.p.sets, kinds)?;
    let store = open_read_only(&cli.cache_root())?;
    let candidates: Vec<usize> = match &a.stage {
        Some(s) if !a.all => stage_instances(&p, s)?,
        _ => (0..p.instances.len()).collect(),
    };
    let resolved = resolve(&p, &store)?;
    let which = match a.sample {
        Some(n) => repro::sample(&p, &candidates, n, a.seed),
        None => candidates.clone(),
    };
    let scratch = repro::scratch_dir(&store, a.scratch.as_deref())?;
    println!(
        "reproducing {} of {} instance(s) in `{}` (the cache is only read)",
        which.len(),
        candidates.len(),
        scratch.display()
    );
    let width = which
        .iter()
        .map(|&i| p.instances[i].label.len())
        .max()
        .unwrap_or(0);
    let result = repro::reproduce(&p, &store, &resolved, &which, &scratch, |r| {
        print_row(r, width)
    });
    if a.keep {
        println!(
            "kept the reproduced outputs and logs in `{}`",
            scratch.display()
        );
    } else {
        repro::remove_scratch(&scratch);
    }
    let rows = result?;
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    let identical = count(|o| matches!(o, Outcome::Identical));
    let differ = count(|o| {
        matches!(
            o,
            Outcome::Differs {
                bit_exact: true,
                ..
            }
        )
    });
    let loose = count(|o| {
        matches!(
            o,
            Outcome::Differs {
                bit_exact: false,
                ..
            }
        )
    });
    let failed = count(|o| matches!(o, Outcome::Failed(..)));
    let missing = count(|o| matches!(o, Outcome::NotCached));
    println!(
        "{} instances: {identical} identical, {differ} differ, {loose} differ (not declared bit-exact), {failed} failed, {missing} not cached",
        rows.len()
    );
    Ok(if differ + failed + missing == 0 { 0 } else { 1 })
}
