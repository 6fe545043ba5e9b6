//! A GEMM spread over rayon's threads as a grid of single-threaded blocks, for the small,
//! short-lived products of the dense layers (a few hundred rows by a few hundred columns).
//!
//! gemm's own parallel mode synchronises inside every product; at these sizes that costs
//! more than the product. Instead the output is cut into blocks, each one single-threaded
//! GEMM, and an optional epilogue (the bias and the ReLU) runs on each block's rows while
//! they are in cache. Cutting the output never changes how an element is computed: every
//! grid gives the same bits.
//!
//! The grid: on up to [`ROW_SPLIT_MAX_THREADS`] threads (the 2-core machine every ratio of
//! `cargo xtask bench` is measured on), one block of rows per thread, as before. On more,
//! blocks of rows alone get too thin (16 threads on a 256-row batch: 16 rows each, and each
//! block packs the whole right-hand matrix again), so the columns are cut as well, choosing
//! the grid that uses the most threads and, among those, re-reads the least
//! (`row blocks x columns + column blocks x rows`), with blocks of at least [`BLOCK_MIN`]
//! rows and columns and a number of multiply-adds ([`crate::tuning`]: settable at run time,
//! to tune a many-core machine without rebuilding).

use gemm::Parallelism;
use rayon::prelude::*;

use crate::elem::Elem;
use crate::matmul::{MatView, matmul};
use crate::tuning::{GemmTuning, gemm_tuning};

/// Up to this many threads the grid is one block of rows per thread.
pub(crate) const ROW_SPLIT_MAX_THREADS: usize = 4;
/// Fewest rows and columns of a block in a two-way grid.
pub(crate) const BLOCK_MIN: usize = 32;

/// How gemm 0.19 orders the sum of each output element of an `m x n` product with inner
/// size `k`: a single row or a single column takes a matrix-vector path of its own; other
/// products of at most 256 outputs take a path of SIMD dot products (lane-wise partial
/// sums); the rest run the inner dimension through the microkernels in blocks,
/// of at most 512 for outputs within 64 x 64 and of a size from the cache sizes otherwise,
/// which differ once `k` is over 512. Two products of one class give the same bits.
fn sum_order(m: usize, n: usize, k: usize) -> u8 {
    if m == 1 {
        4
    } else if n == 1 {
        5
    } else if m * n <= 256 {
        0
    } else if k <= 512 {
        1
    } else if m <= 64 && n <= 64 {
        2
    } else {
        3
    }
}

/// Whether every block of an `(rb, cb)` grid of an `m x n` output sums its elements as
/// the whole product does (see [`sum_order`]): then the grid gives the bits of one thread.
fn same_sums(m: usize, n: usize, k: usize, rb: usize, cb: usize) -> bool {
    // A product on gemm's matrix-vector or dot-product paths (one row, one column, or at
    // most 256 outputs) sums a part of its output otherwise than the whole (measured: a
    // 1 x 400 output in 4 blocks of 100, a 2 x 128 one in 3 blocks of 43): it is not cut.
    if (m == 1 || n == 1 || m * n <= 256) && rb * cb > 1 {
        return false;
    }
    let whole = sum_order(m, n, k);
    let sides = |len: usize, parts: usize| {
        let per = len.div_ceil(parts).max(1);
        [per, len - (len.div_ceil(per) - 1) * per]
    };
    sides(m, rb).into_iter().all(|r| {
        sides(n, cb)
            .into_iter()
            .all(|c| sum_order(r, c, k) == whole)
    })
}

/// `(row blocks, column blocks)` for an `m x n` output with inner size `k` on `threads`,
/// with the thresholds in force ([`gemm_tuning`]).
pub(crate) fn grid(m: usize, n: usize, k: usize, threads: usize) -> (usize, usize) {
    grid_with(m, n, k, threads, gemm_tuning())
}

/// [`grid`] with the thresholds `tune`: GEMMs below `tune.par_min_flops` multiply-adds run
/// on one thread (rayon's fork-join would cost more), and on more than
/// [`ROW_SPLIT_MAX_THREADS`] threads no block has fewer than `tune.block_min_flops`. Only
/// grids whose blocks give the same bits as one thread ([`same_sums`]).
fn grid_with(m: usize, n: usize, k: usize, threads: usize, tune: GemmTuning) -> (usize, usize) {
    let work = m.saturating_mul(n).saturating_mul(k);
    if threads <= 1 || work < tune.par_min_flops || m == 0 || n == 0 {
        return (1, 1);
    }
    if threads <= ROW_SPLIT_MAX_THREADS {
        let rb = (1..=threads.min(m))
            .rev()
            .find(|&rb| same_sums(m, n, k, rb, 1))
            .unwrap_or(1);
        return (rb, 1);
    }
    let blocks = threads.min((work / tune.block_min_flops.max(1)).max(1));
    let max_rb = (m / BLOCK_MIN).clamp(1, blocks);
    let max_cb = (n / BLOCK_MIN).clamp(1, blocks);
    let mut best = (1, 1);
    let mut best_key = (0, usize::MAX);
    for rb in 1..=max_rb {
        let cb = (blocks / rb).clamp(1, max_cb);
        if !same_sums(m, n, k, rb, cb) {
            continue;
        }
        let key = (rb * cb, rb * n + cb * m);
        if key.0 > best_key.0 || (key.0 == best_key.0 && key.1 < best_key.1) {
            best = (rb, cb);
            best_key = key;
        }
    }
    best
}

/// Runs on each output row segment after its block's GEMM: `(first column, segment)`.
pub(crate) type Epilogue<'a, T> = &'a (dyn Fn(usize, &mut [T]) + Sync);

/// The output's base pointer, shared by the blocks, which write disjoint elements.
struct Out<T>(*mut T);
// SAFETY: each block writes only its own rectangle of the output (see `par_matmul`).
unsafe impl<T: Send> Send for Out<T> {}
// SAFETY: as above; the pointer itself is only read.
unsafe impl<T: Send> Sync for Out<T> {}

/// `lhs @ rhs` as a new row-major `[m, cols]` vector (`m = lv.rows`), computed on a
/// [`grid`] of blocks, then `epilogue(first column, row segment)` on every row segment of
/// every block. Each block zeroes (or, on a two-way grid, writes) only its own part of the
/// output, so no thread clears the whole output first ([`crate::fill`]).
///
/// # Panics
/// When a view does not fit its buffer or the shapes disagree (internal invariant).
pub(crate) fn par_matmul<T: Elem>(
    cols: usize,
    lhs: &[T],
    lv: MatView,
    rhs: &[T],
    rv: MatView,
    epilogue: Option<Epilogue<'_, T>>,
) -> Vec<T> {
    let m = lv.rows;
    assert!(rv.cols == cols && lv.cols == rv.rows);
    let len = m * cols;
    let (rb, cb) = grid(m, cols, lv.cols, rayon::current_num_threads());
    let rows_per = m.div_ceil(rb).max(1);
    let cols_per = cols.div_ceil(cb).max(1);
    if cb == 1 {
        // Whole rows: each block is a contiguous chunk of the output (one block, on the
        // calling thread, when `rb` is 1).
        let run = |i: usize, d: &mut [T]| {
            let rows = d.len() / cols.max(1);
            let view = MatView { rows, ..lv };
            let l = &lhs[(i * rows_per * lv.rs).min(lhs.len())..];
            matmul(
                d,
                MatView::row_major(rows, cols),
                false,
                l,
                view,
                rhs,
                rv,
                Parallelism::None,
            );
            if let Some(e) = epilogue {
                d.chunks_exact_mut(cols).for_each(|row| e(0, row));
            }
        };
        return crate::fill::par_new(len, rows_per * cols, run).0;
    }
    let mut dst: Vec<T> = Vec::with_capacity(len);
    let out = Out(dst.as_mut_ptr());
    let out = &out;
    (0..rb * cb).into_par_iter().for_each(|t| {
        let (r0, c0) = ((t / cb) * rows_per, (t % cb) * cols_per);
        if r0 >= m || c0 >= cols {
            return;
        }
        let (rows, width) = (rows_per.min(m - r0), cols_per.min(cols - c0));
        let mut tile = vec![T::ZERO; rows * width];
        matmul(
            &mut tile,
            MatView::row_major(rows, width),
            false,
            &lhs[r0 * lv.rs..],
            MatView { rows, ..lv },
            &rhs[c0 * rv.cs..],
            MatView { cols: width, ..rv },
            Parallelism::None,
        );
        for (r, src) in (r0..r0 + rows).zip(tile.chunks_exact(width)) {
            // SAFETY: block t covers rows r0..r0+rows and columns c0..c0+width of the
            // m x cols output, inside `dst`'s capacity of m * cols, and no other block
            // covers any of those elements; the segment is initialised by the copy before
            // it is turned into a slice.
            let seg = unsafe {
                let p = out.0.add(r * cols + c0);
                std::ptr::copy_nonoverlapping(src.as_ptr(), p, width);
                std::slice::from_raw_parts_mut(p, width)
            };
            if let Some(e) = epilogue {
                e(c0, seg);
            }
        }
    });
    // SAFETY: the blocks' rectangles tile the whole output (`rb * rows_per >= m`,
    // `cb * cols_per >= cols`), and every block wrote all of its elements.
    unsafe { dst.set_len(len) };
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::on_threads;

    #[test]
    fn few_threads_split_rows_only_as_before() {
        assert_eq!(grid(256, 128, 784, 2), (2, 1));
        assert_eq!(grid(256, 784, 128, 4), (4, 1));
        assert_eq!(grid(8, 8, 8, 2), (1, 1), "too small to split");
    }

    #[test]
    fn grids_keep_the_sum_order_of_one_thread() {
        // 64 x 64 blocks of a k > 512 product: refused.
        assert!(!same_sums(256, 256, 784, 4, 4));
        assert!(same_sums(256, 784, 256, 4, 4), "k <= 512: one block of k");
        let (rb, cb) = grid(256, 256, 784, 16);
        assert!(rb * cb > 1 && same_sums(256, 256, 784, rb, cb), "{rb}x{cb}");
        // 16 rows of a 32-wide output (256 values: gemm's dot-product path) from a whole
        // that is not: fewer blocks.
        assert_eq!(grid(32, 32, 784, 2), (2, 1));
        assert_eq!(grid(16, 32, 784, 2), (1, 1));
        // Last blocks are checked too: 70 rows in 3 blocks are 24, 24 and 22.
        assert!(!same_sums(70, 16, 600, 3, 1));
        // A block of one row (or column) takes gemm's matrix-vector path: the conv VAE's
        // code-to-features layer (20 -> 3136) on a batch of 3 may not be cut 2 + 1.
        assert!(!same_sums(3, 3136, 20, 2, 1));
        assert!(!same_sums(600, 4, 20, 1, 4));
        assert_eq!(grid(3, 3136, 20, 2), (1, 1));
        // ... and cutting the columns of a one-row product changes its sums too.
        assert!(!same_sums(1, 400, 784, 1, 4));
        assert_eq!(grid(1, 400, 784, 8), (1, 1));
    }

    #[test]
    fn many_threads_cut_columns_too() {
        // The seed model's widest products at 16 threads. The first layer's (inner size
        // 784) may not use 64 x 64 blocks or smaller (`same_sums`): 12 blocks of 86 x 32.
        let (rb, cb) = grid(256, 128, 784, 16);
        assert_eq!((rb, cb), (3, 4));
        let (rb, cb) = grid(128, 784, 256, 16);
        assert_eq!(rb * cb, 16);
        assert!(cb > rb, "weight gradient: wide output, {rb}x{cb}");
        // Small products use fewer threads.
        let (rb, cb) = grid(256, 32, 64, 16);
        assert!(rb * cb <= 8 && cb == 1, "{rb}x{cb}");
    }

    /// The thresholds decide how many threads a product uses, and only that.
    #[test]
    fn the_thresholds_set_the_threads_a_product_uses() {
        let d = GemmTuning::default();
        let blocks = |tune| {
            let (rb, cb) = grid_with(256, 64, 128, 16, tune);
            rb * cb
        };
        // 2 M multiply-adds: 16 blocks by default, 2 with blocks of at least 1 M, none when
        // products below 4 M stay on one thread.
        assert_eq!(blocks(d), 16);
        let big_blocks = GemmTuning {
            block_min_flops: 1 << 20,
            ..d
        };
        assert_eq!(blocks(big_blocks), 2);
        let serial = GemmTuning {
            par_min_flops: 1 << 22,
            ..d
        };
        assert_eq!(blocks(serial), 1);
        assert_eq!(grid_with(256, 64, 128, 2, serial), (1, 1));
        assert_eq!(grid_with(256, 64, 128, 2, d), (2, 1));
    }

    /// Deterministic `[m, k]` and `[k, n]` operands.
    fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let lhs = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let rhs = (0..k * n)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0)
            .collect();
        (lhs, rhs)
    }

    /// Every grid gives the same bits as one single-threaded GEMM, epilogue included.
    #[test]
    fn every_grid_gives_the_same_bits() {
        let (m, k, n) = (97, 131, 75);
        let (lhs, rhs) = operands(m, k, n);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 / 7.0 - 5.0).collect();
        let epi = |c0: usize, row: &mut [f32]| {
            for (v, b) in row.iter_mut().zip(&bias[c0..]) {
                *v = (*v + b).max(0.0);
            }
        };
        let run = |threads: usize, rhs: &[f32], rv: MatView| {
            on_threads(threads, || {
                par_matmul(n, &lhs, MatView::row_major(m, k), rhs, rv, Some(&epi))
            })
            .unwrap()
        };
        let one = run(1, &rhs, MatView::row_major(k, n));
        assert!(one.iter().any(|v| *v > 0.0) && one.contains(&0.0));
        for threads in [2, 3, 5, 8, 16] {
            let (rb, cb) = grid(m, n, k, threads);
            assert!(rb * cb > 1, "{threads} threads: {rb}x{cb}");
            assert_eq!(
                run(threads, &rhs, MatView::row_major(k, n)),
                one,
                "{threads} threads"
            );
        }
        // A transposed right-hand side (the weight-gradient form) too.
        let rt: Vec<f32> = (0..n * k).map(|i| rhs[(i % k) * n + i / k]).collect();
        assert_eq!(run(16, &rt, MatView::row_major(n, k).t()), one);
    }

    /// Few rows: a one-row block (gemm's matrix-vector path) would sum otherwise than the
    /// whole product. Measured: a batch of 3 through a 20 -> 3136 layer gave other bits on
    /// 2 threads (blocks of 2 and 1 rows) than on 1, a batch of 1 through 784 -> 400 on 8
    /// threads (4 blocks of columns), and the input gradient of a batch of 2 through
    /// 128 -> 784 (a 2 x 128 output in 3 blocks of columns) on 5.
    #[test]
    fn few_rows_give_the_same_bits_on_any_thread_count() {
        for (m, k, n) in [
            (3, 20, 3136),
            (5, 20, 400),
            (2, 600, 300),
            (3, 3136, 20),
            (5, 3136, 20),
            (1, 784, 400),
            (1, 400, 784),
            (400, 784, 1),
            (2, 784, 128),
        ] {
            assert_same_bits_on(&[2, 3, 4, 5, 8, 16], (m, k, n), false);
        }
    }

    /// The seed model's first layer on any thread count: 64 x 64 blocks would split its
    /// inner size (784) at 512 where the whole product splits it otherwise.
    #[test]
    fn the_first_layer_gives_the_same_bits_on_any_thread_count() {
        assert_same_bits_on(&[2, 4, 8, 16, 32], (256, 784, 256), true);
    }

    /// Asserts that the `m x k` by `k x n` product of [`operands`] (the right-hand side read
    /// transposed from an `n x k` buffer when `transposed`, as the dense layers' weights are)
    /// has the bits of one thread on each of `threads`.
    fn assert_same_bits_on(threads: &[usize], (m, k, n): (usize, usize, usize), transposed: bool) {
        let (lhs, rhs) = operands(m, k, n);
        let rv = if transposed {
            MatView::row_major(n, k).t()
        } else {
            MatView::row_major(k, n)
        };
        let at = |t: usize| {
            on_threads(t, || {
                par_matmul(n, &lhs, MatView::row_major(m, k), &rhs, rv, None)
            })
            .unwrap()
        };
        let one = at(1);
        for &t in threads {
            assert!(at(t) == one, "{m}x{k}x{n}, {t} threads");
        }
    }
}
