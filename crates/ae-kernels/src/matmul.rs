//! The one GEMM wrapper: [`matmul`] over strided row-major views ([`MatView`]), calling the
//! `gemm` crate.

use gemm::Parallelism;

use crate::elem::Elem;

/// A strided row-major view used to describe GEMM operands.
#[derive(Clone, Copy)]
pub(crate) struct MatView {
    pub rows: usize,
    pub cols: usize,
    /// Distance between two rows.
    pub rs: usize,
    /// Distance between two columns.
    pub cs: usize,
}

impl MatView {
    pub(crate) fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element lies inside a buffer of `len` elements.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < len
    }
}

/// `dst = lhs @ rhs` (or `dst += lhs @ rhs` when `accumulate`), all described by views.
///
/// # Panics
/// When a view does not fit its buffer or the shapes disagree (internal invariant).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Elem>(
    dst: &mut [T],
    dv: MatView,
    accumulate: bool,
    lhs: &[T],
    lv: MatView,
    rhs: &[T],
    rv: MatView,
    par: Parallelism,
) {
    assert!(dv.rows == lv.rows && dv.cols == rv.cols && lv.cols == rv.rows);
    assert!(dv.fits(dst.len()) && lv.fits(lhs.len()) && rv.fits(rhs.len()));
    if dv.rows == 0 || dv.cols == 0 {
        return;
    }
    if lv.cols == 0 {
        if !accumulate {
            dst.fill(T::ZERO);
        }
        return;
    }
    // SAFETY: the asserts above check that every element addressed through the views lies
    // inside the corresponding slices; `dst` is borrowed mutably so it does not alias.
    unsafe {
        gemm::gemm(
            dv.rows,
            dv.cols,
            lv.cols,
            dst.as_mut_ptr(),
            dv.cs as isize,
            dv.rs as isize,
            accumulate,
            lhs.as_ptr(),
            lv.cs as isize,
            lv.rs as isize,
            rhs.as_ptr(),
            rv.cs as isize,
            rv.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}
