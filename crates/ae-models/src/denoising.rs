//! The denoising autoencoder: a base model plus the input corruption the trainer applies.

use ae_data::{AeRng, Noise};
use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts};
use crate::config::{DenoisingConfig, ModelKind, ReconLoss};
use crate::error::Result;
use crate::view::DenseView;

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

    /// The base model's `forward` on the (already corrupted) input `x`.
    fn forward(&self, x: &Tensor, rng: Option<&mut AeRng>) -> Result<AeOutput> {
        self.base.forward(x, rng)
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
}

impl Module for DenoisingAutoencoder {
    /// Deterministic reconstruction logits of `xs`, input layout.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let z = self.encode(xs).map_err(candle_core::Error::wrap)?;
        self.decode(&z).map_err(candle_core::Error::wrap)
    }
}
