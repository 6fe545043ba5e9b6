//! A fused, in-place Adam (AdamW) update of one CPU parameter tensor.
//!
//! Written with candle ops, one Adam step of one parameter is about ten element-wise ops,
//! each allocating a new tensor, and `Var::set` copies the result back. Here the moments live
//! in plain vectors ([`AdamMoments`]) and one pass over the parameter updates the moments and
//! the parameter's own storage in place.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Result, Tensor, bail,
};
use rayon::prelude::*;

use crate::elem::Real;
use crate::simd::avx2_dispatch;

mod all;

pub use all::{AdamParam, AdamSliceParam, adam_update_all, adam_update_slices};

/// Elements per parallel task (small parameters are updated on one thread).
const CHUNK: usize = 1 << 15;

/// Adam's first and second moments of one parameter, on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub enum AdamMoments {
    /// Moments of an `f32` parameter.
    F32 {
        /// First moment.
        m: Vec<f32>,
        /// Second moment.
        v: Vec<f32>,
    },
    /// Moments of an `f64` parameter.
    F64 {
        /// First moment.
        m: Vec<f64>,
        /// Second moment.
        v: Vec<f64>,
    },
}

impl AdamMoments {
    /// Zero moments for a parameter like `theta`, or `None` when [`adam_update`] cannot
    /// update it in place (not on the CPU, or not `f32`/`f64`).
    pub fn zeros_for(theta: &Tensor) -> Option<Self> {
        if !theta.device().is_cpu() {
            return None;
        }
        let n = theta.elem_count();
        match theta.dtype() {
            DType::F32 => Some(Self::F32 {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }),
            DType::F64 => Some(Self::F64 {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }),
            _ => None,
        }
    }

    /// Moments from saved tensors `m`, `v` (any device), for a parameter of `dtype`.
    pub fn from_tensors(m: &Tensor, v: &Tensor, dtype: DType) -> Result<Self> {
        let m = m.to_device(&Device::Cpu)?.to_dtype(dtype)?.flatten_all()?;
        let v = v.to_device(&Device::Cpu)?.to_dtype(dtype)?.flatten_all()?;
        Ok(match dtype {
            DType::F32 => Self::F32 {
                m: m.to_vec1()?,
                v: v.to_vec1()?,
            },
            DType::F64 => Self::F64 {
                m: m.to_vec1()?,
                v: v.to_vec1()?,
            },
            dt => bail!("adam: unsupported parameter dtype {dt:?}"),
        })
    }

    /// The moments as CPU tensors `(m, v)` of shape `dims`.
    pub fn to_tensors(&self, dims: &[usize]) -> Result<(Tensor, Tensor)> {
        let dev = Device::Cpu;
        Ok(match self {
            Self::F32 { m, v } => (
                Tensor::from_slice(m, dims, &dev)?,
                Tensor::from_slice(v, dims, &dev)?,
            ),
            Self::F64 { m, v } => (
                Tensor::from_slice(m, dims, &dev)?,
                Tensor::from_slice(v, dims, &dev)?,
            ),
        })
    }

    fn len(&self) -> usize {
        match self {
            Self::F32 { m, .. } => m.len(),
            Self::F64 { m, .. } => m.len(),
        }
    }
}

/// The scalars of one Adam step (the same for every parameter of the step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    pub weight_decay: f64,
    /// The step number, from 1 (for the bias corrections).
    pub t: u64,
}

impl AdamStep {
    /// `(step_size, 1 / c2, decay)` with the bias corrections `c1 = 1 - β1^t`,
    /// `c2 = 1 - β2^t`, `step_size = lr / c1`, `decay = 1 - lr·wd`:
    /// `θ ← decay·θ - step_size · m / (sqrt(v / c2) + eps)`.
    pub fn factors(&self) -> (f64, f64, f64) {
        let t = self.t.min(i32::MAX as u64) as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        (self.lr / c1, 1.0 / c2, 1.0 - self.lr * self.weight_decay)
    }
}

/// One pass: `m ← b1·m + (1-b1)·g`, `v ← b2·v + (1-b2)·g²`,
/// `θ ← decay·θ - step_size · m / (sqrt(v / c2) + eps)`.
fn update<T: Real>(theta: &mut [T], g: &[T], m: &mut [T], v: &mut [T], s: &AdamStep) {
    let k = Factors::of(s);
    if theta.len() <= CHUNK {
        body_dispatch(theta, g, m, v, &k);
    } else {
        theta
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((th, g), (m, v))| body_dispatch(th, g, m, v, &k));
    }
}

/// The step's scalars in the parameter's type.
struct Factors<T> {
    b1: T,
    nb1: T,
    b2: T,
    nb2: T,
    step_size: T,
    inv_c2: T,
    decay: T,
    eps: T,
    decayed: bool,
}

impl<T: Real> Factors<T> {
    fn of(s: &AdamStep) -> Self {
        let (step_size, inv_c2, decay) = s.factors();
        let f = T::of_f64;
        Self {
            b1: f(s.beta1),
            nb1: f(1.0 - s.beta1),
            b2: f(s.beta2),
            nb2: f(1.0 - s.beta2),
            step_size: f(step_size),
            inv_c2: f(inv_c2),
            decay: f(decay),
            eps: f(s.eps),
            decayed: s.weight_decay != 0.0,
        }
    }
}

/// The update of one block.
#[inline(always)]
fn body<T: Real>(th: &mut [T], g: &[T], m: &mut [T], v: &mut [T], k: &Factors<T>) {
    for (((th, &g), m), v) in th.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = k.b1 * *m + k.nb1 * g;
        *v = k.b2 * *v + k.nb2 * (g * g);
        let step = k.step_size * (*m / ((*v * k.inv_c2).sqrt() + k.eps));
        *th = if k.decayed {
            k.decay * *th - step
        } else {
            *th - step
        };
    }
}

avx2_dispatch! {
    /// [`body`] with the widest vectors the CPU has.
    fn body_dispatch<T: Real>(th: &mut [T], g: &[T], m: &mut [T], v: &mut [T], k: &Factors<T>) = body;
}

struct AdamOp<'a> {
    moments: RefCell<&'a mut AdamMoments>,
    step: AdamStep,
}

fn contiguous_mut<'a, T>(v: &'a mut [T], l: &Layout, what: &str) -> Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => bail!("adam: {what} is not contiguous"),
    }
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("adam: {what} is not contiguous"),
    }
}

impl InplaceOp2 for AdamOp<'_> {
    fn name(&self) -> &'static str {
        "ae-adam"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let mut moments = self.moments.borrow_mut();
        match (s1, s2, &mut **moments) {
            (CpuStorage::F32(th), CpuStorage::F32(g), AdamMoments::F32 { m, v }) => update(
                contiguous_mut(th, l1, "the parameter")?,
                contiguous(g, l2, "the gradient")?,
                m,
                v,
                &self.step,
            ),
            (CpuStorage::F64(th), CpuStorage::F64(g), AdamMoments::F64 { m, v }) => update(
                contiguous_mut(th, l1, "the parameter")?,
                contiguous(g, l2, "the gradient")?,
                m,
                v,
                &self.step,
            ),
            (th, g, _) => bail!(
                "adam: parameter {:?}, gradient {:?} and moments do not share a dtype",
                th.dtype(),
                g.dtype()
            ),
        }
        Ok(())
    }
}

/// Updates the CPU tensor `theta` in place by one Adam step from its gradient `grad`
/// (same shape and dtype; made contiguous if needed) and its `moments`.
///
/// `theta` is usually a `Var`'s tensor (`var.as_tensor()`): every tensor sharing its storage
/// sees the new values, and no graph node is recorded.
pub fn adam_update(
    theta: &Tensor,
    grad: &Tensor,
    moments: &mut AdamMoments,
    step: &AdamStep,
) -> Result<()> {
    if theta.dims() != grad.dims() {
        bail!(
            "adam: parameter {:?} and gradient {:?} differ in shape",
            theta.dims(),
            grad.dims()
        )
    }
    check_lengths(theta, grad.elem_count(), moments)?;
    let grad = grad.contiguous()?;
    let op = AdamOp {
        moments: RefCell::new(moments),
        step: *step,
    };
    theta.inplace_op2(&grad, &op)
}

/// An error unless `grad_len` gradient values and `moments` fit `theta`.
fn check_lengths(theta: &Tensor, grad_len: usize, moments: &AdamMoments) -> Result<()> {
    if grad_len != theta.elem_count() || moments.len() != theta.elem_count() {
        bail!(
            "adam: {grad_len} gradient values and {} moments for a parameter of {} elements",
            moments.len(),
            theta.elem_count()
        )
    }
    Ok(())
}

/// [`adam_update`] with the gradient given as plain `f32` values (for example from
/// [`crate::chain`]), in `theta`'s row-major order. `theta` must be an `f32` CPU tensor.
pub fn adam_update_slice(
    theta: &Tensor,
    grad: &[f32],
    moments: &mut AdamMoments,
    step: &AdamStep,
) -> Result<()> {
    check_lengths(theta, grad.len(), moments)?;
    let op = AdamSliceOp {
        grad,
        moments: RefCell::new(moments),
        step: *step,
    };
    theta.inplace_op1(&op)
}

struct AdamSliceOp<'a> {
    grad: &'a [f32],
    moments: RefCell<&'a mut AdamMoments>,
    step: AdamStep,
}

impl InplaceOp1 for AdamSliceOp<'_> {
    fn name(&self) -> &'static str {
        "ae-adam-slice"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout) -> Result<()> {
        let mut moments = self.moments.borrow_mut();
        match (s1, &mut **moments) {
            (CpuStorage::F32(th), AdamMoments::F32 { m, v }) => update(
                contiguous_mut(th, l1, "the parameter")?,
                self.grad,
                m,
                v,
                &self.step,
            ),
            (th, _) => bail!(
                "adam: an f32 gradient for a {:?} parameter with matching moments is needed",
                th.dtype()
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_textbook_update() {
        let dev = Device::Cpu;
        let theta0 = [0.5f64, -1.0, 2.0];
        let grads = [[0.1f64, -0.2, 0.3], [0.3, 0.1, -0.5]];
        let theta = Tensor::new(&theta0, &dev).unwrap();
        let mut mo = AdamMoments::zeros_for(&theta).unwrap();
        let base = AdamStep {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.1,
            t: 0,
        };
        let (mut th, mut m, mut v) = (theta0.to_vec(), vec![0.0; 3], vec![0.0; 3]);
        for (i, g) in grads.iter().enumerate() {
            let step = AdamStep {
                t: i as u64 + 1,
                ..base
            };
            adam_update(&theta, &Tensor::new(g, &dev).unwrap(), &mut mo, &step).unwrap();
            let t = (i + 1) as i32;
            for j in 0..3 {
                m[j] = 0.9 * m[j] + 0.1 * g[j];
                v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j];
                let mh = m[j] / (1.0 - 0.9f64.powi(t));
                let vh = v[j] / (1.0 - 0.999f64.powi(t));
                th[j] = th[j] * (1.0 - 0.01 * 0.1) - 0.01 * mh / (vh.sqrt() + 1e-7);
            }
        }
        let got = theta.to_vec1::<f64>().unwrap();
        for j in 0..3 {
            assert!((got[j] - th[j]).abs() < 1e-12, "{got:?} vs {th:?}");
        }
        let (mt, vt) = mo.to_tensors(&[3]).unwrap();
        for (a, b) in mt.to_vec1::<f64>().unwrap().iter().zip(&m) {
            assert!((a - b).abs() < 1e-15);
        }
        assert_eq!(AdamMoments::from_tensors(&mt, &vt, DType::F64).unwrap(), mo);
    }

    /// Plain Adam's first step with learning rate `lr` and the Keras defaults (also for
    /// `all`'s tests).
    pub(super) fn first_step(lr: f64) -> AdamStep {
        AdamStep {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
            t: 1,
        }
    }

    #[test]
    fn large_parameters_update_in_parallel_like_small_ones() {
        let dev = Device::Cpu;
        let n = 3 * CHUNK + 5;
        let vals: Vec<f32> = (0..n).map(|i| (i % 17) as f32 - 8.0).collect();
        let grads: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect();
        let theta = Tensor::from_slice(&vals, n, &dev).unwrap();
        let mut mo = AdamMoments::zeros_for(&theta).unwrap();
        let step = first_step(0.1);
        adam_update(
            &theta,
            &Tensor::from_slice(&grads, n, &dev).unwrap(),
            &mut mo,
            &step,
        )
        .unwrap();
        let got = theta.to_vec1::<f32>().unwrap();
        for i in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 3, n - 1] {
            // First step: θ moves by lr·sign(g) (up to eps).
            let e = vals[i] - 0.1 * grads[i].signum() * (grads[i] != 0.0) as i32 as f32;
            assert!((got[i] - e).abs() < 1e-4, "{i}: {} vs {e}", got[i]);
        }
    }

    #[test]
    fn mismatches_are_errors() {
        let dev = Device::Cpu;
        let theta = Tensor::zeros(4, DType::F32, &dev).unwrap();
        let mut mo = AdamMoments::zeros_for(&theta).unwrap();
        let step = first_step(0.1);
        let g3 = Tensor::zeros(3, DType::F32, &dev).unwrap();
        assert!(adam_update(&theta, &g3, &mut mo, &step).is_err());
        let g64 = Tensor::zeros(4, DType::F64, &dev).unwrap();
        assert!(adam_update(&theta, &g64, &mut mo, &step).is_err());
        let mut small = AdamMoments::F32 {
            m: vec![0.0; 2],
            v: vec![0.0; 2],
        };
        let g = Tensor::zeros(4, DType::F32, &dev).unwrap();
        assert!(adam_update(&theta, &g, &mut small, &step).is_err());
    }
}
