//! What loading and expansion need to know about stage kinds, and nothing more. The pipeline
//! layer is handed a `&dyn StageKinds` (in this build, `kinds::Registry` implements it in
//! `src/kinds/mod.rs`), so `pipeline/` never names `kinds/`: the kinds depend on the spec,
//! not the other way round.

use std::path::Path;

use crate::pipeline::load::StageDef;
use crate::pipeline::model::Instance;

/// (field, message, hint) of a stage definition error.
pub type DefError = (String, String, Option<String>);

/// The stage kinds a pipeline may use, as seen by `load` and `expand`. Every method but
/// `names` and `knows` is called only for a kind that `knows` accepted.
pub trait StageKinds {
    /// The kinds' names, in a stable order (the one hints list them in).
    fn names(&self) -> Vec<&str>;
    /// Whether `kind` is a known kind.
    fn knows(&self, kind: &str) -> bool;
    /// Check a stage definition of kind `def.kind` before expansion.
    fn check_def(&self, def: &StageDef) -> Result<(), DefError>;
    /// Check an instance of kind `kind`: its resolved params, then the files they name,
    /// relative to the pipeline's folder `workdir`: (param name, message).
    fn check_instance(
        &self,
        kind: &str,
        inst: &Instance,
        workdir: &Path,
    ) -> Result<(), (String, String)>;
    /// Files or folders named by an instance's params (relative to the pipeline's folder)
    /// whose content is hashed into the key, as if listed in `deps`: (param name, path).
    fn implicit_deps(&self, kind: &str, inst: &Instance) -> Vec<(String, String)>;
}
