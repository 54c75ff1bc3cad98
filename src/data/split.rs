//! Train / validation / test splits.

use serde::Serialize;

use crate::data::process::Interactions;
use crate::data::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub enum SplitKind {
    /// Per-user random holdout (CLLM4Rec, Multi-VAE): each user with at least 3 interactions
    /// keeps at least one train, one validation and one test item.
    Random { valid: f64, test: f64 },
    /// Per user, the last interaction by time is the test item, the one before it validation.
    LeaveLastOut,
    /// Whole users held out: their interactions are all validation or all test.
    ColdUsers { valid: f64, test: f64 },
    /// Whole items held out.
    ColdItems { valid: f64, test: f64 },
}

/// Row indices of each part, each in row order.
#[derive(Debug, Default, Clone)]
pub struct Split {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    pub test: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitCounts {
    pub train: usize,
    pub valid: usize,
    pub test: usize,
    /// Users with fewer than 3 interactions, kept in train only (per-user splits).
    pub users_train_only: usize,
}

fn by_user(x: &Interactions) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); x.user_ids.len()];
    for (row, &u) in x.user.iter().enumerate() {
        groups[u as usize].push(row);
    }
    groups
}

/// Sizes of (valid, test) for a user with n rows, leaving at least one for train.
fn holdout_sizes(n: usize, valid: f64, test: f64) -> (usize, usize) {
    let nt = ((test * n as f64).round() as usize).max(1);
    let nv = ((valid * n as f64).round() as usize).max(1);
    let (mut nv, mut nt) = (nv, nt);
    while nv + nt > n - 1 {
        if nv >= nt && nv > 1 {
            nv -= 1;
        } else if nt > 1 {
            nt -= 1;
        } else {
            break;
        }
    }
    (nv, nt)
}

pub fn split(x: &Interactions, kind: &SplitKind, seed: u64) -> (Split, SplitCounts) {
    let mut rng = Rng::new(seed);
    let mut s = Split::default();
    let mut train_only = 0;
    match kind {
        SplitKind::Random { valid, test } => {
            for rows in by_user(x) {
                if rows.len() < 3 {
                    train_only += 1;
                    s.train.extend(rows);
                    continue;
                }
                let mut shuffled = rows.clone();
                rng.shuffle(&mut shuffled);
                let (nv, nt) = holdout_sizes(rows.len(), *valid, *test);
                s.test.extend_from_slice(&shuffled[..nt]);
                s.valid.extend_from_slice(&shuffled[nt..nt + nv]);
                s.train.extend_from_slice(&shuffled[nt + nv..]);
            }
        }
        SplitKind::LeaveLastOut => {
            for mut rows in by_user(x) {
                if rows.len() < 3 {
                    train_only += 1;
                    s.train.extend(rows);
                    continue;
                }
                // stable: ties in time keep file order
                rows.sort_by_key(|&r| (x.timestamp[r].unwrap_or(0), r));
                s.test.push(rows.pop().expect("n >= 3"));
                s.valid.push(rows.pop().expect("n >= 3"));
                s.train.extend(rows);
            }
        }
        SplitKind::ColdUsers { valid, test } | SplitKind::ColdItems { valid, test } => {
            let users = matches!(kind, SplitKind::ColdUsers { .. });
            let n = if users {
                x.user_ids.len()
            } else {
                x.item_ids.len()
            };
            let mut ids: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut ids);
            let (nv, nt) = if n >= 3 {
                holdout_sizes(n, *valid, *test)
            } else {
                (0, 0)
            };
            let mut part = vec![0u8; n];
            for &i in &ids[..nt] {
                part[i] = 2;
            }
            for &i in &ids[nt..nt + nv] {
                part[i] = 1;
            }
            for row in 0..x.len() {
                let id = if users { x.user[row] } else { x.item[row] } as usize;
                match part[id] {
                    2 => s.test.push(row),
                    1 => s.valid.push(row),
                    _ => s.train.push(row),
                }
            }
        }
    }
    s.train.sort_unstable();
    s.valid.sort_unstable();
    s.test.sort_unstable();
    let counts = SplitCounts {
        train: s.train.len(),
        valid: s.valid.len(),
        test: s.test.len(),
        users_train_only: train_only,
    };
    (s, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(per_user: &[usize]) -> Interactions {
        let mut x = Interactions::default();
        let mut item = 0;
        for (u, &n) in per_user.iter().enumerate() {
            x.user_ids.push(format!("u{u}"));
            for t in 0..n {
                x.user.push(u as u32);
                x.item.push(item);
                x.item_ids.push(format!("i{item}"));
                item += 1;
                x.rating.push(None);
                x.timestamp.push(Some(100 - t as i64));
            }
        }
        x
    }

    #[test]
    fn random_holdout_keeps_one_of_each_and_is_seeded() {
        let x = data(&[3, 10, 20, 2]);
        let (s, c) = split(
            &x,
            &SplitKind::Random {
                valid: 0.1,
                test: 0.1,
            },
            1,
        );
        assert_eq!(c.users_train_only, 1);
        // 3 items: 1/1/1; 10: 8/1/1; 20: 16/2/2; 2: train only
        assert_eq!((c.train, c.valid, c.test), (27, 4, 4));
        for u in 0..3u32 {
            for part in [&s.train, &s.valid, &s.test] {
                assert!(
                    part.iter().any(|&r| x.user[r] == u),
                    "user {u} lacks a part"
                );
            }
        }
        let (s2, _) = split(
            &x,
            &SplitKind::Random {
                valid: 0.1,
                test: 0.1,
            },
            1,
        );
        assert_eq!(s.test, s2.test);
        let (s3, _) = split(
            &x,
            &SplitKind::Random {
                valid: 0.1,
                test: 0.1,
            },
            2,
        );
        assert_ne!(s.test, s3.test);
    }

    #[test]
    fn leave_last_out_uses_time() {
        let x = data(&[4]);
        // timestamps 100, 99, 98, 97: the latest is row 0
        let (s, _) = split(&x, &SplitKind::LeaveLastOut, 0);
        assert_eq!(
            (s.test.clone(), s.valid.clone(), s.train.clone()),
            (vec![0], vec![1], vec![2, 3])
        );
    }

    #[test]
    fn cold_users_hold_out_whole_users() {
        let x = data(&[2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        let (s, c) = split(
            &x,
            &SplitKind::ColdUsers {
                valid: 0.1,
                test: 0.1,
            },
            3,
        );
        assert_eq!((c.train, c.valid, c.test), (16, 2, 2));
        let tu: std::collections::BTreeSet<u32> = s.test.iter().map(|&r| x.user[r]).collect();
        assert_eq!(tu.len(), 1);
        assert!(s.train.iter().all(|&r| !tu.contains(&x.user[r])));
    }
}
