//! The variational autoencoder (dense or convolutional), with sampling from our RNG.
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

use crate::autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts, check_batch_shape};
use crate::config::{ModelKind, ReconLoss, VaeArch, VaeConfig, bottleneck};
use crate::conv::{ConvDecoder, ConvEncoder};
use crate::dense::{describe, describe_stack, linear_act, linear_stack, run_stack};
use crate::error::Result;
use crate::view::{DenseView, VaeView, standard_normal};

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

    /// Input `[N, ...]` → logits (input layout), `mu`, `logvar` `[N, latent]`
    /// and code `z` `[N, latent]`: `z = mu + exp(½ logvar)·ε` with ε drawn
    /// from `rng` (see [`Vae::draw_normal`]), or `z = mu` when `rng` is `None`.
    fn forward(&self, x: &Tensor, rng: Option<&mut AeRng>) -> Result<AeOutput> {
        let (mu, logvar) = self.posterior(x)?;
        let z = match rng {
            Some(rng) => {
                let eps = self.draw_normal(mu.dim(0)?, rng, mu.device())?;
                reparameterise(&mu, &logvar, &eps)?
            }
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
