//! One image's passes through a conv chain: the forward pass, and the forward pass, the BCE
//! and the backward pass of a training step.

use gemm::Parallelism;

use super::Op;
use super::work::Work;
use crate::conv::{BwdIo, Chosen, FwdIo, Layout, masked};
use crate::elem::{Elem, Real, add_channel_sums};
use crate::loss::bce_sum_serial;
use crate::pool::{pool_bwd_image, pool_fwd_image};

/// The forward pass of one image `x` through `ops` (all of a chain's stages, or the first
/// ones), each stage's output into `acts`.
pub(super) fn forward_image<T: Elem>(
    ops: &[Op],
    params: &[&[T]],
    acts: &mut [Vec<T>],
    scratch: &mut [Option<<Chosen as Layout>::Scratch<T>>],
    x: &[T],
) {
    let par = Parallelism::None;
    let mut p = 0;
    for (l, op) in ops.iter().enumerate() {
        let (done, rest) = acts.split_at_mut(l);
        let src: &[T] = if l == 0 { x } else { &done[l - 1] };
        let dst = &mut rest[0];
        match (op, scratch[l].as_mut()) {
            (&Op::Conv { lay, relu, .. }, Some(s)) => {
                let io = FwdIo {
                    weight: params[p],
                    x: src,
                    y: dst,
                    bias: Some(params[p + 1]),
                    relu,
                    reuse_cols: false,
                };
                lay.fwd(s, io, par);
                p += 2;
            }
            (&Op::ConvT { lay, relu, .. }, Some(s)) => {
                dst.fill(T::ZERO);
                let io = BwdIo {
                    weight: params[p],
                    x: &[],
                    gy: src,
                    res: None,
                    gx: Some(dst),
                    gw: None,
                    gb: None,
                    bias: Some(params[p + 1]),
                    relu,
                    reuse_cols: false,
                };
                lay.bwd(s, io, par);
                p += 2;
            }
            (Op::Pool(g), _) => pool_fwd_image(g, src, dst),
            (&Op::Linear { inp, relu, .. }, _) => {
                for ((d, row), &b) in dst
                    .iter_mut()
                    .zip(params[p].chunks_exact(inp))
                    .zip(params[p + 1])
                {
                    let v = dot(row, src) + b;
                    // The fused ReLU's `v > 0 ? v : 0` (NaN to 0, as `crate::relu`).
                    *d = match (relu, v > T::ZERO) {
                        (true, false) => T::ZERO,
                        _ => v,
                    };
                }
                p += 2;
            }
            _ => unreachable!("every convolution has a scratch"),
        }
    }
}

/// Forward pass, loss and backward pass of one image `x` against `t`, the weight and bias
/// gradients added to `acc`; returns the image's loss.
pub(super) fn image<T: Real>(
    ops: &[Op],
    params: &[&[T]],
    work: &mut Work<T>,
    x: &[T],
    t: &[T],
    acc: &mut [T],
    scale: T,
) -> f64 {
    let par = Parallelism::None;
    let Work {
        acts,
        scratch,
        grad,
        back,
        mask,
    } = work;
    forward_image(ops, params, acts, scratch, x);
    let mut p = params.len();
    let Some(out) = acts.last() else { return 0.0 };
    let g0 = &mut grad[..out.len()];
    let loss = bce_sum_serial(out, t, g0);
    for v in g0.iter_mut() {
        *v = *v * scale;
    }
    // Backward, last stage first; `p` walks the parameters back and `a` the accumulator.
    let mut a = acc.len();
    for (l, op) in ops.iter().enumerate().rev() {
        let src: &[T] = if l == 0 { x } else { &acts[l - 1] };
        let res = &acts[l][..];
        let gy = &grad[..op.out_len()];
        let gx = (l > 0).then(|| &mut back[..op.in_len()]);
        match (op, scratch[l].as_mut()) {
            (&Op::Conv { g, lay, relu }, Some(s)) => {
                p -= 2;
                let (gw, gb) = grads_of(acc, &mut a, g.weight_len(), g.o);
                let mut gx = gx;
                if let Some(gx) = gx.as_mut() {
                    gx.fill(T::ZERO);
                }
                let io = BwdIo {
                    weight: params[p],
                    x: src,
                    gy,
                    res: relu.then_some(res),
                    gx,
                    gw: Some(gw),
                    gb: Some(gb),
                    bias: None,
                    relu: false,
                    // This image's forward pass through this stage unfolded `src` into the
                    // stage's own scratch, untouched since.
                    reuse_cols: true,
                };
                lay.bwd(s, io, par);
            }
            (&Op::ConvT { g, lay, relu }, Some(s)) => {
                p -= 2;
                let (gw, gb) = grads_of(acc, &mut a, g.weight_len(), g.c);
                // The output gradient through the ReLU: the adjoint convolution's image
                // gradient, unfolded once for both the weight and the input gradient.
                let gm = masked(gy, relu.then_some(res), &mut mask[..gy.len()]);
                add_channel_sums(gb, gm, g.h * g.w);
                let io = BwdIo {
                    weight: params[p],
                    x: gm,
                    gy: src,
                    res: None,
                    gx: None,
                    gw: Some(gw),
                    gb: None,
                    bias: None,
                    relu: false,
                    reuse_cols: false,
                };
                lay.bwd(s, io, par);
                if let Some(gx) = gx {
                    let io = FwdIo {
                        weight: params[p],
                        x: gm,
                        y: gx,
                        bias: None,
                        relu: false,
                        reuse_cols: true,
                    };
                    lay.fwd(s, io, par);
                }
            }
            (Op::Pool(g), _) => {
                if let Some(gx) = gx {
                    pool_bwd_image(g, src, gy, gx);
                }
            }
            (&Op::Linear { inp, out, relu }, _) => {
                p -= 2;
                let (gw, gb) = grads_of(acc, &mut a, inp * out, out);
                let gm = masked(gy, relu.then_some(res), &mut mask[..gy.len()]);
                for ((gw_o, gb_o), &v) in gw.chunks_exact_mut(inp).zip(gb.iter_mut()).zip(gm) {
                    *gb_o += v;
                    axpy(gw_o, v, src);
                }
                if let Some(gx) = gx {
                    gx.fill(T::ZERO);
                    for (&v, w_o) in gm.iter().zip(params[p].chunks_exact(inp)) {
                        axpy(gx, v, w_o);
                    }
                }
            }
            _ => unreachable!("every convolution has a scratch"),
        }
        std::mem::swap(grad, back);
    }
    loss
}

/// `sum(a * b)` with independent partial sums, so that it vectorises.
fn dot<T: Elem>(a: &[T], b: &[T]) -> T {
    const LANES: usize = 8;
    let mut part = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((p, &u), &v) in part.iter_mut().zip(x).zip(y) {
            *p += u * v;
        }
    }
    let mut s = T::ZERO;
    for (&u, &v) in ra.iter().zip(rb) {
        s += u * v;
    }
    for p in part {
        s += p;
    }
    s
}

/// `acc += a · x`, element-wise.
fn axpy<T: Elem>(acc: &mut [T], a: T, x: &[T]) {
    for (d, &s) in acc.iter_mut().zip(x) {
        *d += a * s;
    }
}

/// The weight and bias gradients of the stage whose parameters end at `*a` in the
/// accumulator (a weight of `wlen` values, then `blen` biases); moves `*a` to their start.
fn grads_of<'a, T>(
    acc: &'a mut [T],
    a: &mut usize,
    wlen: usize,
    blen: usize,
) -> (&'a mut [T], &'a mut [T]) {
    let start = *a - wlen - blen;
    *a = start;
    acc[start..start + wlen + blen].split_at_mut(wlen)
}
