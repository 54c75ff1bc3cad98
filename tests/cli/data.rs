//! The ingest and tokenize stages on small fixtures of every format, malformed inputs, and
//! (when present) the real Amazon data.

use std::path::{Path, PathBuf};

use cllm4rec_pipe::text::binfmt::Corpus;
use serde_json::Value as Json;

use crate::support::Env;

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(rel)
        .display()
        .to_string()
}

/// A pipeline of one ingest (with `params`, YAML flow style) and a tokenize after it.
fn pipeline(params: &str) -> String {
    format!("name: d\nstages:\n  ingest:\n    kind: ingest\n    params: {params}\n  tokenize:\n    kind: tokenize\n    needs: [ingest]\n    params: {{max_items: 2}}\n")
}

fn out_dir(e: &Env, pipeline: &str, stage: &str) -> PathBuf {
    e.output_dir(&["show", pipeline, stage], "cache")
}

fn stats(dir: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn ingest(params: &str) -> (Env, PathBuf, PathBuf) {
    let e = Env::new();
    e.write("p.yaml", &pipeline(params));
    e.run(&["run", "p.yaml"]).ok();
    let (a, b) = (
        out_dir(&e, "p.yaml", "ingest"),
        out_dir(&e, "p.yaml", "tokenize"),
    );
    (e, a, b)
}

#[test]
fn movielens_threshold_text_tags_and_split() {
    let (_e, d, t) = ingest(&format!(
        "{{format: movielens, path: '{}', min_rating: 4.0}}",
        fixture("movielens")
    ));
    let s = stats(&d);
    assert!(s.get("cold").is_none(), "a per-user split is not cold: {s}");
    assert_eq!(
        (
            s["users"].as_u64(),
            s["items"].as_u64(),
            s["interactions"].as_u64()
        ),
        (Some(3), Some(4), Some(9))
    );
    assert_eq!(
        (
            s["splits"]["train"].as_u64(),
            s["splits"]["valid"].as_u64(),
            s["splits"]["test"].as_u64()
        ),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(s["users_with_text"].as_f64().unwrap(), 2.0 / 3.0);
    let items = read(&d, "items.csv");
    assert!(
        items.contains("0,10,\"Toy Story, The (1995)\",\"Adventure, Animation\""),
        "{items}"
    );
    assert!(items.contains("2,40,Sabrina (1995),\n"), "{items}");
    let users = read(&d, "users.csv");
    assert!(
        users.contains("0,1,\"pixar, heist\"") && users.contains("2,3,scorsese"),
        "{users}"
    );
    let ts = stats(&t);
    assert_eq!(ts["content_source"], "item and user text");
    assert_eq!(ts["content"]["docs"], 4 + 2);
    let vocab: Json = serde_json::from_str(&read(&t, "vocab.json")).unwrap();
    assert_eq!(
        (
            vocab["user_offset"].as_u64(),
            vocab["item_offset"].as_u64(),
            vocab["vocab_size"].as_u64()
        ),
        (Some(50257), Some(50260), Some(50264))
    );
}

#[test]
fn ml100k_latin1_titles_and_genre_flags() {
    let (_e, d, _) = ingest(&format!(
        "{{format: movielens, path: '{}'}}",
        fixture("ml100k")
    ));
    let items = read(&d, "items.csv");
    assert!(
        items.contains("0,10,Café Society (1995),\"Comedy, Drama\""),
        "{items}"
    );
}

#[test]
fn recbole_atomic_files() {
    let (_e, d, _) = ingest(&format!(
        "{{format: recbole, path: '{}'}}",
        fixture("recbole")
    ));
    let items = read(&d, "items.csv");
    assert!(
        items.contains("0,a,Alpha Movie,\"1995, Drama Comedy\""),
        "{items}"
    );
    assert!(read(&d, "users.csv").contains("0,1,\"M, technician\""));
    assert!(read(&d, "train.csv").starts_with("user,item,rating,timestamp\n"));
}

#[test]
fn amazon_2014_reviews_and_python_literal_meta() {
    let (_e, d, t) = ingest(&format!(
        "{{format: amazon, path: '{}', split: leave-last-out}}",
        fixture("amazon2014")
    ));
    let items = read(&d, "items.csv");
    assert!(
        items.contains(r#"0,A1,"Bonne Bell's ""Lip"" Smacker","Bonne Bell, Beauty, Makeup, Lips""#),
        "{items}"
    );
    assert!(
        items.contains("1,A2,,\"Beauty, Skin Care, Face\""),
        "{items}"
    );
    assert!(!items.contains("Z9"));
    let reviews = read(&d, "reviews.csv");
    assert_eq!(
        reviews,
        "user,item,text\n0,0,Great lipstick.\n0,1,Too oily\n1,2,Nice éclat\n"
    );
    // users have 2 interactions: train only, so no review pair is held out
    assert_eq!(stats(&t)["content_source"], "reviews");
    assert_eq!(stats(&t)["content"]["docs"], 3);
}

#[test]
fn amazon_2018_json_meta() {
    let (_e, d, _) = ingest(&format!(
        "{{format: amazon, path: '{}'}}",
        fixture("amazon2018")
    ));
    let items = read(&d, "items.csv");
    assert!(
        items.contains("0,A1,Lip Smacker,\"Bonne Bell, Beauty, Lips, A balm. Tasty.\""),
        "{items}"
    );
    assert!(items.contains("2,A3,Eclat,Shiny."), "{items}");
}

#[test]
fn p5_sequences_leave_last_out_and_prompts() {
    let (_e, d, t) = ingest(&format!(
        "{{format: p5, path: '{}', split: leave-last-out}}",
        fixture("p5")
    ));
    // U1: A1 A2 A3 -> test A3, valid A2, train A1 (dense ids in order of first appearance)
    // U2 has two items: train only
    assert_eq!(
        read(&d, "test.csv"),
        "user,item,rating,timestamp\n0,2,,2\n2,1,,2\n"
    );
    let rec = Corpus::read(&t.join("rec.tok")).unwrap();
    let collab = Corpus::read(&t.join("collab.tok")).unwrap();
    assert_eq!(rec.len(), 3);
    let (prompt, main) = collab.doc(0);
    assert_eq!(prompt[0], 50257);
    assert_eq!(main, &[50257 + 3]);
    let (p, m) = rec.doc(0);
    assert!(m.is_empty());
    assert_eq!((p[0], *p.last().unwrap() < 50257), (50257, true));
}

#[test]
fn cold_splits_say_so_and_cold_users_get_a_prompt() {
    let e = Env::new();
    // ten users of three items each: A<u> and B<u> their own, C everyone's
    let seqs: String = (0..10).map(|u| format!("U{u} A{u} B{u} C\n")).collect();
    e.write("seq/user_sequence.txt", &seqs);
    e.write(
        "p.yaml",
        &pipeline("{format: p5, path: seq, split: cold-users}"),
    );
    e.run(&["run", "p.yaml"]).ok();
    let (d, t) = (
        out_dir(&e, "p.yaml", "ingest"),
        out_dir(&e, "p.yaml", "tokenize"),
    );
    assert_eq!(stats(&d)["cold"], "users");
    let users_of = |name: &str| -> std::collections::BTreeSet<u32> {
        read(&d, name)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    };
    let held: Vec<u32> = users_of("valid.csv")
        .union(&users_of("test.csv"))
        .copied()
        .collect();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|u| !users_of("train.csv").contains(u)));
    // every user has a recommendation prompt; a held-out one holds its token and no item
    let (rec, collab) = (
        Corpus::read(&t.join("rec.tok")).unwrap(),
        Corpus::read(&t.join("collab.tok")).unwrap(),
    );
    assert_eq!((rec.len(), collab.len()), (10, 8));
    for &u in &held {
        let d = (0..rec.len()).find(|&d| rec.user[d] == u as i32).unwrap();
        let (p, m) = rec.doc(d);
        assert!(m.is_empty());
        assert!(p.contains(&(50257 + u)), "{p:?}");
        assert!(p.iter().all(|&x| x < 50257 + 10), "no item token: {p:?}");
        assert!((0..collab.len()).all(|c| collab.user[c] != u as i32));
    }

    let e = Env::new();
    e.write("seq/user_sequence.txt", &seqs);
    e.write(
        "p.yaml",
        &pipeline("{format: p5, path: seq, split: cold-items}"),
    );
    e.run(&["run", "p.yaml"]).ok();
    assert_eq!(stats(&out_dir(&e, "p.yaml", "ingest"))["cold"], "items");
}

#[test]
fn max_items_keeps_prompt_prefix_and_suffix() {
    let e = Env::new();
    e.write("seq/user_sequence.txt", "U1 A B C D E\nU2 A B C\n");
    e.write(
        "p.yaml",
        &pipeline("{format: p5, path: seq, split: leave-last-out}"),
    );
    e.run(&["run", "p.yaml"]).ok();
    let t = out_dir(&e, "p.yaml", "tokenize");
    // U1 trains on A B C: max_items 2 keeps the two most recent, B and C
    let rec = Corpus::read(&t.join("rec.tok")).unwrap();
    let (p, _) = rec.doc(0);
    let items: Vec<u32> = p
        .iter()
        .copied()
        .filter(|&x| x >= 50257 + 2)
        .map(|x| x - 50257 - 2)
        .collect();
    assert_eq!(items, vec![1, 2]);
    assert_eq!(
        p.iter().filter(|&&x| x == 50257).count(),
        2,
        "prefix and suffix name the user"
    );
    assert_eq!(stats(&t)["rec"]["truncated"], 1);
}

#[test]
fn table_csv_tsv_and_parquet_agree() {
    let mut hashes = Vec::new();
    for f in ["inter.csv", "inter.tsv", "inter.parquet"] {
        let e = Env::new();
        let p = format!(
            "{{format: table, path: '{}', user_col: uid, item_col: iid, rating_col: score, time_col: ts, min_rating: 4, item_text: '{}'}}",
            fixture(&format!("table/{f}")),
            fixture("table/items.csv")
        );
        e.write("p.yaml", &pipeline(&p));
        let r = e.run(&["run", "p.yaml"]).ok();
        let d = out_dir(&e, "p.yaml", "ingest");
        let s = stats(&d);
        // u1,y (rating 1) dropped; u3,y kept (no rating)
        assert_eq!(s["interactions"], 4, "{f}");
        assert!(
            read(&d, "items.csv").contains("1,z,,blue"),
            "{}",
            read(&d, "items.csv")
        );
        hashes.push(
            r.outputs()
                .into_iter()
                .find(|(l, _)| l == "ingest")
                .unwrap()
                .1,
        );
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_split() {
    let e = Env::new();
    let yaml = |seed: u32| {
        format!(
            "name: d\nparams: {{seed: {seed}}}\nstages:\n  ingest:\n    kind: ingest\n    params: {{format: movielens, path: '{}'}}\n  tokenize:\n    kind: tokenize\n    needs: [ingest]\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-latest-small").display()
        )
    };
    e.write("p.yaml", &yaml(0));
    let a = e.run_cache(&["run", "p.yaml"], "c1").ok();
    let b = e.run_cache(&["run", "p.yaml"], "c2").ok();
    assert_eq!(a.outputs(), b.outputs());
    assert_eq!(a.counts(), (2, 0));
    e.write("p.yaml", &yaml(1));
    let c = e.run_cache(&["run", "p.yaml"], "c1").ok();
    assert_ne!(
        a.outputs()[0].1,
        c.outputs()[0].1,
        "another seed gives another split"
    );
}

/// A malformed input fails the stage with file and line, and leaves no entry.
#[track_caller]
fn bad(files: &[(&str, &[u8])], params: &str, expect: &[&str]) {
    let e = Env::new();
    for (name, bytes) in files {
        let p = e.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    e.write("p.yaml", &pipeline(params));
    let r = e.run(&["run", "p.yaml"]).fails(1);
    let err = r.stderr();
    for x in expect {
        assert!(err.contains(x), "missing `{x}` in:\n{err}");
    }
    assert_eq!(e.records("cache"), 0, "a failed ingest left an entry");
}

const RATINGS_HEAD: &str = "userId,movieId,rating,timestamp\n1,10,4.0,100\n";

#[test]
fn malformed_inputs_name_file_and_line() {
    bad(
        &[(
            "d/ratings.csv.gz",
            b"\x1f\x8b\x08\x00garbage that is not deflate",
        )],
        "{format: movielens, path: d}",
        &["d/ratings.csv.gz:1:", "corrupt"],
    );
    bad(
        &[(
            "d/ratings.csv",
            format!("{RATINGS_HEAD}1,20,5.0,101\n3,50\n").as_bytes(),
        )],
        "{format: movielens, path: d}",
        &["d/ratings.csv:4:", "truncated"],
    );
    bad(
        &[("d/ratings.csv", b"userId,movieId,timestamp\n1,10,100\n")],
        "{format: movielens, path: d}",
        &["d/ratings.csv:1:", "missing column `rating`"],
    );
    bad(
        &[(
            "d/ratings.csv",
            format!("{RATINGS_HEAD}1,20,five,101\n").as_bytes(),
        )],
        "{format: movielens, path: d}",
        &["d/ratings.csv:3:", "`rating` is not a number: `five`"],
    );
    bad(
        &[
            ("d/user_sequence.txt", b"U1 A B\n"),
            (
                "d/items.tsv",
                b"p5_item_id\tasin\ttitle\tattributes\n1\tA\tx\ty\n2\tQ\tx\ty\n",
            ),
        ],
        "{format: p5, path: d}",
        &["d/items.tsv:3:", "text for unknown item `Q`"],
    );
    bad(
        &[("d/ratings.csv", RATINGS_HEAD.as_bytes())],
        "{format: movielens, path: d, kcore: 5}",
        &[
            "dataset is empty",
            "5-core filtering removed every interaction",
        ],
    );
    bad(
        &[
            (
                "d/reviews_X_5.json",
                b"{\"reviewerID\": \"U\", \"asin\": \"A\", \"overall\": 5}\n",
            ),
            ("d/meta_X.json", b"{'asin': 'A', 'title': 'x\n"),
        ],
        "{format: amazon, path: d}",
        &["d/meta_X.json:1:", "unterminated string"],
    );
}

#[test]
fn bad_params_are_pipeline_errors() {
    let e = Env::new();
    e.write("p.yaml", &pipeline("{format: movielen, path: d}"));
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("unknown variant `movielen`") && err.contains("p.yaml:5"),
        "{err}"
    );
    e.write("p.yaml", &pipeline("{format: movielens, path: d, kcor: 5}"));
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(
        err.contains("unknown field `kcor`") && err.contains("did you mean `kcore`?"),
        "{err}"
    );
    e.write("p.yaml", &pipeline("{format: movielens, path: nowhere}"));
    let err = e.run(&["plan", "p.yaml"]).fails(2).stderr();
    assert!(err.contains("dep `nowhere` of `ingest` not found"), "{err}");
}

/// The real Amazon 5-core data, when this checkout has ../shared beside it.
#[test]
fn real_amazon_counts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/amazon2014");
    if !root.is_dir() {
        eprintln!("SKIPPED real_amazon_counts: {} is absent", root.display());
        return;
    }
    for (ds, want) in [
        ("beauty", (22363, 12101, 198502)),
        ("toys", (19412, 11924, 167597)),
    ] {
        for k in [0, 5] {
            let e = Env::new();
            let yaml = format!("name: a\nstages:\n  ingest:\n    kind: ingest\n    params: {{format: p5, path: '{}', kcore: {k}}}\n", root.join(ds).display());
            e.write("p.yaml", &yaml);
            e.run(&["run", "p.yaml"]).ok();
            let s = stats(&out_dir(&e, "p.yaml", "ingest"));
            assert_eq!(
                (
                    s["users"].as_u64().unwrap(),
                    s["items"].as_u64().unwrap(),
                    s["interactions"].as_u64().unwrap()
                ),
                want,
                "{ds} k={k}"
            );
        }
    }
}
