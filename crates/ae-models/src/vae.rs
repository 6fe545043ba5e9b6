//! The variational autoencoder (dense or convolutional), with sampling from our RNG, and
//! its configuration (`VaeConfig`, `VaeArch`).
//!
//! Its decoder is Bernoulli (sigmoid output, BCE summed per sample: images) or,
//! with `loss: mse`, a unit-variance Gaussian (linear output, `½·SSE` per
//! sample: standardised tables); see `ae_losses::vae_loss_with`. The dense VAE
//! describes itself as a [`VaeView`] (`Autoencoder::dense_view`).

use ae_data::AeRng;
use ae_kernels::Linear;
use ae_losses::{reparameterise, vae_loss_with};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts, check_batch_shape};
use crate::config::{Activation, ImageShape, ModelKind, ReconLoss, check_latent, check_sizes};
use crate::conv::{ConvDecoder, ConvEncoder, bottleneck, validate_conv_stack};
use crate::dense::{
    describe, describe_stack, linear_act, linear_stack, output_activation, run_stack,
};
use crate::error::{Result, invalid};
use crate::view::{DenseView, VaeView, standard_normal};

/// The architecture of a VAE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum VaeArch {
    /// Dense: `input - hidden... - (mu, logvar)`, decoder `latent - hidden
    /// reversed... - input` (PyTorch's VAE example with `hidden = [400]`).
    Dense {
        /// Encoder hidden sizes (at least one); the decoder mirrors them.
        hidden: Vec<usize>,
    },
    /// Convolutional: the conv encoder of [`ConvConfig`](crate::ConvConfig) → flatten → (mu,
    /// logvar); decoder linear → reshape → conv-transpose stack → final conv.
    Conv {
        /// Output channels of each encoder stage (one 2x pooling per entry).
        channels: Vec<usize>,
        /// Square kernel size (odd).
        kernel: usize,
    },
}

impl Default for VaeArch {
    fn default() -> Self {
        VaeArch::Dense { hidden: vec![400] }
    }
}

impl VaeArch {
    /// The default conv architecture: channels `[32, 64]`, kernel 3.
    pub fn conv_default() -> Self {
        VaeArch::Conv {
            channels: vec![32, 64],
            kernel: 3,
        }
    }
}

/// The variational autoencoder.
///
/// Loss: `BCE(σ(logits), x) + β · KL(N(μ, σ²) ‖ N(0, I))`, both summed per
/// image and averaged over the batch (PyTorch's VAE example; β = 1 is the
/// plain VAE). With `loss: "mse"` (tables) the reconstruction term is
/// `½·Σ(out - x)²` per sample, the negative log-likelihood of a unit-variance
/// Gaussian decoder without its constant `(D/2)·ln 2π`. `Default`: PyTorch's example, 784-400-20 (fc1 784→400 ReLU,
/// mu and logvar 400→20, fc3 20→400 ReLU, fc4 400→784).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeConfig {
    /// Input image shape.
    pub input: ImageShape,
    /// Dense or convolutional architecture.
    pub arch: VaeArch,
    /// Size of the latent space.
    pub latent_dim: usize,
    /// Weight of the KL term (finite, >= 0).
    pub beta: f64,
    /// Activation of the hidden layers.
    pub activation: Activation,
    /// The decoder's likelihood: `None` (absent in JSON) is a Bernoulli decoder
    /// (sigmoid output, BCE summed per sample) unless training resolves it
    /// from the data; `Some(Mse)` is a Gaussian decoder of unit variance
    /// (linear output), whose reconstruction term is `½·SSE` per sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<ReconLoss>,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            input: ImageShape::default(),
            arch: VaeArch::default(),
            latent_dim: 20,
            beta: 1.0,
            activation: Activation::Relu,
            loss: None,
        }
    }
}

impl VaeConfig {
    /// The default (dense) VAE for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        VaeConfig {
            input,
            ..VaeConfig::default()
        }
    }

    /// Sets the input shape.
    pub fn with_input(mut self, input: ImageShape) -> Self {
        self.input = input;
        self
    }

    /// Sets the architecture.
    pub fn with_arch(mut self, arch: VaeArch) -> Self {
        self.arch = arch;
        self
    }

    /// Sets the latent size.
    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = latent_dim;
        self
    }

    /// Sets β.
    pub fn with_beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// Sets the hidden activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the decoder's likelihood (output and reconstruction loss).
    pub fn with_loss(mut self, loss: ReconLoss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// The reconstruction loss the model trains with (BCE when unset).
    pub fn recon_loss(&self) -> ReconLoss {
        self.loss.unwrap_or_default()
    }

    /// Checks: latent >= 1, β finite and >= 0, a non-empty dense hidden list,
    /// or a valid conv stack (see [`ConvConfig::validate`](crate::ConvConfig::validate)).
    pub fn validate(&self) -> Result<()> {
        self.input.validate()?;
        check_latent(self.latent_dim)?;
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return invalid(format!(
                "vae beta must be finite and >= 0, got {}",
                self.beta
            ));
        }
        match &self.arch {
            VaeArch::Dense { hidden } => check_sizes("vae dense hidden sizes", hidden, false),
            VaeArch::Conv { channels, kernel } => {
                validate_conv_stack(&self.input, channels, *kernel)
            }
        }
    }
}

enum VaeNet {
    Dense {
        encoder: Vec<Linear>,
        decoder: Vec<Linear>,
    },
    Conv {
        encoder: ConvEncoder,
        fc: Linear,
        decoder: ConvDecoder,
        code: [usize; 3],
    },
}

/// The variational autoencoder.
///
/// Dense (default, PyTorch's VAE example): `encoder.i` (hidden, activation),
/// `mu` and `logvar` (→ latent), `decoder.i` (mirrored hidden, activation) and
/// a last `decoder.{H}` → logits; inputs `[N, C*H*W]`.
/// Conv: `encoder.i` conv stages as in [`ConvConfig`](crate::ConvConfig),
/// flatten, `mu`/`logvar`; `decoder.fc` (latent → `c*h*w`, activation),
/// reshape, conv-transpose stages `decoder.j` and the final conv
/// `decoder.{d}`; inputs `[N, C, H, W]`.
///
/// Loss: [`ae_losses::vae_loss_with`]: BCE from logits (or `½·SSE` of the
/// linear output, with `loss: mse`) + β·KL, each summed per image and averaged
/// over the batch.
pub struct Vae {
    net: VaeNet,
    mu: Linear,
    logvar: Linear,
    dtype: DType,
    cfg: VaeConfig,
}

impl Vae {
    /// Validates `cfg` and creates the layers from `vb`.
    pub fn new(cfg: &VaeConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let latent = cfg.latent_dim;
        let (net, features) = match &cfg.arch {
            VaeArch::Dense { hidden } => {
                let mut sizes = vec![cfg.input.dim()];
                sizes.extend_from_slice(hidden);
                let encoder = linear_stack(&sizes, &vb.pp("encoder"))?;
                let features = sizes.last().copied().unwrap_or(0);
                sizes.push(latent);
                sizes.remove(0);
                sizes.reverse();
                sizes.push(cfg.input.dim());
                let decoder = linear_stack(&sizes, &vb.pp("decoder"))?;
                (VaeNet::Dense { encoder, decoder }, features)
            }
            VaeArch::Conv { channels, kernel } => {
                let encoder = ConvEncoder::new(
                    &cfg.input,
                    channels,
                    *kernel,
                    cfg.activation,
                    &vb.pp("encoder"),
                )?;
                let code = bottleneck(&cfg.input, channels);
                let features: usize = code.iter().product();
                let fc = ae_kernels::nn::linear(latent, features, vb.pp("decoder").pp("fc"))?;
                let decoder = ConvDecoder::new(
                    &cfg.input,
                    channels,
                    *kernel,
                    cfg.activation,
                    &vb.pp("decoder"),
                )?;
                let net = VaeNet::Conv {
                    encoder,
                    fc,
                    decoder,
                    code,
                };
                (net, features)
            }
        };
        let mu = ae_kernels::nn::linear(features, latent, vb.pp("mu"))?;
        let logvar = ae_kernels::nn::linear(features, latent, vb.pp("logvar"))?;
        Ok(Vae {
            net,
            mu,
            logvar,
            dtype: vb.dtype(),
            cfg: cfg.clone(),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// The posterior of `x` (`[N, ...]` in the input layout): `(mu, logvar)`,
    /// each `[N, latent_dim]`.
    pub fn posterior(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.input_layout().check("input", x)?;
        let h = match &self.net {
            VaeNet::Dense { encoder, .. } => {
                run_stack(encoder, x, self.cfg.activation, Some(self.cfg.activation))?
            }
            VaeNet::Conv { encoder, .. } => encoder.forward(x)?.flatten_from(1)?,
        };
        Ok((self.mu.forward(&h)?, self.logvar.forward(&h)?))
    }

    /// The training pass's end from the posterior: `z = mu + exp(½ logvar)·eps`, or `z = mu`
    /// without `eps`, decoded.
    fn sample_and_decode(
        &self,
        mu: Tensor,
        logvar: Tensor,
        eps: Option<&Tensor>,
    ) -> Result<AeOutput> {
        let z = match eps {
            Some(eps) => reparameterise(&mu, &logvar, eps)?,
            None => mu.clone(),
        };
        let logits = self.decode(&z)?;
        Ok(AeOutput {
            logits,
            code: z,
            mu: Some(mu),
            logvar: Some(logvar),
        })
    }

    /// `n` standard normal latents `[n, latent_dim]` drawn from `rng` (row-major,
    /// one `f32` per value), on `device`, in the model's dtype.
    pub fn draw_normal(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Tensor> {
        let eps = standard_normal(n * self.cfg.latent_dim, rng);
        Ok(Tensor::from_vec(eps, (n, self.cfg.latent_dim), device)?.to_dtype(self.dtype)?)
    }

    /// Logits `[n, ...]` (input layout) decoded from `z ~ N(0, I)` drawn from `rng`.
    pub fn sample(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Tensor> {
        let z = self.draw_normal(n, rng, device)?;
        self.decode(&z)
    }
}

impl Autoencoder for Vae {
    fn kind(&self) -> ModelKind {
        ModelKind::Vae
    }

    fn input_layout(&self) -> InputLayout {
        match self.net {
            VaeNet::Dense { .. } => InputLayout::flat(&self.cfg.input),
            VaeNet::Conv { .. } => InputLayout::image(&self.cfg.input),
        }
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

    /// Input `[N, ...]` → `mu` `[N, latent_dim]` (deterministic).
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.posterior(x)?.0)
    }

    /// `z` `[N, latent_dim]` → logits (or, for MSE, the reconstruction)
    /// `[N, ...]` in the input layout.
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape("code", z, &[self.cfg.latent_dim])?;
        match &self.net {
            VaeNet::Dense { decoder, .. } => run_stack(decoder, z, self.cfg.activation, None),
            VaeNet::Conv {
                fc, decoder, code, ..
            } => {
                let h = linear_act(fc, z, Some(self.cfg.activation))?;
                let h = h.reshape((z.dim(0)?, code[0], code[1], code[2]))?;
                decoder.forward(&h)
            }
        }
    }

    /// `x` → the reconstruction from `z = mu`; the dense VAE's output sigmoid fused into its
    /// decoder's last layer (the same values as `output(decode(encode(x)))`).
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode(x)?;
        match &self.net {
            VaeNet::Dense { decoder, .. } => {
                let last = output_activation(self.cfg.recon_loss());
                run_stack(decoder, &z, self.cfg.activation, last)
            }
            VaeNet::Conv { .. } => self.output(&self.decode(&z)?),
        }
    }

    /// Input `[N, ...]` → logits (input layout), `mu`, `logvar` `[N, latent]`
    /// and code `z` `[N, latent]`: `z = mu + exp(½ logvar)·ε` with ε drawn
    /// from `rng` (see [`Vae::draw_normal`]), or `z = mu` when `rng` is `None`.
    fn forward(&self, x: &Tensor, rng: Option<&mut AeRng>) -> Result<AeOutput> {
        let (mu, logvar) = self.posterior(x)?;
        let eps = match rng {
            Some(rng) => Some(self.draw_normal(mu.dim(0)?, rng, mu.device())?),
            None => None,
        };
        self.sample_and_decode(mu, logvar, eps.as_ref())
    }

    /// `eps` `[n, latent]`, drawn by [`Vae::draw_normal`].
    fn draw_noise(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Option<Tensor>> {
        Ok(Some(self.draw_normal(n, rng, device)?))
    }

    /// As [`Autoencoder::forward`], with `z = mu + exp(½ logvar)·eps` for the given `eps`
    /// (`[N, latent]`), or `z = mu` without.
    fn forward_with_noise(&self, x: &Tensor, eps: Option<&Tensor>) -> Result<AeOutput> {
        let (mu, logvar) = self.posterior(x)?;
        self.sample_and_decode(mu, logvar, eps)
    }

    /// BCE from logits (or `½·SSE` for MSE) + β·KL, both per-image sums
    /// averaged over the batch; `kl` is the unweighted KL.
    fn loss(&self, out: &AeOutput, target: &Tensor) -> Result<LossParts> {
        self.input_layout().check("target", target)?;
        let (Some(mu), Some(logvar)) = (&out.mu, &out.logvar) else {
            return Err(crate::ModelError::MissingOutput("mu/logvar"));
        };
        let l = vae_loss_with(
            self.cfg.recon_loss(),
            &out.logits,
            target,
            mu,
            logvar,
            self.cfg.beta,
        )?;
        Ok(LossParts {
            total: l.total,
            recon: l.recon,
            kl: Some(l.kl),
            sparsity: None,
        })
    }

    /// Logits `[n, ...]` decoded from `z ~ N(0, I)` drawn from `rng`.
    fn sample_prior(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Option<Tensor>> {
        Ok(Some(self.sample(n, rng, device)?))
    }

    /// `(mu, logvar)`, each `[N, latent_dim]`.
    fn encode_dist(&self, x: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        Ok(Some(self.posterior(x)?))
    }

    /// The dense VAE's layers and loss; `None` for the convolutional VAE.
    fn dense_view(&self) -> Option<DenseView<'_>> {
        let VaeNet::Dense { encoder, decoder } = &self.net else {
            return None;
        };
        let act = self.cfg.activation;
        Some(DenseView::Vae(VaeView {
            encoder: describe_stack(encoder, act, Some(act)),
            mu: describe(&self.mu, None),
            logvar: describe(&self.logvar, None),
            decoder: describe_stack(decoder, act, None),
            recon: self.cfg.recon_loss(),
            beta: self.cfg.beta,
        }))
    }
}

impl Module for Vae {
    /// Deterministic reconstruction logits (`z = mu`) of `xs`, input layout.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mu = self.encode(xs).map_err(candle_core::Error::wrap)?;
        self.decode(&mu).map_err(candle_core::Error::wrap)
    }
}
