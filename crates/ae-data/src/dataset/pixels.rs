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
use std::mem::MaybeUninit;

/// The value in [0, 1] that byte `v` stands for: `v / 255` in `f32`.
#[inline]
pub fn unit(v: u8) -> f32 {
    f32::from(v) / 255.0
}

/// Batches of at least this many values are gathered in parallel.
const GATHER_PAR_MIN: usize = 1 << 15;
/// About this many values per parallel task of a gather (whole rows).
const GATHER_TASK_VALUES: usize = 1 << 13;

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

    /// Replaces `out` with the rows (of `d` values) at `indices` as `f32`, in that order.
    /// The indices must be in bounds.
    ///
    /// A batch of more than [`GATHER_PAR_MIN`] values is converted in parallel, in groups
    /// of rows: the gather is the only part of a fused training step that no other thread
    /// shared, and on 16 threads it was a third of a dense step's serial time. Every value
    /// is the same either way.
    pub(crate) fn gather_rows(&self, indices: &[usize], d: usize, out: &mut Vec<f32>) {
        use rayon::prelude::*;
        let total = indices.len() * d;
        out.clear();
        out.reserve(total);
        if d == 0 || total < GATHER_PAR_MIN || rayon::current_num_threads() < 2 {
            self.gather_serial(indices, d, &mut out.spare_capacity_mut()[..total]);
        } else {
            let rows = GATHER_TASK_VALUES.div_ceil(d);
            out.spare_capacity_mut()[..total]
                .par_chunks_mut(rows * d)
                .zip(indices.par_chunks(rows))
                .for_each(|(dst, idx)| self.gather_serial(idx, d, dst));
        }
        // SAFETY: `gather_serial` wrote all `d` values of every row of `indices`, that is
        // the first `total` elements of the spare capacity reserved above.
        unsafe { out.set_len(total) };
    }

    /// Writes the rows at `indices` into `dst` (`indices.len() * d` values), asking for
    /// each row a few rows ahead of its conversion: the rows are scattered over the set,
    /// and so their loads overlap instead of waiting in turn.
    fn gather_serial(&self, indices: &[usize], d: usize, dst: &mut [MaybeUninit<f32>]) {
        const AHEAD: usize = 8;
        for &i in indices.iter().take(AHEAD) {
            self.prefetch(i * d..(i + 1) * d);
        }
        for (k, (&i, row)) in indices
            .iter()
            .zip(dst.chunks_exact_mut(d.max(1)))
            .enumerate()
        {
            if let Some(&next) = indices.get(k + AHEAD) {
                self.prefetch(next * d..(next + 1) * d);
            }
            match self {
                Store::U8(v) => {
                    for (o, &x) in row.iter_mut().zip(&v[i * d..(i + 1) * d]) {
                        o.write(unit(x));
                    }
                }
                Store::F32(v) => {
                    for (o, &x) in row.iter_mut().zip(&v[i * d..(i + 1) * d]) {
                        o.write(x);
                    }
                }
            }
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
        s.gather_rows(&[1, 0], 2, &mut out);
        assert_eq!(
            out,
            vec![1.0, 1.0 / 255.0, 0.0, 0.2],
            "replaced, not appended"
        );
    }

    /// A batch large enough to be gathered in parallel gives, on any number of threads,
    /// the values of a row-by-row copy (rows of an odd length, a last group cut short).
    #[test]
    fn parallel_gather_is_the_row_by_row_copy() {
        let d = 333;
        let n = 500;
        let bytes: Vec<u8> = (0..n * d).map(|i| (i * 7 % 256) as u8).collect();
        let floats: Vec<f32> = (0..n * d).map(|i| i as f32 * 0.5 - 7.0).collect();
        let indices: Vec<usize> = (0..431).map(|k| (k * 191 + 17) % n).collect();
        assert!(indices.len() * d >= GATHER_PAR_MIN);
        let expect = |row: &dyn Fn(usize) -> f32| -> Vec<f32> {
            indices
                .iter()
                .flat_map(|&i| (0..d).map(move |j| (i, j)))
                .map(|(i, j)| row(i * d + j))
                .collect()
        };
        let want_b = expect(&|k| unit(bytes[k]));
        let want_f = expect(&|k| floats[k]);
        let (sb, sf) = (Store::U8(bytes), Store::F32(floats));
        for threads in [1, 2, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![1.0; 3];
            pool.install(|| sb.gather_rows(&indices, d, &mut out));
            assert_eq!(out, want_b, "bytes, {threads} threads");
            pool.install(|| sf.gather_rows(&indices, d, &mut out));
            assert_eq!(out, want_f, "floats, {threads} threads");
        }
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
