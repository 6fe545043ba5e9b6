//! Helpers the tests of several crates share (as candle's `test_utils`): deterministic
//! inputs, a relative error between tensors, and a run on a given number of threads.

use candle_core::{DType, Result, Tensor};

/// The states of one small LCG seeded by `seed` (after the seeding step), the source of
/// [`values`] and [`centred_f64`], so failures reproduce.
fn lcg(seed: u64) -> impl Iterator<Item = u64> {
    let step = |s: u64| {
        s.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
    };
    std::iter::successors(Some(step(seed)), move |&s| Some(step(s))).skip(1)
}

/// `n` deterministic values in `[lo, hi)` seeded by `seed`.
pub fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    lcg(seed)
        .take(n)
        .map(|s| lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32))
        .collect()
}

/// `n` deterministic `f64` values in `[-0.5, 0.5)` seeded by `seed` (the kernels' unit
/// tests' inputs).
pub fn centred_f64(n: usize, seed: u64) -> Vec<f64> {
    lcg(seed)
        .take(n)
        .map(|s| ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5)
        .collect()
}

/// Max |a - b| relative to max(1, max |b|); the shapes must agree.
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64)?;
    let b = b.to_dtype(DType::F64)?;
    let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f64>()?;
    let scale = b.abs()?.max_all()?.to_scalar::<f64>()?.max(1.0);
    Ok(diff / scale)
}

/// `f()` on a rayon pool of its own with `threads` threads, for checking that a kernel gives
/// the same bits on any thread count.
pub fn on_threads<R: Send>(
    threads: usize,
    f: impl FnOnce() -> R + Send,
) -> std::result::Result<R, rayon::ThreadPoolBuildError> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?
        .install(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_in_range_and_reproduce() {
        let v = values(1000, 3, -2.0, 5.0);
        assert!(v.iter().all(|x| (-2.0..5.0).contains(x)));
        assert_eq!(v, values(1000, 3, -2.0, 5.0));
        assert_ne!(v, values(1000, 4, -2.0, 5.0));
        let a = Tensor::new(&[1.0f32, 4.0], &candle_core::Device::Cpu).unwrap();
        let b = Tensor::new(&[1.0f32, 2.0], &candle_core::Device::Cpu).unwrap();
        assert_eq!(rel_err(&a, &b).unwrap(), 1.0);
    }

    /// The inputs every kernel test draws stay the same values: the LCG written out.
    #[test]
    fn the_lcg_is_the_written_out_recurrence() {
        let step = |s: u64| {
            s.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
        };
        let mut s = step(42);
        let want: Vec<u64> = (0..5)
            .map(|_| {
                s = step(s);
                s
            })
            .collect();
        assert_eq!(lcg(42).take(5).collect::<Vec<_>>(), want);
        assert_eq!(
            centred_f64(5, 42),
            want.iter()
                .map(|&s| ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5)
                .collect::<Vec<_>>()
        );
        assert!(
            values(1000, 3, -2.0, 2.0)
                .iter()
                .all(|v| (-2.0..2.0).contains(v))
        );
    }
}
