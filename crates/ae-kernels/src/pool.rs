//! `max_pool2d` as a single-pass CPU custom op with a single-pass backward pass.
//!
//! candle 0.11 builds the backward pass out of several full-size temporaries (two nearest
//! upsamplings, an equality mask, its cast and an average pool), which on CPU cost more than
//! the convolutions once those are fast. Here the backward pass is one parallel loop.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::elem::Elem;
use crate::ops::{StorageElem, data, float_dispatch};

/// Geometry of a `k x k`, stride-`k`, unpadded max pool over `[planes, h, w]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl PoolGeom {
    fn ho(&self) -> usize {
        self.h / self.k
    }

    fn wo(&self) -> usize {
        self.w / self.k
    }

    /// Index in the plane of the window's maximum (first one in row-major order, ties and
    /// NaN handled as candle's forward: `max < v` replaces), and its value.
    #[inline]
    fn argmax<T: Elem>(&self, plane: &[T], oy: usize, ox: usize) -> (usize, T) {
        let (y0, x0) = (oy * self.k, ox * self.k);
        let mut best = y0 * self.w + x0;
        let mut m = plane[best];
        for y in y0..y0 + self.k {
            let row = &plane[y * self.w + x0..y * self.w + x0 + self.k];
            for (dx, &v) in row.iter().enumerate() {
                if m < v {
                    m = v;
                    best = y * self.w + x0 + dx;
                }
            }
        }
        (best, m)
    }
}

fn pool_fwd<T: Elem>(g: &PoolGeom, x: &[T]) -> Vec<T> {
    let (ho, wo) = (g.ho(), g.wo());
    let mut y = vec![T::ZERO; g.planes * ho * wo];
    if ho * wo == 0 {
        return y;
    }
    y.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(g.h * g.w))
        .for_each(|(y, plane)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    y[oy * wo + ox] = g.argmax(plane, oy, ox).1;
                }
            }
        });
    y
}

fn pool_bwd<T: Elem>(g: &PoolGeom, x: &[T], gy: &[T]) -> Vec<T> {
    let (ho, wo) = (g.ho(), g.wo());
    let mut gx = vec![T::ZERO; x.len()];
    if ho * wo == 0 {
        return gx;
    }
    gx.par_chunks_mut(g.h * g.w)
        .zip(x.par_chunks(g.h * g.w).zip(gy.par_chunks(ho * wo)))
        .for_each(|(gx, (plane, gy))| {
            for oy in 0..ho {
                for ox in 0..wo {
                    gx[g.argmax(plane, oy, ox).0] += gy[oy * wo + ox];
                }
            }
        });
    gx
}

/// `k x k` max pool with stride `k`. Gradient: the whole output gradient goes to the first
/// maximal element of each window (PyTorch's convention).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaxPoolOp {
    pub g: PoolGeom,
    pub dims: [usize; 4],
}

impl MaxPoolOp {
    fn run<T: StorageElem>(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data::<T>("max_pool2d", s, l, &self.dims)?;
        let [n, c, _, _] = self.dims;
        let shape = Shape::from((n, c, self.g.ho(), self.g.wo()));
        Ok((T::storage(pool_fwd(&self.g, x)), shape))
    }
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "ae-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s.dtype(), "max_pool2d", |T| self.run::<T>(s, l))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let op = MaxPoolBwdOp {
            g: self.g,
            dims: self.dims,
        };
        arg.apply_op2_no_bwd(&grad, &op).map(Some)
    }
}

/// Backward of [`MaxPoolOp`]: `(x, grad) -> gx`.
#[derive(Clone, Copy, Debug)]
struct MaxPoolBwdOp {
    g: PoolGeom,
    dims: [usize; 4],
}

impl MaxPoolBwdOp {
    fn run<T: StorageElem>(
        &self,
        x: (&CpuStorage, &Layout),
        gy: (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let [n, c, _, _] = self.dims;
        let name = "max_pool2d backward";
        let xs = data::<T>(name, x.0, x.1, &self.dims)?;
        let gys = data::<T>(name, gy.0, gy.1, &[n, c, self.g.ho(), self.g.wo()])?;
        Ok((T::storage(pool_bwd(&self.g, xs, gys)), x.1.shape().clone()))
    }
}

impl CustomOp2 for MaxPoolBwdOp {
    fn name(&self) -> &'static str {
        "ae-max-pool2d-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s1.dtype(), "max_pool2d backward", |T| self
            .run::<T>((s1, l1), (s2, l2)))
    }
}
