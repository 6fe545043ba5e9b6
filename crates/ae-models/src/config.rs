//! What every model configuration shares: the input's [`ImageShape`], the [`Activation`]s,
//! the [`ModelKind`]s and size limits, and [`ModelConfig`], the configuration of any model.
//!
//! Each model's own configuration (plain serde structs with `Default`, `validate()` and
//! builder setters) is beside the model, in its module: `DenseConfig`, `SparseConfig` and
//! `Sparsity` in `dense.rs`, `ConvConfig` in `conv.rs`, `DenoisingConfig` in
//! `denoising.rs`, `VaeConfig` and `VaeArch` in `vae.rs`; this module re-exports them.
//!
//! The image size and channel count of every model come from its `input`
//! ([`ImageShape`], set from the data), never from constants. Every config is
//! validated by [`build`](crate::build) before a single tensor is created, so a
//! bad config is a [`ModelError::InvalidConfig`](crate::ModelError::InvalidConfig)
//! naming the offending sizes, never a shape panic inside candle.
//!
//! The dense models (vanilla, sparse, a denoising model with a dense base) and
//! the VAE record their output and reconstruction loss in `loss`
//! ([`ReconLoss`]): absent or `"bce"` is the sigmoid output trained with BCE
//! (images; what every config written before the field had), `"mse"` a linear
//! (identity) output trained with MSE (standardised tables: the plain models
//! report the mean squared error per value; the VAE's Gaussian decoder uses
//! `½·SSE` per sample + β·KL, see `ae_losses::vae_loss_with`). Absent means
//! "the data's default": training resolves it (MSE for a standardised table)
//! and records the choice in the run's `config.json`. The conv model has the
//! sigmoid output only.

use std::fmt;
use std::str::FromStr;

pub use ae_losses::ReconLoss;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

pub use crate::conv::ConvConfig;
pub use crate::denoising::DenoisingConfig;
pub use crate::dense::{DenseConfig, SparseConfig, Sparsity};
use crate::error::{Result, invalid};
pub use crate::vae::{VaeArch, VaeConfig};

/// The shape of one input image, `channels x height x width`.
///
/// `Default` is MNIST: 1x28x28.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    /// Number of channels (1 for grey-scale).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl Default for ImageShape {
    fn default() -> Self {
        ImageShape::new(1, 28, 28)
    }
}

impl ImageShape {
    /// A `channels x height x width` image shape.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        ImageShape {
            channels,
            height,
            width,
        }
    }

    /// Number of values per image, `channels * height * width` (saturating).
    pub fn dim(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// Checks that no size is zero and that an image holds at most
    /// `MAX_IMAGE_VALUES` (2^28) values.
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return invalid(format!(
                "input image {self} has a zero size (channels, height and width must be >= 1)"
            ));
        }
        if self.dim() > MAX_IMAGE_VALUES {
            return invalid(format!(
                "input image {self} has {} values, more than the {MAX_IMAGE_VALUES} an image may have",
                self.dim()
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `1 / (1 + e^{-x})`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// GELU with the exact erf form (the PyTorch and Keras default).
    Gelu,
    /// ELU with α = 1.
    Elu,
    /// Leaky ReLU with negative slope 0.01 (the PyTorch default).
    LeakyRelu,
}

impl Activation {
    /// Applies the activation element-wise; the output has the input's shape.
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Relu => ae_kernels::relu(x),
            Activation::Sigmoid => ae_kernels::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => x.gelu_erf(),
            Activation::Elu => x.elu(1.0),
            Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, 0.01),
        }
    }
}

/// The five kinds of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Dense (fully connected) autoencoder.
    Vanilla,
    /// Dense autoencoder with a sparsity penalty on the code.
    Sparse,
    /// Any base autoencoder trained on corrupted inputs against clean targets.
    Denoising,
    /// Convolutional autoencoder.
    Conv,
    /// Variational autoencoder.
    Vae,
}

impl ModelKind {
    /// All kinds, in declaration order.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Vanilla,
        ModelKind::Sparse,
        ModelKind::Denoising,
        ModelKind::Conv,
        ModelKind::Vae,
    ];

    /// The kebab-case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Vanilla => "vanilla",
            ModelKind::Sparse => "sparse",
            ModelKind::Denoising => "denoising",
            ModelKind::Conv => "conv",
            ModelKind::Vae => "vae",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = crate::ModelError;

    /// Parses `vanilla`, `sparse`, `denoising`, `conv`, `vae` (case-insensitive;
    /// `dense`, `convolutional` and `variational` are accepted as aliases).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vanilla" | "dense" => Ok(ModelKind::Vanilla),
            "sparse" => Ok(ModelKind::Sparse),
            "denoising" => Ok(ModelKind::Denoising),
            "conv" | "convolutional" => Ok(ModelKind::Conv),
            "vae" | "variational" => Ok(ModelKind::Vae),
            other => invalid(format!(
                "unknown model kind {other:?} (expected vanilla, sparse, denoising, conv or vae)"
            )),
        }
    }
}

/// The most values one image may have (2^28: e.g. 3 x 8192 x 8192).
pub const MAX_IMAGE_VALUES: usize = 1 << 28;

/// The largest layer width, channel count or code size (2^24), whatever the
/// memory limit: it keeps every size product far from overflowing.
pub const MAX_LAYER_SIZE: usize = 1 << 24;

pub(crate) fn check_sizes(what: &str, sizes: &[usize], allow_empty: bool) -> Result<()> {
    if sizes.is_empty() && !allow_empty {
        return invalid(format!("{what} must not be empty"));
    }
    if let Some(i) = sizes.iter().position(|&s| s == 0) {
        return invalid(format!("{what} {sizes:?} has a zero size at position {i}"));
    }
    if sizes.len() > 64 {
        return invalid(format!("{what} has {} layers, at most 64", sizes.len()));
    }
    if let Some(&s) = sizes.iter().find(|&&s| s > MAX_LAYER_SIZE) {
        return invalid(format!(
            "{what}: size {s} is larger than any layer may be ({MAX_LAYER_SIZE})"
        ));
    }
    Ok(())
}

pub(crate) fn check_latent(latent_dim: usize) -> Result<()> {
    if latent_dim == 0 {
        return invalid("latent_dim must be >= 1, got 0");
    }
    if latent_dim > MAX_LAYER_SIZE {
        return invalid(format!(
            "latent_dim {latent_dim} is larger than any layer may be ({MAX_LAYER_SIZE})"
        ));
    }
    Ok(())
}

/// The configuration of any model, tagged by `kind` in JSON:
/// `{"kind": "conv", "input": {...}, "channels": [32, 32], ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// Dense autoencoder.
    Vanilla(DenseConfig),
    /// Sparse dense autoencoder.
    Sparse(SparseConfig),
    /// Denoising autoencoder around a base model.
    Denoising(DenoisingConfig),
    /// Convolutional autoencoder.
    Conv(ConvConfig),
    /// Variational autoencoder.
    Vae(VaeConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Vanilla(DenseConfig::default())
    }
}

impl ModelConfig {
    /// The default configuration of `kind` for images of shape `input`.
    pub fn default_for(kind: ModelKind, input: ImageShape) -> Self {
        match kind {
            ModelKind::Vanilla => ModelConfig::Vanilla(DenseConfig::for_input(input)),
            ModelKind::Sparse => ModelConfig::Sparse(SparseConfig::for_input(input)),
            ModelKind::Denoising => ModelConfig::Denoising(DenoisingConfig::for_input(input)),
            ModelKind::Conv => ModelConfig::Conv(ConvConfig::for_input(input)),
            ModelKind::Vae => ModelConfig::Vae(VaeConfig::for_input(input)),
        }
    }

    /// Which kind of model this builds.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::Vanilla(_) => ModelKind::Vanilla,
            ModelConfig::Sparse(_) => ModelKind::Sparse,
            ModelConfig::Denoising(_) => ModelKind::Denoising,
            ModelConfig::Conv(_) => ModelKind::Conv,
            ModelConfig::Vae(_) => ModelKind::Vae,
        }
    }

    /// The input image shape.
    pub fn input(&self) -> ImageShape {
        match self {
            ModelConfig::Vanilla(c) => c.input,
            ModelConfig::Sparse(c) => c.dense.input,
            ModelConfig::Denoising(c) => c.base.input(),
            ModelConfig::Conv(c) => c.input,
            ModelConfig::Vae(c) => c.input,
        }
    }

    /// Sets the input image shape (of the base, for denoising).
    pub fn with_input(self, input: ImageShape) -> Self {
        match self {
            ModelConfig::Vanilla(c) => ModelConfig::Vanilla(c.with_input(input)),
            ModelConfig::Sparse(mut c) => {
                c.dense.input = input;
                ModelConfig::Sparse(c)
            }
            ModelConfig::Denoising(mut c) => {
                c.base = Box::new(c.base.with_input(input));
                ModelConfig::Denoising(c)
            }
            ModelConfig::Conv(c) => ModelConfig::Conv(c.with_input(input)),
            ModelConfig::Vae(c) => ModelConfig::Vae(c.with_input(input)),
        }
    }

    /// The size of the flattened code (for conv: the dense code, or
    /// `channels.last * h/2^d * w/2^d`).
    pub fn latent_dim(&self) -> usize {
        match self {
            ModelConfig::Vanilla(c) => c.latent_dim,
            ModelConfig::Sparse(c) => c.dense.latent_dim,
            ModelConfig::Denoising(c) => c.base.latent_dim(),
            ModelConfig::Conv(c) => c.latent_dim(),
            ModelConfig::Vae(c) => c.latent_dim,
        }
    }

    /// Sets the size of the flattened code. A conv model with a dense code
    /// gets a dense code of `k`; without one the code is `[c, h, w]` with
    /// `h, w` fixed by the image and depth, so `k` must be a multiple of `h*w`
    /// and sets the last encoder channel count to `k / (h*w)`.
    pub fn with_latent_dim(self, k: usize) -> Result<Self> {
        check_latent(k)?;
        Ok(match self {
            ModelConfig::Vanilla(c) => ModelConfig::Vanilla(c.with_latent_dim(k)),
            ModelConfig::Sparse(mut c) => {
                c.dense.latent_dim = k;
                ModelConfig::Sparse(c)
            }
            ModelConfig::Denoising(mut c) => {
                c.base = Box::new(c.base.with_latent_dim(k)?);
                ModelConfig::Denoising(c)
            }
            ModelConfig::Conv(mut c) if c.dense_code.is_some() => {
                c.dense_code = Some(k);
                ModelConfig::Conv(c)
            }
            ModelConfig::Conv(mut c) => {
                c.validate()?;
                let [_, h, w] = c.code_shape();
                if !k.is_multiple_of(h * w) {
                    return invalid(format!(
                        "the conv code is C x {h} x {w}: latent dim {k} is not a multiple of {}",
                        h * w
                    ));
                }
                if let Some(last) = c.channels.last_mut() {
                    *last = k / (h * w);
                }
                ModelConfig::Conv(c)
            }
            ModelConfig::Vae(c) => ModelConfig::Vae(c.with_latent_dim(k)),
        })
    }

    /// The recorded output and reconstruction loss (of the base, for
    /// denoising); `None` when unset, and always for the conv model.
    pub fn loss(&self) -> Option<ReconLoss> {
        match self {
            ModelConfig::Vanilla(c) => c.loss,
            ModelConfig::Sparse(c) => c.dense.loss,
            ModelConfig::Denoising(c) => c.base.loss(),
            ModelConfig::Conv(_) => None,
            ModelConfig::Vae(c) => c.loss,
        }
    }

    /// The reconstruction loss the model trains with (BCE when unset).
    pub fn recon_loss(&self) -> ReconLoss {
        self.loss().unwrap_or_default()
    }

    /// Records the output and reconstruction loss (of the base, for
    /// denoising). The conv model has a sigmoid output only: MSE is an error.
    pub fn set_loss(&mut self, loss: ReconLoss) -> Result<()> {
        match self {
            ModelConfig::Vanilla(c) => c.loss = Some(loss),
            ModelConfig::Sparse(c) => c.dense.loss = Some(loss),
            ModelConfig::Denoising(c) => c.base.set_loss(loss)?,
            ModelConfig::Conv(_) if loss == ReconLoss::Bce => {}
            ModelConfig::Conv(_) => {
                return invalid(
                    "the conv model has a sigmoid output trained with bce only; mse (a linear \
                     output) is for the dense models and the vae",
                );
            }
            ModelConfig::Vae(c) => c.loss = Some(loss),
        }
        Ok(())
    }

    /// Checks the configuration (see each config's `validate`), then its size:
    /// the estimated bytes of the model and one image's activations must stay
    /// within [`crate::max_model_bytes`] ([`ModelConfig::check_footprint`]).
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Vanilla(c) => c.validate(),
            ModelConfig::Sparse(c) => c.validate(),
            ModelConfig::Denoising(c) => c.validate(),
            ModelConfig::Conv(c) => c.validate(),
            ModelConfig::Vae(c) => c.validate(),
        }?;
        self.check_footprint(1)
    }
}
