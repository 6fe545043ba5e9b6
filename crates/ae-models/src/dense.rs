//! Dense autoencoders: vanilla and sparse.
//!
//! Both end in a linear layer whose output is logits (sigmoid output, BCE,
//! the default: images) or the reconstruction itself (linear output, MSE:
//! standardised tables), as `DenseConfig::loss` says. The fused CPU step of
//! `ae_kernels::step` computes BCE only: an MSE model has no fused step, and
//! the trainer takes candle's autograd path for it.

use ae_data::AeRng;
use ae_kernels::Linear;
use ae_kernels::step::{Layer as StepLayer, MlpSpec, Recon, StepOutput, mlp_step};
use ae_losses::{Reduction, kl_sparsity, l1_activity};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::autoencoder::{
    AeOutput, Autoencoder, InputLayout, LossParts, check_batch_shape, fusable,
};
use crate::config::{Activation, DenseConfig, ModelKind, ReconLoss, SparseConfig, Sparsity};
use crate::error::Result;

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
        Some(a) => a.apply(&layer.forward(h)?)?,
        None => layer.forward(h)?,
    })
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
        let a = if i + 1 == layers.len() {
            last
        } else {
            Some(act)
        };
        h = linear_act(layer, &h, a)?;
    }
    Ok(h)
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

    /// The model as a fused CPU step (see [`Autoencoder::fused_train_step`]),
    /// when every activation is a ReLU, the loss is BCE (the step computes no
    /// other) and the parameters are `f32` on the CPU.
    fn fused_spec(&self, l1: Option<f64>) -> Result<Option<MlpSpec>> {
        let relu =
            self.cfg.activation == Activation::Relu && self.cfg.code_activation == Activation::Relu;
        let bce = self.cfg.recon_loss() == ReconLoss::Bce;
        let layers: Vec<&Linear> = self.encoder.iter().chain(&self.decoder).collect();
        if !relu || !bce || !layers.iter().all(|l| fusable(l.weight())) {
            return Ok(None);
        }
        let last = layers.len() - 1;
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, l)| StepLayer::new(l.weight(), l.bias(), i != last))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Some(MlpSpec {
            layers,
            recon: Recon::Mean,
            l1: l1.map(|lambda| (self.encoder.len() - 1, lambda)),
        }))
    }

    fn fused_step(
        &self,
        input: &[f32],
        target: &[f32],
        n: usize,
        l1: Option<f64>,
    ) -> Result<Option<StepOutput>> {
        match self.fused_spec(l1)? {
            Some(spec) => Ok(Some(mlp_step(&spec, input, target, n)?)),
            None => Ok(None),
        }
    }

    fn loss_recon(&self, out: &AeOutput, target: &Tensor) -> Result<Tensor> {
        self.input_layout().check("target", target)?;
        Ok(self
            .cfg
            .recon_loss()
            .loss(&out.logits, target, Reduction::Mean)?)
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

    fn fused_train_step(
        &self,
        input: &[f32],
        target: &[f32],
        n: usize,
        _rng: Option<&mut AeRng>,
    ) -> Result<Option<StepOutput>> {
        self.fused_step(input, target, n, None)
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
            Sparsity::L1 { lambda } => {
                l1_activity(code, Reduction::SumPerSample)?.affine(lambda, 0.0)?
            }
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

    /// The fused step for the L1 penalty; `None` for KL sparsity.
    fn fused_train_step(
        &self,
        input: &[f32],
        target: &[f32],
        n: usize,
        _rng: Option<&mut AeRng>,
    ) -> Result<Option<StepOutput>> {
        match self.penalty {
            Sparsity::L1 { lambda } => self.inner.fused_step(input, target, n, Some(lambda)),
            Sparsity::Kl { .. } => Ok(None),
        }
    }
}

impl Module for SparseAutoencoder {
    /// Reconstruction logits `[N, C*H*W]` of `xs` `[N, C*H*W]`.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Module::forward(&self.inner, xs)
    }
}
