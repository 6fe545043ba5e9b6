//! The `Autoencoder` trait shared by all models, and its input/output types.
//!
//! A model's last layer gives logits (sigmoid output, BCE: images) or the
//! reconstruction itself (linear output, MSE: standardised tables), as its
//! [`recon_loss`](Autoencoder::recon_loss) says; [`Autoencoder::output`] turns
//! either into the reconstruction.

use ae_data::{AeRng, Noise};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{ImageShape, ModelKind, ReconLoss};
use crate::error::{ModelError, Result};
use crate::view::{ConvView, DenseView};

/// The layout of the input (and reconstruction) tensors of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum InputLayout {
    /// `[N, dim]`, images flattened row-major (dense models).
    Flat {
        /// `channels * height * width`.
        dim: usize,
    },
    /// `[N, channels, height, width]` (convolutional models).
    Image {
        /// Number of channels.
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
}

impl InputLayout {
    /// The flat layout of images of shape `input`.
    pub fn flat(input: &ImageShape) -> Self {
        InputLayout::Flat { dim: input.dim() }
    }

    /// The image layout of images of shape `input`.
    pub fn image(input: &ImageShape) -> Self {
        InputLayout::Image {
            channels: input.channels,
            height: input.height,
            width: input.width,
        }
    }

    /// The full tensor shape for a batch of `n`: `[n, dim]` or `[n, c, h, w]`.
    pub fn shape(&self, n: usize) -> Vec<usize> {
        match *self {
            InputLayout::Flat { dim } => vec![n, dim],
            InputLayout::Image {
                channels,
                height,
                width,
            } => vec![n, channels, height, width],
        }
    }

    /// Whether images of `channels x height x width` fit this layout: the
    /// same shape for image models, the same number of values for flat ones.
    pub fn accepts(&self, channels: usize, height: usize, width: usize) -> bool {
        match *self {
            InputLayout::Flat { dim } => dim == channels * height * width,
            InputLayout::Image {
                channels: c,
                height: h,
                width: w,
            } => (c, h, w) == (channels, height, width),
        }
    }

    /// Number of values per sample.
    pub fn dim(&self) -> usize {
        self.shape(1).iter().product()
    }

    /// The matching `ae_data` batch layout.
    pub fn data_layout(&self) -> ae_data::Layout {
        match self {
            InputLayout::Flat { .. } => ae_data::Layout::Flat,
            InputLayout::Image { .. } => ae_data::Layout::Image,
        }
    }

    /// Fails with [`ModelError::InputShape`] unless `x` is `[N, ...]` in
    /// this layout with `N >= 1`.
    pub fn check(&self, what: &'static str, x: &Tensor) -> Result<()> {
        check_batch_shape(what, x, &self.shape(1)[1..])
    }
}

/// Fails with [`ModelError::InputShape`] unless `x` is `[N, per_sample...]` with `N >= 1`.
pub(crate) fn check_batch_shape(
    what: &'static str,
    x: &Tensor,
    per_sample: &[usize],
) -> Result<()> {
    let dims = x.dims();
    if dims.len() != per_sample.len() + 1 || dims[0] == 0 || dims[1..] != *per_sample {
        let rest: Vec<String> = per_sample.iter().map(|d| d.to_string()).collect();
        return Err(ModelError::InputShape {
            what,
            expected: format!("[N >= 1, {}]", rest.join(", ")),
            got: dims.to_vec(),
        });
    }
    Ok(())
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct AeOutput {
    /// The last layer's output, in the input layout: logits for a BCE model
    /// (`σ(logits)` is the image), the reconstruction itself for an MSE model
    /// (see [`Autoencoder::output`]).
    pub logits: Tensor,
    /// The code that was decoded: `[N, latent]` for dense models and the VAE
    /// (for the VAE, the sample `z`, or `mu` without rng), `[N, C, h, w]` for
    /// the conv model.
    pub code: Tensor,
    /// VAE only: posterior mean `[N, latent]`.
    pub mu: Option<Tensor>,
    /// VAE only: posterior log-variance `[N, latent]`.
    pub logvar: Option<Tensor>,
}

/// The loss of a batch and its parts, all scalar tensors.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// What the optimiser minimises: `recon + (β·kl) + sparsity`.
    pub total: Tensor,
    /// Reconstruction term: BCE from logits (or MSE for a linear output),
    /// per-pixel mean for the plain autoencoders; for the VAE the per-image sum
    /// of BCE (or `½·SSE`) averaged over the batch.
    pub recon: Tensor,
    /// VAE only: KL to the prior, per-image sum averaged over the batch, not β-weighted.
    pub kl: Option<Tensor>,
    /// Sparse only: the weighted sparsity penalty (`λ·L1` or `β·KL`), as added to `total`.
    pub sparsity: Option<Tensor>,
}

/// The interface every autoencoder implements (object safe: models are used
/// as `Box<dyn Autoencoder>`).
pub trait Autoencoder: Send + Sync {
    /// Which kind of model this is.
    fn kind(&self) -> ModelKind;

    /// The layout of inputs, targets and reconstructions.
    fn input_layout(&self) -> InputLayout;

    /// Size of the flattened code.
    fn latent_dim(&self) -> usize;

    /// Shape of one code, without the batch dimension (`[latent]`, or
    /// `[C, h, w]` for the conv model).
    fn code_shape(&self) -> Vec<usize>;

    /// Encodes `x` (`[N, ...]` in [`input_layout`](Autoencoder::input_layout))
    /// to codes `[N, code_shape...]`. Deterministic: the VAE returns `mu`.
    fn encode(&self, x: &Tensor) -> Result<Tensor>;

    /// Decodes codes `[N, code_shape...]` (or flattened `[N, latent_dim]`) to
    /// the last layer's output `[N, ...]` in the input layout (logits, or the
    /// reconstruction for an MSE model: see [`output`](Autoencoder::output)).
    fn decode(&self, z: &Tensor) -> Result<Tensor>;

    /// The reconstruction loss, and with it the output activation: BCE with a
    /// sigmoid output (the default), or MSE with a linear output.
    fn recon_loss(&self) -> ReconLoss {
        ReconLoss::Bce
    }

    /// The reconstruction of the last layer's output `out` (any shape, same
    /// shape back): `σ(out)` for a BCE model, `out` itself for an MSE model.
    fn output(&self, out: &Tensor) -> Result<Tensor> {
        Ok(self.recon_loss().output(out)?)
    }

    /// Full pass on `x` (`[N, ...]` in the input layout). With `rng = Some`
    /// (training) the VAE samples `z = mu + exp(0.5 logvar) * eps`, eps drawn
    /// from `rng`; with `None` it uses `z = mu`. Other models ignore `rng`.
    fn forward(&self, x: &Tensor, rng: Option<&mut AeRng>) -> Result<AeOutput>;

    /// The noise a training [`forward`](Autoencoder::forward) pass on `n` samples draws,
    /// drawn from `rng` exactly as that pass would draw it, on `device` (the VAE's `eps`,
    /// `[n, latent]`); `Ok(None)` for models that draw none. With
    /// [`forward_with_noise`](Autoencoder::forward_with_noise) it splits a training pass into
    /// the host's draw and the device's work, which is then the same every step (what a
    /// training step recorded into a CUDA graph replays).
    fn draw_noise(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Option<Tensor>> {
        let _ = (n, rng, device);
        Ok(None)
    }

    /// A training forward pass on `x` with the noise drawn by
    /// [`draw_noise`](Autoencoder::draw_noise) (`None` for models that draw none): the same
    /// output as `forward(x, Some(rng))` when `eps` was drawn from that `rng`.
    fn forward_with_noise(&self, x: &Tensor, eps: Option<&Tensor>) -> Result<AeOutput> {
        let _ = eps;
        self.forward(x, None)
    }

    /// The loss of `out` against `target` (the layout and shape of the input;
    /// values in [0, 1] for a BCE model, any for an MSE model; for denoising,
    /// the clean batch).
    fn loss(&self, out: &AeOutput, target: &Tensor) -> Result<LossParts>;

    /// The corruption the trainer applies to inputs (denoising models only).
    fn noise(&self) -> Option<&Noise> {
        None
    }

    /// `output(decode(encode(x)))`: the reconstruction, shape of `x` (in
    /// [0, 1] for a BCE model, unbounded for an MSE model).
    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode(x)?;
        self.output(&self.decode(&z)?)
    }

    /// Generative models (the VAE) only: logits `[n, ...]` in the input
    /// layout decoded from `z ~ N(0, I)` drawn from `rng`. `Ok(None)` for the others.
    fn sample_prior(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Option<Tensor>> {
        let _ = (n, rng, device);
        Ok(None)
    }

    /// VAE only: the posterior `(mu, logvar)`, each `[N, latent]`, of `x`.
    /// `Ok(None)` for the others.
    fn encode_dist(&self, x: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        let _ = x;
        Ok(None)
    }

    /// The model as plain data when it is made only of fully connected layers (the
    /// dense models, the dense VAE, a denoising model over either): every layer's
    /// parameters and activation, and which loss [`loss`](Autoencoder::loss) computes.
    /// `None` for the others (convolutional models).
    ///
    /// What code that trains the model outside candle's graph reads (`ae-train`'s fused
    /// CPU step, which decides itself which descriptions it can compute); the model does
    /// not know what the description is used for. See [`DenseView`].
    fn dense_view(&self) -> Option<DenseView<'_>> {
        None
    }

    /// The model as a chain of convolutions and pools with a BCE loss, when it is one (the
    /// conv autoencoder without a dense code, and a denoising model over it); read like
    /// [`Autoencoder::dense_view`]. See [`ConvView`].
    fn conv_view(&self) -> Option<ConvView<'_>> {
        None
    }
}

/// Reshapes a flattened code `[N, prod(code_shape)]` to `[N, code_shape...]`
/// and checks the shape either way.
pub(crate) fn code_to_shape(z: &Tensor, code_shape: &[usize]) -> Result<Tensor> {
    let latent: usize = code_shape.iter().product();
    if code_shape.len() > 1 && z.rank() == 2 && z.dim(1)? == latent && z.dim(0)? > 0 {
        let mut shape = vec![z.dim(0)?];
        shape.extend_from_slice(code_shape);
        return Ok(z.reshape(shape)?);
    }
    check_batch_shape("code", z, code_shape)?;
    Ok(z.clone())
}
