//! How an image set holds its values: bytes where the data came as bytes (converted to `f32` per batch), `f32` otherwise.
//!
//! Data that came as 8-bit values (IDX `u8` and `i8`, `uint8` NumPy arrays, image
//! folders) stays one byte per value in memory, a quarter of the `f32` it
//! stands for: MNIST's 60,000 training images take 47 MB instead of 188 MB,
//! a 50,000-image 32x32 RGB set 154 MB instead of 614 MB. Its values are
//! `v / 255`, computed when a batch is built by exactly the expression the
//! loaders used before ([`unit`]), so batches are bit-identical to those of an
//! `f32` copy. Float sources (float NumPy arrays and IDX files, scaled integer
//! IDX files, standardised tables) stay `f32`.

use std::borrow::Cow;

/// The value in [0, 1] that byte `v` stands for: `v / 255` in `f32`.
#[inline]
pub fn unit(v: u8) -> f32 {
    f32::from(v) / 255.0
}

/// The values of an image set, row-major `[N, C, H, W]`.
#[derive(Clone)]
pub(crate) enum Store {
    /// Bytes `v`, standing for `v / 255`.
    U8(Vec<u8>),
    /// Values as they are.
    F32(Vec<f32>),
}

impl Store {
    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        match self {
            Store::U8(v) => v.len(),
            Store::F32(v) => v.len(),
        }
    }

    /// Bytes held by the values.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Store::U8(v) => v.len(),
            Store::F32(v) => v.len() * size_of::<f32>(),
        }
    }

    /// Values `range` as `f32` (borrowed when held as `f32`); `None` out of range.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> Option<Cow<'_, [f32]>> {
        match self {
            Store::U8(v) => Some(Cow::Owned(v.get(range)?.iter().map(|&x| unit(x)).collect())),
            Store::F32(v) => Some(Cow::Borrowed(v.get(range)?)),
        }
    }

    /// Asks the CPU to start loading values `range` into its caches (x86-64; elsewhere
    /// nothing), so that reading them later does not wait on memory. A batch's rows are
    /// scattered over the data set: gathering them one after the other waited on each row's
    /// first cache misses in turn. The range must be in bounds.
    #[inline]
    pub(crate) fn prefetch(&self, range: std::ops::Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // One hint per 64-byte cache line.
            match self {
                Store::U8(v) => v[range].chunks(64).for_each(|l| hint(l.as_ptr().cast())),
                Store::F32(v) => v[range].chunks(16).for_each(|l| hint(l.as_ptr().cast())),
            }
            fn hint(p: *const i8) {
                // SAFETY: a prefetch is a hint that never faults; the pointer is in bounds.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = range;
    }

    /// Appends values `range` to `out` as `f32`. The range must be in bounds.
    #[inline]
    pub(crate) fn extend_into(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        match self {
            Store::U8(v) => out.extend(v[range].iter().map(|&x| unit(x))),
            Store::F32(v) => out.extend_from_slice(&v[range]),
        }
    }

    /// The rows (of `d` values) at `indices`, in that order, held the same way.
    /// The indices must be in bounds.
    pub(crate) fn rows(&self, indices: &[usize], d: usize) -> Store {
        fn pick<T: Copy>(v: &[T], indices: &[usize], d: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * d);
            for &i in indices {
                out.extend_from_slice(&v[i * d..(i + 1) * d]);
            }
            out
        }
        match self {
            Store::U8(v) => Store::U8(pick(v, indices, d)),
            Store::F32(v) => Store::F32(pick(v, indices, d)),
        }
    }

    /// Keeps the first `n` values, and gives the memory of the rest back (a
    /// `--train-limit` slice of a large file does not hold the whole file).
    pub(crate) fn truncate(&mut self, n: usize) {
        match self {
            Store::U8(v) => {
                v.truncate(n);
                v.shrink_to_fit();
            }
            Store::F32(v) => {
                v.truncate(n);
                v.shrink_to_fit();
            }
        }
    }
}

/// Equal when the values they stand for are equal, however they are held.
impl PartialEq for Store {
    fn eq(&self, other: &Store) -> bool {
        match (self, other) {
            (Store::U8(a), Store::U8(b)) => a == b,
            (Store::F32(a), Store::F32(b)) => a == b,
            (Store::U8(a), Store::F32(b)) | (Store::F32(b), Store::U8(a)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| unit(x) == y)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_stand_for_v_over_255() {
        assert_eq!(unit(0), 0.0);
        assert_eq!(unit(255), 1.0);
        assert_eq!(unit(51), 0.2);
        let s = Store::U8(vec![0, 51, 255, 1]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.bytes(), 4);
        assert_eq!(Store::F32(vec![0.0; 4]).bytes(), 16);
        assert_eq!(s.slice(1..3).unwrap().as_ref(), &[0.2, 1.0]);
        assert!(s.slice(3..5).is_none());
        let mut out = vec![9.0];
        s.extend_into(2..4, &mut out);
        assert_eq!(out, vec![9.0, 1.0, 1.0 / 255.0]);
    }

    #[test]
    fn rows_and_equality_across_kinds() {
        let bytes = Store::U8(vec![0, 255, 51, 102, 204, 153]);
        let floats = Store::F32((0..6).map(|i| [0.0, 1.0, 0.2, 0.4, 0.8, 0.6][i]).collect());
        assert!(bytes == floats);
        assert!(floats == bytes, "equal in both orders");
        assert!(bytes != Store::F32(vec![0.0, 1.0, 0.2, 0.4, 0.8, 0.7]));
        assert!(bytes != Store::F32(vec![0.0, 1.0]));
        let picked = bytes.rows(&[2, 0, 2], 2);
        assert!(matches!(&picked, Store::U8(v) if v == &[204, 153, 0, 255, 204, 153]));
        assert!(picked == floats.rows(&[2, 0, 2], 2));
        let mut t = picked;
        t.truncate(2);
        assert_eq!(t.len(), 2);
    }
}
