//! Any bytes as a pipeline file: the loader returns a pipeline or an error, never panics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cllm4rec_pipe::kinds::Registry;
use cllm4rec_pipe::pipeline::load::load_text;
use libfuzzer_sys::fuzz_target;

/// A workspace holding the real templates, so that `use: stages/<kind>.yaml` resolves.
fn workspace() -> &'static PathBuf {
    static WS: OnceLock<PathBuf> = OnceLock::new();
    WS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cllm4rec-fuzz-{}", std::process::id()));
        let stages = dir.join("stages");
        std::fs::create_dir_all(&stages).expect("a scratch folder");
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stages");
        for e in std::fs::read_dir(src).expect("the stages/ templates").flatten() {
            std::fs::copy(e.path(), stages.join(e.file_name())).expect("copy a template");
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Err(e) = load_text(&workspace().join("p.yaml"), text, &[], &Registry::default()) {
        assert!(!e.to_string().trim().is_empty(), "an empty error message");
    }
});
