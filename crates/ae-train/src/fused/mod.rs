//! The fused CPU training steps: one step's loss and every parameter's gradient, computed
//! over plain slices outside candle's graph, for the dense models (here) and the
//! convolutional autoencoder ([`conv`], through `ae_kernels::conv_chain`).
//!
//! With candle's autograd, a dense autoencoder's training step is a graph of a few dozen
//! nodes whose backward pass allocates every gradient as a fresh tensor; here the forward
//! and backward passes are `ae_kernels::chain`'s (the same GEMM kernels, called directly)
//! and the gradients come back as plain values for [`Adam::step_slices`](crate::Adam).
//!
//! What is computed is read from the model's description of itself
//! ([`Autoencoder::dense_view`]): its layers, and which loss its
//! [`loss`](Autoencoder::loss) computes. The losses themselves are `ae-losses`' plain-slice
//! forms (`bce_with_logits_flat`, `mse_flat`, `l1_activity_flat`, `vae_loss_flat_with`,
//! ...), defined there
//! beside the tensor forms the model's `loss` uses, with the same normalisation; the VAE's
//! `ε` is drawn by `ae_models::standard_normal`, as its forward pass draws it. So both paths
//! train the same model up to floating-point rounding (`tests/fused.rs` checks the loss and
//! every gradient against forward + `loss` + candle's backward for each model kind).
//!
//! The step covers what the kernels compute: ReLU after every layer but the last (linear),
//! either reconstruction loss of that last layer's output ([`ReconLoss`]: BCE from logits,
//! or MSE with the output itself as the prediction; for the VAE, the Bernoulli or the
//! Gaussian decoder's `½·SSE`), no penalty or an L1 penalty, parameters `f32` on the CPU
//! with the CPU kernels on (`ae_kernels::cpu_kernels`); and the conv model without a dense
//! code with ReLU activations ([`conv`]). [`fused_train_step`] returns `None` for anything
//! else (the conv model with a dense code, other activations, KL sparsity, other devices and
//! dtypes, the portable path), and the trainer takes candle's graph.

use ae_data::AeRng;
use ae_kernels::chain::{self, Forward, Grad, Layer};
use ae_losses::{
    ReconLoss, Reduction, bce_with_logits_flat, l1_activity_flat, l1_activity_flat_grad, mse_flat,
    reparameterise_flat, vae_latent_grad, vae_loss_flat_with,
};
use ae_models::{
    Activation, Autoencoder, ChainView, DenseLayer, DenseView, Sparsity, VaeView, standard_normal,
};
use candle_core::{DType, Tensor};

use crate::{Result, TrainError};

pub mod conv;

/// What one fused step computed.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The loss that was differentiated (reconstruction + penalty, or + `β`·KL).
    pub total: f64,
    /// The reconstruction term.
    pub recon: f64,
    /// The VAE's KL term (not `β`-weighted).
    pub kl: Option<f64>,
    /// The weighted L1 penalty.
    pub sparsity: Option<f64>,
    /// Every parameter's gradient: `(the parameter's tensor, ∂total/∂parameter)`.
    pub grads: Vec<Grad>,
}

/// An L1 penalty `λ·|h|` on the output `h` of one layer, reduced with `reduction`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L1Penalty {
    /// The index of the penalised layer.
    pub layer: usize,
    /// The weight `λ` (finite, `>= 0`).
    pub lambda: f64,
    /// How `|h|` is reduced (`ae_losses::l1_activity`'s argument).
    pub reduction: Reduction,
}

/// A chain of linear layers trained on the reconstruction loss `loss` of the last layer's
/// output (BCE from logits, or MSE with the output as the prediction), reduced with
/// `recon`, with an optional L1 penalty.
#[derive(Clone, Debug)]
pub struct MlpSpec {
    /// The layers, input first; the last one (linear) gives the output.
    pub layers: Vec<Layer>,
    /// The reconstruction loss of the last layer's output.
    pub loss: ReconLoss,
    /// How the reconstruction loss is reduced.
    pub recon: Reduction,
    /// The L1 penalty, if any.
    pub l1: Option<L1Penalty>,
}

/// The dense VAE: encoder layers, the `mu` and `logvar` heads, decoder layers from `z` to
/// the output; the loss is `ae_losses::vae_loss_with(loss, …, beta)` (a Bernoulli decoder
/// for BCE, a Gaussian one, `½·SSE`, for MSE).
#[derive(Clone, Debug)]
pub struct VaeSpec {
    /// Encoder layers, input first.
    pub encoder: Vec<Layer>,
    /// The posterior mean head.
    pub mu: Layer,
    /// The posterior log-variance head.
    pub logvar: Layer,
    /// Decoder layers, code first; the last one (linear) gives the output.
    pub decoder: Vec<Layer>,
    /// The decoder's likelihood.
    pub loss: ReconLoss,
    /// Weight of the KL term.
    pub beta: f64,
}

/// What the fused step computes for a model.
#[derive(Clone, Debug)]
pub enum FusedSpec {
    /// A chain ([`mlp_step`]).
    Mlp(MlpSpec),
    /// The dense VAE ([`vae_step`]).
    Vae(VaeSpec),
}

/// Whether `t` can take part in a fused step: `f32` on the CPU, with the CPU kernels on
/// (not the portable path, `ae_kernels::portable`).
pub(crate) fn fusable(t: &Tensor) -> bool {
    ae_kernels::cpu_kernels(t.device()) && t.dtype() == DType::F32
}

/// `layer` as a step layer followed by a ReLU when `relu`, or `None` when its activation is
/// not that (ReLU expected, or linear) or its parameters cannot be fused.
fn step_layer(layer: &DenseLayer<'_>, relu: bool) -> Result<Option<Layer>> {
    let expected = relu.then_some(Activation::Relu);
    if layer.activation != expected || !fusable(layer.weight) || !layer.bias.is_none_or(fusable) {
        return Ok(None);
    }
    Ok(Some(Layer::new(layer.weight, layer.bias, relu)?))
}

/// `layers` as step layers, a ReLU after every one but the last when `linear_last` (else
/// after all); `None` when one of them cannot be fused.
fn step_layers(layers: &[DenseLayer<'_>], linear_last: bool) -> Result<Option<Vec<Layer>>> {
    let mut out = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        match step_layer(l, !(linear_last && i + 1 == layers.len()))? {
            Some(s) => out.push(s),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// What the fused step computes for `view`, or `None` when it computes no such model (see
/// the module's doc).
pub fn fused_spec(view: &DenseView<'_>) -> Result<Option<FusedSpec>> {
    match view {
        DenseView::Chain(c) => Ok(mlp_spec(c)?.map(FusedSpec::Mlp)),
        DenseView::Vae(v) => Ok(vae_spec(v)?.map(FusedSpec::Vae)),
    }
}

fn mlp_spec(view: &ChainView<'_>) -> Result<Option<MlpSpec>> {
    let l1 = match view.penalty {
        None => None,
        Some(p) => match p.sparsity {
            Sparsity::L1 { lambda } => Some(L1Penalty {
                layer: p.layer,
                lambda,
                reduction: p.reduction,
            }),
            Sparsity::Kl { .. } => return Ok(None),
        },
    };
    Ok(step_layers(&view.layers, true)?.map(|layers| MlpSpec {
        layers,
        loss: view.recon,
        recon: view.reduction,
        l1,
    }))
}

fn vae_spec(view: &VaeView<'_>) -> Result<Option<VaeSpec>> {
    let parts = (
        step_layers(&view.encoder, false)?,
        step_layer(&view.mu, false)?,
        step_layer(&view.logvar, false)?,
        step_layers(&view.decoder, true)?,
    );
    let (Some(encoder), Some(mu), Some(logvar), Some(decoder)) = parts else {
        return Ok(None);
    };
    Ok(Some(VaeSpec {
        encoder,
        mu,
        logvar,
        decoder,
        loss: view.recon,
        beta: view.beta,
    }))
}

/// The fused step of `model` on a batch, or `Ok(None)` when it has none (see the module's
/// doc): the trainer then takes candle's graph.
///
/// `input` and `target` are `n` flat rows (`[n, C*H*W]` row-major; for denoising, the
/// corrupted and the clean batch). The loss is the one [`Autoencoder::loss`] gives on
/// [`Autoencoder::forward`]'s output, and a VAE draws its `ε` from `rng` exactly as
/// `forward` does.
pub fn fused_train_step(
    model: &dyn Autoencoder,
    input: &[f32],
    target: &[f32],
    n: usize,
    rng: &mut AeRng,
) -> Result<Option<StepOutput>> {
    if let Some(view) = model.conv_view() {
        return conv::conv_step(&view, input, target, n);
    }
    let Some(view) = model.dense_view() else {
        return Ok(None);
    };
    match fused_spec(&view)? {
        None => Ok(None),
        Some(FusedSpec::Mlp(spec)) => Ok(Some(mlp_step(&spec, input, target, n)?)),
        Some(FusedSpec::Vae(spec)) => {
            let eps = standard_normal(n * spec.mu.dims().0, rng);
            Ok(Some(vae_step(&spec, input, target, &eps, n)?))
        }
    }
}

fn bad(msg: String) -> TrainError {
    TrainError::Mismatch(format!("fused step: {msg}"))
}

/// Checks a batch of `n` rows of `dim` values in `x` and `y`.
fn check_batch(x: &[f32], y: &[f32], n: usize, dim: usize) -> Result<()> {
    if n == 0 || x.len() != n * dim || y.len() != n * dim {
        return Err(bad(format!(
            "a batch of {n} rows of {dim} values needs {} inputs and targets, got {} and {}",
            n * dim,
            x.len(),
            y.len()
        )));
    }
    Ok(())
}

/// One training step of `spec` on the batch `x` (inputs) and `y` (targets), both `n` rows
/// of the first layer's input width, row-major: the loss and every parameter's gradient.
pub fn mlp_step(spec: &MlpSpec, x: &[f32], y: &[f32], n: usize) -> Result<StepOutput> {
    let layers: Vec<&Layer> = spec.layers.iter().collect();
    let Some(first) = layers.first() else {
        return Err(bad("no layers".into()));
    };
    let dim = first.dims().1;
    let out = chain::check_chain(&layers, dim, "the")?;
    if out != dim {
        return Err(bad(format!(
            "the layers map {dim} features to {out}, not back to {dim}"
        )));
    }
    check_batch(x, y, n, dim)?;
    let l1 = match spec.l1 {
        Some(p) if p.layer >= layers.len() || !(p.lambda.is_finite() && p.lambda >= 0.0) => {
            return Err(bad(format!(
                "bad L1 penalty (layer {}, λ = {})",
                p.layer, p.lambda
            )));
        }
        Some(p) => Some((p, [n, layers[p.layer].dims().0])),
        None => None,
    };
    chain::with_bound(&layers, |bound| {
        let acts = chain::forward(bound, x, n);
        // The last layer is linear: its output is the logits (BCE) or the prediction (MSE).
        let output = acts.last().map_or(&[][..], Vec::as_slice);
        let (recon, grad) = match spec.loss {
            ReconLoss::Bce => bce_with_logits_flat(output, y, &[n, dim], spec.recon)?,
            ReconLoss::Mse => mse_flat(output, y, &[n, dim], spec.recon)?,
        };
        let sparsity = match &l1 {
            Some((p, dims)) => Some(l1_activity_flat(
                &acts[p.layer],
                dims,
                p.reduction,
                p.lambda,
            )?),
            None => None,
        };
        let mut grads = Vec::with_capacity(2 * layers.len());
        let mut penalty_grad = Ok(());
        let fwd = Forward { x, acts: &acts, n };
        chain::backward(bound, fwd, grad, false, &mut grads, |i, gy| {
            if let Some((p, dims)) = &l1
                && p.layer == i
            {
                penalty_grad = l1_activity_flat_grad(&acts[i], dims, p.reduction, p.lambda, gy);
            }
        });
        penalty_grad?;
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
        return Err(bad("no layers".into()));
    };
    let dim = first.dims().1;
    let features = chain::check_chain(&enc, dim, "encoder")?;
    let latent = chain::check_chain(&[&spec.mu], features, "mu")?;
    if chain::check_chain(&[&spec.logvar], features, "logvar")? != latent {
        return Err(bad("the mu and logvar heads differ in size".into()));
    }
    let out = chain::check_chain(&dec, latent, "decoder")?;
    if out != dim {
        return Err(bad(format!(
            "the VAE maps {dim} features to {out}, not back to {dim}"
        )));
    }
    check_batch(x, y, n, dim)?;
    if eps.len() != n * latent {
        return Err(bad(format!(
            "{} noise values for {n} rows of {latent} latents",
            eps.len()
        )));
    }
    let mut all = enc.clone();
    all.push(&spec.mu);
    all.push(&spec.logvar);
    all.extend(dec.iter().copied());
    let latent_dims = [n, latent];
    chain::with_bound(&all, |bound| {
        let (be, rest) = bound.split_at(enc.len());
        let (heads, bd) = rest.split_at(2);
        let acts_e = chain::forward(be, x, n);
        let h = acts_e.last().map_or(x, Vec::as_slice);
        let mu = chain::forward(&heads[..1], h, n).remove(0);
        let lv = chain::forward(&heads[1..], h, n).remove(0);
        let (sd, z) = reparameterise_flat(&mu, &lv, eps)?;
        let acts_d = chain::forward(bd, &z, n);
        let output = acts_d.last().map_or(&[][..], Vec::as_slice);
        let loss = vae_loss_flat_with(
            spec.loss,
            output,
            y,
            &[n, dim],
            (&mu, &lv, &sd),
            &latent_dims,
            spec.beta,
        )?;
        let mut grads = Vec::with_capacity(2 * all.len());
        let fwd_d = Forward {
            x: &z,
            acts: &acts_d,
            n,
        };
        let gz = chain::backward(bd, fwd_d, loss.grad_logits, true, &mut grads, |_, _| {})
            .unwrap_or_default();
        let (g_mu, g_lv) = vae_latent_grad(&gz, (&mu, &sd, eps), &latent_dims, spec.beta)?;
        let head = |acts| Forward { x: h, acts, n };
        let g_h1 = chain::backward(
            &heads[..1],
            head(std::slice::from_ref(&mu)),
            g_mu,
            true,
            &mut grads,
            |_, _| {},
        );
        let g_h2 = chain::backward(
            &heads[1..],
            head(std::slice::from_ref(&lv)),
            g_lv,
            true,
            &mut grads,
            |_, _| {},
        );
        if let (Some(mut gh), Some(g2)) = (g_h1, g_h2) {
            for (a, b) in gh.iter_mut().zip(&g2) {
                *a += b;
            }
            let fwd_e = Forward {
                x,
                acts: &acts_e,
                n,
            };
            chain::backward(be, fwd_e, gh, false, &mut grads, |_, _| {});
        }
        Ok(StepOutput {
            total: loss.total,
            recon: loss.recon,
            kl: Some(loss.kl),
            sparsity: None,
            grads,
        })
    })
}
