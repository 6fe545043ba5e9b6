//! Geometry of one convolution ([`Geom`]) and the plain unfolding passes [`im2col`] /
//! [`col2im`] on contiguous `[c, h, w]` images.

use crate::elem::Elem;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
