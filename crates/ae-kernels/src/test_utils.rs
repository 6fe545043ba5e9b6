//! Helpers the tests of several crates share (as candle's `test_utils`): deterministic
//! inputs and a relative error between tensors.

use candle_core::{DType, Result, Tensor};

/// `n` deterministic values in `[lo, hi)` from a small LCG seeded by `seed`, so failures
/// reproduce.
pub fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
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
}
