//! The plain im2col layout's per-image passes: forward `W @ im2col(x)`, data
//! `col2im(W^T @ g)` and filter `g @ im2col(x)^T`, on a column buffer per task.

use gemm::Parallelism;

use super::geom::{Geom, col2im, im2col};
use crate::elem::Elem;
use crate::matmul::{MatView, matmul};

impl Geom {
    /// Whether the column matrix is the image itself (1x1 kernel, stride 1, no padding).
    pub(super) fn direct(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// Scratch elements for one column matrix.
    pub(super) fn col_len(&self) -> usize {
        if self.direct() {
            0
        } else {
            self.k() * self.l()
        }
    }

    /// The column matrix of `img`, unfolded into `col` unless the geometry is direct.
    pub(super) fn cols<'a, T: Elem>(&self, img: &'a [T], col: &'a mut [T]) -> &'a [T] {
        if self.direct() {
            img
        } else {
            im2col(self, img, col);
            col
        }
    }

    /// `y = W @ im2col(x)` for one image (`y` zeroed).
    pub(super) fn fwd_pass<T: Elem>(
        &self,
        weight: &[T],
        x: &[T],
        y: &mut [T],
        col: &mut [T],
        par: Parallelism,
    ) {
        let (k, l) = (self.k(), self.l());
        let cols = self.cols(x, col);
        let (wv, cv) = (MatView::row_major(self.o, k), MatView::row_major(k, l));
        matmul(
            y,
            MatView::row_major(self.o, l),
            false,
            weight,
            wv,
            cols,
            cv,
            par,
        );
    }

    /// `img = col2im(W^T @ gy)`: the image-space result of `gy` `[o, l]` (`img` zeroed).
    pub(super) fn data_pass<T: Elem>(
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
    pub(super) fn filter_pass<T: Elem>(
        &self,
        x: &[T],
        gy: &[T],
        gw: &mut [T],
        col: &mut [T],
        par: Parallelism,
    ) {
        let (k, l) = (self.k(), self.l());
        let cols = self.cols(x, col);
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
