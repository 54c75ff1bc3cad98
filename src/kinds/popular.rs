//! The `popular` kind: the most-popular baseline, trained on an `ingest` output's train split.

use std::fmt::Write as _;

use crate::eval::scorer::MostPopular;
use crate::eval::EvalSplit;
use crate::kinds::{StageContext, StageError, StageKind};
use crate::pipeline::Instance;

pub struct Popular;

impl StageKind for Popular {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn version(&self) -> u32 {
        1
    }

    fn check_instance(&self, inst: &Instance) -> Result<(), (String, String)> {
        if let Some(k) = inst.params.keys().next() {
            return Err((
                k.clone(),
                format!("a `popular` stage has no params (found `{k}`)"),
            ));
        }
        if inst.inputs.len() != 1 || inst.inputs[0].gather {
            return Err((
                "needs".into(),
                "a `popular` stage needs exactly one `ingest` stage".into(),
            ));
        }
        Ok(())
    }

    fn run(&self, ctx: &StageContext) -> Result<(), StageError> {
        let ingest = ctx
            .inputs
            .values()
            .next()
            .ok_or_else(|| StageError::Failed("no input".into()))?;
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
