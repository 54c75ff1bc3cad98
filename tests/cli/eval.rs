//! The Rust most-popular baseline and metrics against an independent Python implementation.

use std::path::Path;

use serde_json::Value as Json;

use crate::support::Env;

#[test]
fn most_popular_metrics_match_the_python_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e = Env::new();
    let yaml = format!(
        "name: m\nstages:\n  ingest:\n    kind: ingest\n    params: {{format: movielens, path: '{}', min_rating: 4.0}}\n  popular:\n    kind: popular\n    needs: [ingest]\n  evaluate:\n    kind: evaluate\n    needs: [ingest, popular]\n  reference:\n    kind: command\n    needs: [ingest]\n    cmd: [python3, '{}']\n",
        root.join("data/ml-latest-small").display(),
        root.join("tests/reference/popular_eval.py").display()
    );
    e.write("p.yaml", &yaml);
    e.run(&["run", "p.yaml"]).ok();
    let metrics = |stage: &str| -> Json {
        let show = e.run(&["show", "p.yaml", stage]).ok().stdout();
        let dir = show
            .lines()
            .find_map(|l| l.strip_prefix("output: "))
            .unwrap()
            .to_owned();
        serde_json::from_str(
            &std::fs::read_to_string(Path::new(&dir).join("metrics.json")).unwrap(),
        )
        .unwrap()
    };
    let (ours, reference) = (metrics("evaluate"), metrics("reference"));
    assert_eq!(ours["model"], "most-popular");
    assert_eq!(ours["users"], reference["users"]);
    for m in ["recall@20", "recall@40", "ndcg@100"] {
        let (a, b) = (
            ours[m].as_f64().unwrap(),
            reference[format!("ref_{m}")].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "{m}: ours {a}, reference {b}");
        assert!(a > 0.05, "{m} = {a} is implausibly low for most-popular");
    }
}
