//! A chain of convolutions, transposed convolutions, 2x2 max pools and fully connected
//! layers trained with a per-pixel BCE loss over plain slices, outside candle's graph, one
//! image at a time: the conv autoencoder's whole training step (forward, loss, backward,
//! with or without its dense code) in one pass over the batch.
//!
//! Through candle's graph (even with this crate's fused conv + ReLU ops and pools) each
//! layer runs over the whole batch before the next starts, so each activation and each
//! gradient of the MNIST model's 28x28 layers (`[128, 32, 28, 28]`, 12.8 MB) goes out to
//! memory and back, several times: the op writes it, candle's backward accumulates every
//! gradient into a fresh `zeros_like` with an `add`, the next op reads it. A training step
//! spent more time moving those tensors than in its GEMMs. But nothing in this model mixes
//! images before the loss is summed, so here each rayon task takes a few images and runs
//! every layer's forward pass, the loss and every backward pass on one image before the next
//! (about 0.4 MB of activations and gradients per image with the default model, which stays
//! in the core's cache), adding the weight and bias gradients into the task's accumulator.
//! The per-image passes are the batched drivers' own ([`crate::conv`]'s layouts, the pools'
//! plane loops, the BCE kernel's term), so the numbers are those of the graph up to the
//! order in which the per-image weight gradients are added (tested against candle's
//! autograd in `tests/conv_chain.rs`).
//!
//! What is trained is the caller's: this module knows nothing of models (`ae-train`'s fused
//! step reads the conv model's description from `ae-models`). `f32` on the CPU only:
//! [`Stage::conv`] and [`Stage::conv_t`] refuse anything else.

use std::any::Any;
use std::cell::RefCell;

use candle_core::{DType, Result, Tensor, bail};
use gemm::Parallelism;

use crate::chain::{Grad, with_values};
use crate::conv::{BwdIo, Chosen, FwdIo, Geom, Layout, masked};
use crate::elem::{Elem, Real, add_channel_sums};
use crate::loss::bce_sum_serial;
use crate::plan::{block, run_tasks};
use crate::pool::{PoolGeom, pool_bwd_image, pool_fwd_image};

/// What one stage of a conv chain computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// A "same" convolution: odd square kernel `k`, stride 1, zero padding `k / 2`; weight
    /// `[out, in, k, k]`, bias `[out]`.
    Conv,
    /// A transposed convolution that doubles the height and width: odd square kernel `k`,
    /// stride 2, padding `k / 2`, output padding 1 (PyTorch's and candle's parameters);
    /// weight `[in, out, k, k]`, bias `[out]`.
    ConvT,
    /// A 2x2 max pool with stride 2 (odd rows and columns dropped, as candle's); the gradient
    /// goes to the first maximum of each window.
    Pool2,
    /// A fully connected layer on the flattened input: weight `[out, in]`, bias `[out]`; its
    /// output is read as a given `[c, h, w]` of `out` values (the conv model's dense code).
    Linear,
}

/// One stage of a conv chain, with its parameters (usually the tensors of candle `Var`s:
/// the step reads their current values) and whether a ReLU follows it.
#[derive(Clone, Debug)]
pub struct Stage {
    kind: StageKind,
    params: Option<(Tensor, Tensor)>,
    relu: bool,
    /// The output shape of a linear stage.
    shape: [usize; 3],
}

impl Stage {
    /// A "same" convolution over an `f32` CPU weight `[out, in, k, k]` (`k` odd) and bias
    /// `[out]`, followed by a ReLU when `relu`.
    pub fn conv(weight: &Tensor, bias: &Tensor, relu: bool) -> Result<Self> {
        Self::with_params(StageKind::Conv, weight, bias, relu)
    }

    /// A transposed convolution (stride 2, see [`StageKind::ConvT`]) over an `f32` CPU
    /// weight `[in, out, k, k]` (`k` odd) and bias `[out]`, followed by a ReLU when `relu`.
    pub fn conv_t(weight: &Tensor, bias: &Tensor, relu: bool) -> Result<Self> {
        Self::with_params(StageKind::ConvT, weight, bias, relu)
    }

    /// A 2x2 max pool.
    pub fn pool2() -> Self {
        Self {
            kind: StageKind::Pool2,
            params: None,
            relu: false,
            shape: [0; 3],
        }
    }

    /// A fully connected layer over an `f32` CPU weight `[out, in]` and bias `[out]`,
    /// followed by a ReLU when `relu`, whose `out` values are read as `shape` `[c, h, w]` by
    /// the next stage.
    pub fn linear(weight: &Tensor, bias: &Tensor, relu: bool, shape: [usize; 3]) -> Result<Self> {
        let mut s = Self::with_params(StageKind::Linear, weight, bias, relu)?;
        let (out, _) = weight.dims2()?;
        if shape.iter().product::<usize>() != out {
            bail!("conv chain: a linear stage of {out} outputs cannot be read as {shape:?}")
        }
        s.shape = shape;
        Ok(s)
    }

    /// What the stage computes.
    pub fn kind(&self) -> StageKind {
        self.kind
    }

    fn with_params(kind: StageKind, weight: &Tensor, bias: &Tensor, relu: bool) -> Result<Self> {
        for (t, what) in [(weight, "weight"), (bias, "bias")] {
            if !t.device().is_cpu() || t.dtype() != DType::F32 {
                bail!(
                    "conv chain: the {what} must be an f32 CPU tensor, got {:?} on {:?}",
                    t.dtype(),
                    t.device().location()
                )
            }
        }
        let out = if kind == StageKind::Linear {
            weight.dims2()?.0
        } else {
            let (a, b, kh, kw) = weight.dims4()?;
            if kh != kw || kh % 2 == 0 {
                bail!("conv chain: the kernel must be square and odd, got {kh}x{kw}")
            }
            if kind == StageKind::Conv { a } else { b }
        };
        if bias.dims() != [out] {
            bail!(
                "conv chain: bias {:?} does not match a weight {:?} of {out} outputs",
                bias.dims(),
                weight.dims()
            )
        }
        Ok(Self {
            kind,
            params: Some((weight.clone(), bias.clone())),
            relu,
            shape: [0; 3],
        })
    }
}

/// One stage planned for its input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// A convolution of geometry `g`.
    Conv { g: Geom, lay: Chosen, relu: bool },
    /// A transposed convolution: the adjoint of the convolution `g`, whose image is this
    /// stage's output and whose output is this stage's input.
    ConvT { g: Geom, lay: Chosen, relu: bool },
    /// A max pool.
    Pool(PoolGeom),
    /// A fully connected layer from `inp` values to `out`.
    Linear { inp: usize, out: usize, relu: bool },
}

impl Op {
    /// Elements of one image's input.
    fn in_len(&self) -> usize {
        match self {
            Op::Conv { g, .. } => g.img_len(),
            Op::ConvT { g, .. } => g.out_len(),
            Op::Pool(p) => p.planes * p.h * p.w,
            Op::Linear { inp, .. } => *inp,
        }
    }

    /// Elements of one image's output.
    fn out_len(&self) -> usize {
        match self {
            Op::Conv { g, .. } => g.out_len(),
            Op::ConvT { g, .. } => g.img_len(),
            Op::Pool(p) => p.planes * p.ho() * p.wo(),
            Op::Linear { out, .. } => *out,
        }
    }
}

/// The stages planned for inputs of shape `input` `[c, h, w]`: every stage's geometry, and
/// the output shape.
fn plan(stages: &[Stage], input: [usize; 3]) -> Result<(Vec<Op>, [usize; 3])> {
    let [mut c, mut h, mut w] = input;
    let mut ops = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let op = match (&s.params, s.kind) {
            (_, StageKind::Pool2) => {
                let p = PoolGeom {
                    planes: c,
                    h,
                    w,
                    k: 2,
                };
                (h, w) = (p.ho(), p.wo());
                Op::Pool(p)
            }
            (Some((weight, _)), StageKind::Linear) => {
                let (out, inp) = weight.dims2()?;
                if inp != c * h * w {
                    bail!("conv chain: stage {i} takes {inp} values, its input has {c}x{h}x{w}")
                }
                [c, h, w] = s.shape;
                Op::Linear {
                    inp,
                    out,
                    relu: s.relu,
                }
            }
            (Some((weight, _)), kind) => {
                let (a, b, k, _) = weight.dims4()?;
                let (c_in, c_out) = if kind == StageKind::Conv {
                    (b, a)
                } else {
                    (a, b)
                };
                if c_in != c {
                    bail!("conv chain: stage {i} expects {c_in} channels, its input has {c}")
                }
                let pad = k / 2;
                let geom = match kind {
                    StageKind::Conv => Geom::conv(c, (h, w), c_out, (k, k), pad, 1),
                    _ => Geom::conv(c_out, (2 * h, 2 * w), c, (k, k), pad, 2)
                        .filter(|g| g.ho == h && g.wo == w),
                };
                let Some(g) = geom.filter(|_| h > 0 && w > 0) else {
                    bail!("conv chain: stage {i} does not fit its {c}x{h}x{w} input")
                };
                let lay = Chosen::of(&g);
                c = c_out;
                if kind == StageKind::Conv {
                    Op::Conv {
                        g,
                        lay,
                        relu: s.relu,
                    }
                } else {
                    (h, w) = (2 * h, 2 * w);
                    Op::ConvT {
                        g,
                        lay,
                        relu: s.relu,
                    }
                }
            }
            (None, _) => bail!("conv chain: stage {i} has no parameters"),
        };
        ops.push(op);
    }
    Ok((ops, [c, h, w]))
}

/// The output shape `[c, h, w]` of `stages` on inputs of shape `input`, or why they do not
/// fit it.
pub fn output_shape(stages: &[Stage], input: [usize; 3]) -> Result<[usize; 3]> {
    plan(stages, input).map(|(_, out)| out)
}

/// One training step of the chain `stages` on `n` images `x` `[n, c, h, w]` against
/// `target` (the same shape, which must be the chain's output shape): the loss
/// `Σ bce(σ(chain(x)), target)` (the stable per-element term of
/// [`crate::bce_with_logits_sum`], summed in `f64`) and the gradient of `scale ·` that sum
/// with respect to every parameter, as `(tensor, values)` pairs in stage order, weight before
/// bias. `scale = 1 / numel` is the per-pixel mean.
pub fn bce_step(
    stages: &[Stage],
    input: [usize; 3],
    x: &[f32],
    target: &[f32],
    n: usize,
    scale: f32,
) -> Result<(f64, Vec<Grad>)> {
    let (ops, out) = plan(stages, input)?;
    if ops.is_empty() {
        bail!("conv chain: no stages")
    }
    if out != input {
        bail!("conv chain: the stages map {input:?} to {out:?}, not back to the input shape")
    }
    let len: usize = input.iter().product();
    if n == 0 || len == 0 || x.len() != n * len || target.len() != n * len {
        bail!(
            "conv chain: a batch of {n} images of {len} values needs {} inputs and targets, \
             got {} and {}",
            n * len,
            x.len(),
            target.len()
        )
    }
    let tensors: Vec<&Tensor> = stages
        .iter()
        .filter_map(|s| s.params.as_ref())
        .flat_map(|(w, b)| [w, b])
        .collect();
    let (loss, acc) = with_values::<_, candle_core::Error>(&tensors, |params| {
        Ok(step(&ops, params, x, target, n, scale))
    })?;
    let mut grads = Vec::with_capacity(tensors.len());
    let mut rest = acc.as_slice();
    for t in tensors {
        let (g, tail) = rest.split_at(t.elem_count());
        grads.push((t.clone(), g.to_vec()));
        rest = tail;
    }
    Ok((loss, grads))
}

/// One task's buffers, reused from image to image.
struct Work<T: Elem> {
    /// Each stage's output for the current image.
    acts: Vec<Vec<T>>,
    /// Each convolution's layout scratch (`None` for the pools and linear stages).
    scratch: Vec<Option<<Chosen as Layout>::Scratch<T>>>,
    /// The gradient reaching the current stage's output, and the one it passes back.
    grad: Vec<T>,
    back: Vec<T>,
    /// A transposed convolution's output gradient masked by its ReLU.
    mask: Vec<T>,
}

impl<T: Elem> Work<T> {
    fn new(ops: &[Op]) -> Self {
        let widest = ops
            .iter()
            .map(|o| o.in_len().max(o.out_len()))
            .max()
            .unwrap_or(0);
        Self {
            acts: ops.iter().map(|o| vec![T::ZERO; o.out_len()]).collect(),
            scratch: ops
                .iter()
                .map(|o| match o {
                    Op::Conv { lay, .. } | Op::ConvT { lay, .. } => Some(lay.scratch()),
                    Op::Pool(_) | Op::Linear { .. } => None,
                })
                .collect(),
            grad: vec![T::ZERO; widest],
            back: vec![T::ZERO; widest],
            mask: vec![T::ZERO; widest],
        }
    }
}

impl<T: Elem> Work<T> {
    /// Flushes every convolution's scratch into its weight gradient in `acc` (laid out as
    /// `params`).
    fn flush(&mut self, ops: &[Op], params: &[&[T]], acc: &mut [T]) {
        let mut at = 0;
        let mut p = 0;
        for (op, s) in ops.iter().zip(&mut self.scratch) {
            if matches!(op, Op::Pool(_)) {
                continue;
            }
            let wlen = params[p].len();
            if let (Op::Conv { lay, .. } | Op::ConvT { lay, .. }, Some(s)) = (op, s) {
                lay.flush(s, &mut acc[at..at + wlen]);
            }
            at += wlen + params[p + 1].len();
            p += 2;
        }
    }
}

/// Runs `f` with this thread's buffers for `ops`, kept from one call to the next (a training
/// run calls the same chain every step: its scratch, about 1.5 MB for the MNIST model, is
/// allocated and zeroed once per thread instead of once per task and step). Every buffer is
/// either overwritten before it is read or, like the padded images' borders and the
/// flushed weight gradients, left as it was found (zero).
fn with_work<T: Elem, R>(ops: &[Op], f: impl FnOnce(&mut Work<T>) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }
    CACHE.with(|cache| {
        let kept = cache
            .borrow_mut()
            .take()
            .and_then(|b| b.downcast::<(Vec<Op>, Work<T>)>().ok())
            .filter(|kept| kept.0 == ops);
        let mut entry = kept.unwrap_or_else(|| Box::new((ops.to_vec(), Work::new(ops))));
        let r = f(&mut entry.1);
        *cache.borrow_mut() = Some(entry);
        r
    })
}

/// [`bce_step`] over plain slices: `params` holds each convolution's weight and bias, in
/// order; returns the loss and the gradients, concatenated in that order.
fn step<T: Real>(
    ops: &[Op],
    params: &[&[T]],
    x: &[T],
    target: &[T],
    n: usize,
    scale: T,
) -> (f64, Vec<T>) {
    let in_len = ops.first().map_or(0, Op::in_len);
    let acc_len: usize = params.iter().map(|p| p.len()).sum();
    // Each task's loss, in f64 (the accumulator is in `T`), with its first image: summed in
    // image order, so the value does not depend on which thread ran which task.
    let losses = std::sync::Mutex::new(Vec::new());
    let acc = run_tasks(n, &mut [], 0, acc_len, |imgs, _, acc, _| {
        let first = imgs.start;
        let loss = with_work(ops, |work| {
            let mut loss = 0f64;
            for i in imgs {
                loss += image(
                    ops,
                    params,
                    work,
                    block(x, i, in_len),
                    block(target, i, in_len),
                    acc,
                    scale,
                );
            }
            work.flush(ops, params, acc);
            loss
        });
        if let Ok(mut l) = losses.lock() {
            l.push((first, loss));
        }
    });
    let mut parts = losses.into_inner().unwrap_or_default();
    parts.sort_by_key(|&(first, _)| first);
    (parts.iter().map(|&(_, l)| l).sum(), acc)
}

/// Forward pass, loss and backward pass of one image `x` against `t`, the weight and bias
/// gradients added to `acc`; returns the image's loss.
fn image<T: Real>(
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
