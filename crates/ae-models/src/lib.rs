//! The five autoencoders (vanilla, sparse, denoising, convolutional, VAE) on candle.
//!
//! Every model implements the object-safe [`Autoencoder`] trait (`encode`,
//! `decode` → logits, `forward(x, rng)` → [`AeOutput`], `loss` →
//! [`LossParts`]) and is described by a [`ModelConfig`] (serde, tagged by
//! `kind`). [`build`] validates a config and creates the model's tensors from a
//! candle-nn `VarBuilder`; [`init::seeded_init`] then draws every parameter
//! from our seeded RNG (Glorot-uniform weights, zero biases), so the same seed
//! gives bit-identical models.
//!
//! Models return **logits**; the sigmoid is in the loss (BCE from logits) and
//! in [`Autoencoder::reconstruct`]. The dense models and the VAE may instead
//! have a linear output trained with MSE (`loss: "mse"` in their config,
//! [`ReconLoss`]): what standardised tables use. Losses (see `ae_losses`): the plain
//! autoencoders report BCE as a per-pixel mean (what Keras prints), the VAE
//! reports BCE + β·KL summed per image and averaged over the batch (what
//! PyTorch's VAE example prints). Tensor names (the safetensors keys of a
//! checkpoint) and shapes are listed in `docs/models.md`.
//!
//! ```
//! use ae_models::{Autoencoder, ModelConfig, build, init};
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//!
//! let device = Device::Cpu;
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
//! // The default: the dense MNIST model 784-128-64-32-64-128-784.
//! let model = build(&ModelConfig::default(), vb)?;
//! init::seeded_init(&varmap, &mut ae_data::seeded(42))?;
//! assert_eq!(init::param_count(&varmap), 222_384);
//!
//! let x = Tensor::zeros(model.input_layout().shape(8), DType::F32, &device)?; // [8, 784]
//! let out = model.forward(&x, None)?;
//! assert_eq!(out.logits.dims(), &[8, 784]);
//! assert_eq!(out.code.dims(), &[8, 32]);
//! let loss = model.loss(&out, &x)?;
//! // A zero batch through zero biases gives zero logits: BCE = ln 2 per pixel.
//! let total = loss.total.to_scalar::<f32>()?;
//! assert!((total - std::f32::consts::LN_2).abs() < 1e-6);
//! # Ok::<(), ae_models::ModelError>(())
//! ```
#![warn(missing_docs)]

mod autoencoder;
mod config;
mod conv;
mod denoising;
mod dense;
mod error;
pub mod footprint;
pub mod init;
mod vae;
mod view;

pub use ae_data::{AeRng, Noise};
pub use autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts};
pub use config::{
    Activation, ConvConfig, DenoisingConfig, DenseConfig, ImageShape, ModelConfig, ModelKind,
    ReconLoss, SparseConfig, Sparsity, VaeArch, VaeConfig,
};
pub use conv::ConvAutoencoder;
pub use denoising::DenoisingAutoencoder;
pub use dense::{DenseAutoencoder, SparseAutoencoder};
pub use error::{ModelError, Result};
pub use footprint::{DEFAULT_MAX_MODEL_BYTES, Footprint, max_model_bytes, set_max_model_bytes};
pub use vae::Vae;
pub use view::{
    ChainView, CodePenalty, ConvStage, ConvView, DenseLayer, DenseView, VaeView, standard_normal,
};

use candle_nn::VarBuilder;

/// Validates `cfg`, then builds the model it describes, creating its tensors
/// from `vb` (e.g. `VarBuilder::from_varmap` to train, or
/// `VarBuilder::from_mmaped_safetensors` to load a checkpoint).
pub fn build(cfg: &ModelConfig, vb: VarBuilder<'_>) -> Result<Box<dyn Autoencoder>> {
    cfg.validate()?;
    Ok(match cfg {
        ModelConfig::Vanilla(c) => Box::new(DenseAutoencoder::new(c, vb)?),
        ModelConfig::Sparse(c) => Box::new(SparseAutoencoder::new(c, vb)?),
        ModelConfig::Denoising(c) => Box::new(DenoisingAutoencoder::new(c, vb)?),
        ModelConfig::Conv(c) => Box::new(ConvAutoencoder::new(c, vb)?),
        ModelConfig::Vae(c) => Box::new(Vae::new(c, vb)?),
    })
}

/// The README's library example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
