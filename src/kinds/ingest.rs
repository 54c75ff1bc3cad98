//! The `ingest` kind: read a dataset, clean it, split it, write tables and stats.

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::data::process::{process, Steps};
use crate::data::readers::{self, table::TableOptions, Format};
use crate::data::split::{split, SplitKind};
use crate::data::write::write;
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, StageContext, StageError, StageKind, TypedParams,
};
use crate::pipeline::Instance;

crate::choice! {
    /// How `ingest` splits the interactions (`ratios` give the shares where they apply).
    Split {
        Random = "random",
        LeaveLastOut = "leave-last-out",
        ColdUsers = "cold-users",
        ColdItems = "cold-items",
    }
}

/// The params of an `ingest` stage (stages/ingest.yaml documents each).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestParams {
    pub format: Format,
    /// The dataset folder (a file for `table`), relative to the pipeline's folder.
    pub path: String,
    pub min_rating: Option<f64>,
    pub dedup: bool,
    pub kcore: u32,
    pub split: Split,
    pub ratios: [f64; 3],
    pub user_col: String,
    pub item_col: String,
    pub rating_col: Option<String>,
    pub time_col: Option<String>,
    pub item_text: Option<String>,
    pub user_text: Option<String>,
}

impl Default for IngestParams {
    fn default() -> Self {
        IngestParams {
            // required: these two are never used as defaults
            format: Format::Table,
            path: String::new(),
            min_rating: None,
            dedup: true,
            kcore: 0,
            split: Split::Random,
            ratios: [0.8, 0.1, 0.1],
            user_col: "user".into(),
            item_col: "item".into(),
            rating_col: None,
            time_col: None,
            item_text: None,
            user_text: None,
        }
    }
}

impl TypedParams for IngestParams {
    const REQUIRED: &'static [&'static str] = &["format", "path"];
    fn check(&self) -> Result<(), ParamError> {
        self.split_kind()?;
        if let Some(t) = self.min_rating {
            if !t.is_finite() {
                return Err(("min_rating".into(), "`min_rating` must be a number".into()));
            }
        }
        Ok(())
    }
}

impl IngestParams {
    fn split_kind(&self) -> Result<SplitKind, ParamError> {
        let [tr, va, te] = self.ratios;
        if tr <= 0.0 || va < 0.0 || te < 0.0 || ((tr + va + te) - 1.0).abs() > 1e-6 {
            return Err((
                "ratios".into(),
                format!(
                    "`ratios` must be [train, valid, test] summing to 1, got {:?}",
                    self.ratios
                ),
            ));
        }
        Ok(match self.split {
            Split::Random => SplitKind::Random {
                valid: va,
                test: te,
            },
            Split::LeaveLastOut => SplitKind::LeaveLastOut,
            Split::ColdUsers => SplitKind::ColdUsers {
                valid: va,
                test: te,
            },
            Split::ColdItems => SplitKind::ColdItems {
                valid: va,
                test: te,
            },
        })
    }
}

pub struct Ingest;

impl StageKind for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn version(&self) -> u32 {
        // 2: stats.json says `cold: items|users` after a cold split (other outputs unchanged)
        2
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<IngestParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<IngestParams>()
    }

    fn needs(&self) -> Needs {
        Needs::Slots(&[])
    }

    fn implicit_deps(&self, inst: &Instance) -> Vec<(String, String)> {
        let p: &IngestParams = inst.params_as();
        let mut v = vec![("path".to_owned(), p.path.clone())];
        v.extend(p.item_text.clone().map(|t| ("item_text".to_owned(), t)));
        v.extend(p.user_text.clone().map(|t| ("user_text".to_owned(), t)));
        v
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let p: &IngestParams = ctx.params();
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
        let kind = p.split_kind().map_err(|(_, m)| StageError::Failed(m))?;
        let seed = ctx.instance.seed;
        let (s, split_counts) = split(&x, &kind, seed);
        let cold = match kind {
            SplitKind::ColdItems { .. } => Some("items"),
            SplitKind::ColdUsers { .. } => Some("users"),
            SplitKind::Random { .. } | SplitKind::LeaveLastOut => None,
        };
        let stats = write(ctx.out, &x, &raw, &s, split_counts, counts, cold).map_err(fail)?;
        let _ = writeln!(
            log,
            "{} users, {} items, {} interactions",
            stats.users, stats.items, stats.interactions
        );
        Ok(())
    }
}
