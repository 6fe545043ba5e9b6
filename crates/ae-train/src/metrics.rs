//! Per-epoch metrics of a run, written to `metrics.json`.

use serde::{Deserialize, Serialize};

use crate::config::FORMAT_VERSION;

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate of the epoch's first step (the step-wise schedules change it after every batch).
    pub lr: f64,
    /// Mean training loss over the epoch's images (the model's total loss).
    pub train_loss: f64,
    /// The model's total loss on the validation (test) split.
    pub val_loss: f64,
    /// The reconstruction part of `val_loss`.
    pub val_recon: f64,
    /// The KL part of `val_loss` (VAE), if any.
    pub val_kl: Option<f64>,
    /// The sparsity penalty part of `val_loss` (sparse), if any.
    pub val_sparsity: Option<f64>,
    /// Wall-clock seconds of the training part of the epoch.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_sec: f64,
}

/// Every epoch of a run so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Format version of the file.
    pub format_version: u32,
    /// One entry per completed epoch.
    pub epochs: Vec<EpochMetrics>,
    /// The epoch with the lowest validation loss.
    pub best_epoch: Option<usize>,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            format_version: FORMAT_VERSION,
            epochs: Vec::new(),
            best_epoch: None,
            stopped_early: false,
        }
    }
}

impl Metrics {
    /// The last completed epoch, if any.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }

    /// Total training seconds over all epochs.
    pub fn total_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }
}
