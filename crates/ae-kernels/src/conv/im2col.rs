//! The plain im2col layout ([`Im2col`]): per image, forward `W @ im2col(x)`, data
//! `col2im(W^T @ g)` and filter `g @ im2col(x)^T`, on one column buffer per task.

use gemm::Parallelism;

use super::geom::{Geom, col2im, im2col};
use super::layout::{BwdIo, FwdIo, Layout, finish, masked};
use crate::elem::{Elem, add_channel_sums};
use crate::matmul::{MatView, matmul};

/// The plain im2col layout of one geometry: the reference the wide layout is tested against,
/// and the layout of the geometries it does not pay for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Im2col(pub Geom);

/// Per-task scratch buffers of the plain layout.
pub(crate) struct Scratch<T> {
    /// One column matrix `[k, l]` (empty when the geometry is direct).
    col: Vec<T>,
    /// The masked output gradient `[o, l]` of a fused ReLU (sized on first use).
    mask: Vec<T>,
}

impl Layout for Im2col {
    type Scratch<T: Elem> = Scratch<T>;

    fn scratch<T: Elem>(&self) -> Scratch<T> {
        Scratch {
            col: vec![T::ZERO; self.0.col_len()],
            mask: Vec::new(),
        }
    }

    fn fwd<T: Elem>(&self, s: &mut Scratch<T>, io: FwdIo<'_, T>, par: Parallelism) {
        let g = &self.0;
        let FwdIo {
            weight,
            x,
            y,
            bias,
            relu,
            reuse_cols,
        } = io;
        let (k, l) = (g.k(), g.l());
        let cols = match (reuse_cols, g.direct()) {
            (_, true) => x,
            (true, false) => &s.col[..],
            (false, false) => g.cols(x, &mut s.col),
        };
        matmul(
            y,
            MatView::row_major(g.o, l),
            false,
            weight,
            MatView::row_major(g.o, k),
            cols,
            MatView::row_major(k, l),
            par,
        );
        finish(y, bias, l, relu);
    }

    fn bwd<T: Elem>(&self, s: &mut Scratch<T>, io: BwdIo<'_, T>, par: Parallelism) {
        let g = &self.0;
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
        let Scratch { col, mask } = s;
        if res.is_some() {
            mask.resize(g.out_len(), T::ZERO);
        }
        let gy = masked(gy, res, mask);
        if let Some(gw) = gw {
            g.filter_pass(x, gy, gw, col, reuse_cols, par);
        }
        if let Some(gb) = gb {
            add_channel_sums(gb, gy, g.l());
        }
        if let Some(gx) = gx {
            g.data_pass(weight, gy, gx, col, par);
            finish(gx, bias, g.h * g.w, relu);
        }
    }

    /// Nothing to flush: [`Layout::bwd`] adds to `gw` directly.
    fn flush<T: Elem>(&self, _s: &mut Scratch<T>, _gw: &mut [T]) {}
}

impl Geom {
    /// Whether the column matrix is the image itself (1x1 kernel, stride 1, no padding).
    fn direct(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// Scratch elements for one column matrix.
    fn col_len(&self) -> usize {
        if self.direct() {
            0
        } else {
            self.k() * self.l()
        }
    }

    /// The column matrix of `img`, unfolded into `col` unless the geometry is direct.
    fn cols<'a, T: Elem>(&self, img: &'a [T], col: &'a mut [T]) -> &'a [T] {
        if self.direct() {
            img
        } else {
            im2col(self, img, col);
            col
        }
    }

    /// `img = col2im(W^T @ gy)`: the image-space result of `gy` `[o, l]` (`img` zeroed).
    fn data_pass<T: Elem>(
        &self,
        weight: &[T],
        gy: &[T],
        img: &mut [T],
        col: &mut [T],
        par: Parallelism,
    ) {
        let (k, l) = (self.k(), self.l());
        let wt = MatView::row_major(self.o, k).t();
        let gv = MatView::row_major(self.o, l);
        if self.direct() {
            matmul(
                img,
                MatView::row_major(k, l),
                false,
                weight,
                wt,
                gy,
                gv,
                par,
            );
        } else {
            matmul(
                col,
                MatView::row_major(k, l),
                false,
                weight,
                wt,
                gy,
                gv,
                par,
            );
            col2im(self, col, img);
        }
    }

    /// `gw += gy @ im2col(x)^T` for one image.
    #[allow(clippy::too_many_arguments)]
    fn filter_pass<T: Elem>(
        &self,
        x: &[T],
        gy: &[T],
        gw: &mut [T],
        col: &mut [T],
        reuse_cols: bool,
        par: Parallelism,
    ) {
        let (k, l) = (self.k(), self.l());
        let cols = match (reuse_cols, self.direct()) {
            (_, true) => x,
            (true, false) => &col[..],
            (false, false) => self.cols(x, col),
        };
        let (gv, cv) = (MatView::row_major(self.o, l), MatView::row_major(k, l).t());
        matmul(
            gw,
            MatView::row_major(self.o, k),
            true,
            gy,
            gv,
            cols,
            cv,
            par,
        );
    }
}
