//! Whole training steps of the dense models (a chain of linear layers with BCE, and the
//! dense VAE) on the CPU, computed outside candle's graph.
//!
//! With candle's autograd, a dense autoencoder's training step is a graph of a few dozen
//! nodes. Even with the fused [`crate::linear`] and [`crate::bce_with_logits_sum`] ops,
//! every node's backward pass allocates its gradient as a fresh tensor and accumulates it
//! with a `zeros_like` + `add`, and each small element-wise op wakes candle's worker
//! threads. Here the forward pass, the loss and the backward pass of the whole model are
//! one function over plain slices that calls the same kernels ([`crate::dense`]'s GEMMs,
//! [`crate::loss`]'s BCE) directly and hands back every parameter's gradient, ready for
//! [`crate::adam_update_slice`].
//!
//! The numbers are those of the candle graph built from the same layers, up to the order
//! of floating-point additions (tested against it in `tests/step.rs`).
//!
//! `f32` on the CPU only: [`Layer::new`] refuses anything else, and callers keep candle's
//! graph for other devices and dtypes.

use candle_core::{CpuStorage, DType, Result, Storage, Tensor, bail};

use rayon::prelude::*;

use crate::dense::{DenseGeom, dense_bwd, dense_fwd};
use crate::loss::bce_sum;
use crate::plan::Need;

/// One fully connected layer of a fused step: `relu?(x Wᵀ + b)`.
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
                    "fused step: the {what} must be an f32 CPU tensor, got {:?} on {:?}",
                    t.dtype(),
                    t.device().location()
                )
            }
        }
        if let Some(b) = bias
            && b.dims() != [out]
        {
            bail!(
                "fused step: bias {:?} does not match a weight of {out} outputs",
                b.dims()
            )
        }
        Ok(Self {
            weight: weight.clone(),
            bias: bias.cloned(),
            relu,
        })
    }

    /// `(out, in)`.
    fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d[1])
    }

    fn geom(&self, n: usize) -> DenseGeom {
        let (out, inp) = self.dims();
        DenseGeom { n, inp, out }
    }
}

/// How the reconstruction loss (BCE from logits) is reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recon {
    /// Mean over every element (the plain autoencoders).
    Mean,
    /// Sum per image, mean over the batch (the VAE).
    SumPerSample,
}

/// A chain of linear layers trained on BCE from logits, with an optional L1 activity
/// penalty `λ · Σ|h| / N` on the output of one layer (the sparse autoencoder's code).
#[derive(Clone, Debug)]
pub struct MlpSpec {
    /// The layers, input first; the last one gives the logits.
    pub layers: Vec<Layer>,
    /// How the BCE is reduced.
    pub recon: Recon,
    /// `(layer index, λ)`: the L1 penalty on that layer's output.
    pub l1: Option<(usize, f64)>,
}

/// The dense VAE: encoder layers, the `mu` and `logvar` heads on the encoder's output,
/// `z = mu + exp(½ logvar)·ε`, decoder layers from `z` to the logits. The loss is BCE
/// (summed per image) + `β`·KL, averaged over the batch.
#[derive(Clone, Debug)]
pub struct VaeSpec {
    /// Encoder layers, input first.
    pub encoder: Vec<Layer>,
    /// The posterior mean head.
    pub mu: Layer,
    /// The posterior log-variance head.
    pub logvar: Layer,
    /// Decoder layers, code first; the last one gives the logits.
    pub decoder: Vec<Layer>,
    /// Weight of the KL term.
    pub beta: f64,
}

/// What one fused step computed.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The loss that was differentiated (reconstruction + penalty or `β`·KL).
    pub total: f64,
    /// The reconstruction term.
    pub recon: f64,
    /// The VAE's KL term (not `β`-weighted).
    pub kl: Option<f64>,
    /// The weighted L1 penalty.
    pub sparsity: Option<f64>,
    /// Every parameter's gradient: `(the parameter's tensor, ∂total/∂parameter)`, flat
    /// in the parameter's row-major order.
    pub grads: Vec<(Tensor, Vec<f32>)>,
}

/// Calls `f` with the contiguous `f32` values of `tensors`, read-locked for the call.
fn with_values<R>(tensors: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(tensors.len());
    for (t, (storage, layout)) in tensors.iter().zip(&guards) {
        let Some((a, b)) = layout.contiguous_offsets() else {
            bail!("fused step: a parameter {:?} is not contiguous", t.dims())
        };
        match &**storage {
            Storage::Cpu(CpuStorage::F32(v)) => slices.push(&v[a..b]),
            _ => bail!(
                "fused step: a parameter {:?} is not f32 on the CPU",
                t.dims()
            ),
        }
    }
    f(&slices)
}

/// The parameters of `layers` in order (weight, then bias when present).
fn params(layers: &[&Layer]) -> Vec<Tensor> {
    let mut out = Vec::new();
    for l in layers {
        out.push(l.weight.clone());
        out.extend(l.bias.clone());
    }
    out
}

/// One layer's slices taken from the flat list of parameter values, in [`params`] order.
struct Bound<'a> {
    layer: &'a Layer,
    w: &'a [f32],
    b: Option<&'a [f32]>,
}

fn bind<'a>(layers: &[&'a Layer], values: &[&'a [f32]]) -> Vec<Bound<'a>> {
    let mut at = 0;
    layers
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
        .collect()
}

/// Checks that `layers` chain from `inp` features and returns the last layer's outputs.
fn chain(layers: &[&Layer], inp: usize, what: &str) -> Result<usize> {
    let mut width = inp;
    for (i, l) in layers.iter().enumerate() {
        let (out, lin) = l.dims();
        if lin != width {
            bail!("fused step: {what} layer {i} takes {lin} features, but gets {width}")
        }
        width = out;
    }
    Ok(width)
}

/// Checks a batch of `n` rows of `dim` values in `x` and `y`.
fn check_batch(x: &[f32], y: &[f32], n: usize, dim: usize) -> Result<()> {
    if n == 0 || x.len() != n * dim || y.len() != n * dim {
        bail!(
            "fused step: a batch of {n} rows of {dim} values needs {} inputs and targets, got {} and {}",
            n * dim,
            x.len(),
            y.len()
        )
    }
    Ok(())
}

/// Forward pass of a chain: every layer's output, input first (`x` itself not included).
fn forward_chain(bound: &[Bound<'_>], x: &[f32], n: usize) -> Vec<Vec<f32>> {
    let mut acts: Vec<Vec<f32>> = Vec::with_capacity(bound.len());
    for l in bound {
        let input = acts.last().map_or(x, Vec::as_slice);
        let y = dense_fwd(l.layer.geom(n), input, l.w, l.b, l.layer.relu);
        acts.push(y);
    }
    acts
}

/// What the backward pass of a chain needs from its forward pass: the chain's input `x`
/// (`n` rows) and every layer's output.
#[derive(Clone, Copy)]
struct Forward<'a> {
    x: &'a [f32],
    acts: &'a [Vec<f32>],
    n: usize,
}

/// Backward pass of a chain from the gradient `gy` of its last output. Pushes the weight
/// and bias gradients of each layer (last layer first) onto `grads` and returns the
/// gradient of the chain's input when `input_grad`. `extra(i, gy)` may add to the
/// gradient of layer `i`'s output before that layer is differentiated.
fn backward_chain(
    bound: &[Bound<'_>],
    fwd: Forward<'_>,
    mut gy: Vec<f32>,
    input_grad: bool,
    grads: &mut Vec<(Tensor, Vec<f32>)>,
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
        let g = dense_bwd(l.layer.geom(n), input, l.w, &gy, res, need);
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

/// `σ(logits) - y` scaled by `scale`, and the unscaled BCE sum.
fn bce_residual(logits: &[f32], y: &[f32], scale: f64) -> (f64, Vec<f32>) {
    let mut r = vec![0f32; logits.len()];
    let sum = bce_sum(logits, y, 1.0, Some(&mut r));
    let k = scale as f32;
    r.par_iter_mut().with_min_len(1 << 14).for_each(|v| *v *= k);
    (sum, r)
}

/// One training step of `spec` on the batch `x` (inputs) and `y` (targets), both `n` rows
/// of the first layer's input width, row-major: the loss and every parameter's gradient.
pub fn mlp_step(spec: &MlpSpec, x: &[f32], y: &[f32], n: usize) -> Result<StepOutput> {
    let layers: Vec<&Layer> = spec.layers.iter().collect();
    let Some(first) = layers.first() else {
        bail!("fused step: no layers")
    };
    let dim = first.dims().1;
    let out = chain(&layers, dim, "the")?;
    if out != dim {
        bail!("fused step: the layers map {dim} features to {out}, not back to {dim}")
    }
    check_batch(x, y, n, dim)?;
    if let Some((c, lambda)) = spec.l1
        && (c >= layers.len() || !(lambda.is_finite() && lambda >= 0.0))
    {
        bail!("fused step: bad L1 penalty (layer {c}, λ = {lambda})")
    }
    let tensors = params(&layers);
    let refs: Vec<&Tensor> = tensors.iter().collect();
    with_values(&refs, |values| {
        let bound = bind(&layers, values);
        let acts = forward_chain(&bound, x, n);
        let logits = acts.last().map_or(&[][..], Vec::as_slice);
        let scale = match spec.recon {
            Recon::Mean => 1.0 / (n * dim) as f64,
            Recon::SumPerSample => 1.0 / n as f64,
        };
        let (sum, r) = bce_residual(logits, y, scale);
        let recon = sum * scale;
        let sparsity = spec.l1.map(|(c, lambda)| {
            let l1: f64 = acts[c].iter().map(|v| f64::from(v.abs())).sum();
            lambda * l1 / n as f64
        });
        let mut grads = Vec::with_capacity(tensors.len());
        backward_chain(
            &bound,
            Forward { x, acts: &acts, n },
            r,
            false,
            &mut grads,
            |i, gy| {
                if let Some((c, lambda)) = spec.l1
                    && c == i
                {
                    let k = (lambda / n as f64) as f32;
                    for (g, &h) in gy.iter_mut().zip(&acts[c]) {
                        if h != 0.0 {
                            *g += k * h.signum();
                        }
                    }
                }
            },
        );
        Ok(StepOutput {
            total: recon + sparsity.unwrap_or(0.0),
            recon,
            kl: None,
            sparsity,
            grads,
        })
    })
}

/// One training step of the dense VAE `spec` on the batch `x` (inputs) and `y` (targets),
/// `n` rows each, with the reparameterisation noise `eps` (`n` rows of the latent size,
/// row-major, standard normal): the loss and every parameter's gradient.
pub fn vae_step(spec: &VaeSpec, x: &[f32], y: &[f32], eps: &[f32], n: usize) -> Result<StepOutput> {
    let enc: Vec<&Layer> = spec.encoder.iter().collect();
    let dec: Vec<&Layer> = spec.decoder.iter().collect();
    let Some(first) = enc.first().or(dec.first()) else {
        bail!("fused step: no layers")
    };
    let dim = first.dims().1;
    let features = chain(&enc, dim, "encoder")?;
    let latent = chain(&[&spec.mu], features, "mu")?;
    if chain(&[&spec.logvar], features, "logvar")? != latent {
        bail!("fused step: the mu and logvar heads differ in size")
    }
    let out = chain(&dec, latent, "decoder")?;
    if out != dim {
        bail!("fused step: the VAE maps {dim} features to {out}, not back to {dim}")
    }
    check_batch(x, y, n, dim)?;
    if eps.len() != n * latent {
        bail!(
            "fused step: {} noise values for {n} rows of {latent} latents",
            eps.len()
        )
    }
    if !(spec.beta.is_finite() && spec.beta >= 0.0) {
        bail!("fused step: beta = {} must be finite and >= 0", spec.beta)
    }
    let mut all = enc.clone();
    all.push(&spec.mu);
    all.push(&spec.logvar);
    all.extend(dec.iter().copied());
    let tensors = params(&all);
    let refs: Vec<&Tensor> = tensors.iter().collect();
    with_values(&refs, |values| {
        let bound = bind(&all, values);
        let (be, rest) = bound.split_at(enc.len());
        let (heads, bd) = rest.split_at(2);
        let acts_e = forward_chain(be, x, n);
        let h = acts_e.last().map_or(x, Vec::as_slice);
        let mu = forward_chain(&heads[..1], h, n).remove(0);
        let lv = forward_chain(&heads[1..], h, n).remove(0);
        let sd: Vec<f32> = lv.iter().map(|&v| (0.5 * v).exp()).collect();
        let z: Vec<f32> = mu
            .iter()
            .zip(&sd)
            .zip(eps)
            .map(|((&m, &s), &e)| m + s * e)
            .collect();
        let acts_d = forward_chain(bd, &z, n);
        let logits = acts_d.last().map_or(&[][..], Vec::as_slice);
        let inv_n = 1.0 / n as f64;
        let (sum, r) = bce_residual(logits, y, inv_n);
        let recon = sum * inv_n;
        let kl_sum: f64 = mu
            .iter()
            .zip(&lv)
            .zip(&sd)
            .map(|((&m, &l), &s)| 0.5 * f64::from(m * m + s * s - 1.0 - l))
            .sum();
        let kl = kl_sum * inv_n;
        let mut grads = Vec::with_capacity(tensors.len());
        let gz = backward_chain(
            bd,
            Forward {
                x: &z,
                acts: &acts_d,
                n,
            },
            r,
            true,
            &mut grads,
            |_, _| {},
        )
        .unwrap_or_default();
        // ∂/∂mu: the code's gradient plus β·mu/N; ∂/∂logvar: the code's gradient through
        // exp(½ logvar)·ε plus β·½(e^logvar - 1)/N.
        let kb = (spec.beta * inv_n) as f32;
        let g_mu: Vec<f32> = gz.iter().zip(&mu).map(|(&g, &m)| g + kb * m).collect();
        let g_lv: Vec<f32> = gz
            .iter()
            .zip(&sd)
            .zip(eps)
            .map(|((&g, &s), &e)| 0.5 * (g * s * e + kb * (s * s - 1.0)))
            .collect();
        let g_h1 = backward_chain(
            &heads[..1],
            Forward {
                x: h,
                acts: std::slice::from_ref(&mu),
                n,
            },
            g_mu,
            true,
            &mut grads,
            |_, _| {},
        );
        let g_h2 = backward_chain(
            &heads[1..],
            Forward {
                x: h,
                acts: std::slice::from_ref(&lv),
                n,
            },
            g_lv,
            true,
            &mut grads,
            |_, _| {},
        );
        if let (Some(mut gh), Some(g2)) = (g_h1, g_h2) {
            for (a, b) in gh.iter_mut().zip(&g2) {
                *a += b;
            }
            backward_chain(
                be,
                Forward {
                    x,
                    acts: &acts_e,
                    n,
                },
                gh,
                false,
                &mut grads,
                |_, _| {},
            );
        }
        Ok(StepOutput {
            total: recon + spec.beta * kl,
            recon,
            kl: Some(kl),
            sparsity: None,
            grads,
        })
    })
}
