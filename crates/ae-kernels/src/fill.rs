//! New buffers built in parallel, chunk by chunk, so that no thread zeroes a whole buffer
//! before the threads that compute it start.
//!
//! `vec![0; n]` zeroes on the calling thread (glibc's `calloc` clears memory it reuses),
//! and the kernels' callers are the training loop's one thread: on 16 threads the zeroing of
//! the dense layers' outputs and of the loss's gradient was a fifth of a dense step's serial
//! time. Here each parallel task zeroes only its own chunk, right before it fills it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::elem::Elem;

/// Zeroes `chunk` and returns it as initialised values.
fn zeroed<T: Elem>(chunk: &mut [MaybeUninit<T>]) -> &mut [T] {
    chunk.fill(MaybeUninit::new(T::ZERO));
    // SAFETY: every element was just written; `MaybeUninit<T>` has `T`'s layout.
    unsafe { &mut *(chunk as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// A new vector of `len` values built by `f(index, chunk)` on its `chunk`-sized pieces (the
/// last one shorter) in parallel, each piece zeroed first; `f`'s results in piece order.
/// One piece runs on the calling thread.
pub(crate) fn par_new<T, R, F>(len: usize, chunk: usize, f: F) -> (Vec<T>, Vec<R>)
where
    T: Elem,
    R: Send,
    F: Fn(usize, &mut [T]) -> R + Sync,
{
    let chunk = chunk.max(1);
    let mut out = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let results = if len <= chunk {
        vec![f(0, zeroed(spare))]
    } else {
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .map(|(i, c)| f(i, zeroed(c)))
            .collect()
    };
    // SAFETY: `zeroed` initialised every piece of the first `len` elements.
    unsafe { out.set_len(len) };
    (out, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_zeroed_filled_and_in_order() {
        for (len, chunk) in [(0, 4), (3, 4), (4, 4), (10, 4), (10_000, 333)] {
            let (v, r): (Vec<f32>, Vec<usize>) = par_new(len, chunk, |i, c| {
                assert!(c.iter().all(|&x| x == 0.0), "zeroed first");
                for (j, x) in c.iter_mut().enumerate() {
                    *x = (i * chunk + j) as f32;
                }
                i
            });
            assert_eq!(v, (0..len).map(|k| k as f32).collect::<Vec<_>>());
            assert_eq!(r, (0..len.div_ceil(chunk).max(1)).collect::<Vec<_>>());
        }
    }
}
