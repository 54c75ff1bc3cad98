//! `export tensorboard`: the training curves of a pipeline's cached instances as TensorBoard
//! event files, one run folder per instance (`DIR/<pipeline>/<label>/`), so that
//! `tensorboard --logdir DIR` lists them as `<pipeline>/<label>`. Each run holds the
//! per-epoch series of its `history.json` (`history/train/loss`, ...; step = epoch) and the
//! record's final metrics at step 0, as scalar summaries. Wall times are the record's end
//! time, so the same cache exports to the same bytes. An export replaces the pipeline's
//! folder as a whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::audit::lineage::flatten_metrics;
use crate::report::mlflow::millis;
use crate::report::tfrecord::{file_version_event, frame, scalars_event};
use crate::report::view::{history_name, history_points, State, View};
use crate::report::write;

pub struct Summary {
    pub dir: PathBuf,
    /// Runs written: (label, number of scalar points).
    pub runs: Vec<(String, usize)>,
    /// Cached instances with neither history nor metrics, and instances not cached.
    pub skipped: Vec<(String, &'static str)>,
}

/// A label as one folder name: `/` and NUL are the only bytes a file name cannot hold.
pub fn run_folder(label: &str) -> String {
    label.replace(['/', '\0'], "_")
}

/// The scalars of one instance: tag -> (step -> value), steps in order.
pub fn scalars(v: &crate::report::view::InstanceView) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    if let Some(m) = v.record.as_ref().and_then(|r| r.metrics.as_ref()) {
        for mt in flatten_metrics(m) {
            out.entry(mt.name).or_default().insert(0, mt.value);
        }
    }
    if let Some(h) = &v.history {
        for pt in history_points(h) {
            // A repeated (name, epoch) keeps its last value, as a later log line would.
            out.entry(history_name(&pt.name))
                .or_default()
                .insert(pt.step, pt.value);
        }
    }
    out
}

pub fn export(view: &View, dir: &Path) -> Result<Summary, String> {
    let p = view.pipeline;
    let dir = crate::report::out_dir(dir)?;
    let target = dir.join(run_folder(&p.name));
    let (runs, skipped) = crate::report::replace_dir(&target, |tmp| {
        let mut runs = Vec::new();
        let mut skipped = Vec::new();
        for v in &view.instances {
            let label = &p.instances[v.index].label;
            let (State::Cached, Some(rec)) = (&v.state, &v.record) else {
                skipped.push((label.clone(), v.state.word()));
                continue;
            };
            let series = scalars(v);
            if series.is_empty() {
                skipped.push((label.clone(), "no metrics or history"));
                continue;
            }
            let ended = millis(&rec.ended);
            let wall = ended as f64 / 1000.0;
            let mut bytes = Vec::new();
            frame(&mut bytes, &file_version_event(wall));
            // One event per step, holding every tag with a value at that step.
            let mut by_step: BTreeMap<i64, Vec<(&str, f32)>> = BTreeMap::new();
            let mut points = 0;
            for (tag, steps) in &series {
                for (&step, &value) in steps {
                    by_step
                        .entry(step)
                        .or_default()
                        .push((tag.as_str(), value as f32));
                    points += 1;
                }
            }
            for (step, values) in &by_step {
                frame(&mut bytes, &scalars_event(wall, *step, values));
            }
            let file = tmp.join(run_folder(label)).join(format!(
                "events.out.tfevents.{}.cllm4rec-pipe",
                ended / 1000
            ));
            write(&file, &bytes)?;
            runs.push((label.clone(), points));
        }
        Ok((runs, skipped))
    })?;
    Ok(Summary {
        dir: target,
        runs,
        skipped,
    })
}
