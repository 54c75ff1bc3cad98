//! The cleaning steps: implicit feedback, de-duplication, iterative k-core, dense ids.

use std::collections::{HashMap, HashSet};

use crate::data::error::DataError;
use crate::data::raw::RawInteraction;

#[derive(Debug, Clone)]
pub struct Steps {
    /// Keep interactions with rating >= this (interactions without a rating are kept).
    pub min_rating: Option<f64>,
    /// Keep only the first interaction of each (user, item).
    pub dedup: bool,
    /// Iteratively drop users and items with fewer than this many interactions (0: off).
    pub kcore: u32,
}

/// Interactions with dense ids (0-based, in order of first appearance).
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub user: Vec<u32>,
    pub item: Vec<u32>,
    pub rating: Vec<Option<f64>>,
    pub timestamp: Vec<Option<i64>>,
    /// Dense id -> the dataset's id.
    pub user_ids: Vec<String>,
    pub item_ids: Vec<String>,
}

impl Interactions {
    pub fn len(&self) -> usize {
        self.user.len()
    }
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StepCounts {
    pub raw: usize,
    pub after_threshold: usize,
    pub after_dedup: usize,
    pub after_kcore: usize,
    pub kcore_rounds: usize,
}

pub fn process(
    rows: &[RawInteraction],
    steps: &Steps,
    what: &str,
) -> Result<(Interactions, StepCounts), DataError> {
    let mut counts = StepCounts {
        raw: rows.len(),
        ..Default::default()
    };
    let mut keep: Vec<&RawInteraction> = rows
        .iter()
        .filter(|r| match (steps.min_rating, r.rating) {
            (Some(t), Some(x)) => x >= t,
            _ => true,
        })
        .collect();
    counts.after_threshold = keep.len();
    if steps.dedup {
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(keep.len());
        keep.retain(|r| seen.insert((r.user.as_str(), r.item.as_str())));
    }
    counts.after_dedup = keep.len();
    if steps.kcore > 0 {
        let k = steps.kcore as usize;
        loop {
            let mut users: HashMap<&str, usize> = HashMap::new();
            let mut items: HashMap<&str, usize> = HashMap::new();
            for r in &keep {
                *users.entry(&r.user).or_default() += 1;
                *items.entry(&r.item).or_default() += 1;
            }
            let before = keep.len();
            keep.retain(|r| users[r.user.as_str()] >= k && items[r.item.as_str()] >= k);
            counts.kcore_rounds += 1;
            if keep.len() == before {
                break;
            }
        }
    }
    counts.after_kcore = keep.len();
    if keep.is_empty() {
        let why = match (counts.after_threshold, steps.kcore) {
            (0, _) => format!(
                "no interaction has a rating >= {}",
                steps.min_rating.unwrap_or(0.0)
            ),
            (_, k) if k > 0 => format!("{k}-core filtering removed every interaction"),
            _ => "the input has no interactions".to_owned(),
        };
        return Err(DataError::Other(format!(
            "{what}: the dataset is empty: {why}"
        )));
    }
    let mut out = Interactions::default();
    let mut uid: HashMap<&str, u32> = HashMap::new();
    let mut iid: HashMap<&str, u32> = HashMap::new();
    for r in keep {
        let u = *uid.entry(&r.user).or_insert_with(|| {
            out.user_ids.push(r.user.clone());
            (out.user_ids.len() - 1) as u32
        });
        let i = *iid.entry(&r.item).or_insert_with(|| {
            out.item_ids.push(r.item.clone());
            (out.item_ids.len() - 1) as u32
        });
        out.user.push(u);
        out.item.push(i);
        out.rating.push(r.rating);
        out.timestamp.push(r.timestamp);
    }
    Ok((out, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(u: &str, i: &str, rating: f64) -> RawInteraction {
        RawInteraction {
            user: u.into(),
            item: i.into(),
            rating: Some(rating),
            timestamp: None,
        }
    }

    #[test]
    fn threshold_dedup_and_iterative_kcore() {
        // u3 has 2 items -> dropped by 2-core? no: k=2 keeps u3 (a, b); item c only seen by u1
        let rows = vec![
            r("u1", "a", 5.0),
            r("u1", "b", 4.0),
            r("u1", "c", 4.0),
            r("u2", "a", 4.0),
            r("u2", "b", 5.0),
            r("u3", "a", 1.0),
            r("u2", "a", 5.0),
        ];
        let steps = Steps {
            min_rating: Some(4.0),
            dedup: true,
            kcore: 2,
        };
        let (x, c) = process(&rows, &steps, "t").unwrap();
        assert_eq!(
            (c.raw, c.after_threshold, c.after_dedup, c.after_kcore),
            (7, 6, 5, 4)
        );
        assert_eq!(x.user_ids, vec!["u1", "u2"]);
        assert_eq!(x.item_ids, vec!["a", "b"]);
        assert_eq!(x.user, vec![0, 0, 1, 1]);
        assert_eq!(x.item, vec![0, 1, 0, 1]);
    }

    #[test]
    fn kcore_that_empties_the_dataset_is_an_error() {
        let rows = vec![r("u1", "a", 5.0), r("u2", "b", 5.0)];
        let e = process(
            &rows,
            &Steps {
                min_rating: None,
                dedup: true,
                kcore: 2,
            },
            "t",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("2-core filtering removed every interaction"),
            "{e}"
        );
    }
}
