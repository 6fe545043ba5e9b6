//! The per-image interface of a data layout ([`Layout`]), which the convolution drivers are
//! written against once: the plain im2col layout ([`super::im2col::Im2col`]) and the
//! padded-width one ([`super::wide::Wide`]) implement it.

use gemm::Parallelism;

use crate::elem::Elem;

/// One image's passes of a convolution geometry on one data layout.
pub(crate) trait Layout: Copy + Send + Sync {
    /// Per-task scratch buffers.
    type Scratch<T: Elem>;

    /// Fresh scratch buffers for one task.
    fn scratch<T: Elem>(&self) -> Self::Scratch<T>;

    /// Convolution forward of one image: `y` `[o, ho, wo]` from `x` `[c, h, w]`, plus bias
    /// and ReLU. With `reuse_cols`, the scratch already holds what a weight-gradient
    /// [`Layout::bwd`] pass on this `x` unfolded.
    fn fwd<T: Elem>(&self, s: &mut Self::Scratch<T>, io: FwdIo<'_, T>, par: Parallelism);

    /// Convolution backward of one image, from `x` `[c, h, w]` and the output gradient `gy`
    /// `[o, ho, wo]` (masked by `res > 0` when a ReLU is fused): writes the image gradient
    /// into `gx` and adds the weight and bias gradients to `gw` and `gb`, each when given.
    /// The image result is offset by `bias` and passed through a ReLU when `relu` (for a
    /// transposed convolution's forward pass, which is this data pass).
    fn bwd<T: Elem>(&self, s: &mut Self::Scratch<T>, io: BwdIo<'_, T>, par: Parallelism);

    /// Adds to `gw` the weight gradient that [`Layout::bwd`] calls since the last flush left
    /// in the scratch, and clears it there. A layout may accumulate the weight gradient in its
    /// own order (the wide layout keeps it transposed, so that its GEMM reads the column
    /// matrix in place): every driver flushes each task's scratch into the task's `gw` after
    /// its last image.
    fn flush<T: Elem>(&self, s: &mut Self::Scratch<T>, gw: &mut [T]);
}

/// One image's buffers for [`Layout::fwd`].
pub(crate) struct FwdIo<'a, T> {
    /// The weight `[o, c, kh, kw]`.
    pub weight: &'a [T],
    /// The image `[c, h, w]`.
    pub x: &'a [T],
    /// The output `[o, ho, wo]`, overwritten.
    pub y: &'a mut [T],
    /// Added per output channel.
    pub bias: Option<&'a [T]>,
    /// A ReLU after the bias.
    pub relu: bool,
    /// The scratch already holds the padded image and the columns of this `x`.
    pub reuse_cols: bool,
}

/// One image's buffers for [`Layout::bwd`]; each gradient is computed when its buffer is given.
pub(crate) struct BwdIo<'a, T> {
    /// The weight `[o, c, kh, kw]`.
    pub weight: &'a [T],
    /// The image `[c, h, w]` (read only for the weight gradient).
    pub x: &'a [T],
    /// The output gradient `[o, ho, wo]`.
    pub gy: &'a [T],
    /// The op's output, whose zeros mask `gy` when a ReLU is fused.
    pub res: Option<&'a [T]>,
    /// The image gradient, overwritten (zeroed by the caller).
    pub gx: Option<&'a mut [T]>,
    /// The weight gradient, added to (possibly only at the next [`Layout::flush`]).
    pub gw: Option<&'a mut [T]>,
    /// The bias gradient, added to.
    pub gb: Option<&'a mut [T]>,
    /// Added per image channel to the image result (a transposed convolution's forward pass).
    pub bias: Option<&'a [T]>,
    /// A ReLU on the image result, after the bias.
    pub relu: bool,
    /// The scratch already holds the padded image and the columns of this `x` (a forward
    /// pass on it was the scratch's last use): the weight gradient skips the unfolding.
    pub reuse_cols: bool,
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

/// Adds the bias (per channel of `[chs, plane]` data) and applies the fused ReLU, in place.
pub(super) fn finish<T: Elem>(out: &mut [T], bias: Option<&[T]>, plane: usize, relu: bool) {
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
pub(crate) fn masked<'a, T: Elem>(grad: &'a [T], res: Option<&[T]>, buf: &'a mut [T]) -> &'a [T] {
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
