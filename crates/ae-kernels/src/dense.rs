//! Fused fully connected layer `y = act(x Wᵀ + b)` as a candle custom op, with a one-pass
//! backward.
//!
//! candle 0.11 builds a `Linear` + ReLU out of four graph nodes (matmul of a transposed view,
//! broadcast add, ReLU) whose backward passes allocate a dozen full-size temporaries: the
//! weight gradient comes out transposed and is copied through a strided add, the bias
//! gradient is a `sum_keepdim` + squeeze, and the ReLU gradient is a `ge` mask, its cast and
//! a product. Here the forward pass is one GEMM with the bias and the ReLU applied while the
//! output rows are in cache, and the backward pass is one masking pass that also sums the
//! bias gradient, plus one GEMM per requested gradient (input, weight).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use gemm::Parallelism;

use crate::cpu::{self, Elem, MatView, Need};
use crate::ops::{StorageElem, backward, data};

/// Shape of one fully connected layer over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DenseGeom {
    /// Rows of the batch.
    pub n: usize,
    /// Input features.
    pub inp: usize,
    /// Output features.
    pub out: usize,
}

/// GEMMs below this many multiply-adds run on one thread (rayon's fork-join costs more).
const PARALLEL_MIN_FLOPS: usize = 1 << 17;

/// Parallelism for an `m x k @ k x n` product.
fn par_for(m: usize, k: usize, n: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m.saturating_mul(k).saturating_mul(n) >= PARALLEL_MIN_FLOPS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// `relu?(x Wᵀ + b)`: `x [n, inp]`, `w [out, inp]`, `b [out]` -> `[n, out]`.
pub(crate) fn dense_fwd<T: Elem>(
    g: DenseGeom,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    let mut y = vec![T::ZERO; g.n * g.out];
    cpu::matmul(
        &mut y,
        MatView::row_major(g.n, g.out),
        false,
        x,
        MatView::row_major(g.n, g.inp),
        w,
        MatView::row_major(g.out, g.inp).t(),
        par_for(g.n, g.inp, g.out),
    );
    if g.out > 0 && (b.is_some() || relu) {
        for row in y.chunks_exact_mut(g.out) {
            if let Some(b) = b {
                for (v, &bias) in row.iter_mut().zip(b) {
                    *v += bias;
                }
            }
            if relu {
                for v in row.iter_mut() {
                    *v = if *v > T::ZERO { *v } else { T::ZERO };
                }
            }
        }
    }
    y
}

/// Gradients of [`dense_fwd`] given the output gradient `gy [n, out]` (and, with a fused
/// ReLU, the forward output `res`, whose zeros mask the gradient).
pub(crate) fn dense_bwd<T: Elem + std::ops::Mul<Output = T>>(
    g: DenseGeom,
    x: &[T],
    w: &[T],
    gy: &[T],
    res: Option<&[T]>,
    need: Need,
) -> cpu::Grads<T> {
    // The masked output gradient, and the bias gradient (its column sums), in one pass.
    let masked: Vec<T>;
    let gm: &[T] = match res {
        Some(res) => {
            masked = gy
                .iter()
                .zip(res)
                .map(|(&d, &r)| if r > T::ZERO { d } else { T::ZERO })
                .collect();
            &masked
        }
        None => gy,
    };
    let bias = need.bias.then(|| {
        let mut acc = vec![T::ZERO; g.out];
        if g.out > 0 {
            for row in gm.chunks_exact(g.out) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
        acc
    });
    let input = need.input.then(|| {
        let mut gx = vec![T::ZERO; g.n * g.inp];
        cpu::matmul(
            &mut gx,
            MatView::row_major(g.n, g.inp),
            false,
            gm,
            MatView::row_major(g.n, g.out),
            w,
            MatView::row_major(g.out, g.inp),
            par_for(g.n, g.out, g.inp),
        );
        gx
    });
    let weight = need.weight.then(|| {
        let mut gw = vec![T::ZERO; g.out * g.inp];
        cpu::matmul(
            &mut gw,
            MatView::row_major(g.out, g.inp),
            false,
            gm,
            MatView::row_major(g.n, g.out).t(),
            x,
            MatView::row_major(g.n, g.inp),
            par_for(g.out, g.n, g.inp),
        );
        gw
    });
    cpu::Grads {
        input,
        weight,
        bias,
    }
}

/// `x [n, inp]`, `weight [out, inp]` (, `bias [out]`) -> `relu?(x Wᵀ + b) [n, out]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DenseOp {
    pub g: DenseGeom,
    /// Whether a ReLU is fused after the bias.
    pub relu: bool,
}

impl DenseOp {
    fn run<T: StorageElem>(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        let name = "linear";
        let x = data::<T>(name, x.0, x.1, &[g.n, g.inp])?;
        let w = data::<T>(name, w.0, w.1, &[g.out, g.inp])?;
        let b = match b {
            Some((s, l)) => Some(data::<T>(name, s, l, &[g.out])?),
            None => None,
        };
        let y = dense_fwd(g, x, w, b, self.relu);
        Ok((T::storage(y), Shape::from((g.n, g.out))))
    }

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        match x.0.dtype() {
            DType::F32 => self.run::<f32>(x, w, b),
            DType::F64 => self.run::<f64>(x, w, b),
            dt => bail!("ae-kernels linear: unsupported dtype {dt:?}"),
        }
    }

    /// Gradients w.r.t. `(x, w, b)`; only those of tracked tensors are computed.
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let need = Need {
            input: x.track_op(),
            weight: w.track_op(),
            bias: b.is_some_and(|b| b.track_op()),
        };
        if !(need.input || need.weight || need.bias) {
            return Ok([None, None, None]);
        }
        let g = self.g;
        let gy = gy.contiguous()?;
        let xd = [g.n, g.inp];
        let wd = [g.out, g.inp];
        let yd = [g.n, g.out];
        let mut inputs: Vec<(&Tensor, &[usize])> = vec![(x, &xd), (w, &wd), (&gy, &yd)];
        if self.relu {
            inputs.push((res, &yd));
        }
        let shapes: [&[usize]; 3] = [&xd, &wd, &[g.out]];
        macro_rules! run {
            ($t:ty) => {
                backward::<$t>("linear backward", &inputs, shapes, |d| {
                    dense_bwd(g, d[0], d[1], d[2], d.get(3).copied(), need)
                })
            };
        }
        match x.dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            dt => bail!("ae-kernels linear backward: unsupported dtype {dt:?}"),
        }
    }
}

impl CustomOp2 for DenseOp {
    fn name(&self) -> &'static str {
        "ae-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, _] = self.grads(x, w, None, res, gy)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for DenseOp {
    fn name(&self) -> &'static str {
        "ae-linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, gb] = self.grads(x, w, Some(b), res, gy)?;
        Ok((gx, gw, gb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn forward_and_backward_match_naive_loops() {
        let g = DenseGeom {
            n: 5,
            inp: 7,
            out: 3,
        };
        let (x, w, b, gy) = (seq(35, 1), seq(21, 2), seq(3, 3), seq(15, 4));
        for relu in [false, true] {
            let y = dense_fwd(g, &x, &w, Some(&b), relu);
            let mut mask = vec![1.0; 15];
            for r in 0..5 {
                for o in 0..3 {
                    let mut s = b[o];
                    for i in 0..7 {
                        s += x[r * 7 + i] * w[o * 7 + i];
                    }
                    if relu && s <= 0.0 {
                        s = 0.0;
                        mask[r * 3 + o] = 0.0;
                    }
                    assert!((y[r * 3 + o] - s).abs() < 1e-12);
                }
            }
            let need = Need {
                input: true,
                weight: true,
                bias: true,
            };
            let gr = dense_bwd(g, &x, &w, &gy, relu.then_some(y.as_slice()), need);
            let gm: Vec<f64> = gy.iter().zip(&mask).map(|(a, m)| a * m).collect();
            let (gx, gw, gb) = (gr.input.unwrap(), gr.weight.unwrap(), gr.bias.unwrap());
            for r in 0..5 {
                for i in 0..7 {
                    let e: f64 = (0..3).map(|o| gm[r * 3 + o] * w[o * 7 + i]).sum();
                    assert!((gx[r * 7 + i] - e).abs() < 1e-12);
                }
            }
            for o in 0..3 {
                for i in 0..7 {
                    let e: f64 = (0..5).map(|r| gm[r * 3 + o] * x[r * 7 + i]).sum();
                    assert!((gw[o * 7 + i] - e).abs() < 1e-12);
                }
                let e: f64 = (0..5).map(|r| gm[r * 3 + o]).sum();
                assert!((gb[o] - e).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn only_requested_gradients_are_computed() {
        let g = DenseGeom {
            n: 2,
            inp: 3,
            out: 2,
        };
        let need = Need {
            input: false,
            weight: true,
            bias: false,
        };
        let gr = dense_bwd(g, &seq(6, 1), &seq(6, 2), &seq(4, 3), None, need);
        assert!(gr.input.is_none() && gr.bias.is_none() && gr.weight.is_some());
    }
}
