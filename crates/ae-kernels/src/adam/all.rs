//! Adam over every parameter of a step at once: one parallel pass over all of them
//! ([`adam_update_slices`] for gradients held as plain values, [`adam_update_all`] for
//! gradient tensors), instead of one parallel region per large parameter and the small ones
//! (biases) on the calling thread. The same values as one update per parameter: an element's
//! update does not depend on how the elements are split.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Storage, Tensor, bail};
use rayon::prelude::*;

use super::{
    AdamMoments, AdamStep, Factors, adam_update, body_dispatch, check_lengths, contiguous_mut,
};
use crate::chain::with_values;

/// One parameter of [`adam_update_slices`]: its tensor, its gradient as plain `f32` values
/// (row-major, as [`adam_update_slice`](super::adam_update_slice)'s) and its moments.
pub type AdamSliceParam<'a> = (&'a Tensor, &'a [f32], &'a mut AdamMoments);

/// [`adam_update_slice`](super::adam_update_slice) of every parameter in `params`, as one
/// parallel pass over all of them: the same values as one call per parameter (each element's
/// update does not depend on how the elements are split), but one parallel region instead of
/// one per large parameter, and the small ones (biases) no longer updated on the calling
/// thread alone.
///
/// Every tensor must be an `f32` CPU tensor with its own storage (not a view of another's:
/// that is refused, as it would be updated twice).
pub fn adam_update_slices(params: &mut [AdamSliceParam<'_>], step: &AdamStep) -> Result<()> {
    let mut seen = Vec::with_capacity(params.len());
    for (theta, grad, moments) in params.iter() {
        check_lengths(theta, grad.len(), moments)?;
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
        let storage = storage_id(theta);
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
    locked(&thetas, &mut parts, &Factors::of(step))
}

/// Which storage `t`'s values live in (two tensors sharing one give the same number).
fn storage_id(t: &Tensor) -> usize {
    &*t.storage_and_layout().0 as *const Storage as usize
}

/// One parameter of [`adam_update_all`]: its tensor, its gradient tensor (same shape and
/// dtype) and its moments.
pub type AdamParam<'a> = (&'a Tensor, &'a Tensor, &'a mut AdamMoments);

/// [`adam_update`] of every parameter in `params`: for `f32` CPU parameters, one parallel
/// pass over all of them ([`adam_update_slices`] on the gradients' values, read in place);
/// otherwise (`f64`, or a gradient that shares a parameter's storage) one update per
/// parameter. The same values either way.
pub fn adam_update_all(params: &mut [AdamParam<'_>], step: &AdamStep) -> Result<()> {
    let slices_ok = params.iter().all(|(theta, grad, _)| {
        theta.device().is_cpu()
            && grad.device().is_cpu()
            && theta.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && theta.dims() == grad.dims()
    });
    if !slices_ok {
        for (theta, grad, moments) in params.iter_mut() {
            adam_update(theta, grad, moments, step)?;
        }
        return Ok(());
    }
    let grads: Vec<Tensor> = params
        .iter()
        .map(|(_, g, _)| g.contiguous())
        .collect::<Result<_>>()?;
    let thetas: Vec<usize> = params.iter().map(|(t, _, _)| storage_id(t)).collect();
    if grads.iter().any(|g| thetas.contains(&storage_id(g))) {
        // The parameters' storages are locked for writing while the gradients are read.
        for ((theta, _, moments), grad) in params.iter_mut().zip(&grads) {
            adam_update(theta, grad, moments, step)?;
        }
        return Ok(());
    }
    // The gradients' storages stay locked for reading while their values are used.
    let grads: Vec<&Tensor> = grads.iter().collect();
    with_values(&grads, |values| {
        let mut slices: Vec<AdamSliceParam<'_>> = params
            .iter_mut()
            .zip(values)
            .map(|((theta, _, moments), g)| (*theta, *g, &mut **moments))
            .collect();
        adam_update_slices(&mut slices, step)
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

/// Runs [`update_parts`] with the storage of every tensor of `thetas` locked for writing
/// and `parts[i].theta` pointing at the values of `thetas[i]` (one lock inside the other).
fn locked(thetas: &[&Tensor], parts: &mut [Part], k: &Factors<f32>) -> Result<()> {
    let Some((first, rest)) = thetas.split_first() else {
        update_parts(parts, k);
        return Ok(());
    };
    let op = LockOp {
        rest,
        parts: RefCell::new(parts),
        k,
    };
    first.inplace_op1(&op)
}

struct LockOp<'a, 'b> {
    rest: &'a [&'b Tensor],
    parts: RefCell<&'a mut [Part]>,
    k: &'a Factors<f32>,
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
        locked(self.rest, &mut parts, self.k)
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

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::super::adam_update_slice;
    use super::super::tests::first_step;
    use super::*;
    use crate::test_utils::on_threads;

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
        // Step `k` (from 0) of the run.
        let step_at = |k: usize| AdamStep {
            weight_decay: 0.01,
            t: k as u64 + 1,
            ..first_step(0.01)
        };
        let mut one = make();
        for (k, g) in grads.iter().enumerate() {
            for ((t, mo), g) in one.iter_mut().zip(g) {
                adam_update_slice(t, g, mo, &step_at(k)).unwrap();
            }
        }
        for threads in [1, 2, 5] {
            let all = on_threads(threads, || {
                let mut all = make();
                for (k, g) in grads.iter().enumerate() {
                    let mut params: Vec<AdamSliceParam<'_>> = all
                        .iter_mut()
                        .zip(g)
                        .map(|((t, mo), g)| (&*t, g.as_slice(), mo))
                        .collect();
                    adam_update_slices(&mut params, &step_at(k)).unwrap();
                }
                all
            })
            .unwrap();
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

    /// Gradient tensors (one of them a transposed, non-contiguous view): the bits of one
    /// `adam_update` per parameter; `f64` parameters take that path themselves.
    #[test]
    fn tensor_gradients_at_once_match_one_at_a_time() {
        let dev = Device::Cpu;
        let step = AdamStep {
            weight_decay: 0.01,
            ..first_step(0.01)
        };
        for dtype in [DType::F32, DType::F64] {
            let make = || -> Vec<(Tensor, AdamMoments)> {
                [(3, 5), (SLICES_CHUNK / 64 + 3, 64), (1, 7)]
                    .iter()
                    .enumerate()
                    .map(|(s, &(r, c))| {
                        let v: Vec<f32> = (0..r * c)
                            .map(|i| ((i * 5 + s) % 19) as f32 / 7.0 - 1.3)
                            .collect();
                        let t = Tensor::from_vec(v, (r, c), &dev)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap();
                        let mo = AdamMoments::zeros_for(&t).unwrap();
                        (t, mo)
                    })
                    .collect()
            };
            let grads: Vec<Tensor> = make()
                .iter()
                .enumerate()
                .map(|(k, (t, _))| {
                    let (r, c) = t.dims2().unwrap();
                    let g = (t.ones_like().unwrap() * (0.1 + k as f64)).unwrap();
                    // The middle one as the transpose of a contiguous [c, r] tensor.
                    if k == 1 {
                        let v = g.t().unwrap().contiguous().unwrap();
                        assert_eq!(v.dims(), &[c, r]);
                        v.t().unwrap()
                    } else {
                        g
                    }
                })
                .collect();
            assert!(!grads[1].is_contiguous());
            let mut one = make();
            for ((t, mo), g) in one.iter_mut().zip(&grads) {
                adam_update(t, g, mo, &step).unwrap();
            }
            let mut all = make();
            let mut params: Vec<AdamParam<'_>> = all
                .iter_mut()
                .zip(&grads)
                .map(|((t, mo), g)| (&*t, g, mo))
                .collect();
            adam_update_all(&mut params, &step).unwrap();
            for ((a, ma), (b, mb)) in all.iter().zip(&one) {
                let flat = |t: &Tensor| {
                    t.flatten_all()
                        .unwrap()
                        .to_dtype(DType::F64)
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                };
                assert_eq!(flat(a), flat(b), "{dtype:?}");
                assert_eq!(ma, mb);
            }
        }
    }
}
