//! Fast differentiable CPU convolutions for candle: im2col + GEMM kernels wrapped as candle
//! custom ops, with fused backward passes built from the same kernels.
//!
//! candle 0.11's CPU `conv_transpose2d` is a direct loop, and `conv2d`'s backward pass uses it
//! (plus a large-kernel `conv2d` for the weight gradient), which makes training convolutional
//! models on CPU an order of magnitude slower than it needs to be. This crate provides:
//!
//! * [`conv2d`] / [`conv_transpose2d`]: functional ops (bias fused) computing the same numbers
//!   as `Tensor::conv2d` / `Tensor::conv_transpose2d` + bias, with one GEMM per image and pass;
//! * [`nn`]: layers [`nn::Conv2d`] / [`nn::ConvTranspose2d`] and constructors [`nn::conv2d`],
//!   [`nn::conv_transpose2d`] (and `_no_bias`) mirroring `candle_nn`'s, with the same parameter
//!   names, shapes and initialisation: replacing `candle_nn::conv2d` by
//!   `ae_kernels::nn::conv2d` is enough to switch a model over;
//! * [`conv2d_relu`] / [`conv_transpose2d_relu`]: the same followed by a fused ReLU (no
//!   separate activation tensor or ReLU backward pass);
//! * [`sigmoid`]: a vectorised, parallel logistic sigmoid (candle's is scalar `expf` on one
//!   thread);
//! * [`relu`] / [`max_pool2d`]: single-pass replacements for `Tensor::relu` /
//!   `Tensor::max_pool2d`, whose candle backward passes allocate several full-size temporaries
//!   (and, for max-pool, scale the gradient by `1 / k²`: see [`max_pool2d`]);
//! * [`linear`] / [`linear_relu`] / [`linear_sigmoid`] and the layer [`nn::Linear`]: a fully
//!   connected layer with the bias (and ReLU or sigmoid) fused into one GEMM, and a one-pass
//!   backward;
//! * [`bce_with_logits_sum`]: the stable binary cross-entropy from logits, summed, as one op;
//! * [`adam_update`]: a fused, in-place Adam step of one parameter ([`adam_update_slice`]
//!   with a gradient held as plain values);
//! * [`chain`]: the forward and backward passes of a chain of fully connected layers over
//!   plain slices, outside candle's graph (what `ae-train`'s fused training step is built
//!   from), and [`bce_with_logits_slice`], the same BCE over plain slices;
//! * [`tune_candle_threads`]: a start-up setting that stops candle's own CPU worker threads
//!   from busy-waiting on the cores the GEMMs need;
//! * [`tune_glibc_malloc`]: an opt-in, process-wide allocator setting that removes the
//!   page-fault cost of candle's large per-op allocations (often the largest remaining cost
//!   once the convolutions are fast; see `docs/performance.md`).
//!
//! On CUDA / Metal devices, on the CPU with the [`portable`](mod@portable) path forced (`AE_PORTABLE=1`,
//! [`set_portable`]), for dtypes other than `f32`/`f64`, and for configurations the kernels do
//! not cover (dilation, groups, `output_padding >= stride`), everything falls back to candle's
//! own ops. Forward values always match candle's within floating-point tolerance, and so do the
//! convolution gradients; the `relu` / `max_pool2d` gradients follow PyTorch where candle
//! differs (see their docs), on every device: their fallbacks are built from stock ops with
//! the kernels' gradients. Gradients are first order (the backward passes are not themselves
//! differentiable).
#![warn(missing_docs)]

mod adam;
pub mod chain;
mod conv;
pub mod conv_chain;
mod dense;
mod elem;
mod fill;
mod loss;
mod malloc;
mod matmul;
pub mod nn;
mod ops;
mod par_gemm;
mod plan;
mod pool;
pub mod portable;
mod simd;
mod stock;
pub mod test_utils;
mod threads;
pub mod tuning;
mod unary;

use candle_core::{DType, Result, Tensor, bail};

pub use adam::{
    AdamMoments, AdamParam, AdamSliceParam, AdamStep, adam_update, adam_update_all,
    adam_update_slice, adam_update_slices,
};
pub use malloc::tune_glibc_malloc;
pub use nn::{Conv2d, ConvTranspose2d, Linear};
pub use portable::{Backend, PORTABLE_VAR, cpu_kernels, portable, set_portable, with_portable};
pub use threads::{CANDLE_SPIN_LIMIT, CANDLE_SPIN_LIMIT_VAR, tune_candle_threads};

use conv::Geom;
use dense::{DenseAct, DenseGeom, DenseKernel};
use loss::BceOp;
use ops::{ConvKernel, DataKernel};
use pool::{MaxPoolOp, PoolGeom};
use unary::{Relu, Sigmoid, Unary};

/// Whether the fast CPU kernels can handle these tensors (CPU device with the portable path
/// off, `f32`/`f64`, one dtype, no empty dimension).
fn fast_path(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> bool {
    let dtype_ok = matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && b.is_none_or(|b| b.dtype() == x.dtype());
    cpu_kernels(x.device()) && dtype_ok && x.elem_count() > 0 && w.elem_count() > 0
}

/// Whether the element-wise CPU kernels can handle `x` (CPU device with the portable path
/// off, `f32`/`f64`).
fn fast_unary(x: &Tensor) -> bool {
    cpu_kernels(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Adds a per-channel bias `[c]` to a `[n, c, h, w]` tensor.
fn add_bias(y: Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    match b {
        None => Ok(y),
        Some(b) => {
            let c = b.dims1()?;
            y.broadcast_add(&b.reshape((1, c, 1, 1))?)
        }
    }
}

fn check_bias(b: Option<&Tensor>, channels: usize, op: &str) -> Result<()> {
    if let Some(b) = b {
        let len = b.dims1()?;
        if len != channels {
            bail!("{op}: bias has {len} elements, expected {channels}")
        }
    }
    Ok(())
}

/// 2D convolution `y = conv(x, w) + b`, differentiable w.r.t. `x`, `w` and `b`.
///
/// * `x`: `[N, C, H, W]`, `w`: `[O, C, KH, KW]` (candle / PyTorch layout), `b`: `[O]`.
/// * Output: `[N, O, (H + 2*padding - KH) / stride + 1, (W + 2*padding - KW) / stride + 1]`.
///
/// Same result as `x.conv2d(w, padding, stride, 1, 1)` followed by a broadcast bias add. On
/// non-CPU devices or dtypes other than `f32`/`f64` it is exactly that.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    conv2d_impl(x, w, b, padding, stride, false)
}

/// `relu(conv2d(x, w, b, padding, stride))` as one op: the ReLU is applied in place while the
/// output is in cache, and the backward pass masks the gradient per image instead of running
/// candle's ReLU backward over full-size temporaries. Same values and gradients as
/// [`conv2d`] followed by [`relu`].
pub fn conv2d_relu(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    conv2d_impl(x, w, b, padding, stride, true)
}

fn conv2d_impl(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    stride: usize,
    relu: bool,
) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (o, c_k, kh, kw) = w.dims4()?;
    if c != c_k {
        bail!("conv2d: input has {c} channels but the kernel expects {c_k}")
    }
    check_bias(b, o, "conv2d")?;
    let Some(g) = Geom::conv(c, (h, wd), o, (kh, kw), padding, stride) else {
        bail!(
            "conv2d: kernel {kh}x{kw} does not fit input {h}x{wd} with padding {padding}, \
             or stride {stride} is zero"
        )
    };
    if !fast_path(x, w, b) {
        let y = add_bias(x.conv2d(w, padding, stride, 1, 1)?, b)?;
        return if relu { stock::relu(&y) } else { Ok(y) };
    }
    ops::apply(ConvKernel { g, n, relu }, x, w, b)
}

/// 2D transposed convolution `y = conv_transpose(x, w) + b`, differentiable w.r.t. `x`, `w`
/// and `b`.
///
/// * `x`: `[N, C_in, H, W]`, `w`: `[C_in, C_out, KH, KW]` (candle / PyTorch layout),
///   `b`: `[C_out]`.
/// * Output: `[N, C_out, (H - 1)*stride - 2*padding + KH + output_padding, ...]`.
///
/// Same result as `x.conv_transpose2d(w, padding, output_padding, stride, 1)` followed by a
/// broadcast bias add. `output_padding >= stride` (which PyTorch rejects) is delegated to
/// candle's op, as are non-CPU devices and dtypes other than `f32`/`f64`.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    output_padding: usize,
    stride: usize,
) -> Result<Tensor> {
    conv_transpose2d_impl(x, w, b, padding, output_padding, stride, false)
}

/// `relu(conv_transpose2d(x, w, b, padding, output_padding, stride))` as one op (see
/// [`conv2d_relu`]). Same values and gradients as [`conv_transpose2d`] followed by [`relu`].
pub fn conv_transpose2d_relu(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    output_padding: usize,
    stride: usize,
) -> Result<Tensor> {
    conv_transpose2d_impl(x, w, b, padding, output_padding, stride, true)
}

fn conv_transpose2d_impl(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    output_padding: usize,
    stride: usize,
    relu: bool,
) -> Result<Tensor> {
    let (n, c_in, h, wd) = x.dims4()?;
    let (c_in_k, c_out, kh, kw) = w.dims4()?;
    if c_in != c_in_k {
        bail!("conv_transpose2d: input has {c_in} channels but the kernel expects {c_in_k}")
    }
    check_bias(b, c_out, "conv_transpose2d")?;
    if stride == 0 {
        bail!("conv_transpose2d: stride must be positive")
    }
    let out_size = |i: usize, k: usize| {
        let full = i.saturating_sub(1) * stride + k + output_padding;
        if i == 0 || full < 2 * padding {
            None
        } else {
            Some(full - 2 * padding)
        }
    };
    let (Some(ho), Some(wo)) = (out_size(h, kh), out_size(wd, kw)) else {
        bail!(
            "conv_transpose2d: padding {padding} too large for input {h}x{wd}, \
             kernel {kh}x{kw}, stride {stride}"
        )
    };
    // The transposed convolution is the adjoint of a convolution of a `ho x wo` image with
    // `c_out` channels into `h x w` outputs with `c_in` channels.
    let g = Geom::conv(c_out, (ho, wo), c_in, (kh, kw), padding, stride)
        .filter(|g| g.ho == h && g.wo == wd);
    let g = match g {
        Some(g) if fast_path(x, w, b) && output_padding < stride => g,
        _ => {
            let y = x.conv_transpose2d(w, padding, output_padding, stride, 1)?;
            let y = add_bias(y, b)?;
            return if relu { stock::relu(&y) } else { Ok(y) };
        }
    };
    ops::apply(DataKernel { g, n, relu }, x, w, b)
}

/// `max(x, 0)`, differentiable; the gradient is `grad * (x > 0)` (PyTorch's convention;
/// candle's `Tensor::relu` passes the gradient where `x >= 0`, which differs only at exactly
/// zero). Non-CPU devices, the portable path and dtypes other than `f32`/`f64` compute
/// `where(x > 0, x, 0)` from stock ops, with the same gradient.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !fast_unary(x) {
        return stock::relu(x);
    }
    x.contiguous()?.apply_op1(Unary(Relu))
}

/// `σ(x) = 1 / (1 + e^{-x})`, differentiable (the gradient is `grad · σ · (1 - σ)`), as one
/// vectorised parallel pass: the same values as `candle_nn::ops::sigmoid` within 2e-6
/// relative (values below `e^-87` flush to 0). Non-CPU devices, the portable path and
/// dtypes other than `f32`/`f64` use `candle_nn::ops::sigmoid`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if !fast_unary(x) {
        return candle_nn::ops::sigmoid(x);
    }
    x.contiguous()?.apply_op1(Unary(Sigmoid))
}

/// `kernel x kernel` max pooling with stride `kernel` and no padding over `[N, C, H, W]`
/// (output `[N, C, H / kernel, W / kernel]`), the same forward values as
/// `x.max_pool2d(kernel)`.
///
/// The gradient goes entirely to the first maximal element of each window, as in PyTorch.
/// **This differs from candle 0.11**, whose `max_pool2d` backward multiplies the gradient by
/// `(number of maxima in the window) / kernel²` (e.g. a quarter of the true gradient for
/// 2x2 pooling without ties). Non-CPU devices, the portable path and dtypes other than
/// `f32`/`f64` build the same values and the same gradient from stock candle ops (the
/// windows gathered on a last axis, the first maximum selected with `where_cond`).
pub fn max_pool2d(x: &Tensor, kernel: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if kernel == 0 || kernel > h || kernel > w {
        bail!("max_pool2d: kernel {kernel} does not fit input {h}x{w}")
    }
    if !fast_unary(x) {
        return stock::max_pool2d(x, kernel);
    }
    let op = MaxPoolOp {
        g: PoolGeom {
            planes: n * c,
            h,
            w,
            k: kernel,
        },
        dims: [n, c, h, w],
    };
    x.contiguous()?.apply_op1(op)
}

/// Fully connected layer `y = x Wᵀ + b`, differentiable w.r.t. `x`, `w` and `b`.
///
/// * `x`: `[N, IN]`, `w`: `[OUT, IN]` (candle / PyTorch layout), `b`: `[OUT]`.
/// * Output: `[N, OUT]`.
///
/// Same result as `x.matmul(&w.t())` plus a broadcast bias add (what `candle_nn::Linear`
/// computes for a 2-D input), as one GEMM; the backward pass computes only the gradients of
/// tracked tensors. Non-CPU devices, dtypes other than `f32`/`f64` and inputs of another rank
/// use those candle ops.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_impl(x, w, b, DenseAct::Identity)
}

/// `relu(linear(x, w, b))` as one op: the ReLU is applied while the output rows are in
/// cache, and the backward pass masks the gradient with the op's own output. Same values
/// and gradients as [`linear`] followed by [`relu`].
pub fn linear_relu(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_impl(x, w, b, DenseAct::Relu)
}

/// `sigmoid(linear(x, w, b))` as one op: the sigmoid is applied while the output rows are in
/// cache (a separate pass over a decoder's output reads and writes it all again: a tenth of a
/// dense reconstruction's time), and the backward pass scales the gradient by `σ (1 - σ)`
/// from the op's own output. Same values and gradients as [`linear`] followed by
/// [`sigmoid`].
pub fn linear_sigmoid(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_impl(x, w, b, DenseAct::Sigmoid)
}

fn linear_impl(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: DenseAct) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    check_bias(b, out, "linear")?;
    let fast = x.rank() == 2 && fast_path(x, w, b);
    if !fast {
        let y = candle_core::Module::forward(&candle_nn::Linear::new(w.clone(), b.cloned()), x)?;
        return match act {
            DenseAct::Identity => Ok(y),
            DenseAct::Relu => stock::relu(&y),
            DenseAct::Sigmoid => sigmoid(&y),
        };
    }
    let (n, x_in) = x.dims2()?;
    if x_in != inp {
        bail!("linear: input has {x_in} features but the weight [{out}, {inp}] expects {inp}")
    }
    let g = DenseGeom { n, inp, out };
    ops::apply(DenseKernel { g, act }, x, w, b)
}

/// `scale · Σ bce(σ(logits), target)` over all elements, a scalar (shape `[]`), with the
/// per-element term in the stable form `max(x, 0) - x·y + ln(1 + e^{-|x|})`.
///
/// `scale = 1 / numel` gives the per-pixel mean, `1 / N` the per-image sum averaged over a
/// batch of `N`. Differentiable w.r.t. both inputs: `scale · (σ(x) - y)` and `-scale · x`.
/// On the CPU (`f32`/`f64`) this is one op whose sum is taken in `f64`; elsewhere it is built
/// from candle ops. `logits` and `target` must have the same shape and dtype.
pub fn bce_with_logits_sum(logits: &Tensor, target: &Tensor, scale: f64) -> Result<Tensor> {
    if logits.dims() != target.dims() {
        bail!(
            "bce_with_logits: logits {:?} and target {:?} differ in shape",
            logits.dims(),
            target.dims()
        )
    }
    let cpu_ok = cpu_kernels(logits.device())
        && target.device().is_cpu()
        && matches!(logits.dtype(), DType::F32 | DType::F64)
        && target.dtype() == logits.dtype()
        && logits.elem_count() > 0;
    if !cpu_ok {
        let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
        let terms = ((logits.relu()? - (logits * target)?)? + softplus)?;
        return terms.sum_all()?.affine(scale, 0.0);
    }
    let op = BceOp::new(scale, logits.track_op() && !target.track_op());
    logits.contiguous()?.apply_op2(&target.contiguous()?, op)
}

/// `Σ bce(σ(logits), target)` over plain `f32` slices of the same length, the sum that
/// [`bce_with_logits_sum`] takes on the CPU (the same per-element term, summed in the same
/// order), and its gradient w.r.t. the logits scaled by `grad_scale`:
/// `grad_scale · (σ(x) - y)`.
pub fn bce_with_logits_slice(logits: &[f32], target: &[f32], grad_scale: f32) -> (f64, Vec<f32>) {
    loss::bce_sum_scaled_resid(logits, target, grad_scale)
}
