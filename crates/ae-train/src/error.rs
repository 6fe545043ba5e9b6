//! The error type of `ae-train`: every message names the file or the run it is about.

use std::path::PathBuf;

/// Errors from training, checkpoints and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The model could not be built or run.
    #[error(transparent)]
    Model(#[from] ae_models::ModelError),
    /// A loss could not be computed.
    #[error(transparent)]
    Loss(#[from] ae_losses::LossError),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] ae_data::DataError),
    /// A configuration value is out of range.
    #[error("invalid training config: {0}")]
    InvalidConfig(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file of a run is malformed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A checkpoint does not fit the model or is damaged.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "training diverged: loss is {loss} at epoch {epoch}, batch {batch}; \
         the last complete epoch's checkpoint is kept (try a smaller --lr)"
    )]
    NonFinite {
        /// Epoch (1-based) where it happened.
        epoch: usize,
        /// Batch index within the epoch.
        batch: usize,
        /// The loss value.
        loss: f64,
    },
    /// Another process is writing a run into this folder.
    #[error(
        "{} is in use: another `ae` process{} is writing a run there (it holds {}/.lock); \
         wait for it to finish or choose another --out",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        dir.display()
    )]
    Locked {
        /// The run folder.
        dir: PathBuf,
        /// The process id of the holder, when it could be read.
        pid: Option<u32>,
    },
    /// The output folder already holds a run.
    #[error("{0} already holds a run: pass --resume to continue it, or choose another --out")]
    RunExists(PathBuf),
    /// The device string is not understood or the device is not available.
    #[error("device {0}")]
    Device(String),
    /// The data does not fit the model (image size or channels differ).
    #[error("{0}")]
    Mismatch(String),
}

/// Result type of `ae-train`.
pub type Result<T> = std::result::Result<T, TrainError>;

/// Attaches a path to an `io::Error`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
