//! Seeded mini-batching: one index permutation per epoch (Fisher-Yates from `AeRng`), served as slices.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng::AeRng;

/// How an epoch is cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batcher {
    /// Images per batch (>= 1; a 0 set directly is treated as 1).
    pub batch_size: usize,
    /// Shuffle the order every epoch.
    pub shuffle: bool,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
}

impl Batcher {
    /// A shuffling batcher that keeps the last, smaller batch.
    pub fn new(batch_size: usize) -> Result<Batcher> {
        if batch_size == 0 {
            return Err(DataError::ZeroBatchSize);
        }
        Ok(Batcher {
            batch_size,
            shuffle: true,
            drop_last: false,
        })
    }

    fn size(&self) -> usize {
        self.batch_size.max(1)
    }

    /// Number of batches an epoch over `n` images has.
    pub fn num_batches(&self, n: usize) -> usize {
        if self.drop_last {
            n / self.size()
        } else {
            n.div_ceil(self.size())
        }
    }

    /// The order of one epoch over `n` images: a permutation drawn from `rng` when
    /// shuffling (nothing is drawn otherwise), else `0..n`.
    pub fn epoch_order(&self, n: usize, rng: &mut AeRng) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        if self.shuffle {
            shuffle(&mut order, rng);
        }
        order
    }

    /// One epoch over `n` images.
    pub fn epoch(&self, n: usize, rng: &mut AeRng) -> Epoch {
        Epoch {
            order: self.epoch_order(n, rng),
            batch_size: self.size(),
            drop_last: self.drop_last,
        }
    }
}

/// Fisher-Yates shuffle (from the end), drawing `j` in `0..=i` as a `u64` range so
/// the result is identical on every platform.
pub fn shuffle<T>(v: &mut [T], rng: &mut AeRng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        v.swap(i, j);
    }
}

/// One epoch: a permutation, iterated as `&[usize]` batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
}

impl Epoch {
    /// The whole order of the epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        if self.drop_last {
            self.order.len() / self.batch_size
        } else {
            self.order.len().div_ceil(self.batch_size)
        }
    }

    /// Whether there is no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches, in order.
    pub fn iter(&self) -> std::iter::Take<std::slice::Chunks<'_, usize>> {
        self.order.chunks(self.batch_size).take(self.len())
    }

    /// The permutation, consuming the epoch.
    pub fn into_order(self) -> Vec<usize> {
        self.order
    }
}

impl<'a> IntoIterator for &'a Epoch {
    type Item = &'a [usize];
    type IntoIter = std::iter::Take<std::slice::Chunks<'a, usize>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn zero_batch_size_is_an_error() {
        assert!(matches!(Batcher::new(0), Err(DataError::ZeroBatchSize)));
        // Set directly: no panic.
        let b = Batcher {
            batch_size: 0,
            shuffle: false,
            drop_last: false,
        };
        assert_eq!(b.epoch(3, &mut seeded(0)).len(), 3);
    }

    #[test]
    fn identity_without_shuffle() {
        let b = Batcher {
            shuffle: false,
            ..Batcher::new(4).unwrap()
        };
        let mut rng = seeded(0);
        let e = b.epoch(10, &mut rng);
        assert_eq!(e.order(), (0..10).collect::<Vec<_>>().as_slice());
        let sizes: Vec<usize> = e.iter().map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        assert_eq!(rng.get_word_pos(), 0);
    }

    #[test]
    fn empty_epoch() {
        let b = Batcher::new(4).unwrap();
        let e = b.epoch(0, &mut seeded(0));
        assert!(e.is_empty());
        assert_eq!(e.iter().count(), 0);
    }
}
