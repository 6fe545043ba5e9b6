//! The error type of ae-models.

use ae_losses::LossError;

/// Errors of model configuration, construction and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration cannot describe a working model (zero sizes, a
    /// kernel larger than the feature map, β < 0, NaN, ...). Returned by
    /// `validate()` before anything is built.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A tensor given to `encode`/`decode`/`forward` has the wrong shape.
    #[error("{what} has shape {got:?}, expected {expected}")]
    InputShape {
        /// Which tensor: `"input"`, `"code"`, ...
        what: &'static str,
        /// The expected shape, e.g. `[N, 784]` or `[N, 1, 28, 28]` (N >= 1).
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// An [`AeOutput`](crate::AeOutput) lacks a part the loss needs (e.g. a
    /// VAE loss on an output without `mu`/`logvar`).
    #[error("the model output has no {0}: pass the output of this model's forward")]
    MissingOutput(&'static str),
    /// A loss computation failed (e.g. target and logits of different shapes).
    #[error(transparent)]
    Loss(#[from] LossError),
    /// An error raised by candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Shorthand for an [`ModelError::InvalidConfig`] error.
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(ModelError::InvalidConfig(msg.into()))
}
