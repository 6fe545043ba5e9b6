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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl PoolGeom {
    pub(crate) fn ho(&self) -> usize {
        self.h / self.k
    }

    pub(crate) fn wo(&self) -> usize {
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
    let mut y = vec![T::ZERO; g.planes * g.ho() * g.wo()];
    if g.ho() * g.wo() == 0 {
        return y;
    }
    y.par_chunks_mut(g.ho() * g.wo())
        .zip(x.par_chunks(g.h * g.w))
        .for_each(|(y, plane)| pool_fwd_plane(g, plane, y));
    y
}

/// The pooled `y` `[ho, wo]` of one plane `[h, w]`.
fn pool_fwd_plane<T: Elem>(g: &PoolGeom, plane: &[T], y: &mut [T]) {
    if g.k == 2 {
        return pool2_fwd_plane(g, plane, y);
    }
    let wo = g.wo();
    for oy in 0..g.ho() {
        for ox in 0..wo {
            y[oy * wo + ox] = g.argmax(plane, oy, ox).1;
        }
    }
}

/// [`pool_fwd`] of the `g.planes` planes of one image, on the calling thread: `x`
/// `[planes, h, w]` into `y` `[planes, ho, wo]`.
pub(crate) fn pool_fwd_image<T: Elem>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    let out = g.ho() * g.wo();
    if out == 0 {
        return;
    }
    for (y, plane) in y.chunks_exact_mut(out).zip(x.chunks_exact(g.h * g.w)) {
        pool_fwd_plane(g, plane, y);
    }
}

fn pool_bwd<T: Elem>(g: &PoolGeom, x: &[T], gy: &[T]) -> Vec<T> {
    let mut gx = vec![T::ZERO; x.len()];
    if g.ho() * g.wo() == 0 {
        return gx;
    }
    gx.par_chunks_mut(g.h * g.w)
        .zip(x.par_chunks(g.h * g.w).zip(gy.par_chunks(g.ho() * g.wo())))
        .for_each(|(gx, (plane, gy))| pool_bwd_plane(g, plane, gy, gx));
    gx
}

/// Adds the output gradient `gy` `[ho, wo]` of one plane `plane` `[h, w]` to `gx` `[h, w]`
/// at each window's maximum.
fn pool_bwd_plane<T: Elem>(g: &PoolGeom, plane: &[T], gy: &[T], gx: &mut [T]) {
    if g.k == 2 {
        return pool2_bwd_plane(g, plane, gy, gx);
    }
    let wo = g.wo();
    for oy in 0..g.ho() {
        for ox in 0..wo {
            gx[g.argmax(plane, oy, ox).0] += gy[oy * wo + ox];
        }
    }
}

/// [`pool_bwd`] of one image on the calling thread: the gradient `gx` `[planes, h, w]`
/// (overwritten) of `x` from the output gradient `gy` `[planes, ho, wo]`.
pub(crate) fn pool_bwd_image<T: Elem>(g: &PoolGeom, x: &[T], gy: &[T], gx: &mut [T]) {
    gx.fill(T::ZERO);
    let out = g.ho() * g.wo();
    if out == 0 {
        return;
    }
    for ((gx, plane), gy) in gx
        .chunks_exact_mut(g.h * g.w)
        .zip(x.chunks_exact(g.h * g.w))
        .zip(gy.chunks_exact(out))
    {
        pool_bwd_plane(g, plane, gy, gx);
    }
}

/// The 2x2 case of [`pool_bwd`] on one plane (every pool of the conv models): a row pair at a
/// time, each window's argmax found by [`max2x2`] as an offset and its gradient written
/// there, instead of the generic argmax's loops over `k`. The same argmax, so the same values
/// bit for bit; rows and columns beyond `2·ho`, `2·wo` stay 0. `gx` must be zero on entry
/// (both callers zero it). Not inlined: inside the conv chain's per-image function the loop
/// ran out of registers.
#[inline(never)]
fn pool2_bwd_plane<T: Elem>(g: &PoolGeom, plane: &[T], gy: &[T], gx: &mut [T]) {
    let (w, wo) = (g.w, g.wo());
    for ((src, dst), gy_row) in plane
        .chunks_exact(2 * w)
        .zip(gx.chunks_exact_mut(2 * w))
        .zip(gy.chunks_exact(wo))
    {
        let (s0, s1) = src.split_at(w);
        for (ox, ((a, b), &v)) in s0
            .chunks_exact(2)
            .zip(s1.chunks_exact(2))
            .zip(gy_row)
            .enumerate()
        {
            // `0 + v`: what `+=` leaves in the zeroed cell (windows do not overlap), without
            // reading back a cell the zeroing just wrote.
            dst[2 * ox + max2x2(a, b, w).0] = T::ZERO + v;
        }
    }
}

/// The 2x2 case of [`pool_fwd`] on one plane (see [`pool2_bwd_plane`]).
fn pool2_fwd_plane<T: Elem>(g: &PoolGeom, plane: &[T], y: &mut [T]) {
    let (w, wo) = (g.w, g.wo());
    for (src, y_row) in plane.chunks_exact(2 * w).zip(y.chunks_exact_mut(wo)) {
        let (s0, s1) = src.split_at(w);
        for ((a, b), out) in s0.chunks_exact(2).zip(s1.chunks_exact(2)).zip(y_row) {
            *out = max2x2(a, b, w).1;
        }
    }
}

/// [`PoolGeom::argmax`] of the 2x2 window with rows `a` and `b` (in row-major order, `m < v`
/// replaces): the maximum's offset from `a[0]` in a plane of width `w`, and its value.
///
/// Branch-free: where a window's maximum lies is data, so a branch on it is mispredicted
/// often, and whether LLVM compiles `if m < x { best = off }` to a conditional move or to a
/// branch depends on the code around it (the conv chain's max-pool backward once took 3x
/// longer after an unrelated change elsewhere in the crate). `select_unpredictable` asks
/// for the moves.
#[inline(always)]
fn max2x2<T: Elem>(a: &[T], b: &[T], w: usize) -> (usize, T) {
    use std::hint::select_unpredictable as pick;
    let (m, best) = (a[0], 0);
    let take = m < a[1];
    let (m, best) = (pick(take, a[1], m), pick(take, 1, best));
    let take = m < b[0];
    let (m, best) = (pick(take, b[0], m), pick(take, w, best));
    let take = m < b[1];
    (pick(take, w + 1, best), pick(take, b[1], m))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::seq;

    #[test]
    fn pool2_matches_the_general_loops_bitwise() {
        for (planes, h, w) in [(3, 6, 8), (2, 7, 5), (2, 3, 2), (4, 28, 28)] {
            // Few distinct values, so that windows have ties; one NaN and some -0.0 too.
            let mut x: Vec<f64> = seq(planes * h * w, (h * w) as u64)
                .iter()
                .map(|v| (v * 6.0).round())
                .collect();
            x[0] = f64::NAN;
            let g = PoolGeom { planes, h, w, k: 2 };
            let mut gy = seq(planes * g.ho() * g.wo(), 7);
            if let Some(v) = gy.first_mut() {
                *v = -0.0;
            }
            let got = pool_bwd(&g, &x, &gy);
            let mut want = vec![0.0f64; x.len()];
            for ((plane, gx), gy) in x
                .chunks(h * w)
                .zip(want.chunks_mut(h * w))
                .zip(gy.chunks(g.ho() * g.wo()))
            {
                for oy in 0..g.ho() {
                    for ox in 0..g.wo() {
                        gx[g.argmax(plane, oy, ox).0] += gy[oy * g.wo() + ox];
                    }
                }
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "backward {planes}x{h}x{w}");
            let want_y: Vec<f64> = x
                .chunks(h * w)
                .flat_map(|plane| {
                    (0..g.ho() * g.wo()).map(|o| g.argmax(plane, o / g.wo(), o % g.wo()).1)
                })
                .collect();
            assert_eq!(
                bits(&pool_fwd(&g, &x)),
                bits(&want_y),
                "forward {planes}x{h}x{w}"
            );
        }
    }
}
