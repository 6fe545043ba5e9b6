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
//! The per-image passes are the batched drivers' own (`crate::conv`'s layouts, the pools'
//! plane loops, the BCE kernel's term), so the numbers are those of the graph up to the
//! order in which the per-image weight gradients are added (tested against candle's
//! autograd in `tests/conv_chain.rs`).
//!
//! What is trained is the caller's: this module knows nothing of models (`ae-train`'s fused
//! step reads the conv model's description from `ae-models`). `f32` on the CPU only:
//! [`Stage::conv`] and [`Stage::conv_t`] refuse anything else.

mod image;
mod work;

use candle_core::{DType, Result, Tensor, bail};

use crate::chain::{Grad, with_values};
use crate::conv::{Chosen, Geom};
use crate::elem::Real;
use crate::plan::{block, run_tasks};
use crate::pool::PoolGeom;
use image::{forward_image, image};
use work::{Work, with_work};

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
pub(crate) enum Op {
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

/// The parameter tensors of `stages`, in order: each weight, then its bias.
fn param_tensors(stages: &[Stage]) -> Vec<&Tensor> {
    stages
        .iter()
        .filter_map(|s| s.params.as_ref())
        .flat_map(|(w, b)| [w, b])
        .collect()
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
    let tensors = param_tensors(stages);
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

/// The outputs of the first `upto` of `stages` (all of them: the logits) for `n` images `x`
/// `[n, c, h, w]` of shape `input`, `[n, ...]` row-major: the chain's forward pass one image
/// at a time (for evaluation and encoding; no gradient). The same values as the training
/// step's forward pass.
pub fn forward(
    stages: &[Stage],
    input: [usize; 3],
    x: &[f32],
    n: usize,
    upto: usize,
) -> Result<Vec<f32>> {
    let (ops, _) = plan(stages, input)?;
    if upto == 0 || upto > ops.len() {
        bail!(
            "conv chain: cannot stop after stage {upto} of a chain of {}",
            ops.len()
        )
    }
    let len: usize = input.iter().product();
    if x.len() != n * len {
        bail!(
            "conv chain: a batch of {n} images of {len} values needs {} inputs, got {}",
            n * len,
            x.len()
        )
    }
    let tensors = param_tensors(stages);
    let out_len = ops[upto - 1].out_len();
    let mut out = vec![0f32; n * out_len];
    with_values::<_, candle_core::Error>(&tensors, |params| {
        run_tasks(n, &mut out, out_len, 0, |imgs, chunk, _, _| {
            with_work(&ops, |work: &mut Work<f32>| {
                for (i, y) in imgs.zip(chunk.chunks_exact_mut(out_len)) {
                    let (acts, scratch) = (&mut work.acts, &mut work.scratch);
                    forward_image(&ops[..upto], params, acts, scratch, block(x, i, len));
                    y.copy_from_slice(&acts[upto - 1]);
                }
            });
        });
        Ok(())
    })?;
    Ok(out)
}
