//! The padded-width ("wide") layout for convolutions, which turns im2col and col2im into a few
//! long contiguous copies and adds.
//!
//! For stride 1, each image is first copied into a zero-padded buffer `[c, hp, wp]`
//! (`hp = h + 2·pad`, `wp = w + 2·pad`). The output is then computed on a *wide* grid of `ho`
//! rows of `wp` columns, of which only the first `wo` of each row are real outputs: on that
//! grid the column-matrix row of kernel tap `(ci, ky, kx)` is the single contiguous slice of
//! the padded plane `ci` starting at `ky·wp + kx`, of length `lw = (ho - 1)·wp + wo` (the grid
//! up to its last real output). So
//!
//! * im2col is `c·kh·kw` slice copies of length `lw` (instead of one short copy per output
//!   row and tap), and the GEMM's wide result is compacted to `ho x wo` while the bias and the
//!   fused ReLU are applied;
//! * for the backward passes the output gradient is spread onto the wide grid with zeros in the
//!   extra columns; the data pass's columns `W^T @ gy` are then zero there too, so col2im is
//!   `kh·kw` slice adds of length `lw` per padded image plane, followed by a crop; the filter
//!   pass multiplies the zero-extended gradient by the same wide columns as the forward pass.
//!
//! A stride `s > 1` (the transposed convolutions' geometries) is reduced to the same form by
//! splitting every channel into `s²` *phase planes*, plane `(ry, rx)` holding the pixels
//! `(s·a + ry, s·b + rx)`, each padded by `ceil(pad / s)` zero rows and columns in front (and
//! enough behind): input row `s·oy + ky - pad` is row `oy + q` of phase `r`, where
//! `ky - pad = s·q + r`, so every tap again reads one contiguous slice of one phase plane.
//! Only the split into phases (and the crop back) moves single pixels.
//!
//! With very few output channels (the GEMM's `m` dimension, e.g. a 32→1 output convolution)
//! a GEMM is a poor fit: the column matrix is large and each of its values is used only `o`
//! times. There the passes are direct sums of shifted slices of the padded planes (one
//! multiply-add sweep per tap), with no column matrix at all.

use gemm::Parallelism;

mod direct;

use super::geom::Geom;
use super::layout::{BwdIo, FwdIo, Layout};
use crate::elem::{Elem, add_channel_sums};
use crate::matmul::{MatView, matmul};
use crate::simd::avx2_dispatch;

use direct::DIRECT_MAX_O;

/// The wide layout of one stride-1 convolution geometry (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wide {
    g: Geom,
    /// Zero rows (and columns) in front of each phase plane: `ceil(pad / stride)`.
    top: usize,
    /// Height of one padded phase plane.
    hp: usize,
    /// Width of one padded phase plane (the wide grid's row length).
    wp: usize,
    /// Length of the wide grid: `(ho - 1) * wp + wo`.
    lw: usize,
}

/// Per-task scratch buffers of the wide path.
pub(crate) struct Scratch<T> {
    /// The padded image `[c, hp, wp]`; only its interior is ever written, so the border stays
    /// zero. Empty without padding (the image is then its own padded image).
    xpad: Vec<T>,
    /// The wide column matrix `[k, lw]` (empty on the direct path).
    col: Vec<T>,
    /// The wide output, or the zero-extended output gradient, `[o, lw]` ([`Wide::widen`]
    /// writes zeros into the extra columns, which a forward pass may have left non-zero).
    yw: Vec<T>,
    /// One padded image plane `[hp, wp]` collecting the image gradient of one channel.
    plane: Vec<T>,
    /// The weight gradient accumulated since the last flush, transposed: `[k, o]` (empty on
    /// the direct path, which adds to the caller's gradient).
    gwt: Vec<T>,
}

/// `acc += x`, element-wise.
#[inline(always)]
fn add<T: Elem>(acc: &mut [T], x: &[T]) {
    for (d, &s) in acc.iter_mut().zip(x) {
        *d += s;
    }
}

impl Wide {
    /// The wide layout of `g`, when it applies: a real unfolding (not the 1x1, stride-1,
    /// unpadded case, whose column matrix is the image itself) of a non-empty image.
    pub(crate) fn new(g: &Geom) -> Option<Self> {
        if g.stride == 1 && g.kh == 1 && g.kw == 1 && g.pad == 0 {
            return None;
        }
        if [g.h, g.w, g.kh, g.kw, g.ho, g.wo].contains(&0) {
            return None;
        }
        let s = g.stride as isize;
        let top = g.pad.div_ceil(g.stride);
        // Rows of a phase plane: the `top` zero rows, then enough for both the image's rows
        // of that phase and the rows read by the last output row's largest tap shift.
        let extent = |k: usize, n_out: usize, n_in: usize| {
            let shift = (k as isize - 1 - g.pad as isize).div_euclid(s);
            let need = (n_out as isize + shift).max(n_in.div_ceil(g.stride) as isize);
            top + need.max(0) as usize
        };
        let (hp, wp) = (extent(g.kh, g.ho, g.h), extent(g.kw, g.wo, g.w));
        Some(Self {
            g: *g,
            top,
            hp,
            wp,
            lw: (g.ho - 1) * wp + g.wo,
        })
    }

    /// Whether the wide layout is expected to be faster than plain im2col / col2im: when the
    /// column matrix (`c·kh·kw` rows) is at least as large as the output (`o` rows), whose
    /// spreading onto the wide grid and compaction the layout adds. A 1→32 convolution (9
    /// short im2col rows, 32 output rows) was no faster on it.
    pub(crate) fn pays(&self) -> bool {
        self.g.k() >= self.g.o
    }

    /// Elements of one padded phase plane.
    fn plane_len(&self) -> usize {
        self.hp * self.wp
    }

    /// Elements of the `stride²` phase planes of one channel.
    fn chan_len(&self) -> usize {
        self.g.stride * self.g.stride * self.plane_len()
    }

    /// Whether the image is its own padded image (stride 1, no padding).
    fn unpadded(&self) -> bool {
        self.g.stride == 1 && self.g.pad == 0
    }

    /// Phase and shifted position (in padded phase-plane coordinates) of kernel offset `k`
    /// along one axis: input coordinate `stride·out + k - pad` is `stride·(out + q) + r`, at
    /// phase `r`, padded position `out + q + top`; this returns `(r, q + top)`.
    #[inline(always)]
    fn split(&self, k: usize) -> (usize, usize) {
        let d = k as isize - self.g.pad as isize;
        let s = self.g.stride as isize;
        (
            d.rem_euclid(s) as usize,
            (d.div_euclid(s) + self.top as isize) as usize,
        )
    }

    /// Offset of the slice read by kernel tap `(ky, kx)` in one channel's phase planes.
    #[inline(always)]
    fn tap_start(&self, ky: usize, kx: usize) -> usize {
        let ((ry, sy), (rx, sx)) = (self.split(ky), self.split(kx));
        (ry * self.g.stride + rx) * self.plane_len() + sy * self.wp + sx
    }

    /// Whether the passes use the direct kernels instead of GEMMs.
    fn direct(&self) -> bool {
        self.g.o <= DIRECT_MAX_O
    }

    /// Fresh scratch buffers for one task.
    fn new_scratch<T: Elem>(&self) -> Scratch<T> {
        let g = &self.g;
        Scratch {
            xpad: vec![
                T::ZERO;
                if self.unpadded() {
                    0
                } else {
                    g.c * self.chan_len()
                }
            ],
            col: vec![
                T::ZERO;
                if self.direct() {
                    self.direct_taps_len()
                } else {
                    g.k() * self.lw
                }
            ],
            yw: vec![T::ZERO; g.o * self.lw],
            plane: vec![
                T::ZERO;
                if self.direct() {
                    g.c * self.chan_len()
                } else {
                    self.chan_len()
                }
            ],
            gwt: vec![T::ZERO; if self.direct() { 0 } else { g.k() * g.o }],
        }
    }

    /// Where image pixel `(y, x0)`, `x0 < stride`, and the pixels `stride` apart after it in
    /// its row start in one channel's padded phase planes, and how many of them there are.
    #[inline(always)]
    fn phase_row(&self, y: usize, x0: usize) -> (usize, usize) {
        let s = self.g.stride;
        let start = ((y % s * s + x0) * self.hp + y / s + self.top) * self.wp + self.top;
        (start, (self.g.w - x0).div_ceil(s))
    }

    /// The padded image of `x` `[c, h, w]`: `x` itself for stride 1 without padding, else
    /// split into phase planes in the interior of `xpad`.
    #[inline(always)]
    fn padded<'a, T: Elem>(&self, x: &'a [T], xpad: &'a mut [T]) -> &'a [T] {
        let g = &self.g;
        if self.unpadded() {
            return x;
        }
        for (src, dst) in x
            .chunks_exact(g.h * g.w)
            .zip(xpad.chunks_exact_mut(self.chan_len()))
        {
            for (y, row) in src.chunks_exact(g.w).enumerate() {
                if g.stride == 2 && g.w >= 2 {
                    // Both phases of the row in one pass.
                    let ((s0, n0), (s1, n1)) = (self.phase_row(y, 0), self.phase_row(y, 1));
                    let (lo, hi) = dst.split_at_mut(s1);
                    let (even, odd) = (&mut lo[s0..s0 + n0], &mut hi[..n1]);
                    let pairs = row.chunks_exact(2);
                    if let (Some(&v), Some(last)) = (pairs.remainder().first(), even.last_mut()) {
                        *last = v;
                    }
                    for ((p, e), o) in pairs.zip(even.iter_mut()).zip(odd.iter_mut()) {
                        *e = p[0];
                        *o = p[1];
                    }
                    continue;
                }
                for x0 in 0..g.stride.min(g.w) {
                    let (start, len) = self.phase_row(y, x0);
                    let out = &mut dst[start..start + len];
                    if g.stride == 1 {
                        out.copy_from_slice(row);
                    } else {
                        for (d, &v) in out.iter_mut().zip(row[x0..].iter().step_by(g.stride)) {
                            *d = v;
                        }
                    }
                }
            }
        }
        xpad
    }

    /// The padded image already held by the scratch (see [`Wide::padded`]).
    #[inline(always)]
    fn padded_view<'a, T: Elem>(&self, x: &'a [T], xpad: &'a [T]) -> &'a [T] {
        if self.unpadded() { x } else { xpad }
    }

    /// The slice of channel `ci`'s phase planes read by kernel tap `(ky, kx)` on the wide
    /// grid.
    #[inline(always)]
    fn tap<'a, T>(&self, xp: &'a [T], ci: usize, ky: usize, kx: usize) -> &'a [T] {
        let start = ci * self.chan_len() + self.tap_start(ky, kx);
        &xp[start..start + self.lw]
    }

    /// Unfolds the padded image `xp` into the wide column matrix `col` `[k, lw]`.
    #[inline(always)]
    fn im2col<T: Elem>(&self, xp: &[T], col: &mut [T]) {
        let g = &self.g;
        let mut rows = col.chunks_exact_mut(self.lw);
        for ci in 0..g.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    if let Some(row) = rows.next() {
                        row.copy_from_slice(self.tap(xp, ci, ky, kx));
                    }
                }
            }
        }
    }

    /// Copies the wide result `yw` `[o, lw]` into `y` `[o, ho, wo]`, adding the bias and
    /// applying the ReLU on the way.
    #[inline(always)]
    fn compact<T: Elem>(&self, yw: &[T], y: &mut [T], bias: Option<&[T]>, relu: bool) {
        let g = &self.g;
        for (oc, (src, dst)) in yw
            .chunks_exact(self.lw)
            .zip(y.chunks_exact_mut(g.l()))
            .enumerate()
        {
            let b = bias.map_or(T::ZERO, |b| b[oc]);
            for (oy, out) in dst.chunks_exact_mut(g.wo).enumerate() {
                let row = &src[oy * self.wp..oy * self.wp + g.wo];
                if relu {
                    for (d, &s) in out.iter_mut().zip(row) {
                        let v = s + b;
                        *d = if v > T::ZERO { v } else { T::ZERO };
                    }
                } else {
                    for (d, &s) in out.iter_mut().zip(row) {
                        *d = s + b;
                    }
                }
            }
        }
    }

    /// Spreads the output gradient `gy` `[o, ho, wo]` onto the wide grid `yw`, masked by
    /// `res > 0` when a ReLU is fused (`res` being the op's output), with zeros in the extra
    /// columns (so the same scratch serves a forward pass and then a backward pass, as in
    /// `crate::conv_chain`).
    #[inline(always)]
    fn widen<T: Elem>(&self, gy: &[T], res: Option<&[T]>, yw: &mut [T]) {
        let g = &self.g;
        for (oc, dst) in yw.chunks_exact_mut(self.lw).enumerate() {
            let plane = oc * g.l()..(oc + 1) * g.l();
            let src = &gy[plane.clone()];
            for oy in 0..g.ho {
                if oy + 1 < g.ho {
                    dst[oy * self.wp + g.wo..(oy + 1) * self.wp].fill(T::ZERO);
                }
                let out = &mut dst[oy * self.wp..oy * self.wp + g.wo];
                let row = &src[oy * g.wo..(oy + 1) * g.wo];
                match res {
                    None => out.copy_from_slice(row),
                    Some(res) => {
                        let r = &res[plane.start + oy * g.wo..plane.start + (oy + 1) * g.wo];
                        for ((d, &s), &r) in out.iter_mut().zip(row).zip(r) {
                            *d = if r > T::ZERO { s } else { T::ZERO };
                        }
                    }
                }
            }
        }
    }

    /// Copies the interior of one channel's padded phase planes into the image channel
    /// `[h, w]` (the inverse of [`Wide::padded`]), adding `bias` and applying the ReLU on the
    /// way.
    #[inline(always)]
    fn crop<T: Elem>(&self, planes: &[T], dst: &mut [T], bias: T, relu: bool) {
        let g = &self.g;
        let f = |v: T| {
            let v = v + bias;
            if relu {
                if v > T::ZERO { v } else { T::ZERO }
            } else {
                v
            }
        };
        for (y, row) in dst.chunks_exact_mut(g.w).enumerate() {
            if g.stride == 2 && g.w >= 2 {
                // Both phases of the row in one pass.
                let ((s0, n0), (s1, n1)) = (self.phase_row(y, 0), self.phase_row(y, 1));
                let (even, odd) = (&planes[s0..s0 + n0], &planes[s1..s1 + n1]);
                let mut pairs = row.chunks_exact_mut(2);
                for ((p, &e), &o) in (&mut pairs).zip(even).zip(odd) {
                    p[0] = f(e);
                    p[1] = f(o);
                }
                if let (Some(v), Some(&last)) = (pairs.into_remainder().first_mut(), even.last()) {
                    *v = f(last);
                }
                continue;
            }
            for x0 in 0..g.stride.min(g.w) {
                let (start, len) = self.phase_row(y, x0);
                let src = &planes[start..start + len];
                if g.stride == 1 {
                    for (d, &v) in row.iter_mut().zip(src) {
                        *d = f(v);
                    }
                } else {
                    for (d, &v) in row[x0..].iter_mut().step_by(g.stride).zip(src) {
                        *d = f(v);
                    }
                }
            }
        }
    }

    /// Convolution forward of one image ([`Layout::fwd`]). With `reuse_cols`, the scratch
    /// already holds the padded image and the columns of this `x` (from a weight-gradient
    /// [`Layout::bwd`] pass on it). Run compiled for AVX2 when the CPU has it (the
    /// element-wise loops vectorise wider; the same operations in the same order, so the same
    /// results).
    #[inline(always)]
    fn fwd_body<T: Elem>(&self, s: &mut Scratch<T>, io: FwdIo<'_, T>, par: Parallelism) {
        let FwdIo {
            weight,
            x,
            y,
            bias,
            relu,
            reuse_cols,
        } = io;
        let g = &self.g;
        let k = g.k();
        let Scratch { xpad, col, yw, .. } = s;
        let xp = if reuse_cols {
            self.padded_view(x, xpad)
        } else {
            self.padded(x, xpad)
        };
        if self.direct() {
            self.direct_fwd(xp, weight, col, yw, par);
        } else {
            if !reuse_cols {
                self.im2col(xp, col);
            }
            matmul(
                yw,
                MatView::row_major(g.o, self.lw),
                false,
                weight,
                MatView::row_major(g.o, k),
                col,
                MatView::row_major(k, self.lw),
                par,
            );
        }
        self.compact(yw, y, bias, relu);
    }

    /// Convolution backward of one image ([`Layout::bwd`]), the output gradient masked while
    /// it is spread onto the wide grid. Run compiled for AVX2 when the CPU has it, like
    /// [`Wide::fwd_body`].
    #[inline(always)]
    fn bwd_body<T: Elem>(&self, s: &mut Scratch<T>, io: BwdIo<'_, T>, par: Parallelism) {
        let BwdIo {
            weight,
            x,
            gy,
            res,
            gx,
            gw,
            gb,
            bias,
            relu,
            reuse_cols,
        } = io;
        let g = &self.g;
        let k = g.k();
        let lw = self.lw;
        let Scratch {
            xpad,
            col,
            yw,
            plane,
            gwt: s_gwt,
        } = s;
        self.widen(gy, res, yw);
        if let Some(gb) = gb {
            add_channel_sums(gb, yw, lw);
        }
        if self.direct() {
            let xp = match (&gw, reuse_cols) {
                (None, _) => &[][..],
                (Some(_), true) => self.padded_view(x, xpad),
                (Some(_), false) => self.padded(x, xpad),
            };
            let with_gx = gx.is_some();
            self.direct_bwd(
                xp,
                yw,
                weight,
                gw,
                with_gx.then_some(&mut plane[..]),
                col,
                par,
            );
            if let Some(gx) = gx {
                let cl = self.chan_len();
                for (ci, (gx_c, p)) in gx
                    .chunks_exact_mut(g.h * g.w)
                    .zip(plane.chunks_exact(cl))
                    .enumerate()
                {
                    self.crop(p, gx_c, bias.map_or(T::ZERO, |b| b[ci]), relu);
                }
            }
            return;
        }
        // gwᵀ [k, o] += col [k, lw] @ ywᵀ [lw, o], into the scratch (`Wide::flush` adds it
        // to the caller's gradient): with a column-major destination, gemm reads the column
        // matrix where it is instead of packing all of it for every image.
        if gw.is_some() {
            if !reuse_cols {
                let xp = self.padded(x, xpad);
                self.im2col(xp, col);
            }
            let gwt = MatView {
                rows: g.o,
                cols: k,
                rs: 1,
                cs: g.o,
            };
            matmul(
                &mut s_gwt[..],
                gwt,
                true,
                yw,
                MatView::row_major(g.o, lw),
                col,
                MatView::row_major(k, lw).t(),
                par,
            );
        }
        let Some(gx) = gx else { return };
        matmul(
            col,
            MatView::row_major(k, lw),
            false,
            weight,
            MatView::row_major(g.o, k).t(),
            yw,
            MatView::row_major(g.o, lw),
            par,
        );
        let taps = g.kh * g.kw;
        for (ci, gx_c) in gx.chunks_exact_mut(g.h * g.w).enumerate() {
            plane.fill(T::ZERO);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let start = self.tap_start(ky, kx);
                    let r = ci * taps + ky * g.kw + kx;
                    add(&mut plane[start..start + lw], &col[r * lw..(r + 1) * lw]);
                }
            }
            let b = bias.map_or(T::ZERO, |b| b[ci]);
            self.crop(plane, gx_c, b, relu);
        }
    }
}

impl Layout for Wide {
    type Scratch<T: Elem> = Scratch<T>;

    fn scratch<T: Elem>(&self) -> Scratch<T> {
        self.new_scratch()
    }

    fn fwd<T: Elem>(&self, s: &mut Scratch<T>, io: FwdIo<'_, T>, par: Parallelism) {
        fwd_dispatch(self, s, io, par)
    }

    fn bwd<T: Elem>(&self, s: &mut Scratch<T>, io: BwdIo<'_, T>, par: Parallelism) {
        bwd_dispatch(self, s, io, par)
    }

    /// Adds the transposed weight gradient `[k, o]` of the scratch to `gw` `[o, k]`.
    fn flush<T: Elem>(&self, s: &mut Scratch<T>, gw: &mut [T]) {
        let o = self.g.o;
        if s.gwt.is_empty() || o == 0 {
            return;
        }
        for (j, row) in s.gwt.chunks_exact_mut(o).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                gw[i * self.g.k() + j] += *v;
                *v = T::ZERO;
            }
        }
    }
}

avx2_dispatch! {
    /// [`Wide::fwd_body`] with the widest vectors the CPU has.
    fn fwd_dispatch<T: Elem>(wd: &Wide, s: &mut Scratch<T>, io: FwdIo<'_, T>, par: Parallelism) = Wide::fwd_body;
}

avx2_dispatch! {
    /// [`Wide::bwd_body`] with the widest vectors the CPU has.
    fn bwd_dispatch<T: Elem>(wd: &Wide, s: &mut Scratch<T>, io: BwdIo<'_, T>, par: Parallelism) = Wide::bwd_body;
}
