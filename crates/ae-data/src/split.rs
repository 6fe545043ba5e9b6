//! The seeded hold-out of `--test-fraction`: which rows of one file are the test split.
//!
//! The rows are shuffled by the `"test-split"` stream of the seed
//! ([`crate::rng::stream`]); the first `round(n * fraction)` (at least 1 when
//! the fraction is positive) are the test split. Both splits keep the file's
//! order, so row `i` of a split is the `i`-th of its rows in the file.

use std::path::Path;

use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::rng::stream;

/// The fraction held out when neither `--test-data` nor `--test-fraction` is given.
pub const DEFAULT_TEST_FRACTION: f64 = 0.1;

/// The training and test indices (each sorted) of `n` rows of `file`.
pub fn holdout(
    n: usize,
    fraction: f64,
    seed: u64,
    file: &Path,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&fraction) || fraction.is_nan() {
        return Err(DataError::InvalidConfig(format!(
            "test fraction {fraction}: expected a value in [0, 1)"
        )));
    }
    let mut n_test = (n as f64 * fraction).round() as usize;
    if fraction > 0.0 {
        n_test = n_test.max(1);
    }
    if n_test >= n {
        return Err(DataError::Source {
            path: file.into(),
            problem: format!(
                "{n} items cannot be split into a training set and a test fraction of {fraction}: \
                 give more data or --test-data"
            ),
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(seed, "test-split"));
    let mut test = order[..n_test].to_vec();
    let mut train = order[n_test..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_sorted_seeded() {
        let f = Path::new("x");
        let (tr, te) = holdout(100, 0.1, 7, f).unwrap();
        assert_eq!((tr.len(), te.len()), (90, 10));
        assert!(tr.windows(2).all(|w| w[0] < w[1]));
        assert!(te.iter().all(|i| !tr.contains(i)));
        assert_eq!(holdout(100, 0.1, 7, f).unwrap().1, te);
        assert_ne!(holdout(100, 0.1, 8, f).unwrap().1, te);
        // A positive fraction holds out at least one row; 0 holds out none.
        assert_eq!(holdout(5, 0.01, 0, f).unwrap().1.len(), 1);
        assert!(holdout(5, 0.0, 0, f).unwrap().1.is_empty());
        assert!(holdout(1, 0.5, 0, f).is_err());
        assert!(holdout(10, 1.0, 0, f).is_err());
        assert!(holdout(10, f64::NAN, 0, f).is_err());
    }
}
