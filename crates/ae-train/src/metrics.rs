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

/// How many times its best so far an epoch's validation loss must be to count as a blow-up.
pub const BLOW_UP_FACTOR: f64 = 10.0;

/// A warning when the validation loss of `epoch` (1-based), `val`, blew up to more than
/// [`BLOW_UP_FACTOR`] times the best of the earlier epochs, `best`: the usual sign of a
/// learning rate too high for the data (a step that kills every ReLU leaves a model that
/// predicts a constant, and the run goes on without an error). `None` otherwise.
pub fn blow_up_warning(best: Option<f64>, val: f64, epoch: usize, lr: f64) -> Option<String> {
    let best = best.filter(|b| *b > 0.0)?;
    (val > BLOW_UP_FACTOR * best).then(|| {
        format!(
            "the validation loss rose from {best:.4} to {val:.4} at epoch {epoch} (learning \
             rate {lr:.2e}): training has probably diverged; a lower peak (--lr) or \
             --schedule constant --lr 1e-3 usually avoids it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blow_up_is_named_with_its_epoch_and_learning_rate() {
        // The dense MSE model on RGB patches at 1e-2 (docs/results.md): 0.0076 -> 0.2163.
        let w = blow_up_warning(Some(0.0076), 0.2163, 8, 0.0098).unwrap();
        assert!(w.contains("0.0076") && w.contains("0.2163") && w.contains("epoch 8"));
        assert!(w.contains("9.80e-3") && w.contains("--lr"), "{w}");
        // Ordinary noise, the first epoch and a zero best are not.
        assert_eq!(blow_up_warning(Some(0.0076), 0.0090, 5, 1e-2), None);
        assert_eq!(blow_up_warning(Some(0.0076), 0.076, 5, 1e-2), None);
        assert_eq!(blow_up_warning(None, 5.0, 1, 1e-2), None);
        assert_eq!(blow_up_warning(Some(0.0), 5.0, 2, 1e-2), None);
    }
}
