//! Dense autoencoders, vanilla and sparse, and their configurations (`DenseConfig`,
//! `SparseConfig`, `Sparsity`).
//!
//! Both end in a linear layer whose output is logits (sigmoid output, BCE,
//! the default: images) or the reconstruction itself (linear output, MSE:
//! standardised tables), as `DenseConfig::loss` says. Both describe themselves as a
//! [`ChainView`] (`Autoencoder::dense_view`).

use ae_data::AeRng;
use ae_kernels::Linear;
use ae_losses::{Reduction, kl_sparsity, l1_activity};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts, check_batch_shape};
use crate::config::{Activation, ImageShape, ModelKind, ReconLoss, check_latent, check_sizes};
use crate::error::{Result, invalid};
use crate::view::{ChainView, CodePenalty, DenseLayer, DenseView};

/// The dense (vanilla) autoencoder: `input - hidden... - latent - hidden reversed... - input`.
///
/// `Default` is the classic MNIST model 784-128-64-32-64-128-784 with ReLU
/// everywhere (code included, like the Keras seed model) and a sigmoid output
/// (the model returns logits; the sigmoid is in the loss and in
/// `reconstruct`): 222,384 parameters. With `loss: "mse"` the output is
/// linear and the loss is the mean squared error (tables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenseConfig {
    /// Input image shape (flattened to `channels*height*width`).
    pub input: ImageShape,
    /// Encoder hidden layer sizes; the decoder mirrors them. May be empty (a
    /// single-layer autoencoder).
    pub hidden: Vec<usize>,
    /// Size of the code.
    pub latent_dim: usize,
    /// Activation of the hidden layers.
    pub activation: Activation,
    /// Activation of the code layer.
    pub code_activation: Activation,
    /// Output and reconstruction loss: `None` (absent in JSON) is BCE with a
    /// sigmoid output unless training resolves it from the data; `Some(Mse)`
    /// is a linear output trained with MSE (per-value mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<ReconLoss>,
}

impl Default for DenseConfig {
    fn default() -> Self {
        DenseConfig {
            input: ImageShape::default(),
            hidden: vec![128, 64],
            latent_dim: 32,
            activation: Activation::Relu,
            code_activation: Activation::Relu,
            loss: None,
        }
    }
}

impl DenseConfig {
    /// The default architecture for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        DenseConfig {
            input,
            ..DenseConfig::default()
        }
    }

    /// Sets the input shape.
    pub fn with_input(mut self, input: ImageShape) -> Self {
        self.input = input;
        self
    }

    /// Sets the encoder hidden sizes.
    pub fn with_hidden(mut self, hidden: Vec<usize>) -> Self {
        self.hidden = hidden;
        self
    }

    /// Sets the code size.
    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = latent_dim;
        self
    }

    /// Sets the hidden activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the code activation.
    pub fn with_code_activation(mut self, activation: Activation) -> Self {
        self.code_activation = activation;
        self
    }

    /// Sets the output and reconstruction loss.
    pub fn with_loss(mut self, loss: ReconLoss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// The reconstruction loss the model trains with (BCE when unset).
    pub fn recon_loss(&self) -> ReconLoss {
        self.loss.unwrap_or_default()
    }

    /// Checks sizes: non-zero input, hidden sizes and latent dim.
    pub fn validate(&self) -> Result<()> {
        self.input.validate()?;
        check_sizes("dense hidden sizes", &self.hidden, true)?;
        check_latent(self.latent_dim)
    }
}

/// The sparsity penalty of a sparse autoencoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Sparsity {
    /// `λ · Σ_units |code|`, averaged over the batch (Keras's
    /// `activity_regularizer=l1(λ)`, as in the Keras blog's sparse autoencoder).
    L1 {
        /// Weight λ (finite, >= 0).
        lambda: f64,
    },
    /// `β · Σ_j KL(ρ ‖ ρ̂_j)`, ρ̂_j the batch-mean activation of unit j (Ng's
    /// notes). Needs activations in (0, 1): the code activation must be sigmoid.
    Kl {
        /// Target mean activation ρ, in (0, 1).
        rho: f64,
        /// Weight β (finite, >= 0).
        beta: f64,
    },
}

impl Default for Sparsity {
    fn default() -> Self {
        Sparsity::L1 { lambda: 1e-4 }
    }
}

impl Sparsity {
    /// The KL penalty with Ng's usual values, ρ = 0.05 and β = 3.
    pub fn kl_default() -> Self {
        Sparsity::Kl {
            rho: 0.05,
            beta: 3.0,
        }
    }

    /// Checks the weights: finite and >= 0, ρ in (0, 1).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Sparsity::L1 { lambda } if lambda.is_finite() && lambda >= 0.0 => Ok(()),
            Sparsity::L1 { lambda } => invalid(format!(
                "sparsity l1 lambda must be finite and >= 0, got {lambda}"
            )),
            Sparsity::Kl { rho, .. } if !(rho > 0.0 && rho < 1.0) => {
                invalid(format!("sparsity kl rho must be in (0, 1), got {rho}"))
            }
            Sparsity::Kl { beta, .. } if !(beta.is_finite() && beta >= 0.0) => invalid(format!(
                "sparsity kl beta must be finite and >= 0, got {beta}"
            )),
            Sparsity::Kl { .. } => Ok(()),
        }
    }
}

/// The sparse autoencoder: a [`DenseConfig`] plus a penalty on the code.
///
/// Loss: `BCE(σ(logits), x)` (per-pixel mean; or MSE with `dense.loss: "mse"`) `+ penalty`. `Default` is the
/// default dense model with an L1 penalty λ = 1e-4. With
/// [`Sparsity::Kl`] the dense code activation must be
/// [`Activation::Sigmoid`] (ρ̂ must be in (0, 1));
/// [`with_penalty`](SparseConfig::with_penalty) sets it for you.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparseConfig {
    /// The dense architecture.
    pub dense: DenseConfig,
    /// The sparsity penalty.
    pub penalty: Sparsity,
}

impl SparseConfig {
    /// The default sparse model for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        SparseConfig {
            dense: DenseConfig::for_input(input),
            penalty: Sparsity::default(),
        }
    }

    /// Sets the dense architecture.
    pub fn with_dense(mut self, dense: DenseConfig) -> Self {
        self.dense = dense;
        self
    }

    /// Sets the penalty; a KL penalty also sets the code activation to sigmoid.
    pub fn with_penalty(mut self, penalty: Sparsity) -> Self {
        if matches!(penalty, Sparsity::Kl { .. }) {
            self.dense.code_activation = Activation::Sigmoid;
        }
        self.penalty = penalty;
        self
    }

    /// Checks the dense part, the penalty, and the sigmoid code for KL.
    pub fn validate(&self) -> Result<()> {
        self.dense.validate()?;
        self.penalty.validate()?;
        if matches!(self.penalty, Sparsity::Kl { .. })
            && self.dense.code_activation != Activation::Sigmoid
        {
            return invalid(format!(
                "the kl sparsity penalty needs code activations in (0, 1): set code_activation \
                 to sigmoid (it is {:?})",
                self.dense.code_activation
            ));
        }
        Ok(())
    }
}

/// How the dense models reduce their reconstruction loss: the per-pixel mean (Keras's).
const RECON_REDUCTION: Reduction = Reduction::Mean;

/// How the sparse model reduces its L1 penalty: summed over the code units, averaged over
/// the batch (Keras's `activity_regularizer=l1(λ)`).
const L1_REDUCTION: Reduction = Reduction::SumPerSample;

/// `layers` as plain data: `act` after every layer but the last, `last` after the last one
/// (as [`run_stack`] runs them).
pub(crate) fn describe_stack(
    layers: &[Linear],
    act: Activation,
    last: Option<Activation>,
) -> Vec<DenseLayer<'_>> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| describe(l, stack_activation(i, layers.len(), act, last)))
        .collect()
}

/// `layer` followed by `activation`, as plain data.
pub(crate) fn describe(layer: &Linear, activation: Option<Activation>) -> DenseLayer<'_> {
    DenseLayer {
        weight: layer.weight(),
        bias: layer.bias(),
        activation,
    }
}

/// `sizes.len() - 1` linear layers `sizes[i] → sizes[i+1]`, named `prefix.i`.
pub(crate) fn linear_stack(sizes: &[usize], vb: &VarBuilder<'_>) -> Result<Vec<Linear>> {
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, w)| Ok(ae_kernels::nn::linear(w[0], w[1], vb.pp(i))?))
        .collect()
}

/// `act(layer(h))`, with a ReLU fused into the layer's GEMM (one op, see
/// `ae_kernels::linear_relu`).
pub(crate) fn linear_act(layer: &Linear, h: &Tensor, act: Option<Activation>) -> Result<Tensor> {
    Ok(match act {
        Some(Activation::Relu) => layer.forward_relu(h)?,
        Some(Activation::Sigmoid) => layer.forward_sigmoid(h)?,
        Some(a) => a.apply(&layer.forward(h)?)?,
        None => layer.forward(h)?,
    })
}

/// The activation that turns a decoder's last layer into the reconstruction (what
/// [`ReconLoss::output`] applies): the sigmoid for BCE, none for MSE. Fused into the last
/// layer by [`linear_act`], it gives the same values as the separate pass.
pub(crate) fn output_activation(loss: ReconLoss) -> Option<Activation> {
    match loss {
        ReconLoss::Bce => Some(Activation::Sigmoid),
        ReconLoss::Mse => None,
    }
}

/// Runs `layers`, with `act` after every layer but the last and `last` after the last one.
pub(crate) fn run_stack(
    layers: &[Linear],
    x: &Tensor,
    act: Activation,
    last: Option<Activation>,
) -> Result<Tensor> {
    let mut h = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        h = linear_act(layer, &h, stack_activation(i, layers.len(), act, last))?;
    }
    Ok(h)
}

/// The activation after layer `i` of a stack of `len`: `act`, or `last` after the last one.
fn stack_activation(
    i: usize,
    len: usize,
    act: Activation,
    last: Option<Activation>,
) -> Option<Activation> {
    if i + 1 == len { last } else { Some(act) }
}

/// The dense (vanilla) autoencoder.
///
/// Encoder `encoder.0 .. encoder.{H-1}` (hidden, `activation`) and
/// `encoder.{H}` (code, `code_activation`); decoder `decoder.0 .. decoder.{H-1}`
/// (mirrored hidden, `activation`) and `decoder.{H}` (output logits, no
/// activation). Inputs are flat, `[N, C*H*W]`. Loss: BCE from logits,
/// per-pixel mean (the number Keras prints); with `loss: mse` the last layer's
/// output is the reconstruction and the loss is its mean squared error per value.
pub struct DenseAutoencoder {
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
    cfg: DenseConfig,
}

impl DenseAutoencoder {
    /// Validates `cfg` and creates the layers from `vb` (names `encoder.i`,
    /// `decoder.i`, each with `weight [out, in]` and `bias [out]`).
    pub fn new(cfg: &DenseConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let mut sizes = vec![cfg.input.dim()];
        sizes.extend_from_slice(&cfg.hidden);
        sizes.push(cfg.latent_dim);
        let encoder = linear_stack(&sizes, &vb.pp("encoder"))?;
        sizes.reverse();
        let decoder = linear_stack(&sizes, &vb.pp("decoder"))?;
        Ok(DenseAutoencoder {
            encoder,
            decoder,
            cfg: cfg.clone(),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &DenseConfig {
        &self.cfg
    }

    /// The model as a chain (encoder, then decoder) with its loss and `penalty`.
    fn chain_view(&self, penalty: Option<CodePenalty>) -> ChainView<'_> {
        let (act, code) = (self.cfg.activation, self.cfg.code_activation);
        let mut layers = describe_stack(&self.encoder, act, Some(code));
        layers.extend(describe_stack(&self.decoder, act, None));
        ChainView {
            layers,
            recon: self.cfg.recon_loss(),
            reduction: RECON_REDUCTION,
            penalty,
        }
    }

    /// The index of the code layer in [`chain_view`](Self::chain_view)'s layers.
    fn code_layer(&self) -> usize {
        self.encoder.len() - 1
    }

    fn loss_recon(&self, out: &AeOutput, target: &Tensor) -> Result<Tensor> {
        self.input_layout().check("target", target)?;
        Ok(self
            .cfg
            .recon_loss()
            .loss(&out.logits, target, RECON_REDUCTION)?)
    }
}

impl Autoencoder for DenseAutoencoder {
    fn kind(&self) -> ModelKind {
        ModelKind::Vanilla
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::flat(&self.cfg.input)
    }

    fn latent_dim(&self) -> usize {
        self.cfg.latent_dim
    }

    fn recon_loss(&self) -> ReconLoss {
        self.cfg.recon_loss()
    }

    fn code_shape(&self) -> Vec<usize> {
        vec![self.cfg.latent_dim]
    }

    /// `[N, C*H*W]` → code `[N, latent_dim]` (after `code_activation`).
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.input_layout().check("input", x)?;
        run_stack(
            &self.encoder,
            x,
            self.cfg.activation,
            Some(self.cfg.code_activation),
        )
    }

    /// `[N, latent_dim]` → logits (or, for MSE, the reconstruction) `[N, C*H*W]`.
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape("code", z, &[self.cfg.latent_dim])?;
        run_stack(&self.decoder, z, self.cfg.activation, None)
    }

    /// `[N, C*H*W]` → the reconstruction `[N, C*H*W]`, with the output's sigmoid fused into
    /// the decoder's last layer: the same values as `output(decode(encode(x)))`.
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode(x)?;
        let last = output_activation(self.recon_loss());
        run_stack(&self.decoder, &z, self.cfg.activation, last)
    }

    /// `[N, C*H*W]` → logits `[N, C*H*W]`, code `[N, latent_dim]`; `rng` unused.
    fn forward(&self, x: &Tensor, _rng: Option<&mut AeRng>) -> Result<AeOutput> {
        let code = self.encode(x)?;
        let logits = self.decode(&code)?;
        Ok(AeOutput {
            logits,
            code,
            mu: None,
            logvar: None,
        })
    }

    /// BCE from logits (or MSE of the linear output) against `target`
    /// `[N, C*H*W]`, per-pixel mean.
    fn loss(&self, out: &AeOutput, target: &Tensor) -> Result<LossParts> {
        let recon = self.loss_recon(out, target)?;
        Ok(LossParts {
            total: recon.clone(),
            recon,
            kl: None,
            sparsity: None,
        })
    }

    fn dense_view(&self) -> Option<DenseView<'_>> {
        Some(DenseView::Chain(self.chain_view(None)))
    }
}

impl Module for DenseAutoencoder {
    /// Reconstruction logits `[N, C*H*W]` of `xs` `[N, C*H*W]`.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let z = self.encode(xs).map_err(candle_core::Error::wrap)?;
        self.decode(&z).map_err(candle_core::Error::wrap)
    }
}

/// The sparse autoencoder: a [`DenseAutoencoder`] (same tensor names) whose
/// loss adds a sparsity penalty on the code.
///
/// Loss: BCE from logits or MSE (per-pixel mean, as the dense model's `loss`
/// says) + `λ · Σ_units |code|` averaged over the batch (L1), or
/// + `β · Σ_j KL(ρ ‖ ρ̂_j)` (KL, sigmoid code).
pub struct SparseAutoencoder {
    inner: DenseAutoencoder,
    penalty: Sparsity,
}

impl SparseAutoencoder {
    /// Validates `cfg` and creates the dense layers from `vb`.
    pub fn new(cfg: &SparseConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        Ok(SparseAutoencoder {
            inner: DenseAutoencoder::new(&cfg.dense, vb)?,
            penalty: cfg.penalty,
        })
    }

    /// The sparsity penalty.
    pub fn penalty(&self) -> Sparsity {
        self.penalty
    }

    /// The weighted penalty of a batch of codes `[N, latent_dim]` (a scalar).
    pub fn sparsity_penalty(&self, code: &Tensor) -> Result<Tensor> {
        Ok(match self.penalty {
            Sparsity::L1 { lambda } => l1_activity(code, L1_REDUCTION)?.affine(lambda, 0.0)?,
            Sparsity::Kl { rho, beta } => kl_sparsity(code, rho)?.affine(beta, 0.0)?,
        })
    }
}

impl Autoencoder for SparseAutoencoder {
    fn kind(&self) -> ModelKind {
        ModelKind::Sparse
    }

    fn input_layout(&self) -> InputLayout {
        self.inner.input_layout()
    }

    fn latent_dim(&self) -> usize {
        self.inner.latent_dim()
    }

    fn recon_loss(&self) -> ReconLoss {
        self.inner.recon_loss()
    }

    fn code_shape(&self) -> Vec<usize> {
        self.inner.code_shape()
    }

    /// `[N, C*H*W]` → code `[N, latent_dim]`.
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.encode(x)
    }

    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.reconstruct(x)
    }

    /// `[N, latent_dim]` → logits `[N, C*H*W]`.
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.inner.decode(z)
    }

    /// `[N, C*H*W]` → logits `[N, C*H*W]`, code `[N, latent_dim]`; `rng` unused.
    fn forward(&self, x: &Tensor, rng: Option<&mut AeRng>) -> Result<AeOutput> {
        Autoencoder::forward(&self.inner, x, rng)
    }

    /// The dense model's reconstruction loss (BCE or MSE, per-pixel mean) +
    /// the weighted penalty (also in `sparsity`).
    fn loss(&self, out: &AeOutput, target: &Tensor) -> Result<LossParts> {
        let recon = self.inner.loss_recon(out, target)?;
        let sparsity = self.sparsity_penalty(&out.code)?;
        Ok(LossParts {
            total: (&recon + &sparsity)?,
            recon,
            kl: None,
            sparsity: Some(sparsity),
        })
    }

    /// The dense chain with the penalty on the code layer's output.
    fn dense_view(&self) -> Option<DenseView<'_>> {
        let penalty = CodePenalty {
            layer: self.inner.code_layer(),
            sparsity: self.penalty,
            reduction: L1_REDUCTION,
        };
        Some(DenseView::Chain(self.inner.chain_view(Some(penalty))))
    }
}

impl Module for SparseAutoencoder {
    /// Reconstruction logits `[N, C*H*W]` of `xs` `[N, C*H*W]`.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Module::forward(&self.inner, xs)
    }
}
