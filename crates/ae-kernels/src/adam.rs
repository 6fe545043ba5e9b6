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
    if moments.len() != theta.elem_count() {
        bail!(
            "adam: {} moments for a parameter of {} elements",
            moments.len(),
            theta.elem_count()
        )
    }
    let grad = grad.contiguous()?;
    let op = AdamOp {
        moments: RefCell::new(moments),
        step: *step,
    };
    theta.inplace_op2(&grad, &op)
}

/// [`adam_update`] with the gradient given as plain `f32` values (for example from
/// [`crate::chain`]), in `theta`'s row-major order. `theta` must be an `f32` CPU tensor.
pub fn adam_update_slice(
    theta: &Tensor,
    grad: &[f32],
    moments: &mut AdamMoments,
    step: &AdamStep,
) -> Result<()> {
    if grad.len() != theta.elem_count() || moments.len() != theta.elem_count() {
        bail!(
            "adam: {} gradient values and {} moments for a parameter of {} elements",
            grad.len(),
            moments.len(),
            theta.elem_count()
        )
    }
    let op = AdamSliceOp {
        grad,
        moments: RefCell::new(moments),
        step: *step,
    };
    theta.inplace_op1(&op)
}

/// One parameter of [`adam_update_slices`]: its tensor, its gradient as plain `f32` values
/// (row-major, as [`adam_update_slice`]'s) and its moments.
pub type AdamSliceParam<'a> = (&'a Tensor, &'a [f32], &'a mut AdamMoments);

/// [`adam_update_slice`] of every parameter in `params`, as one parallel pass over all of
/// them: the same values as one call per parameter (each element's update does not depend
/// on how the elements are split), but one parallel region instead of one per large
/// parameter, and the small ones (biases) no longer updated on the calling thread alone.
///
/// Every tensor must be an `f32` CPU tensor with its own storage (not a view of another's:
/// that is refused, as it would be updated twice).
pub fn adam_update_slices(params: &mut [AdamSliceParam<'_>], step: &AdamStep) -> Result<()> {
    let mut seen = Vec::with_capacity(params.len());
    for (theta, grad, moments) in params.iter() {
        if grad.len() != theta.elem_count() || moments.len() != theta.elem_count() {
            bail!(
                "adam: {} gradient values and {} moments for a parameter of {} elements",
                grad.len(),
                moments.len(),
                theta.elem_count()
            )
        }
        if !theta.device().is_cpu() || theta.dtype() != DType::F32 {
            bail!(
                "adam: an f32 CPU parameter is needed, got {:?} on {:?}",
                theta.dtype(),
                theta.device().location()
            )
        }
        if !matches!(moments, AdamMoments::F32 { .. }) {
            bail!("adam: the moments of an f32 parameter must be f32")
        }
        // Storages are locked one inside the other below: the same storage twice would
        // wait on itself.
        let storage = &*theta.storage_and_layout().0 as *const _ as usize;
        if seen.contains(&storage) {
            bail!("adam: two parameters share one storage")
        }
        seen.push(storage);
    }
    let mut parts = Vec::with_capacity(params.len());
    for (_, grad, moments) in params.iter_mut() {
        let AdamMoments::F32 { m, v } = &mut **moments else {
            unreachable!("checked above")
        };
        parts.push(Part {
            theta: std::ptr::null_mut(),
            grad: grad.as_ptr(),
            m: m.as_mut_ptr(),
            v: v.as_mut_ptr(),
            len: grad.len(),
        });
    }
    let thetas: Vec<&Tensor> = params.iter().map(|p| p.0).collect();
    let k = Factors::of(step);
    locked(&thetas, &mut parts, &|parts: &[Part]| {
        update_parts(parts, &k)
    })
}

/// Raw views of one parameter's buffers for [`update_parts`]; `theta` is filled in while its
/// storage is locked.
struct Part {
    theta: *mut f32,
    grad: *const f32,
    m: *mut f32,
    v: *mut f32,
    len: usize,
}

// SAFETY: the pointers address buffers that outlive the update and that only the update's
// tasks touch, each task a disjoint range (see `update_parts`).
unsafe impl Send for Part {}
// SAFETY: as above.
unsafe impl Sync for Part {}

/// Elements per task of [`update_parts`].
const SLICES_CHUNK: usize = 1 << 13;

/// Runs `run(parts)` with the storage of every tensor of `thetas` locked for writing and
/// `parts[i].theta` pointing at the values of `thetas[i]` (one lock inside the other).
fn locked(thetas: &[&Tensor], parts: &mut [Part], run: &(dyn Fn(&[Part]) + Sync)) -> Result<()> {
    let Some((first, rest)) = thetas.split_first() else {
        run(parts);
        return Ok(());
    };
    let op = LockOp {
        rest,
        parts: RefCell::new(parts),
        run,
    };
    first.inplace_op1(&op)
}

struct LockOp<'a, 'b> {
    rest: &'a [&'b Tensor],
    parts: RefCell<&'a mut [Part]>,
    run: &'a (dyn Fn(&[Part]) + Sync),
}

impl InplaceOp1 for LockOp<'_, '_> {
    fn name(&self) -> &'static str {
        "ae-adam-slices"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout) -> Result<()> {
        let mut parts = self.parts.borrow_mut();
        let i = parts.len() - self.rest.len() - 1;
        let CpuStorage::F32(th) = s1 else {
            bail!("adam: an f32 parameter is needed, got {:?}", s1.dtype())
        };
        let th = contiguous_mut(th, l1, "the parameter")?;
        if th.len() != parts[i].len {
            bail!("adam: the parameter changed size")
        }
        parts[i].theta = th.as_mut_ptr();
        locked(self.rest, &mut parts, self.run)
    }
}

/// The update of every element of `parts`, in tasks of at most [`SLICES_CHUNK`] elements
/// (in parallel when there is more than one task's worth).
fn update_parts(parts: &[Part], k: &Factors<f32>) {
    let tasks: Vec<(usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| (0..p.len).step_by(SLICES_CHUNK).map(move |a| (i, a)))
        .collect();
    let task = |&(i, a): &(usize, usize)| {
        let p = &parts[i];
        let n = SLICES_CHUNK.min(p.len - a);
        // SAFETY: each (parameter, start) pair is one task, its ranges a..a+n lie inside the
        // parameter's buffers of `p.len` elements, and no two tasks share a range; the
        // parameter and moments are distinct buffers, and the gradient is only read.
        unsafe {
            body_dispatch(
                std::slice::from_raw_parts_mut(p.theta.add(a), n),
                std::slice::from_raw_parts(p.grad.add(a), n),
                std::slice::from_raw_parts_mut(p.m.add(a), n),
                std::slice::from_raw_parts_mut(p.v.add(a), n),
                k,
            )
        }
    };
    if tasks.len() > 1 {
        tasks.par_iter().for_each(task);
    } else {
        tasks.iter().for_each(task);
    }
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

    /// Plain Adam's first step with learning rate `lr` and the Keras defaults.
    fn first_step(lr: f64) -> AdamStep {
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

    /// One pass over several parameters gives the bits of one call per parameter, over
    /// several steps, on any number of threads (parameters below and above a task's size).
    #[test]
    fn all_parameters_at_once_match_one_at_a_time() {
        let dev = Device::Cpu;
        let sizes = [3, SLICES_CHUNK, SLICES_CHUNK + 1, 3 * SLICES_CHUNK + 7, 1];
        let vals = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7 + s) % 23) as f32 / 9.0 - 1.2)
                .collect()
        };
        let make = || -> Vec<(Tensor, AdamMoments)> {
            sizes
                .iter()
                .enumerate()
                .map(|(s, &n)| {
                    let t = Tensor::from_vec(vals(n, s), n, &dev).unwrap();
                    let mo = AdamMoments::zeros_for(&t).unwrap();
                    (t, mo)
                })
                .collect()
        };
        let grads: Vec<Vec<Vec<f32>>> = (0..3)
            .map(|k| sizes.iter().map(|&n| vals(n, 5 + k)).collect())
            .collect();
        let mut one = make();
        for (k, g) in grads.iter().enumerate() {
            let step = AdamStep {
                weight_decay: 0.01,
                t: k as u64 + 1,
                ..first_step(0.01)
            };
            for ((t, mo), g) in one.iter_mut().zip(g) {
                adam_update_slice(t, g, mo, &step).unwrap();
            }
        }
        for threads in [1, 2, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut all = make();
            for (k, g) in grads.iter().enumerate() {
                let step = AdamStep {
                    weight_decay: 0.01,
                    t: k as u64 + 1,
                    ..first_step(0.01)
                };
                let mut params: Vec<AdamSliceParam<'_>> = all
                    .iter_mut()
                    .zip(g)
                    .map(|((t, mo), g)| (&*t, g.as_slice(), mo))
                    .collect();
                pool.install(|| adam_update_slices(&mut params, &step))
                    .unwrap();
            }
            for ((a, ma), (b, mb)) in all.iter().zip(&one) {
                assert_eq!(
                    a.to_vec1::<f32>().unwrap(),
                    b.to_vec1::<f32>().unwrap(),
                    "{threads} threads"
                );
                assert_eq!(ma, mb);
            }
        }
    }

    #[test]
    fn all_at_once_refuses_bad_parameters() {
        let dev = Device::Cpu;
        let step = first_step(0.1);
        let t = Tensor::zeros(4, DType::F32, &dev).unwrap();
        let g = vec![0.5f32; 4];
        let mut a = AdamMoments::zeros_for(&t).unwrap();
        let mut b = AdamMoments::zeros_for(&t).unwrap();
        // The same storage twice (a clone shares it): refused, not a wait on itself.
        let alias = t.clone();
        let mut params: Vec<AdamSliceParam<'_>> = vec![(&t, &g, &mut a), (&alias, &g, &mut b)];
        let e = adam_update_slices(&mut params, &step).unwrap_err();
        assert!(e.to_string().contains("share one storage"), "{e}");
        // A gradient of the wrong length, an f64 parameter.
        let mut params: Vec<AdamSliceParam<'_>> = vec![(&t, &g[..3], &mut a)];
        assert!(adam_update_slices(&mut params, &step).is_err());
        let t64 = Tensor::zeros(4, DType::F64, &dev).unwrap();
        let mut m64 = AdamMoments::zeros_for(&t64).unwrap();
        let mut params: Vec<AdamSliceParam<'_>> = vec![(&t64, &g, &mut m64)];
        assert!(adam_update_slices(&mut params, &step).is_err());
        assert_eq!(t.to_vec1::<f32>().unwrap(), vec![0.0; 4], "nothing updated");
    }
}
