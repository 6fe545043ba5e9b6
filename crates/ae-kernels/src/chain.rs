//! A chain of fully connected layers over plain slices, outside candle's graph: the
//! forward pass and the backward pass of a dense network, every parameter's gradient
//! handed back as plain values.
//!
//! With candle's autograd, a dense autoencoder's training step is a graph of a few dozen
//! nodes. Even with the fused [`crate::linear`] and [`crate::bce_with_logits_sum`] ops,
//! every node's backward pass allocates its gradient as a fresh tensor and accumulates it
//! with a `zeros_like` + `add`, and each small element-wise op wakes candle's worker
//! threads. Here a chain's forward and backward passes call the same kernels
//! (the `dense` module's GEMMs) directly and hand back every parameter's gradient, ready for
//! [`crate::adam_update_slice`]. What is trained (the loss, a penalty on some layer's
//! output, a VAE's sampling between two chains) is the caller's: this module knows nothing
//! of models or losses (`ae-train`'s fused step puts the pieces together, with the losses
//! of `ae-losses`).
//!
//! The numbers are those of candle's graph built from the same layers, up to the order of
//! floating-point additions (tested against it in `tests/chain.rs`).
//!
//! `f32` on the CPU only: [`Layer::new`] refuses anything else, and callers keep candle's
//! graph for other devices and dtypes.

use candle_core::{CpuStorage, DType, Result, Storage, Tensor, bail};

use crate::dense::{DenseAct, DenseGeom, dense_bwd, dense_fwd};
use crate::plan::Need;

/// One fully connected layer of a chain: `relu?(x Wᵀ + b)`.
#[derive(Clone, Debug)]
pub struct Layer {
    weight: Tensor,
    bias: Option<Tensor>,
    relu: bool,
}

impl Layer {
    /// A layer over a CPU `f32` weight `[out, in]` and optional bias `[out]` (usually the
    /// tensors of candle `Var`s: the step reads their current values), followed by a ReLU
    /// when `relu`. Fails on any other device, dtype or shape.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, relu: bool) -> Result<Self> {
        let (out, _) = weight.dims2()?;
        for (t, what) in [(Some(weight), "weight"), (bias, "bias")] {
            if let Some(t) = t
                && (!t.device().is_cpu() || t.dtype() != DType::F32)
            {
                bail!(
                    "chain: the {what} must be an f32 CPU tensor, got {:?} on {:?}",
                    t.dtype(),
                    t.device().location()
                )
            }
        }
        if let Some(b) = bias
            && b.dims() != [out]
        {
            bail!(
                "chain: bias {:?} does not match a weight of {out} outputs",
                b.dims()
            )
        }
        Ok(Self {
            weight: weight.clone(),
            bias: bias.cloned(),
            relu,
        })
    }

    /// `(out, in)`: the number of outputs and of inputs.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d[1])
    }

    fn geom(&self, n: usize) -> DenseGeom {
        let (out, inp) = self.dims();
        DenseGeom { n, inp, out }
    }
}

/// A parameter's gradient: `(the parameter's tensor, ∂loss/∂parameter)`, flat in the
/// parameter's row-major order.
pub type Grad = (Tensor, Vec<f32>);

/// Calls `f` with the contiguous `f32` values of `tensors`, read-locked for the call.
pub(crate) fn with_values<R, E: From<candle_core::Error>>(
    tensors: &[&Tensor],
    f: impl FnOnce(&[&[f32]]) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(tensors.len());
    for (t, (storage, layout)) in tensors.iter().zip(&guards) {
        let Some((a, b)) = layout.contiguous_offsets() else {
            Err(candle_core::Error::msg(format!(
                "chain: a parameter {:?} is not contiguous",
                t.dims()
            )))?
        };
        match &**storage {
            Storage::Cpu(CpuStorage::F32(v)) => slices.push(&v[a..b]),
            _ => Err(candle_core::Error::msg(format!(
                "chain: a parameter {:?} is not f32 on the CPU",
                t.dims()
            )))?,
        }
    }
    f(&slices)
}

/// A layer with its parameters' current values at hand (see [`with_bound`]).
pub struct Bound<'a> {
    layer: &'a Layer,
    w: &'a [f32],
    b: Option<&'a [f32]>,
}

/// Calls `f` with `layers` bound to their parameters' current values (read-locked for the
/// call), in the same order. `f` may fail with any error a candle error converts into.
pub fn with_bound<R, E: From<candle_core::Error>>(
    layers: &[&Layer],
    f: impl FnOnce(&[Bound<'_>]) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    let mut tensors = Vec::new();
    for l in layers {
        tensors.push(&l.weight);
        tensors.extend(l.bias.as_ref());
    }
    with_values(&tensors, |values| {
        let mut at = 0;
        let bound: Vec<Bound<'_>> = layers
            .iter()
            .map(|&layer| {
                let w = values[at];
                at += 1;
                let b = layer.bias.as_ref().map(|_| {
                    at += 1;
                    values[at - 1]
                });
                Bound { layer, w, b }
            })
            .collect();
        f(&bound)
    })
}

/// Checks that `layers` chain from `inp` features and returns the last layer's outputs;
/// `what` names the chain in the error.
pub fn check_chain(layers: &[&Layer], inp: usize, what: &str) -> Result<usize> {
    let mut width = inp;
    for (i, l) in layers.iter().enumerate() {
        let (out, lin) = l.dims();
        if lin != width {
            bail!("chain: {what} layer {i} takes {lin} features, but gets {width}")
        }
        width = out;
    }
    Ok(width)
}

/// Forward pass of a chain on `n` rows `x`: every layer's output, input first (`x` itself
/// not included).
pub fn forward(bound: &[Bound<'_>], x: &[f32], n: usize) -> Vec<Vec<f32>> {
    let mut acts: Vec<Vec<f32>> = Vec::with_capacity(bound.len());
    for l in bound {
        let input = acts.last().map_or(x, Vec::as_slice);
        let y = dense_fwd(
            l.layer.geom(n),
            input,
            l.w,
            l.b,
            DenseAct::relu_if(l.layer.relu),
        );
        acts.push(y);
    }
    acts
}

/// What the backward pass of a chain needs from its forward pass: the chain's input `x`
/// (`n` rows) and every layer's output ([`forward`]'s).
#[derive(Clone, Copy)]
pub struct Forward<'a> {
    /// The chain's input, `n` rows.
    pub x: &'a [f32],
    /// Every layer's output.
    pub acts: &'a [Vec<f32>],
    /// The number of rows.
    pub n: usize,
}

/// Backward pass of a chain from the gradient `gy` of its last output. Pushes the weight
/// and bias gradients of each layer (last layer first, bias before weight) onto `grads`
/// and returns the gradient of the chain's input when `input_grad`. `extra(i, gy)` may add
/// to the gradient of layer `i`'s output before that layer is differentiated (a penalty on
/// that output).
pub fn backward(
    bound: &[Bound<'_>],
    fwd: Forward<'_>,
    mut gy: Vec<f32>,
    input_grad: bool,
    grads: &mut Vec<Grad>,
    mut extra: impl FnMut(usize, &mut [f32]),
) -> Option<Vec<f32>> {
    let Forward { x, acts, n } = fwd;
    for (i, l) in bound.iter().enumerate().rev() {
        extra(i, &mut gy);
        let input = if i == 0 { x } else { &acts[i - 1] };
        let need = Need {
            input: i > 0 || input_grad,
            weight: true,
            bias: l.b.is_some(),
        };
        let res = l.layer.relu.then(|| acts[i].as_slice());
        let act = DenseAct::relu_if(l.layer.relu);
        let g = dense_bwd(l.layer.geom(n), input, l.w, &gy, res, act, need);
        if let (Some(gb), Some(bt)) = (g.bias, &l.layer.bias) {
            grads.push((bt.clone(), gb));
        }
        if let Some(gw) = g.weight {
            grads.push((l.layer.weight.clone(), gw));
        }
        match g.input {
            Some(gx) => gy = gx,
            None => return None,
        }
    }
    Some(gy)
}
