//! The Rust most-popular baseline and metrics against an independent Python implementation.

use std::path::Path;

use serde_json::Value as Json;

use crate::support::Env;

/// On the per-user split and on both cold splits (after `cold-items` only the held-out items
/// are ranked).
#[test]
fn most_popular_metrics_match_the_python_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e = Env::new();
    let yaml = format!(
        "name: m\nmatrix:\n  split: [random, cold-items, cold-users]\nstages:\n  ingest:\n    kind: ingest\n    params: {{format: movielens, path: '{}', min_rating: 4.0, split: '${{matrix.split}}'}}\n  popular:\n    kind: popular\n    needs: [ingest]\n  evaluate:\n    kind: evaluate\n    needs: [ingest, popular]\n  reference:\n    kind: command\n    needs: [ingest]\n    cmd: [python3, '{}']\n",
        root.join("data/ml-latest-small").display(),
        root.join("tests/reference/popular_eval.py").display()
    );
    e.write("p.yaml", &yaml);
    e.run(&["run", "p.yaml"]).ok();
    // metrics.json of one instance (one point of the matrix: the same key)
    let metrics = |stage: &str, split: &str| -> Json {
        let point = format!("matrix.split=[{split}]");
        let dir = e.output_dir(&["show", "p.yaml", stage, "--set", &point], "cache");
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
    };

    for split in ["random", "cold-items", "cold-users"] {
        let (ours, reference) = (metrics("evaluate", split), metrics("reference", split));
        assert_eq!(ours["model"], "most-popular");
        assert_eq!(ours["users"], reference["users"], "{split}");
        for m in ["recall@20", "recall@40", "ndcg@100"] {
            let (a, b) = (
                ours[m].as_f64().unwrap(),
                reference[format!("ref_{m}")].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() < 1e-12,
                "{split} {m}: ours {a}, reference {b}"
            );
            // no new item has a training interaction: ranked by id, about at random
            let low = if split == "cold-items" { 0.01 } else { 0.05 };
            assert!(
                a > low,
                "{split} {m} = {a} is implausibly low for most-popular"
            );
        }
    }
}
