//! The denoising autoencoder, a base model plus the input corruption the trainer applies,
//! and its configuration (`DenoisingConfig`).

use ae_data::{AeRng, Noise};
use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts};
use crate::config::{ConvConfig, ImageShape, ModelConfig, ModelKind, ReconLoss};
use crate::error::{Result, invalid};
use crate::view::{ConvView, DenseView};

/// The denoising autoencoder: any base model trained on corrupted inputs
/// against the clean targets.
///
/// The trainer corrupts each input batch with `noise` (the model exposes it
/// through [`Autoencoder::noise`](crate::Autoencoder::noise)); the loss is the
/// base model's loss against the clean batch. The base may be vanilla, sparse,
/// conv or VAE, not denoising itself. Tensor names are the base model's.
/// `Default`: the default conv model with Gaussian noise of std 0.4 (the
/// keras.io denoising example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenoisingConfig {
    /// The model that is trained.
    pub base: Box<ModelConfig>,
    /// The corruption of the inputs.
    pub noise: Noise,
}

impl Default for DenoisingConfig {
    fn default() -> Self {
        DenoisingConfig::for_input(ImageShape::default())
    }
}

impl DenoisingConfig {
    /// The default (conv base, Gaussian std 0.4) for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        DenoisingConfig {
            base: Box::new(ModelConfig::Conv(ConvConfig::for_input(input))),
            noise: Noise::Gaussian { std: 0.4 },
        }
    }

    /// Sets the base model.
    pub fn with_base(mut self, base: ModelConfig) -> Self {
        self.base = Box::new(base);
        self
    }

    /// Sets the noise.
    pub fn with_noise(mut self, noise: Noise) -> Self {
        self.noise = noise;
        self
    }

    /// Checks the noise and the base (which must not be denoising itself).
    pub fn validate(&self) -> Result<()> {
        if let Err(e) = self.noise.validate() {
            return invalid(format!("denoising noise: {e}"));
        }
        if self.base.kind() == ModelKind::Denoising {
            return invalid("the base of a denoising model cannot itself be denoising");
        }
        self.base.validate()
    }
}

/// A base autoencoder (vanilla, sparse, conv or VAE) trained on corrupted
/// inputs against clean targets.
///
/// The model itself does not corrupt anything: the trainer applies
/// [`noise`](Autoencoder::noise) to each input batch, runs `forward` on it and
/// calls `loss` with the **clean** batch as target. Every other method is the
/// base model's, and so are the tensor names (no prefix): a denoising conv
/// checkpoint has conv names.
pub struct DenoisingAutoencoder {
    base: Box<dyn Autoencoder>,
    noise: Noise,
}

impl DenoisingAutoencoder {
    /// Validates `cfg` and builds the base model from `vb`.
    pub fn new(cfg: &DenoisingConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        Ok(DenoisingAutoencoder {
            base: crate::build(&cfg.base, vb)?,
            noise: cfg.noise,
        })
    }

    /// The base model.
    pub fn base(&self) -> &dyn Autoencoder {
        self.base.as_ref()
    }
}

impl Autoencoder for DenoisingAutoencoder {
    fn kind(&self) -> ModelKind {
        ModelKind::Denoising
    }

    fn input_layout(&self) -> InputLayout {
        self.base.input_layout()
    }

    fn latent_dim(&self) -> usize {
        self.base.latent_dim()
    }

    fn code_shape(&self) -> Vec<usize> {
        self.base.code_shape()
    }

    fn recon_loss(&self) -> ReconLoss {
        self.base.recon_loss()
    }

    /// The base model's `encode` (input layout → code).
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.base.encode(x)
    }

    /// The base model's `decode` (code → logits in the input layout).
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.base.decode(z)
    }

    fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.base.reconstruct(x)
    }

    /// The base model's `forward` on the (already corrupted) input `x`.
    fn forward(&self, x: &Tensor, rng: Option<&mut AeRng>) -> Result<AeOutput> {
        self.base.forward(x, rng)
    }

    fn draw_noise(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Option<Tensor>> {
        self.base.draw_noise(n, rng, device)
    }

    fn forward_with_noise(&self, x: &Tensor, eps: Option<&Tensor>) -> Result<AeOutput> {
        self.base.forward_with_noise(x, eps)
    }

    /// The base model's loss against the clean `target`.
    fn loss(&self, out: &AeOutput, target: &Tensor) -> Result<LossParts> {
        self.base.loss(out, target)
    }

    fn noise(&self) -> Option<&Noise> {
        Some(&self.noise)
    }

    fn sample_prior(&self, n: usize, rng: &mut AeRng, device: &Device) -> Result<Option<Tensor>> {
        self.base.sample_prior(n, rng, device)
    }

    fn encode_dist(&self, x: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        self.base.encode_dist(x)
    }

    /// The base model's description: the trainer corrupts the input, the loss is the
    /// base's against the clean target.
    fn dense_view(&self) -> Option<DenseView<'_>> {
        self.base.dense_view()
    }

    /// The base model's description, as [`Autoencoder::dense_view`].
    fn conv_view(&self) -> Option<ConvView<'_>> {
        self.base.conv_view()
    }
}

impl Module for DenoisingAutoencoder {
    /// Deterministic reconstruction logits of `xs`, input layout.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let z = self.encode(xs).map_err(candle_core::Error::wrap)?;
        self.decode(&z).map_err(candle_core::Error::wrap)
    }
}
