//! Element-wise activations (ReLU, sigmoid) as single-pass CPU custom ops whose backward
//! passes use the op's own output.
//!
//! candle 0.11 builds the ReLU's backward pass from several full-size temporaries (a zeros
//! tensor, a `ge` mask, its cast and a product), and its `candle_nn::ops::sigmoid` calls the
//! scalar `expf` per element on one thread (about 1.2 ms for a 1024x784 batch of
//! reconstructions, as long as the decoder's GEMMs). Here each pass is one loop over
//! parallel chunks; the sigmoid uses the branch-free `f32` exponential of
//! [`crate::elem::exp_nonpos_f32`] (relative error below 1e-6) and is compiled for AVX2 when
//! the CPU has it.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::elem::Real;
use crate::ops::{StorageElem, data, float_dispatch};
use crate::simd::avx2_dispatch;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// An element-wise activation whose derivative is a function of its output.
pub(crate) trait Activation: Copy + Send + Sync + 'static {
    /// The forward op's name.
    const NAME: &'static str;
    /// The backward op's name.
    const BWD_NAME: &'static str;
    /// `y = f(x)` over one chunk.
    fn fwd<T: Real>(x: &[T], y: &mut [T]);
    /// `∂L/∂x` from the output `res = f(x)` and the output's gradient.
    fn bwd<T: Real>(res: T, grad: T) -> T;
}

/// `max(x, 0)`; the gradient passes where the output is positive (PyTorch's convention).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Relu;

impl Activation for Relu {
    const NAME: &'static str = "ae-relu";
    const BWD_NAME: &'static str = "ae-relu-bwd";

    fn fwd<T: Real>(x: &[T], y: &mut [T]) {
        for (d, &s) in y.iter_mut().zip(x) {
            *d = if s > T::ZERO { s } else { T::ZERO };
        }
    }

    #[inline(always)]
    fn bwd<T: Real>(res: T, grad: T) -> T {
        if res > T::ZERO { grad } else { T::ZERO }
    }
}

/// `σ(x) = 1 / (1 + e^{-x})`; the gradient is `grad · σ · (1 - σ)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sigmoid;

#[inline(always)]
fn sigmoid_plain<T: Real>(x: &[T], y: &mut [T]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = v.sigmoid();
    }
}

avx2_dispatch! {
    /// [`sigmoid_plain`] with the widest vectors the CPU has.
    fn sigmoid_dispatch<T: Real>(x: &[T], y: &mut [T]) = sigmoid_plain;
}

impl Activation for Sigmoid {
    const NAME: &'static str = "ae-sigmoid";
    const BWD_NAME: &'static str = "ae-sigmoid-bwd";

    fn fwd<T: Real>(x: &[T], y: &mut [T]) {
        sigmoid_dispatch(x, y)
    }

    #[inline(always)]
    fn bwd<T: Real>(res: T, grad: T) -> T {
        grad * res * (T::ONE - res)
    }
}

/// `σ` of every value of `v`, in place, by [`sigmoid_dispatch`] over a small copy of each
/// piece (in L1): the same values as the [`Sigmoid`] op.
pub(crate) fn sigmoid_in_place<T: Real>(v: &mut [T]) {
    const PIECE: usize = 256;
    let mut buf = [T::ZERO; PIECE];
    for piece in v.chunks_mut(PIECE) {
        let src = &mut buf[..piece.len()];
        src.copy_from_slice(piece);
        sigmoid_dispatch(src, piece);
    }
}

/// `y = f(x)` element-wise, in parallel chunks.
fn map<A: Activation, T: Real>(x: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| A::fwd(x, y));
    y
}

/// The activation `A` as a differentiable (first-order) candle op.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unary<A>(pub A);

impl<A: Activation> Unary<A> {
    fn run<T: StorageElem + Real>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data::<T>(A::NAME, s, l, l.dims())?;
        Ok((T::storage(map::<A, T>(x)), l.shape().clone()))
    }
}

impl<A: Activation> CustomOp1 for Unary<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s.dtype(), A::NAME, |T| Self::run::<T>(s, l))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        res.apply_op2_no_bwd(&grad, &UnaryBwd(self.0)).map(Some)
    }
}

/// Backward of [`Unary`]: `(res, grad) -> A::bwd(res, grad)` element-wise.
struct UnaryBwd<A>(A);

impl<A: Activation> UnaryBwd<A> {
    fn run<T: StorageElem + Real>(
        r: (&CpuStorage, &Layout),
        g: (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let dims = r.1.dims();
        let res = data::<T>(A::BWD_NAME, r.0, r.1, dims)?;
        let grad = data::<T>(A::BWD_NAME, g.0, g.1, dims)?;
        let mut gx = vec![T::ZERO; res.len()];
        gx.par_chunks_mut(CHUNK)
            .zip(res.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|(gx, (r, g))| {
                for ((d, &r), &g) in gx.iter_mut().zip(r).zip(g) {
                    *d = A::bwd(r, g);
                }
            });
        Ok((T::storage(gx), r.1.shape().clone()))
    }
}

impl<A: Activation> CustomOp2 for UnaryBwd<A> {
    fn name(&self) -> &'static str {
        A::BWD_NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s1.dtype(), A::BWD_NAME, |T| Self::run::<T>(
            (s1, l1),
            (s2, l2)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_matches_the_definition_over_the_whole_range() {
        let x: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.05).collect();
        let y = map::<Sigmoid, f32>(&x);
        for (&a, &b) in x.iter().zip(&y) {
            let want = 1.0 / (1.0 + (-f64::from(a)).exp());
            // Below e^-87 the exponential flushes to zero (no denormals).
            assert!(
                (f64::from(b) - want).abs() <= 2e-6 * want + 1e-37,
                "σ({a}) = {b}, want {want}"
            );
        }
        assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(y[y.len() - 1], 1.0);
    }

    #[test]
    fn relu_and_its_mask() {
        let y = map::<Relu, f64>(&[-1.0, 0.0, 2.5]);
        assert_eq!(y, [0.0, 0.0, 2.5]);
        let g: Vec<f64> = y.iter().map(|&r| Relu::bwd(r, 3.0)).collect();
        assert_eq!(g, [0.0, 0.0, 3.0]);
    }
}
