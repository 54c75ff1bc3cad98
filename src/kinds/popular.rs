//! The `popular` kind: the most-popular baseline, trained on an `ingest` output's train split.

use std::fmt::Write as _;

use crate::eval::scorer::MostPopular;
use crate::eval::EvalSplit;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::kinds::multivae::INGEST;
use crate::kinds::{
    defaults, resolve, Needs, ParamError, Params, StageContext, StageError, StageKind, TypedParams,
};

/// A `popular` stage has no params.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PopularParams {}

impl TypedParams for PopularParams {}

pub struct Popular;

impl StageKind for Popular {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn version(&self) -> u32 {
        1
    }

    fn resolve(&self, params: Map<String, Json>) -> Result<Params, ParamError> {
        resolve::<PopularParams>(params)
    }

    fn defaults(&self) -> (Map<String, Json>, &'static [&'static str]) {
        defaults::<PopularParams>()
    }

    fn needs(&self) -> Needs {
        INGEST
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let (_, ingest) = ctx.input("ingest")?;
        let split = EvalSplit::read(ingest, "test").map_err(StageError::Failed)?;
        let pop = MostPopular::from_split(&split);
        let mut csv = String::from("item,count\n");
        for (i, c) in pop.counts.iter().enumerate() {
            let _ = writeln!(csv, "{i},{c}");
        }
        let w = |name: &str, text: String| {
            std::fs::write(ctx.out.join(name), text)
                .map_err(|e| StageError::Failed(format!("cannot write {name}: {e}")))
        };
        w("popularity.csv", csv)?;
        w("model.json", "{\n  \"model\": \"most-popular\"\n}\n".into())?;
        Ok(())
    }
}
