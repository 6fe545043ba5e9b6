//! Binary cross-entropy from logits, summed and scaled, as one candle custom op.
//!
//! Written with candle ops, the stable form `max(x, 0) - x·y + ln(1 + e^{-|x|})` is eight
//! graph nodes over the whole batch (abs, neg, exp, add, log, relu, mul, sub, add, sum) and
//! its backward pass as many again, each a full-size temporary. Here the forward pass is one
//! parallel loop that sums the terms, and the backward pass one loop computing
//! `scale · g · (σ(x) - y)`.
//!
//! The sum is taken in `f64` over fixed chunks added in order, so the value does not depend
//! on the number of threads.

use candle_core::backend::BackendStorage;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::elem::Real;
use crate::ops::{StorageElem, data, float_dispatch};
use crate::simd::avx2_dispatch;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Independent partial sums per block (a multiple of the widest SIMD vector of `f32`).
const LANES: usize = 16;

/// `(term, σ(x))`: the stable per-element BCE of `σ(x)` against `y`,
/// `max(x, 0) - x·y + ln(1 + e^{-|x|})`, and the sigmoid, from one exponential.
#[inline(always)]
fn term_and_sigmoid<T: Real>(x: T, y: T) -> (T, T) {
    // Written out rather than with `Real::sigmoid`, to share the one exponential.
    let (e, softplus) = x.exp_neg_abs_log1p();
    let relu = if x > T::ZERO { x } else { T::ZERO };
    let num = if x >= T::ZERO { T::ONE } else { e };
    (relu - x * y + softplus, num / (T::ONE + e))
}

/// One full block of [`LANES`] elements: adds the terms into `lanes` and, with `out`,
/// writes `σ(x) - y` there. Fixed-size arrays, so the loops vectorise.
#[inline(always)]
fn full_block<T: Real>(
    lanes: &mut [T; LANES],
    xa: &[T; LANES],
    ya: &[T; LANES],
    out: Option<&mut [T; LANES]>,
) {
    let mut terms = [T::ZERO; LANES];
    let mut sig = [T::ZERO; LANES];
    for l in 0..LANES {
        (terms[l], sig[l]) = term_and_sigmoid(xa[l], ya[l]);
    }
    for l in 0..LANES {
        lanes[l] += terms[l];
    }
    if let Some(out) = out {
        for l in 0..LANES {
            out[l] = sig[l] - ya[l];
        }
    }
}

/// One block of at most [`LANES`] elements: a full block directly, a shorter one (the
/// end of the data) through [`partial_block`].
#[inline(always)]
fn block<T: Real>(lanes: &mut [T; LANES], xb: &[T], yb: &[T], out: Option<&mut [T]>) {
    let (Some((xa, [])), Some((ya, []))) = (
        xb.split_first_chunk::<LANES>(),
        yb.split_first_chunk::<LANES>(),
    ) else {
        return partial_block(lanes, xb, yb, out);
    };
    match out {
        None => full_block(lanes, xa, ya, None),
        Some(o) => match o.split_first_chunk_mut::<LANES>() {
            Some((oa, [])) => full_block(lanes, xa, ya, Some(oa)),
            _ => partial_block(lanes, xb, yb, Some(o)),
        },
    }
}

/// A block of fewer than [`LANES`] elements, padded with zeros whose terms are left out.
fn partial_block<T: Real>(lanes: &mut [T; LANES], xb: &[T], yb: &[T], out: Option<&mut [T]>) {
    let k = xb.len().min(yb.len()).min(LANES);
    let (mut xa, mut ya) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    xa[..k].copy_from_slice(&xb[..k]);
    ya[..k].copy_from_slice(&yb[..k]);
    let mut part = [T::ZERO; LANES];
    let mut o = [T::ZERO; LANES];
    full_block(&mut part, &xa, &ya, Some(&mut o));
    for (acc, &t) in lanes.iter_mut().zip(&part).take(k) {
        *acc += t;
    }
    if let Some(out) = out {
        let k = out.len().min(k);
        out[..k].copy_from_slice(&o[..k]);
    }
}

/// The sum of the terms of one chunk (see [`bce_sum`]).
#[inline(always)]
fn chunk_sum<T: Real>(x: &[T], y: &[T], mut r: Option<&mut [T]>) -> f64 {
    // LANES independent sums in `T` (a float sum in one accumulator cannot be vectorised
    // without reordering it), added into f64 every 256 elements.
    let mut total = 0f64;
    for (k, (xs, ys)) in x.chunks(256).zip(y.chunks(256)).enumerate() {
        let mut lanes = [T::ZERO; LANES];
        for (j, (xb, yb)) in xs.chunks(LANES).zip(ys.chunks(LANES)).enumerate() {
            let start = k * 256 + j * LANES;
            let out = r.as_deref_mut().map(|r| &mut r[start..start + xb.len()]);
            block(&mut lanes, xb, yb, out);
        }
        total += lanes.iter().map(|v| v.as_f64()).sum::<f64>();
    }
    total
}

avx2_dispatch! {
    /// [`chunk_sum`] with the widest vectors the CPU has (8 `f32` lanes instead of SSE2's 4
    /// under AVX2; only the vector width changes, so the results are the same).
    fn chunk_sum_dispatch<T: Real>(x: &[T], y: &[T], r: Option<&mut [T]>) -> f64 = chunk_sum;
}

/// `scale · Σ term(x, y)`, summed in `f64` per chunk, chunks added in order
/// ([`bce_sum_scaled_resid`] also writes the gradient).
pub(crate) fn bce_sum<T: Real>(x: &[T], y: &[T], scale: f64) -> f64 {
    let parts: Vec<f64> = x
        .par_chunks(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .map(|(x, y)| chunk_sum_dispatch(x, y, None))
        .collect();
    parts.iter().sum::<f64>() * scale
}

/// [`bce_sum`] at scale 1 (the same sum) and, in a new vector, `grad_scale · (σ(x) - y)`:
/// each parallel task zeroes, fills and scales its own chunk of it ([`crate::fill`]).
pub(crate) fn bce_sum_scaled_resid<T: Real>(x: &[T], y: &[T], grad_scale: T) -> (f64, Vec<T>) {
    assert_eq!(x.len(), y.len(), "bce: logits and targets differ in length");
    let (r, parts) = crate::fill::par_new(x.len(), CHUNK, |i, r| {
        let at = i * CHUNK..i * CHUNK + r.len();
        let sum = chunk_sum_dispatch(&x[at.clone()], &y[at], Some(&mut *r));
        for v in r.iter_mut() {
            *v = *v * grad_scale;
        }
        sum
    });
    (parts.iter().sum::<f64>(), r)
}

/// [`bce_sum`] of one image on the calling thread (`scale` 1): `Σ term(x, y)` in `f64`, and
/// `σ(x) - y` written to `resid`. The same per-element term and chunking as [`bce_sum`], so
/// for fewer than `CHUNK` values the same sum.
pub(crate) fn bce_sum_serial<T: Real>(x: &[T], y: &[T], resid: &mut [T]) -> f64 {
    x.chunks(CHUNK)
        .zip(y.chunks(CHUNK))
        .zip(resid.chunks_mut(CHUNK))
        .map(|((x, y), r)| chunk_sum_dispatch(x, y, Some(r)))
        .sum()
}

/// Gradients of [`bce_sum`] scaled by the output gradient `g`: w.r.t. the logits
/// `k·(σ(x) - y)` and, when asked, w.r.t. the target `-k·x`, with `k = scale · g`.
pub(crate) fn bce_bwd<T: Real>(x: &[T], y: &[T], k: f64, target: bool) -> (Vec<T>, Option<Vec<T>>) {
    let kt = T::of_f64(k);
    let mut gx = vec![T::ZERO; x.len()];
    gx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(g, (x, y))| {
            for ((d, &a), &b) in g.iter_mut().zip(x).zip(y) {
                *d = kt * (term_and_sigmoid(a, b).1 - b);
            }
        });
    let gy = target.then(|| x.iter().map(|&a| -(kt * a)).collect());
    (gx, gy)
}

/// `(logits, target) -> scale · Σ bce(logits, target)`, a scalar.
///
/// When built with `keep_grad`, the forward pass also keeps `σ(x) - y` (it has the
/// exponential at hand), and the backward pass only scales it.
#[derive(Debug)]
pub(crate) struct BceOp {
    pub scale: f64,
    keep_grad: bool,
    resid: Mutex<Option<CpuStorage>>,
}

impl BceOp {
    pub(crate) fn new(scale: f64, keep_grad: bool) -> Self {
        Self {
            scale,
            keep_grad,
            resid: Mutex::new(None),
        }
    }

    fn run<T: StorageElem + Real>(
        &self,
        x: (&CpuStorage, &Layout),
        y: (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let dims = x.1.dims();
        let xs = data::<T>("bce_with_logits", x.0, x.1, dims)?;
        let ys = data::<T>("bce_with_logits", y.0, y.1, dims)?;
        let v = if self.keep_grad {
            let (sum, r) = bce_sum_scaled_resid(xs, ys, T::ONE);
            *self.resid.lock().unwrap_or_else(|p| p.into_inner()) = Some(T::storage(r));
            sum * self.scale
        } else {
            bce_sum(xs, ys, self.scale)
        };
        Ok((T::storage(vec![T::of_f64(v)]), Shape::from(())))
    }

    /// The kept `σ(x) - y` times `k`, if the forward pass kept it (taken: a second backward
    /// pass through the same graph recomputes it).
    fn kept_grad(&self, k: f64, dims: &[usize]) -> Result<Option<Tensor>> {
        let kept = self.resid.lock().unwrap_or_else(|p| p.into_inner()).take();
        let dev = candle_core::Device::Cpu;
        Ok(match kept {
            Some(CpuStorage::F32(mut r)) => {
                let kt = k as f32;
                r.iter_mut().for_each(|v| *v *= kt);
                Some(Tensor::from_vec(r, dims, &dev)?)
            }
            Some(CpuStorage::F64(mut r)) => {
                r.iter_mut().for_each(|v| *v *= k);
                Some(Tensor::from_vec(r, dims, &dev)?)
            }
            _ => None,
        })
    }

    fn grads<T: StorageElem + Real>(
        &self,
        x: &Tensor,
        y: &Tensor,
        k: f64,
        target: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xg, xl) = x.storage_and_layout();
        let (yg, yl) = y.storage_and_layout();
        let (candle_core::Storage::Cpu(xs), candle_core::Storage::Cpu(ys)) = (&*xg, &*yg) else {
            bail!("bce_with_logits backward: expected CPU tensors")
        };
        let dims = x.dims();
        let xv = data::<T>("bce_with_logits backward", xs, xl, dims)?;
        let yv = data::<T>("bce_with_logits backward", ys, yl, dims)?;
        let (gx, gy) = bce_bwd(xv, yv, k, target);
        drop((xg, yg));
        let dev = candle_core::Device::Cpu;
        let gx = Tensor::from_vec(gx, dims, &dev)?;
        let gy = gy.map(|v| Tensor::from_vec(v, dims, &dev)).transpose()?;
        Ok((Some(gx), gy))
    }
}

impl CustomOp2 for BceOp {
    fn name(&self) -> &'static str {
        "ae-bce-with-logits"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            bail!(
                "bce_with_logits: logits {:?} and target {:?} differ in shape",
                l1.dims(),
                l2.dims()
            )
        }
        if s1.dtype() != s2.dtype() {
            bail!(
                "bce_with_logits: logits are {:?} but the target is {:?}",
                s1.dtype(),
                s2.dtype()
            )
        }
        float_dispatch!(s1.dtype(), "bce_with_logits", |T| self
            .run::<T>((s1, l1), (s2, l2)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let Some(&g) = g.first() else {
            bail!("bce_with_logits backward: empty output gradient")
        };
        let k = self.scale * g;
        let need_x = x.track_op();
        let need_y = y.track_op();
        if !(need_x || need_y) {
            return Ok((None, None));
        }
        if need_x
            && !need_y
            && let Some(gx) = self.kept_grad(k, x.dims())?
        {
            return Ok((Some(gx), None));
        }
        let (gx, gy) = float_dispatch!(x.dtype(), "bce_with_logits backward", |T| self
            .grads::<T>(x, y, k, need_y)?);
        Ok((gx.filter(|_| need_x), gy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::on_threads;

    #[test]
    fn terms_and_gradients_of_known_values() {
        let x = [0f64, 2.0, -3.0, 1e4, -1e4];
        let y = [0.5f64, 1.0, 0.0, 0.0, 1.0];
        let expected = [
            std::f64::consts::LN_2,
            (1.0 + (-2f64).exp()).ln(),
            (1.0 + (-3f64).exp()).ln(),
            1e4,
            1e4,
        ];
        let total = bce_sum(&x, &y, 0.5);
        assert!((total - 0.5 * expected.iter().sum::<f64>()).abs() < 1e-9);
        let (gx, gy) = bce_bwd(&x, &y, 2.0, true);
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        for i in 0..5 {
            assert!((gx[i] - 2.0 * (sig(x[i]) - y[i])).abs() < 1e-12, "{i}");
        }
        assert_eq!(gy.unwrap(), vec![-0.0, -4.0, 6.0, -2e4, 2e4]);
    }

    #[test]
    fn sum_does_not_depend_on_chunking() {
        let n = 3 * CHUNK + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
            .collect();
        let y: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 / 6.0).collect();
        let (a, r) = bce_sum_scaled_resid(&x, &y, 1.0f32);
        let b = on_threads(1, || bce_sum(&x, &y, 1.0)).unwrap();
        assert_eq!(a, b);
        let naive: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| term_and_sigmoid(a as f64, b as f64).0)
            .sum();
        assert!((a - naive).abs() / naive < 1e-6, "{a} vs {naive}");
        for i in [0, CHUNK - 1, CHUNK + 255, n - 1] {
            let e = 1.0 / (1.0 + (-(x[i] as f64)).exp()) - y[i] as f64;
            assert!((r[i] as f64 - e).abs() < 1e-6, "{i}: {} vs {e}", r[i]);
        }
        // Scaled by another factor: the same sum, and the residual's values scaled, on any
        // number of threads.
        for threads in [1, 3] {
            let (c, rs) = on_threads(threads, || bce_sum_scaled_resid(&x, &y, 0.25f32)).unwrap();
            assert_eq!(c, a, "{threads} threads");
            assert_eq!(rs, r.iter().map(|v| v * 0.25).collect::<Vec<_>>());
        }
    }
}
