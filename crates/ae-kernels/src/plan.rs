//! The rayon planner: how a batch of images is split into tasks ([`run_tasks`]), each with
//! its own output chunk and gradient accumulator, and which gradients a batched backward
//! pass returns ([`Need`], [`Grads`]).
//!
//! A pass that returns a gradient summed over the batch (a weight's) cuts the batch into a
//! fixed number of leaves, [`LEAVES`] at most, whose size depends on the batch alone, and
//! adds the leaves' sums over a fixed binary tree: the same additions in the same order on
//! any thread count, so a seeded run gives the same bits on a laptop and on a 64-core
//! server. Rayon's `join` runs the tree's halves; the thread count only decides which
//! thread runs which leaf.

use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::elem::Elem;

/// A batch of `n` images cut into tasks of `per_task` consecutive images (the last may hold
/// fewer), and what each task's GEMMs may use.
#[derive(Clone, Copy)]
struct Tasks {
    n: usize,
    per_task: usize,
    par: Parallelism,
}

impl Tasks {
    /// Tasks of `per_task` images (at least 1). Their GEMMs run single-threaded when there
    /// are at least as many tasks as threads, and on gemm's own threads otherwise (too few
    /// images to keep the pool busy).
    fn new(n: usize, per_task: usize) -> Self {
        let per_task = per_task.max(1);
        let threads = rayon::current_num_threads().max(1);
        let par = if n.div_ceil(per_task) >= threads {
            Parallelism::None
        } else {
            Parallelism::Rayon(threads)
        };
        Self { n, per_task, par }
    }

    /// The number of tasks.
    fn count(&self) -> usize {
        self.n.div_ceil(self.per_task)
    }

    /// The images of task `t`.
    fn images(&self, t: usize) -> Range<usize> {
        t * self.per_task..((t + 1) * self.per_task).min(self.n)
    }
}

/// Images per task of a pass without an accumulator: a few tasks per thread for load
/// balancing, or all the images in one task when there are fewer than threads.
fn per_task_by_threads(n: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    if n >= threads && threads > 1 {
        n.div_ceil(threads * 4)
    } else {
        n
    }
}

/// Most leaves a batch's accumulators are summed over: a batch of 128 images gives 64
/// leaves of 2, enough tasks for 64 threads, while each leaf's accumulator (28 k values for
/// the MNIST conv model) is zeroed and added once per leaf.
pub(crate) const LEAVES: usize = 64;

/// Runs `f(images, out_chunk, acc, par)` over tasks of consecutive images, in parallel.
///
/// When `out` is non-empty it holds `out_len` elements per image and each task gets the chunk
/// of its images; otherwise every task gets an empty slice. Each task also gets its own zeroed
/// accumulator of `acc_len` elements; their sum is returned. With an accumulator, the tasks
/// are the leaves of a tree fixed by `n` alone (see the module's doc), so the sum's bits do
/// not depend on the thread count, provided `f` computes a task's accumulator the same way
/// whatever its `par` (gemm's threads cut the output, never a sum).
pub(crate) fn run_tasks<T: Elem, F>(
    n: usize,
    out: &mut [T],
    out_len: usize,
    acc_len: usize,
    f: F,
) -> Vec<T>
where
    F: Fn(Range<usize>, &mut [T], &mut [T], Parallelism) + Sync,
{
    if n == 0 {
        return vec![T::ZERO; acc_len];
    }
    let out: &mut [T] = if out_len == 0 { &mut [] } else { out };
    if acc_len == 0 {
        let tasks = Tasks::new(n, per_task_by_threads(n));
        let chunks: Vec<&mut [T]> = if out.is_empty() {
            (0..tasks.count()).map(|_| <&mut [T]>::default()).collect()
        } else {
            out.chunks_mut(out_len * tasks.per_task).collect()
        };
        chunks
            .into_par_iter()
            .enumerate()
            .for_each(|(t, chunk)| f(tasks.images(t), chunk, &mut [], tasks.par));
        return Vec::new();
    }
    let tree = Tree {
        tasks: Tasks::new(n, n.div_ceil(LEAVES)),
        out_len,
        acc_len,
        f: &f,
    };
    tree.sum(0..tree.tasks.count(), out)
}

/// The fixed summation tree of [`run_tasks`].
struct Tree<'f, F> {
    /// The leaves.
    tasks: Tasks,
    /// Output values per image (0: no output), and accumulator values per leaf.
    out_len: usize,
    acc_len: usize,
    f: &'f F,
}

impl<F> Tree<'_, F> {
    /// The sum of the accumulators of `leaves`, whose images' outputs are `out`: a leaf's
    /// own, or the left half's plus the right half's (the halves in parallel).
    fn sum<T: Elem>(&self, leaves: Range<usize>, out: &mut [T]) -> Vec<T>
    where
        F: Fn(Range<usize>, &mut [T], &mut [T], Parallelism) + Sync,
    {
        if leaves.len() == 1 {
            let mut acc = vec![T::ZERO; self.acc_len];
            let t = &self.tasks;
            (self.f)(t.images(leaves.start), out, &mut acc, t.par);
            return acc;
        }
        let mid = leaves.start + leaves.len() / 2;
        let at = ((mid - leaves.start) * self.tasks.per_task * self.out_len).min(out.len());
        let (lo, hi) = out.split_at_mut(at);
        let (mut a, b) = rayon::join(
            || self.sum(leaves.start..mid, lo),
            || self.sum(mid..leaves.end, hi),
        );
        add_into(&mut a, &b, leaves.len() * 4 >= LEAVES);
        a
    }
}

/// Elements per parallel task of [`add_into`].
const ADD_CHUNK: usize = 1 << 12;

/// `a += b` element-wise; over chunks in parallel when `wide` (the tree's top levels, which
/// run while the other threads have no leaf left) and the sum is long.
fn add_into<T: Elem>(a: &mut [T], b: &[T], wide: bool) {
    let add = |(x, y): (&mut [T], &[T])| {
        for (p, &q) in x.iter_mut().zip(y) {
            *p += q;
        }
    };
    if wide && a.len() >= 4 * ADD_CHUNK && rayon::current_num_threads() > 1 {
        a.par_chunks_mut(ADD_CHUNK)
            .zip(b.par_chunks(ADD_CHUNK))
            .for_each(add);
    } else {
        add((a, b));
    }
}
/// The `i`-th `len`-sized block of `data`.
pub(crate) fn block<T>(data: &[T], i: usize, len: usize) -> &[T] {
    &data[i * len..(i + 1) * len]
}

/// Which gradients a backward pass must produce.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Need {
    /// Gradient of the op's first input.
    pub input: bool,
    /// Gradient of the weight.
    pub weight: bool,
    /// Gradient of the bias.
    pub bias: bool,
}

/// Gradients of a convolution or transposed convolution.
pub(crate) struct Grads<T> {
    /// Gradient of the op's first input (the image for a convolution, the output-space
    /// tensor for a transposed convolution).
    pub input: Option<Vec<T>>,
    /// Gradient of the weight `[o, c, kh, kw]`.
    pub weight: Option<Vec<T>>,
    /// Gradient of the bias.
    pub bias: Option<Vec<T>>,
}

/// Splits a task accumulator `[gw (o*k) | gb]` into the requested gradients.
pub(crate) fn split_acc<T: Elem>(
    acc: Vec<T>,
    wlen: usize,
    need: Need,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let mut acc = acc;
    let gb = need.bias.then(|| acc.split_off(wlen));
    let gw = need.weight.then_some(acc);
    (gw, gb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::on_threads;

    /// What a task adds for image `i`: values of very different sizes, so that another
    /// order of the additions gives other bits.
    fn term(i: usize, e: usize) -> f32 {
        let x = ((i * 7919 + e * 104_729) % 1009) as f32 / 1009.0 - 0.5;
        x * [1e-3, 1.0, 1e3, 1e-1][(i + e) % 4]
    }

    /// `run_tasks` with one accumulator term per image and an output of `out_len` values per
    /// image.
    fn run(n: usize, acc_len: usize, out_len: usize) -> (Vec<f32>, Vec<f32>) {
        let mut out = vec![0f32; n * out_len];
        let acc = run_tasks(n, &mut out, out_len, acc_len, |imgs, chunk, acc, _| {
            for (j, i) in imgs.clone().enumerate() {
                for (e, a) in acc.iter_mut().enumerate() {
                    *a += term(i, e);
                }
                for (k, o) in chunk[j * out_len..(j + 1) * out_len].iter_mut().enumerate() {
                    *o += (i * 10 + k) as f32;
                }
            }
        });
        (acc, out)
    }

    /// The accumulators' sum has the same bits on any thread count, is the sum (within
    /// rounding), and every image's output is written once, in its place.
    #[test]
    fn the_accumulated_sum_has_the_same_bits_on_any_thread_count() {
        let len = 5 * ADD_CHUNK + 3;
        let mut order_matters = false;
        for n in [1, 3, 64, 65, 128, 200, 1000] {
            let one = on_threads(1, || run(n, len, 3)).unwrap();
            for threads in [2, 3, 7, 16] {
                let got = on_threads(threads, || run(n, len, 3)).unwrap();
                assert!(got.0 == one.0, "n {n}, {threads} threads: other bits");
                assert_eq!(got.1, one.1, "n {n}, {threads} threads: outputs");
            }
            for e in 0..len {
                let exact: f64 = (0..n).map(|i| f64::from(term(i, e))).sum();
                let bound = 1e-5 * (0..n).map(|i| f64::from(term(i, e).abs())).sum::<f64>();
                assert!(
                    (f64::from(one.0[e]) - exact).abs() <= bound + 1e-9,
                    "n {n}, e {e}"
                );
                let serial = (0..n).fold(0f32, |s, i| s + term(i, e));
                order_matters |= serial != one.0[e];
            }
            let want: Vec<f32> = (0..n)
                .flat_map(|i| (0..3).map(move |k| (i * 10 + k) as f32))
                .collect();
            assert_eq!(one.1, want, "n {n}: outputs");
        }
        assert!(
            order_matters,
            "the terms do not tell one order of additions from another"
        );
    }

    /// Without an accumulator every image's output is still written once, in its place.
    #[test]
    fn outputs_without_an_accumulator_land_in_place() {
        for threads in [1, 2, 5] {
            for n in [1, 4, 37] {
                let (acc, out) = on_threads(threads, || run(n, 0, 2)).unwrap();
                assert!(acc.is_empty());
                let want: Vec<f32> = (0..n)
                    .flat_map(|i| (0..2).map(move |k| (i * 10 + k) as f32))
                    .collect();
                assert_eq!(out, want, "{threads} threads, n {n}");
            }
        }
        assert_eq!(
            run_tasks::<f32, _>(0, &mut [], 0, 4, |_, _, _, _| {}),
            vec![0.0; 4]
        );
    }
}
