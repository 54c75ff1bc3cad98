//! The `ingest` kind: read a dataset, clean it, split it, write tables and stats.

use std::io::Write;

use serde::Deserialize;

use crate::data::process::{process, Steps};
use crate::data::readers::{self, table::TableOptions, Format};
use crate::data::split::{split, SplitKind};
use crate::data::write::write;
use crate::kinds::{params_of, StageContext, StageError, StageKind};
use crate::pipeline::Instance;

/// The params of an `ingest` stage (stages/ingest.yaml documents each).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    pub format: Format,
    /// The dataset folder (a file for `table`), relative to the pipeline's folder.
    pub path: String,
    #[serde(default)]
    pub min_rating: Option<f64>,
    #[serde(default = "yes")]
    pub dedup: bool,
    #[serde(default)]
    pub kcore: u32,
    #[serde(default = "random")]
    pub split: String,
    #[serde(default = "ratios")]
    pub ratios: [f64; 3],
    #[serde(default = "user")]
    pub user_col: String,
    #[serde(default = "item")]
    pub item_col: String,
    #[serde(default)]
    pub rating_col: Option<String>,
    #[serde(default)]
    pub time_col: Option<String>,
    #[serde(default)]
    pub item_text: Option<String>,
    #[serde(default)]
    pub user_text: Option<String>,
}

fn yes() -> bool {
    true
}
fn random() -> String {
    "random".into()
}
fn ratios() -> [f64; 3] {
    [0.8, 0.1, 0.1]
}
fn user() -> String {
    "user".into()
}
fn item() -> String {
    "item".into()
}

impl IngestParams {
    fn split_kind(&self) -> Result<SplitKind, String> {
        let [tr, va, te] = self.ratios;
        if tr <= 0.0 || va < 0.0 || te < 0.0 || ((tr + va + te) - 1.0).abs() > 1e-6 {
            return Err(format!(
                "`ratios` must be [train, valid, test] summing to 1, got {:?}",
                self.ratios
            ));
        }
        Ok(match self.split.as_str() {
            "random" => SplitKind::Random { valid: va, test: te },
            "leave-last-out" => SplitKind::LeaveLastOut,
            "cold-users" => SplitKind::ColdUsers { valid: va, test: te },
            "cold-items" => SplitKind::ColdItems { valid: va, test: te },
            other => return Err(format!("unknown split `{other}`: use `random`, `leave-last-out`, `cold-users` or `cold-items`")),
        })
    }
}

pub struct Ingest;

impl StageKind for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn version(&self) -> u32 {
        1
    }

    fn check_instance(&self, inst: &Instance) -> Result<(), (String, String)> {
        let p: IngestParams = params_of(inst)?;
        p.split_kind().map_err(|m| ("split".to_owned(), m))?;
        if let Some(t) = p.min_rating {
            if !t.is_finite() {
                return Err(("min_rating".into(), "`min_rating` must be a number".into()));
            }
        }
        Ok(())
    }

    fn implicit_deps(&self, inst: &Instance) -> Vec<(String, String)> {
        let Ok(p) = params_of::<IngestParams>(inst) else {
            return Vec::new();
        };
        let mut v = vec![("path".to_owned(), p.path)];
        v.extend(p.item_text.map(|t| ("item_text".to_owned(), t)));
        v.extend(p.user_text.map(|t| ("user_text".to_owned(), t)));
        v
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: IngestParams = params_of(ctx.instance).map_err(|(_, m)| StageError::Failed(m))?;
        let fail = |e: crate::data::DataError| StageError::Failed(e.to_string());
        let mut log = ctx.log;
        let path = ctx.workdir.join(&p.path);
        let abs = |s: &Option<String>| s.as_ref().map(|t| ctx.workdir.join(t));
        let table = TableOptions {
            user_col: p.user_col.clone(),
            item_col: p.item_col.clone(),
            rating_col: p.rating_col.clone(),
            time_col: p.time_col.clone(),
            item_text: abs(&p.item_text),
            user_text: abs(&p.user_text),
        };
        let raw = readers::read(p.format, &path, &table).map_err(fail)?;
        let _ = writeln!(
            log,
            "read {} interactions from {} file(s)",
            raw.interactions.len(),
            raw.files.len()
        );
        let steps = Steps {
            min_rating: p.min_rating,
            dedup: p.dedup,
            kcore: p.kcore,
        };
        let (x, counts) =
            process(&raw.interactions, &steps, &path.display().to_string()).map_err(fail)?;
        let kind = p.split_kind().map_err(StageError::Failed)?;
        let seed = ctx.instance.seed.as_u64().unwrap_or(0);
        let (s, split_counts) = split(&x, &kind, seed);
        let stats = write(ctx.out, &x, &raw, &s, split_counts, counts).map_err(fail)?;
        let _ = writeln!(
            log,
            "{} users, {} items, {} interactions",
            stats.users, stats.items, stats.interactions
        );
        Ok(())
    }
}
