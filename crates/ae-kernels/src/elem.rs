//! Element types and element-wise maths shared by every kernel: the [`Elem`] / [`Real`]
//! traits, the branch-free `f32` exponential and `ln(1 + t)` that vectorise, and
//! vectorising sums.

/// Element types the kernels support (the ones `gemm` has fast paths for).
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + std::ops::Mul<Output = Self>
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// `σ(v) = 1 / (1 + e^{-v})` of every value, in place: the same values as
    /// [`crate::sigmoid`] (for a fused sigmoid epilogue).
    fn sigmoid_in_place(v: &mut [Self]);
    /// A sigmoid's backward, `grad · res · (1 - res)` from its output `res`, as
    /// [`crate::sigmoid`]'s backward computes it.
    fn sigmoid_bwd(res: Self, grad: Self) -> Self;
}

macro_rules! elem_float {
    ($t:ty) => {
        impl Elem for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;

            fn sigmoid_in_place(v: &mut [Self]) {
                crate::unary::sigmoid_in_place(v)
            }

            #[inline(always)]
            fn sigmoid_bwd(res: Self, grad: Self) -> Self {
                <crate::unary::Sigmoid as crate::unary::Activation>::bwd(res, grad)
            }
        }
    };
}

elem_float!(f32);
elem_float!(f64);

/// Floating-point element types, for the element-wise kernels (loss, optimizer).
pub(crate) trait Real:
    Elem
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    fn of_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
    fn sqrt(self) -> Self;
    /// `(e^{-|x|}, ln(1 + e^{-|x|}))`, the two transcendental parts of the stable BCE and
    /// sigmoid. `f32` uses branch-free polynomial forms that the compiler vectorises
    /// (relative error below 1e-6); `f64` uses the standard library.
    fn exp_neg_abs_log1p(self) -> (Self, Self);
    /// `e^{-|x|}` alone (the same `f32` polynomial as [`Real::exp_neg_abs_log1p`]).
    fn exp_neg_abs(self) -> Self;
    /// `σ(x) = 1 / (1 + e^{-x})` from one `e^{-|x|}`, exact at both tails (no overflow).
    #[inline(always)]
    fn sigmoid(self) -> Self {
        let e = self.exp_neg_abs();
        let num = if self >= Self::ZERO { Self::ONE } else { e };
        num / (Self::ONE + e)
    }
}

/// `e^x` for `x <= 0` in `f32`, without branches: `2^n · p(r)` with `r = x - n·ln 2`,
/// `|r| <= ln 2 / 2`, `p` the degree-7 Taylor polynomial (truncation error < 1e-8 relative).
/// Inputs below -87 give 0 (flushing what would be denormals).
#[inline(always)]
pub(crate) fn exp_nonpos_f32(x0: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x0.max(-87.0);
    // Round to nearest with the 1.5·2^23 trick (exact for |v| < 2^22): `t`'s bits are
    // those of 1.5·2^23 plus the integer `n`, so `n` is also read back without a
    // float-to-int conversion (which does not vectorise well).
    let t = x * LOG2E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((k + 127) as u32) << 23);
    if x0 < -87.0 { 0.0 } else { p * scale }
}

/// `ln(1 + t)` for `t` in `[0, 1]` in `f32`, without branches: `2·atanh(s)` with
/// `s = t / (2 + t) <= 1/3`, the odd series to `s^15` (truncation error < 1e-8 relative).
#[inline(always)]
pub(crate) fn log1p_unit_f32(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * series
}

impl Real for f32 {
    #[inline]
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn exp_neg_abs_log1p(self) -> (Self, Self) {
        let e = exp_nonpos_f32(-self.abs());
        (e, log1p_unit_f32(e))
    }
    #[inline(always)]
    fn exp_neg_abs(self) -> Self {
        exp_nonpos_f32(-self.abs())
    }
}

macro_rules! impl_exp_log1p_std {
    ($t:ty) => {
        impl Real for $t {
            #[inline]
            fn of_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn exp_neg_abs_log1p(self) -> (Self, Self) {
                let e = <$t>::exp(-self.abs());
                (e, e.ln_1p())
            }
            #[inline]
            fn exp_neg_abs(self) -> Self {
                <$t>::exp(-self.abs())
            }
        }
    };
}
impl_exp_log1p_std!(f64);

/// Adds the per-channel sums of `[chs, plane]` data to `acc[..chs]`.
#[inline]
pub(crate) fn add_channel_sums<T: Elem>(acc: &mut [T], data: &[T], plane: usize) {
    if plane == 0 {
        return;
    }
    for (a, row) in acc.iter_mut().zip(data.chunks(plane)) {
        *a += sum(row);
    }
}

/// The sum of `data`, over 16 independent partial sums so that it vectorises.
#[inline(always)]
pub(crate) fn sum<T: Elem>(data: &[T]) -> T {
    const LANES: usize = 16;
    let mut part = [T::ZERO; LANES];
    let chunks = data.chunks_exact(LANES);
    let mut s = T::ZERO;
    for &v in chunks.remainder() {
        s += v;
    }
    for c in chunks {
        for (p, &v) in part.iter_mut().zip(c) {
            *p += v;
        }
    }
    for p in part {
        s += p;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f32_exp_and_log1p_are_accurate() {
        let mut worst = (0f64, 0f64);
        for i in 0..=200_000 {
            let x = -(i as f32) * 1e-3; // 0 .. -200
            let e = exp_nonpos_f32(x) as f64;
            let want = (x as f64).exp();
            let rel = ((e - want) / want).abs();
            if x >= -87.0 {
                worst.0 = worst.0.max(rel);
            } else {
                assert_eq!(e, 0.0, "{x}");
            }
            let t = (i as f32) / 200_000.0; // 0 .. 1
            let l = log1p_unit_f32(t) as f64;
            let want = (t as f64).ln_1p();
            if t > 0.0 {
                worst.1 = worst.1.max(((l - want) / want).abs());
            } else {
                assert_eq!(l, 0.0);
            }
        }
        assert!(worst.0 < 1e-6 && worst.1 < 1e-6, "{worst:?}");
    }
}
