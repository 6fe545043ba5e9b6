//! Plain-slice CPU kernels: im2col / col2im and the three convolution GEMM passes.
//!
//! Everything here works on contiguous NCHW buffers. A convolution is described by a
//! [`Geom`]: an *image* of `c` channels and `h x w` pixels is convolved by a kernel of
//! `o` filters of shape `c x kh x kw` into an *output* of `o` channels and `ho x wo`
//! pixels. Per image there are three passes: forward `W @ im2col(x)`, data
//! `col2im(W^T @ g)` and filter `g @ im2col(x)^T`. They are combined into
//!
//! * [`conv_fwd`]: a convolution's forward pass (image, weight -> output),
//! * [`conv_data`]: a transposed convolution's forward pass (output, weight -> image),
//! * [`conv_bwd`] / [`conv_t_bwd`]: their fused backward passes, producing every needed
//!   gradient (input, weight, bias) in one pass over the images.
//!
//! Work is split over the images of the batch with rayon; each task keeps its own
//! column buffer, small enough to stay in cache, and calls a single-threaded GEMM.
//!
//! Geometries whose column matrix is at least as large as their output (all of the conv
//! autoencoder's but the 1→32 input convolution) run on the padded-width layout of
//! [`crate::wide`], where im2col and col2im are a few long slice copies; the plain [`im2col`]
//! / [`col2im`] passes remain for the others (and the 1x1 stride-1 unpadded case, whose column
//! matrix is the image itself, and empty images) and are the reference the wide path is
//! tested against.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::wide::{BwdIo, FwdIo, Wide};

/// Element types the kernels support (the ones `gemm` has fast paths for).
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + std::ops::Mul<Output = Self>
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// Floating-point element types, for the element-wise kernels (loss, optimizer).
pub(crate) trait Real:
    Elem
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    fn of_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
    fn sqrt(self) -> Self;
    /// `(e^{-|x|}, ln(1 + e^{-|x|}))`, the two transcendental parts of the stable BCE and
    /// sigmoid. `f32` uses branch-free polynomial forms that the compiler vectorises
    /// (relative error below 1e-6); `f64` uses the standard library.
    fn exp_neg_abs_log1p(self) -> (Self, Self);
    /// `e^{-|x|}` alone (the same `f32` polynomial as [`Real::exp_neg_abs_log1p`]).
    fn exp_neg_abs(self) -> Self;
    /// `σ(x) = 1 / (1 + e^{-x})` from one `e^{-|x|}`, exact at both tails (no overflow).
    #[inline(always)]
    fn sigmoid(self) -> Self {
        let e = self.exp_neg_abs();
        let num = if self >= Self::ZERO { Self::ONE } else { e };
        num / (Self::ONE + e)
    }
}

/// `e^x` for `x <= 0` in `f32`, without branches: `2^n · p(r)` with `r = x - n·ln 2`,
/// `|r| <= ln 2 / 2`, `p` the degree-7 Taylor polynomial (truncation error < 1e-8 relative).
/// Inputs below -87 give 0 (flushing what would be denormals).
#[inline(always)]
pub(crate) fn exp_nonpos_f32(x0: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x0.max(-87.0);
    // Round to nearest with the 1.5·2^23 trick (exact for |v| < 2^22): `t`'s bits are
    // those of 1.5·2^23 plus the integer `n`, so `n` is also read back without a
    // float-to-int conversion (which does not vectorise well).
    let t = x * LOG2E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((k + 127) as u32) << 23);
    if x0 < -87.0 { 0.0 } else { p * scale }
}

/// `ln(1 + t)` for `t` in `[0, 1]` in `f32`, without branches: `2·atanh(s)` with
/// `s = t / (2 + t) <= 1/3`, the odd series to `s^15` (truncation error < 1e-8 relative).
#[inline(always)]
pub(crate) fn log1p_unit_f32(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * series
}

impl Real for f32 {
    #[inline]
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn exp_neg_abs_log1p(self) -> (Self, Self) {
        let e = exp_nonpos_f32(-self.abs());
        (e, log1p_unit_f32(e))
    }
    #[inline(always)]
    fn exp_neg_abs(self) -> Self {
        exp_nonpos_f32(-self.abs())
    }
}

macro_rules! impl_exp_log1p_std {
    ($t:ty) => {
        impl Real for $t {
            #[inline]
            fn of_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn exp_neg_abs_log1p(self) -> (Self, Self) {
                let e = <$t>::exp(-self.abs());
                (e, e.ln_1p())
            }
            #[inline]
            fn exp_neg_abs(self) -> Self {
                <$t>::exp(-self.abs())
            }
        }
    };
}
impl_exp_log1p_std!(f64);

/// Shape of one convolution, see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    /// Image channels (the convolution's input channels).
    pub c: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Output channels (number of filters).
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Zero padding on every side of the image.
    pub pad: usize,
    /// Stride of the convolution.
    pub stride: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

impl Geom {
    /// Geometry of a convolution of an `h x w` image; `None` when the kernel does not fit the
    /// padded image or the stride is zero.
    pub fn conv(
        c: usize,
        (h, w): (usize, usize),
        o: usize,
        (kh, kw): (usize, usize),
        pad: usize,
        stride: usize,
    ) -> Option<Self> {
        if stride == 0 || h + 2 * pad < kh || w + 2 * pad < kw {
            return None;
        }
        Some(Self {
            c,
            h,
            w,
            o,
            kh,
            kw,
            pad,
            stride,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo: (w + 2 * pad - kw) / stride + 1,
        })
    }

    /// Rows of the column matrix: `c * kh * kw`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the column matrix: `ho * wo`.
    pub fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// Elements of one image.
    pub fn img_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output.
    pub fn out_len(&self) -> usize {
        self.o * self.l()
    }

    /// Elements of the weight.
    pub fn weight_len(&self) -> usize {
        self.o * self.k()
    }
}

/// Output positions `[lo, hi)` along one axis whose input coordinate
/// `pos * stride + k_off - pad` lies inside `[0, n_in)`.
fn axis_range(
    n_out: usize,
    n_in: usize,
    k_off: usize,
    pad: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = if k_off >= pad {
        0
    } else {
        (pad - k_off).div_ceil(stride)
    };
    let hi = if n_in + pad <= k_off {
        0
    } else {
        ((n_in - 1 + pad - k_off) / stride + 1).min(n_out)
    };
    (lo.min(hi), hi)
}

/// Unfolds one image `[c, h, w]` into `col`, a row-major `[c*kh*kw, ho*wo]` matrix.
pub(crate) fn im2col<T: Elem>(g: &Geom, img: &[T], col: &mut [T]) {
    let l = g.l();
    let plane_len = g.h * g.w;
    for ci in 0..g.c {
        let plane = &img[ci * plane_len..(ci + 1) * plane_len];
        for ky in 0..g.kh {
            let (oy_lo, oy_hi) = axis_range(g.ho, g.h, ky, g.pad, g.stride);
            for kx in 0..g.kw {
                let (ox_lo, ox_hi) = axis_range(g.wo, g.w, kx, g.pad, g.stride);
                let r = (ci * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * l..(r + 1) * l];
                row[..oy_lo * g.wo].fill(T::ZERO);
                row[oy_hi * g.wo..].fill(T::ZERO);
                for oy in oy_lo..oy_hi {
                    let iy = oy * g.stride + ky - g.pad;
                    let src = &plane[iy * g.w..(iy + 1) * g.w];
                    let dst = &mut row[oy * g.wo..(oy + 1) * g.wo];
                    dst[..ox_lo].fill(T::ZERO);
                    dst[ox_hi..].fill(T::ZERO);
                    if ox_lo < ox_hi {
                        let ix0 = ox_lo * g.stride + kx - g.pad;
                        let dst = &mut dst[ox_lo..ox_hi];
                        if g.stride == 1 {
                            dst.copy_from_slice(&src[ix0..ix0 + dst.len()]);
                        } else {
                            for (j, d) in dst.iter_mut().enumerate() {
                                *d = src[ix0 + j * g.stride];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Folds a `[c*kh*kw, ho*wo]` column matrix back into an image `[c, h, w]`, summing the
/// overlapping contributions (the adjoint of [`im2col`]). `img` must be zeroed by the caller.
pub(crate) fn col2im<T: Elem>(g: &Geom, col: &[T], img: &mut [T]) {
    let l = g.l();
    let plane_len = g.h * g.w;
    for ci in 0..g.c {
        let plane = &mut img[ci * plane_len..(ci + 1) * plane_len];
        for ky in 0..g.kh {
            let (oy_lo, oy_hi) = axis_range(g.ho, g.h, ky, g.pad, g.stride);
            for kx in 0..g.kw {
                let (ox_lo, ox_hi) = axis_range(g.wo, g.w, kx, g.pad, g.stride);
                if ox_lo >= ox_hi {
                    continue;
                }
                let r = (ci * g.kh + ky) * g.kw + kx;
                let row = &col[r * l..(r + 1) * l];
                for oy in oy_lo..oy_hi {
                    let iy = oy * g.stride + ky - g.pad;
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let src = &row[oy * g.wo + ox_lo..oy * g.wo + ox_hi];
                    let ix0 = ox_lo * g.stride + kx - g.pad;
                    if g.stride == 1 {
                        for (d, s) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (j, s) in src.iter().enumerate() {
                            dst[ix0 + j * g.stride] += *s;
                        }
                    }
                }
            }
        }
    }
}

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

/// How a batch is spread over threads.
struct Plan {
    /// Images handled by one task.
    per_task: usize,
    /// Parallelism handed to each GEMM.
    par: Parallelism,
}

fn plan(n: usize) -> Plan {
    let threads = rayon::current_num_threads().max(1);
    if n >= threads && threads > 1 {
        // A few tasks per thread for load balancing; each GEMM single-threaded.
        Plan {
            per_task: n.div_ceil(threads * 4).max(1),
            par: Parallelism::None,
        }
    } else {
        // Too few images: run them one after the other with a multi-threaded GEMM.
        Plan {
            per_task: n.max(1),
            par: if threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            },
        }
    }
}

/// Runs `f(images, out_chunk, acc, par)` over tasks of consecutive images, in parallel.
///
/// When `out` is non-empty it holds `out_len` elements per image and each task gets the chunk
/// of its images; otherwise every task gets an empty slice. Each task also gets its own zeroed
/// accumulator of `acc_len` elements; their sum is returned (in task order, deterministic for
/// a given thread count).
fn run_tasks<T: Elem, F>(n: usize, out: &mut [T], out_len: usize, acc_len: usize, f: F) -> Vec<T>
where
    F: Fn(std::ops::Range<usize>, &mut [T], &mut [T], Parallelism) + Sync,
{
    if n == 0 {
        return vec![T::ZERO; acc_len];
    }
    let p = plan(n);
    let tasks = n.div_ceil(p.per_task);
    let chunks: Vec<&mut [T]> = if out.is_empty() || out_len == 0 {
        (0..tasks).map(|_| <&mut [T]>::default()).collect()
    } else {
        out.chunks_mut(out_len * p.per_task).collect()
    };
    let accs: Vec<Vec<T>> = chunks
        .into_par_iter()
        .enumerate()
        .map(|(t, chunk)| {
            let mut acc = vec![T::ZERO; acc_len];
            let start = t * p.per_task;
            f(start..(start + p.per_task).min(n), chunk, &mut acc, p.par);
            acc
        })
        .collect();
    let mut iter = accs.into_iter();
    let mut total = iter.next().unwrap_or_else(|| vec![T::ZERO; acc_len]);
    for part in iter {
        for (a, b) in total.iter_mut().zip(part) {
            *a += b;
        }
    }
    total
}

/// The `i`-th `len`-sized block of `data`.
fn block<T>(data: &[T], i: usize, len: usize) -> &[T] {
    &data[i * len..(i + 1) * len]
}

/// Adds `bias[ch]` to every element of channel `ch` of `[chs, plane]` data.
fn add_bias<T: Elem>(data: &mut [T], bias: &[T], plane: usize) {
    if plane == 0 {
        return;
    }
    for (row, &b) in data.chunks_mut(plane).zip(bias) {
        for v in row {
            *v += b;
        }
    }
}

/// Adds the per-channel sums of `[chs, plane]` data to `acc[..chs]`.
#[inline]
pub(crate) fn add_channel_sums<T: Elem>(acc: &mut [T], data: &[T], plane: usize) {
    if plane == 0 {
        return;
    }
    for (a, row) in acc.iter_mut().zip(data.chunks(plane)) {
        *a += sum(row);
    }
}

/// The sum of `data`, over 16 independent partial sums so that it vectorises.
#[inline(always)]
pub(crate) fn sum<T: Elem>(data: &[T]) -> T {
    const LANES: usize = 16;
    let mut part = [T::ZERO; LANES];
    let chunks = data.chunks_exact(LANES);
    let mut s = T::ZERO;
    for &v in chunks.remainder() {
        s += v;
    }
    for c in chunks {
        for (p, &v) in part.iter_mut().zip(c) {
            *p += v;
        }
    }
    for p in part {
        s += p;
    }
    s
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

    /// `y = W @ im2col(x)` for one image (`y` zeroed).
    fn fwd_pass<T: Elem>(
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
    fn filter_pass<T: Elem>(
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

/// Adds the bias (per channel of `[chs, plane]` data) and applies the fused ReLU, in place.
fn finish<T: Elem>(out: &mut [T], bias: Option<&[T]>, plane: usize, relu: bool) {
    if let Some(b) = bias {
        add_bias(out, b, plane);
    }
    if relu {
        for v in out {
            *v = if *v > T::ZERO { *v } else { T::ZERO };
        }
    }
}

/// The gradient reaching the convolution itself: `grad` when no ReLU is fused, else
/// `grad * (res > 0)` (written to `buf`), `res` being the fused op's output.
fn masked<'a, T: Elem>(grad: &'a [T], res: Option<&[T]>, buf: &'a mut [T]) -> &'a [T] {
    match res {
        None => grad,
        Some(res) => {
            for ((d, &g), &r) in buf.iter_mut().zip(grad).zip(res) {
                *d = if r > T::ZERO { g } else { T::ZERO };
            }
            buf
        }
    }
}

/// Convolution forward: `x` `[n, c, h, w]`, `weight` `[o, c, kh, kw]`, optional `bias` `[o]`
/// -> `[n, o, ho, wo]`, followed by a ReLU when `relu`.
pub(crate) fn conv_fwd<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    conv_fwd_via(g, n, x, weight, bias, relu, Wide::new(g).filter(Wide::pays))
}

/// [`conv_fwd`] on the wide layout `wide` when given, else on plain im2col.
fn conv_fwd_via<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
    wide: Option<Wide>,
) -> Vec<T> {
    let mut y = vec![T::ZERO; n * g.out_len()];
    if let Some(wd) = wide {
        run_tasks(n, &mut y, g.out_len(), 0, |imgs, y_chunk, _, par| {
            let mut s = wd.scratch();
            for (i, y_i) in imgs.zip(y_chunk.chunks_mut(g.out_len())) {
                let io = FwdIo {
                    weight,
                    x: block(x, i, g.img_len()),
                    y: y_i,
                    bias,
                    relu,
                    reuse_cols: false,
                };
                wd.fwd(&mut s, io, par);
            }
        });
        return y;
    }
    run_tasks(n, &mut y, g.out_len(), 0, |imgs, y_chunk, _, par| {
        let mut col = vec![T::ZERO; g.col_len()];
        for (i, y_i) in imgs.zip(y_chunk.chunks_mut(g.out_len())) {
            g.fwd_pass(weight, block(x, i, g.img_len()), y_i, &mut col, par);
            finish(y_i, bias, g.l(), relu);
        }
    });
    y
}

/// Transposed-convolution forward (a convolution's input gradient): `y` `[n, o, ho, wo]`,
/// `weight` `[o, c, kh, kw]`, optional `bias` `[c]` -> `[n, c, h, w]`, followed by a ReLU when
/// `relu`.
pub(crate) fn conv_data<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    conv_data_via(g, n, y, weight, bias, relu, Wide::new(g).filter(Wide::pays))
}

/// [`conv_data`] on the wide layout `wide` when given, else on plain col2im.
fn conv_data_via<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
    wide: Option<Wide>,
) -> Vec<T> {
    let mut x = vec![T::ZERO; n * g.img_len()];
    if let Some(wd) = wide {
        run_tasks(n, &mut x, g.img_len(), 0, |imgs, x_chunk, _, par| {
            let mut s = wd.scratch();
            for (i, x_i) in imgs.zip(x_chunk.chunks_mut(g.img_len())) {
                let y_i = block(y, i, g.out_len());
                let io = BwdIo {
                    weight,
                    x: &[],
                    gy: y_i,
                    res: None,
                    gx: Some(&mut *x_i),
                    gw: None,
                    gb: None,
                    bias,
                    relu,
                };
                wd.bwd(&mut s, io, par);
            }
        });
        return x;
    }
    run_tasks(n, &mut x, g.img_len(), 0, |imgs, x_chunk, _, par| {
        let mut col = vec![T::ZERO; g.col_len()];
        for (i, x_i) in imgs.zip(x_chunk.chunks_mut(g.img_len())) {
            g.data_pass(weight, block(y, i, g.out_len()), x_i, &mut col, par);
            finish(x_i, bias, g.h * g.w, relu);
        }
    });
    x
}

/// Which gradients a backward pass must produce.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Need {
    /// Gradient of the op's first input.
    pub input: bool,
    /// Gradient of the weight.
    pub weight: bool,
    /// Gradient of the bias.
    pub bias: bool,
}

/// Gradients of a convolution or transposed convolution.
pub(crate) struct Grads<T> {
    /// Gradient of the op's first input (the image for a convolution, the output-space
    /// tensor for a transposed convolution).
    pub input: Option<Vec<T>>,
    /// Gradient of the weight `[o, c, kh, kw]`.
    pub weight: Option<Vec<T>>,
    /// Gradient of the bias.
    pub bias: Option<Vec<T>>,
}

/// Splits a task accumulator `[gw (o*k) | gb]` into the requested gradients.
fn split_acc<T: Elem>(acc: Vec<T>, wlen: usize, need: Need) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let mut acc = acc;
    let gb = need.bias.then(|| acc.split_off(wlen));
    let gw = need.weight.then_some(acc);
    (gw, gb)
}

/// Convolution backward, one pass over the images: from `x` `[n, c, h, w]`, `weight` and the
/// output gradient `gy` `[n, o, ho, wo]`: the image gradient `col2im(W^T @ gy_i)`, the weight
/// gradient `sum_i gy_i @ im2col(x_i)^T` and the bias gradient (channel sums of `gy`).
/// With a fused ReLU, `res` is the op's output and `gy` is first masked by `res > 0`.
pub(crate) fn conv_bwd<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    gy: &[T],
    res: Option<&[T]>,
    need: Need,
) -> Grads<T> {
    conv_bwd_via(
        g,
        n,
        x,
        weight,
        gy,
        res,
        need,
        Wide::new(g).filter(Wide::pays),
    )
}

/// [`conv_bwd`] on the wide layout `wide` when given, else on plain im2col.
#[allow(clippy::too_many_arguments)]
fn conv_bwd_via<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    gy: &[T],
    res: Option<&[T]>,
    need: Need,
    wide: Option<Wide>,
) -> Grads<T> {
    let wlen = g.weight_len();
    let mut gx = vec![T::ZERO; if need.input { n * g.img_len() } else { 0 }];
    let acc_len = if need.bias { wlen + g.o } else { wlen };
    if let Some(wd) = wide {
        let acc = run_tasks(
            n,
            &mut gx,
            g.img_len(),
            acc_len,
            |imgs, gx_chunk, acc, par| {
                let mut s = wd.scratch();
                let mut gx_iter = gx_chunk.chunks_mut(g.img_len());
                let (gw, gb) = acc.split_at_mut(wlen);
                for i in imgs {
                    let io = BwdIo {
                        weight,
                        x: block(x, i, g.img_len()),
                        gy: block(gy, i, g.out_len()),
                        res: res.map(|r| block(r, i, g.out_len())),
                        gx: gx_iter.next(),
                        gw: need.weight.then_some(&mut *gw),
                        gb: need.bias.then_some(&mut *gb),
                        bias: None,
                        relu: false,
                    };
                    wd.bwd(&mut s, io, par);
                }
            },
        );
        let (gw, gb) = split_acc(acc, wlen, need);
        return Grads {
            input: need.input.then_some(gx),
            weight: gw,
            bias: gb,
        };
    }
    let acc = run_tasks(
        n,
        &mut gx,
        g.img_len(),
        acc_len,
        |imgs, gx_chunk, acc, par| {
            let mut col = vec![T::ZERO; g.col_len()];
            let mut buf = vec![T::ZERO; if res.is_some() { g.out_len() } else { 0 }];
            let mut gx_iter = gx_chunk.chunks_mut(g.img_len());
            let (gw, gb) = acc.split_at_mut(wlen);
            for i in imgs {
                let res_i = res.map(|r| block(r, i, g.out_len()));
                let gy_i = masked(block(gy, i, g.out_len()), res_i, &mut buf);
                if need.weight {
                    g.filter_pass(block(x, i, g.img_len()), gy_i, gw, &mut col, par);
                }
                if need.bias {
                    add_channel_sums(gb, gy_i, g.l());
                }
                if let Some(gx_i) = gx_iter.next() {
                    g.data_pass(weight, gy_i, gx_i, &mut col, par);
                }
            }
        },
    );
    let (gw, gb) = split_acc(acc, wlen, need);
    Grads {
        input: need.input.then_some(gx),
        weight: gw,
        bias: gb,
    }
}

/// Transposed-convolution backward, one pass over the images: from its input `y`
/// `[n, o, ho, wo]`, `weight` `[o, c, kh, kw]` and the gradient `gx` `[n, c, h, w]` of its
/// output: the input gradient `W @ im2col(gx_i)`, the weight gradient
/// `sum_i y_i @ im2col(gx_i)^T` (both from one unfolding of `gx_i`) and the bias gradient
/// (channel sums of `gx`). With a fused ReLU, `res` is the op's output and `gx` is first
/// masked by `res > 0`.
pub(crate) fn conv_t_bwd<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    gx: &[T],
    res: Option<&[T]>,
    need: Need,
) -> Grads<T> {
    conv_t_bwd_via(
        g,
        n,
        y,
        weight,
        gx,
        res,
        need,
        Wide::new(g).filter(Wide::pays),
    )
}

/// [`conv_t_bwd`] on the wide layout `wide` when given, else on plain im2col.
#[allow(clippy::too_many_arguments)]
fn conv_t_bwd_via<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    gx: &[T],
    res: Option<&[T]>,
    need: Need,
    wide: Option<Wide>,
) -> Grads<T> {
    let (k, l) = (g.k(), g.l());
    let wlen = g.weight_len();
    let mut gy = vec![T::ZERO; if need.input { n * g.out_len() } else { 0 }];
    let acc_len = if need.bias { wlen + g.c } else { wlen };
    if let Some(wd) = wide {
        let acc = run_tasks(
            n,
            &mut gy,
            g.out_len(),
            acc_len,
            |imgs, gy_chunk, acc, par| {
                let mut s = wd.scratch();
                let mut buf = vec![T::ZERO; if res.is_some() { g.img_len() } else { 0 }];
                let mut gy_iter = gy_chunk.chunks_mut(g.out_len());
                let (gw, gb) = acc.split_at_mut(wlen);
                for i in imgs {
                    let res_i = res.map(|r| block(r, i, g.img_len()));
                    let gx_i = masked(block(gx, i, g.img_len()), res_i, &mut buf);
                    if need.bias {
                        add_channel_sums(gb, gx_i, g.h * g.w);
                    }
                    let y_i = block(y, i, g.out_len());
                    if need.weight {
                        let io = BwdIo {
                            weight,
                            x: gx_i,
                            gy: y_i,
                            res: None,
                            gx: None,
                            gw: Some(&mut *gw),
                            gb: None,
                            bias: None,
                            relu: false,
                        };
                        wd.bwd(&mut s, io, par);
                    }
                    if let Some(gy_i) = gy_iter.next() {
                        let io = FwdIo {
                            weight,
                            x: gx_i,
                            y: gy_i,
                            bias: None,
                            relu: false,
                            reuse_cols: need.weight,
                        };
                        wd.fwd(&mut s, io, par);
                    }
                }
            },
        );
        let (gw, gb) = split_acc(acc, wlen, need);
        return Grads {
            input: need.input.then_some(gy),
            weight: gw,
            bias: gb,
        };
    }
    let acc = run_tasks(
        n,
        &mut gy,
        g.out_len(),
        acc_len,
        |imgs, gy_chunk, acc, par| {
            let mut col = vec![T::ZERO; g.col_len()];
            let mut buf = vec![T::ZERO; if res.is_some() { g.img_len() } else { 0 }];
            let mut gy_iter = gy_chunk.chunks_mut(g.out_len());
            let (gw, gb) = acc.split_at_mut(wlen);
            for i in imgs {
                let res_i = res.map(|r| block(r, i, g.img_len()));
                let gx_i = masked(block(gx, i, g.img_len()), res_i, &mut buf);
                let y_i = block(y, i, g.out_len());
                if need.bias {
                    add_channel_sums(gb, gx_i, g.h * g.w);
                }
                if !(need.weight || need.input) {
                    continue;
                }
                let cols = g.cols(gx_i, &mut col);
                let cv = MatView::row_major(k, l);
                if need.weight {
                    let yv = MatView::row_major(g.o, l);
                    matmul(
                        gw,
                        MatView::row_major(g.o, k),
                        true,
                        y_i,
                        yv,
                        cols,
                        cv.t(),
                        par,
                    );
                }
                if let Some(gy_i) = gy_iter.next() {
                    let wv = MatView::row_major(g.o, k);
                    matmul(
                        gy_i,
                        MatView::row_major(g.o, l),
                        false,
                        weight,
                        wv,
                        cols,
                        cv,
                        par,
                    );
                }
            }
        },
    );
    let (gw, gb) = split_acc(acc, wlen, need);
    Grads {
        input: need.input.then_some(gy),
        weight: gw,
        bias: gb,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Direct (quadruple loop) convolution used to check the GEMM path.
    fn naive(g: &Geom, n: usize, x: &[f64], w: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; n * g.out_len()];
        for i in 0..n {
            for oc in 0..g.o {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = 0.0;
                        for ci in 0..g.c {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((i * g.c + ci) * g.h + iy as usize) * g.w + ix as usize];
                                    let wv = w[((oc * g.c + ci) * g.kh + ky) * g.kw + kx];
                                    acc += xv * wv;
                                }
                            }
                        }
                        y[((i * g.o + oc) * g.ho + oy) * g.wo + ox] = acc;
                    }
                }
            }
        }
        y
    }

    /// A deterministic pseudo-random sequence in [-0.5, 0.5) (an LCG), for kernel tests.
    pub(crate) fn seq(len: usize, seed: u64) -> Vec<f64> {
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

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn fast_f32_exp_and_log1p_are_accurate() {
        let mut worst = (0f64, 0f64);
        for i in 0..=200_000 {
            let x = -(i as f32) * 1e-3; // 0 .. -200
            let e = exp_nonpos_f32(x) as f64;
            let want = (x as f64).exp();
            let rel = ((e - want) / want).abs();
            if x >= -87.0 {
                worst.0 = worst.0.max(rel);
            } else {
                assert_eq!(e, 0.0, "{x}");
            }
            let t = (i as f32) / 200_000.0; // 0 .. 1
            let l = log1p_unit_f32(t) as f64;
            let want = (t as f64).ln_1p();
            if t > 0.0 {
                worst.1 = worst.1.max(((l - want) / want).abs());
            } else {
                assert_eq!(l, 0.0);
            }
        }
        assert!(worst.0 < 1e-6 && worst.1 < 1e-6, "{worst:?}");
    }

    #[test]
    fn axis_range_matches_brute_force() {
        for n_out in 0..6 {
            for n_in in 1..6 {
                for k_off in 0..5 {
                    for pad in 0..3 {
                        for stride in 1..4 {
                            let valid: Vec<usize> = (0..n_out)
                                .filter(|&o| {
                                    let p = (o * stride + k_off) as isize - pad as isize;
                                    p >= 0 && p < n_in as isize
                                })
                                .collect();
                            let (lo, hi) = axis_range(n_out, n_in, k_off, pad, stride);
                            let got: Vec<usize> = (lo..hi).collect();
                            assert_eq!(got, valid, "{n_out} {n_in} {k_off} {pad} {stride}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_paths_match_naive_and_are_adjoint() {
        let shapes = [
            (2, 3, (5, 7), 4, (3, 2), 1, 2),
            (3, 2, (6, 6), 3, (1, 1), 0, 1),
            (1, 1, (4, 3), 2, (3, 3), 2, 3),
            (5, 2, (8, 8), 2, (2, 2), 0, 2),
            (2, 3, (7, 6), 1, (3, 3), 1, 2),
            (3, 2, (6, 6), 1, (3, 2), 1, 1),
        ];
        for (seed, &(n, c, hw, o, k, pad, stride)) in shapes.iter().enumerate() {
            let Some(g) = Geom::conv(c, hw, o, k, pad, stride) else {
                panic!("bad test shape");
            };
            let x = seq(n * g.img_len(), seed as u64);
            let w = seq(g.weight_len(), seed as u64 + 100);
            let gy = seq(n * g.out_len(), seed as u64 + 200);
            let y = conv_fwd(&g, n, &x, &w, None, false);
            let want = naive(&g, n, &x, &w);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-10, "{a} vs {b}");
            }
            // <conv(x), gy> == <x, conv_data(gy)> == <w, gw>
            let lhs = dot(&y, &gy);
            let all = Need {
                input: true,
                weight: true,
                bias: true,
            };
            let gx = conv_data(&g, n, &gy, &w, None, false);
            let Grads {
                input: Some(gx2),
                weight: Some(gw),
                bias: Some(gb),
            } = conv_bwd(&g, n, &x, &w, &gy, None, all)
            else {
                panic!("missing gradients")
            };
            assert!((lhs - dot(&x, &gx)).abs() < 1e-9);
            assert_eq!(gx, gx2);
            assert!((lhs - dot(&w, &gw)).abs() < 1e-9);
            let sums: Vec<f64> = (0..g.o)
                .map(|oc| {
                    (0..n)
                        .map(|i| block(&gy, i * g.o + oc, g.l()).iter().sum::<f64>())
                        .sum()
                })
                .collect();
            for (a, b) in gb.iter().zip(&sums) {
                assert!((a - b).abs() < 1e-9);
            }
            // Transposed convolution: conv_data is the op, conv_t_bwd its backward.
            let Grads {
                input: Some(gy2),
                weight: Some(gw2),
                bias: Some(_),
            } = conv_t_bwd(&g, n, &gy, &w, &x, None, all)
            else {
                panic!("missing gradients")
            };
            // <conv_data(gy), x> == <gy, conv_fwd(x)> == <w, gw2>
            assert!((dot(&gx, &x) - dot(&gy, &gy2)).abs() < 1e-9);
            assert!((dot(&gx, &x) - dot(&w, &gw2)).abs() < 1e-9);
        }
    }

    fn close(a: &[f64], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() < 1e-10 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The wide (padded-width) path against plain im2col: forward with and without bias and
    /// ReLU, and every subset of backward gradients with and without a fused-ReLU mask.
    fn check_wide(n: usize, g: &Geom, seed: u64) {
        let Some(wd) = Wide::new(g) else {
            panic!("wide path does not apply to {g:?}")
        };
        let x = seq(n * g.img_len(), seed);
        let w = seq(g.weight_len(), seed + 1);
        let b = seq(g.o, seed + 2);
        let gy = seq(n * g.out_len(), seed + 3);
        for (bias, relu) in [(None, false), (Some(&b[..]), true), (Some(&b[..]), false)] {
            let want = conv_fwd_via(g, n, &x, &w, bias, relu, None);
            let got = conv_fwd_via(g, n, &x, &w, bias, relu, Some(wd));
            close(&got, &want, "forward");
        }
        let bc = seq(g.c, seed + 4);
        for (bias, relu) in [(None, false), (Some(&bc[..]), true), (Some(&bc[..]), false)] {
            let want = conv_data_via(g, n, &gy, &w, bias, relu, None);
            let got = conv_data_via(g, n, &gy, &w, bias, relu, Some(wd));
            close(&got, &want, "transposed forward");
        }
        let res = conv_fwd_via(g, n, &x, &w, Some(&b), true, None);
        let res_t = conv_data_via(g, n, &gy, &w, Some(&bc), true, None);
        for (mask, mask_t) in [(None, None), (Some(&res[..]), Some(&res_t[..]))] {
            for bits in 1..8u8 {
                let need = Need {
                    input: bits & 1 != 0,
                    weight: bits & 2 != 0,
                    bias: bits & 4 != 0,
                };
                let want = conv_bwd_via(g, n, &x, &w, &gy, mask, need, None);
                let got = conv_bwd_via(g, n, &x, &w, &gy, mask, need, Some(wd));
                let want_t = conv_t_bwd_via(g, n, &gy, &w, &x, mask_t, need, None);
                let got_t = conv_t_bwd_via(g, n, &gy, &w, &x, mask_t, need, Some(wd));
                for (what, a, b) in [
                    ("transposed input", &got_t.input, &want_t.input),
                    ("transposed weight", &got_t.weight, &want_t.weight),
                    ("transposed bias", &got_t.bias, &want_t.bias),
                    ("input", &got.input, &want.input),
                    ("weight", &got.weight, &want.weight),
                    ("bias", &got.bias, &want.bias),
                ] {
                    match (a, b) {
                        (Some(a), Some(b)) => close(a, b, what),
                        (None, None) => {}
                        _ => panic!("{what}: presence differs"),
                    }
                }
            }
        }
    }

    #[test]
    fn wide_path_covers_the_mnist_shapes() {
        // The convolutions, then the transposed ones (as the convolutions they are adjoint to).
        for (c, hw, o, stride) in [
            (1, 28, 32, 1),
            (32, 14, 32, 1),
            (32, 28, 1, 1),
            (3, 5, 2, 1),
            (32, 14, 32, 2),
            (32, 28, 32, 2),
        ] {
            let Some(g) = Geom::conv(c, (hw, hw), o, (3, 3), 1, stride) else {
                panic!("bad test shape")
            };
            check_wide(3, &g, c as u64 * 7 + o as u64);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        #[test]
        fn wide_path_matches_im2col(
            n in 1usize..=3,
            c in 1usize..=5,
            o in 1usize..=7,
            h in 1usize..=9,
            w in 1usize..=9,
            kh in 1usize..=4,
            kw in 1usize..=4,
            pad in 0usize..=2,
            stride in 1usize..=3,
            seed in 0u64..1000,
        ) {
            if let Some(g) = Geom::conv(c, (h, w), o, (kh, kw), pad, stride)
                && Wide::new(&g).is_some() {
                    check_wide(n, &g, seed);
                }
        }
    }

    #[test]
    fn bias_and_channel_sum() {
        let g = Geom::conv(1, (2, 2), 2, (1, 1), 0, 1);
        let Some(g) = g else { panic!("bad test shape") };
        let x = vec![1.0f32; 2 * 4];
        let w = vec![0.0f32, 0.0];
        let y = conv_fwd(&g, 2, &x, &w, Some(&[1.0, 2.0]), false);
        assert_eq!(
            y,
            vec![
                1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0
            ]
        );
        let mut acc = vec![0.0f32; 2];
        for i in 0..2 {
            add_channel_sums(&mut acc, block(&y, i, 8), 4);
        }
        assert_eq!(acc, vec![8.0, 16.0]);
    }
}
