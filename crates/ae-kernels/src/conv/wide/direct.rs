//! The wide layout's passes for geometries with very few output channels (`o <=`
//! [`DIRECT_MAX_O`], e.g. a 32→1 output convolution), where the usual GEMMs (`o` rows)
//! are a poor fit and the column matrix (`c·kh·kw` rows) would be many times the image.
//!
//! Per output channel `oc`, the kernel taps take the place of the GEMM's small dimension:
//!
//! * forward: `Z = Wᵀ_oc @ X`, `[taps, plane]` from the weight `[c, taps]` and the padded
//!   image `X` `[c, plane]` (one GEMM over the channels, read in place), then the output is
//!   the sum over the taps of `Z`'s row `t` shifted by the tap's start: `taps` slice adds;
//! * backward: `S` `[taps, plane]` holds the output gradient shifted to each tap's start
//!   (zeros elsewhere); then the weight gradient is `X @ Sᵀ` and the image gradient, in
//!   padded-plane coordinates, `W_oc @ S`, two GEMMs.
//!
//! The same sums as the per-tap sweeps they replace, added in another order.

use gemm::Parallelism;

use super::Wide;
use crate::elem::Elem;
use crate::matmul::{MatView, matmul};

/// Output channels up to which these passes replace the GEMMs of the column matrix.
pub(super) const DIRECT_MAX_O: usize = 4;

impl Wide {
    /// Scratch elements of the direct passes' `Z` / `S` matrix: `[taps, plane]`.
    pub(super) fn direct_taps_len(&self) -> usize {
        self.g.kh * self.g.kw * self.chan_len()
    }

    /// Forward pass: `yw[oc]` `[lw]` on the wide grid, from the padded image `xp`
    /// `[c, plane]`; `z` is scratch of [`Wide::direct_taps_len`].
    #[inline(always)]
    pub(super) fn direct_fwd<T: Elem>(
        &self,
        xp: &[T],
        weight: &[T],
        z: &mut [T],
        yw: &mut [T],
        par: Parallelism,
    ) {
        let (g, lw, cl) = (&self.g, self.lw, self.chan_len());
        let taps = g.kh * g.kw;
        for (acc, w) in yw.chunks_exact_mut(lw).zip(weight.chunks_exact(g.k())) {
            matmul(
                z,
                MatView::row_major(taps, cl),
                false,
                w,
                MatView::row_major(g.c, taps).t(),
                xp,
                MatView::row_major(g.c, cl),
                par,
            );
            for (t, row) in z.chunks_exact(cl).enumerate() {
                let start = self.tap_start(t / g.kw, t % g.kw);
                let src = &row[start..start + lw];
                if t == 0 {
                    acc.copy_from_slice(src);
                } else {
                    for (d, &v) in acc.iter_mut().zip(src) {
                        *d += v;
                    }
                }
            }
        }
    }

    /// Backward pass from the zero-extended output gradient `yw` `[o, lw]`: adds the weight
    /// gradient to `gw` when given (with the padded image `xp`), and writes the image
    /// gradient in padded-plane coordinates `[c, plane]` to `planes` when given; `s` is
    /// scratch of [`Wide::direct_taps_len`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn direct_bwd<T: Elem>(
        &self,
        xp: &[T],
        yw: &[T],
        weight: &[T],
        mut gw: Option<&mut [T]>,
        mut planes: Option<&mut [T]>,
        s: &mut [T],
        par: Parallelism,
    ) {
        let (g, lw, cl, k) = (&self.g, self.lw, self.chan_len(), self.g.k());
        let taps = g.kh * g.kw;
        for (oc, (gy, w)) in yw.chunks_exact(lw).zip(weight.chunks_exact(k)).enumerate() {
            for (t, row) in s.chunks_exact_mut(cl).enumerate() {
                let start = self.tap_start(t / g.kw, t % g.kw);
                row[..start].fill(T::ZERO);
                row[start..start + lw].copy_from_slice(gy);
                row[start + lw..].fill(T::ZERO);
            }
            if let Some(gw) = gw.as_deref_mut() {
                matmul(
                    &mut gw[oc * k..(oc + 1) * k],
                    MatView::row_major(g.c, taps),
                    true,
                    xp,
                    MatView::row_major(g.c, cl),
                    s,
                    MatView::row_major(taps, cl).t(),
                    par,
                );
            }
            if let Some(planes) = planes.as_deref_mut() {
                matmul(
                    planes,
                    MatView::row_major(g.c, cl),
                    oc > 0,
                    w,
                    MatView::row_major(g.c, taps),
                    s,
                    MatView::row_major(taps, cl),
                    par,
                );
            }
        }
    }
}
