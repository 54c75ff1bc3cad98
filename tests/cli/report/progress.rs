//! `run --progress json`: the lambda sweep's run as a notebook would follow it, JSON lines on
//! stdout.

use serde_json::Value as Json;

use super::lambda;

#[test]
fn progress_json_follows_the_lambda_sweep() {
    let stdout = &lambda().progress;
    let events: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}")))
        .collect();
    let count = |ev: &str| events.iter().filter(|v| v["event"] == ev).count();
    // 2 x (pretrain, finetune, evaluate) + ingest, tokenize, ablate
    assert_eq!(count("started"), 9, "{stdout}");
    assert_eq!(count("done"), 9);
    // Pretraining: a collab and a content epoch per round; finetuning: epochs 1 and 2.
    let epochs = |label: &str| {
        events
            .iter()
            .filter(|v| v["event"] == "epoch" && v["instance"] == label)
            .count()
    };
    assert_eq!(epochs("pretrain[lambda_c=1]"), 2);
    assert_eq!(epochs("finetune[lambda_c=10]"), 2);
    for v in &events {
        assert!(v["time"].is_string(), "{v}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["ran"], 9);
    assert_eq!(last["failed"], 0);
    let eval1 = last["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == "evaluate[lambda_c=1]")
        .unwrap();
    assert!(eval1["metrics"]["recall@20"].is_number());
    let done_ft = events
        .iter()
        .find(|v| v["event"] == "done" && v["instance"] == "finetune[lambda_c=1]")
        .unwrap();
    assert!(done_ft["seconds"].as_f64().unwrap() > 0.0);
}
