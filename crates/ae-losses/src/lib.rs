//! Reconstruction, KL and sparsity losses for autoencoders, on candle tensors.
//!
//! Every loss takes candle tensors and returns a **scalar tensor** that is
//! differentiable with candle's autograd. How the per-element terms are
//! reduced is chosen with [`Reduction`]:
//!
//! | reduction | value | who prints it |
//! |---|---|---|
//! | [`Reduction::Mean`] | mean over every element | Keras (`loss="binary_crossentropy"`) for the plain autoencoders |
//! | [`Reduction::SumPerSample`] | sum over all dimensions but the first, mean over the batch | PyTorch's VAE example (`reduction="sum"` / batch size) |
//! | [`Reduction::Sum`] | sum over everything | |
//!
//! The plain autoencoders (vanilla, sparse, denoising, convolutional) report
//! the per-pixel mean; the VAE reports the per-image sum averaged over the
//! batch ([`vae_loss`]).
//!
//! Which reconstruction loss a model uses is a [`ReconLoss`] in its config:
//! BCE from logits (sigmoid output, images in [0, 1]) or MSE (linear output,
//! standardised tables); the VAE's Gaussian form is `½·SSE` ([`vae_loss_with`]).
//! Each loss is defined here once; the models pick it.
//!
//! The losses a training step computed outside candle's graph needs (ae-train's fused CPU
//! step of the dense models) also have a plain-slice form beside their tensor form, named
//! `*_flat`: the same per-element term (BCE's is one kernel for both), the same
//! [`Reduction`] normalisation, and the gradient written out (`tests/flat.rs` checks each
//! against its tensor form and candle's autograd).
//!
//! Binary cross-entropy is computed from **logits** in the numerically stable
//! form `max(x, 0) - x·y + ln(1 + e^{-|x|})`, whose value and gradient stay
//! finite for logits of ±1e4 (unlike `candle_nn::loss::binary_cross_entropy_with_logit`,
//! which is NaN there).
//!
//! ```
//! use ae_losses::{bce_with_logits, Reduction};
//! use candle_core::{Device, Tensor};
//!
//! let logits = Tensor::new(&[[1e4f32, -1e4], [0.0, 2.0]], &Device::Cpu)?;
//! let target = Tensor::new(&[[1f32, 0.], [0.5, 1.]], &Device::Cpu)?;
//! let loss = bce_with_logits(&logits, &target, Reduction::Mean)?;
//! assert!(loss.to_scalar::<f32>()?.is_finite());
//! # Ok::<(), ae_losses::LossError>(())
//! ```
#![warn(missing_docs)]

mod kl;
mod reconstruction;
mod reduction;
mod sparsity;
mod vae;

pub use kl::{gaussian_kl, gaussian_kl_flat};
pub use reconstruction::{
    ReconLoss, bce_with_logits, bce_with_logits_flat, mse, mse_flat, mse_from_logits,
};
pub use reduction::Reduction;
pub use sparsity::{kl_sparsity, l1_activity, l1_activity_flat, l1_activity_flat_grad};
pub use vae::{
    VaeLoss, VaeLossFlat, reparameterise, reparameterise_flat, vae_latent_grad, vae_loss,
    vae_loss_flat, vae_loss_flat_with, vae_loss_with,
};

use candle_core::Tensor;

/// Errors of the loss functions.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// Two tensors that must have the same shape (or batch size) do not.
    #[error("{what}: shape {left:?} does not match shape {right:?}")]
    ShapeMismatch {
        /// Which pair of tensors, e.g. `"mse: prediction vs target"`.
        what: &'static str,
        /// Shape of the first tensor.
        left: Vec<usize>,
        /// Shape of the second tensor.
        right: Vec<usize>,
    },
    /// An argument outside its domain (a negative β, ρ outside (0, 1), an
    /// empty tensor, a scalar where a batch is needed).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error raised by candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, LossError>;

/// Fails with [`LossError::ShapeMismatch`] unless `a` and `b` have the same shape.
pub(crate) fn same_shape(what: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(LossError::ShapeMismatch {
            what,
            left: a.dims().to_vec(),
            right: b.dims().to_vec(),
        });
    }
    Ok(())
}

/// Fails with [`LossError::ShapeMismatch`] unless `values` holds the `numel` values of a
/// tensor of shape `dims` (for the plain-slice forms of the losses).
pub(crate) fn check_len(what: &'static str, values: &[f32], dims: &[usize]) -> Result<()> {
    let numel: usize = dims.iter().product();
    if values.len() != numel {
        return Err(LossError::ShapeMismatch {
            what,
            left: vec![values.len()],
            right: dims.to_vec(),
        });
    }
    Ok(())
}
