//! The error type of `ae-uses`: every message names the file, the model or the sizes it is about.

use std::path::PathBuf;

/// Errors of the measured uses (PCA, anomaly scores, `.aez` files, probes, IWAE).
#[derive(Debug, thiserror::Error)]
pub enum UsesError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A model could not be built or run.
    #[error(transparent)]
    Model(#[from] ae_models::ModelError),
    /// Training, loading or evaluating a run failed.
    #[error(transparent)]
    Train(#[from] ae_train::TrainError),
    /// Data could not be loaded.
    #[error(transparent)]
    Data(#[from] ae_data::DataError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `.aez` (or other) file is damaged, truncated or of another model.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Inputs do not fit each other (image sizes, lengths, classes).
    #[error("{0}")]
    Mismatch(String),
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The logistic-regression solver (argmin's L-BFGS, as linfa-logistic runs it) failed.
    #[error("linear probe: {0}")]
    Probe(String),
}

/// Result type of `ae-uses`.
pub type Result<T> = std::result::Result<T, UsesError>;

/// Attaches a path to an `io::Error`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> UsesError {
    let path = path.into();
    move |source| UsesError::Io { path, source }
}
