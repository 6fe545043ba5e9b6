//! The rayon planner: how a batch of images is split into tasks ([`run_tasks`]), each with
//! its own output chunk and gradient accumulator, and which gradients a batched backward
//! pass returns ([`Need`], [`Grads`]).

use gemm::Parallelism;
use rayon::prelude::*;

use crate::elem::Elem;

/// How a batch is spread over threads.
struct Plan {
    /// Images handled by one task.
    per_task: usize,
    /// Parallelism handed to each GEMM.
    par: Parallelism,
}

fn plan(n: usize) -> Plan {
    let threads = rayon::current_num_threads().max(1);
    if n >= threads && threads > 1 {
        // A few tasks per thread for load balancing; each GEMM single-threaded.
        Plan {
            per_task: n.div_ceil(threads * 4).max(1),
            par: Parallelism::None,
        }
    } else {
        // Too few images: run them one after the other with a multi-threaded GEMM.
        Plan {
            per_task: n.max(1),
            par: if threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            },
        }
    }
}

/// Runs `f(images, out_chunk, acc, par)` over tasks of consecutive images, in parallel.
///
/// When `out` is non-empty it holds `out_len` elements per image and each task gets the chunk
/// of its images; otherwise every task gets an empty slice. Each task also gets its own zeroed
/// accumulator of `acc_len` elements; their sum is returned (in task order, deterministic for
/// a given thread count).
pub(crate) fn run_tasks<T: Elem, F>(
    n: usize,
    out: &mut [T],
    out_len: usize,
    acc_len: usize,
    f: F,
) -> Vec<T>
where
    F: Fn(std::ops::Range<usize>, &mut [T], &mut [T], Parallelism) + Sync,
{
    if n == 0 {
        return vec![T::ZERO; acc_len];
    }
    let p = plan(n);
    let tasks = n.div_ceil(p.per_task);
    let chunks: Vec<&mut [T]> = if out.is_empty() || out_len == 0 {
        (0..tasks).map(|_| <&mut [T]>::default()).collect()
    } else {
        out.chunks_mut(out_len * p.per_task).collect()
    };
    let accs: Vec<Vec<T>> = chunks
        .into_par_iter()
        .enumerate()
        .map(|(t, chunk)| {
            let mut acc = vec![T::ZERO; acc_len];
            let start = t * p.per_task;
            f(start..(start + p.per_task).min(n), chunk, &mut acc, p.par);
            acc
        })
        .collect();
    sum_in_order(accs, acc_len)
}

/// Elements per parallel task of [`sum_in_order`].
const SUM_CHUNK: usize = 1 << 12;

/// The element-wise sum of `parts` (each of `len` values), every element added in part
/// order (`((p0 + p1) + p2) + ...`), so the bits do not depend on how the elements are
/// split. Long sums run over chunks of elements in parallel: on 16 threads the conv chain
/// sums 64 accumulators of 28 k values after every step, which on one thread was the
/// step's largest serial phase.
fn sum_in_order<T: Elem>(parts: Vec<Vec<T>>, len: usize) -> Vec<T> {
    let mut iter = parts.into_iter();
    let mut total = iter.next().unwrap_or_else(|| vec![T::ZERO; len]);
    let rest: Vec<Vec<T>> = iter.collect();
    let add = |(c, t): (usize, &mut [T])| {
        for part in &rest {
            for (a, &b) in t.iter_mut().zip(&part[c * SUM_CHUNK..]) {
                *a += b;
            }
        }
    };
    if rest.len() * len < 1 << 16 || rayon::current_num_threads() < 2 {
        total.chunks_mut(SUM_CHUNK).enumerate().for_each(add);
    } else {
        total.par_chunks_mut(SUM_CHUNK).enumerate().for_each(add);
    }
    total
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

    /// The parallel sum adds every element in part order: the bits of a serial fold.
    #[test]
    fn sums_in_part_order_on_any_thread_count() {
        let len = 3 * SUM_CHUNK + 5;
        let parts: Vec<Vec<f32>> = (0..40)
            .map(|p| {
                (0..len)
                    .map(|i| ((i * 31 + p * 17) % 97) as f32 / 7.0 - 6.9 + 1e-7 * p as f32)
                    .collect()
            })
            .collect();
        let mut want = parts[0].clone();
        for p in &parts[1..] {
            for (a, &b) in want.iter_mut().zip(p) {
                *a += b;
            }
        }
        for threads in [1, 2, 7] {
            let got = on_threads(threads, || sum_in_order(parts.clone(), len)).unwrap();
            assert_eq!(got, want, "{threads} threads");
        }
        assert_eq!(sum_in_order::<f32>(Vec::new(), 3), vec![0.0; 3]);
    }
}
