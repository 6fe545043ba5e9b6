//! Training and run configuration: plain serde structs with `Default`, checked by `validate()`.
//!
//! A run on a standardised table trains its model with MSE and a linear output:
//! [`RunConfig::resolve_loss`] (called by the trainer before anything is
//! written) records `"loss": "mse"` in the model config when the config leaves
//! the loss unset, and BCE on standardised data is an error that says why.

use ae_data::DataConfig;
use ae_models::{ImageShape, ModelConfig, ModelKind, ReconLoss};
use serde::{Deserialize, Serialize};

pub use crate::schedule::LrSchedule;
use crate::{Result, TrainError};

/// The version of the run-directory format (`config.json`, `state.json`, ...).
pub const FORMAT_VERSION: u32 = 1;

/// Stop when the validation loss has not improved by `min_delta` for `patience` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The smallest decrease that counts as an improvement.
    pub min_delta: f64,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            patience: 3,
            min_delta: 0.0,
        }
    }
}

/// The peak learning rate of the default one-cycle recipe of every variant.
pub const RECIPE_PEAK_LR: f64 = 1e-2;
/// The recipe's peak learning rate for a model trained with MSE on images (`--loss mse`):
/// on 32x32 RGB patches, a dense model peaking at 1e-2 died at the peak (every ReLU dead,
/// PSNR 8.8 dB) for seed 0 and trailed 3e-3 for seeds 1 and 2 (docs/results.md). Tables
/// keep [`RECIPE_PEAK_LR`]: they are small, so their runs are few steps long.
pub const RECIPE_PEAK_LR_MSE_IMAGES: f64 = 3e-3;
/// Epochs of the default conv runs.
pub const CONV_EPOCHS: usize = 15;
/// Epochs of the default denoising runs (15 left the test BCE at 0.08399 against keras.io's
/// 0.0839; docs/results.md).
pub const DENOISING_EPOCHS: usize = 17;

/// How to train: optimiser, schedule, batches, seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Base learning rate of Adam.
    pub lr: f64,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon (Keras's default, 1e-7).
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 is plain Adam.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Early stopping on the validation loss, if any.
    pub early_stopping: Option<EarlyStopping>,
    /// Drop the last incomplete batch of each epoch.
    pub drop_last: bool,
    /// The seed of every random draw of the run.
    pub seed: u64,
    /// Images per batch when evaluating.
    pub eval_batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 256,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
            schedule: LrSchedule::Constant,
            early_stopping: None,
            drop_last: false,
            seed: 0,
            eval_batch_size: 1000,
        }
    }
}

impl TrainConfig {
    /// Each variant's default recipe (docs/results.md has the measurements over seeds 0-4
    /// behind each choice): the batch size of its peer (256 for the dense models, as the
    /// Keras blog; 128 for conv, denoising and the VAE, as the keras.io and PyTorch
    /// examples) and Adam with a one-cycle schedule peaking at [`RECIPE_PEAK_LR`]; 10 epochs,
    /// [`CONV_EPOCHS`] for conv and [`DENOISING_EPOCHS`] for denoising (their peers take 50
    /// and 100).
    ///
    /// [`TrainConfig::classic`] is the peers' own recipe (Adam at a constant 1e-3), what
    /// `--schedule constant --lr 1e-3` gives on the command line.
    pub fn default_for(kind: ModelKind) -> Self {
        let epochs = match kind {
            ModelKind::Conv => CONV_EPOCHS,
            ModelKind::Denoising => DENOISING_EPOCHS,
            ModelKind::Vanilla | ModelKind::Sparse | ModelKind::Vae => 10,
        };
        Self {
            epochs,
            lr: RECIPE_PEAK_LR,
            schedule: LrSchedule::one_cycle(),
            ..Self::classic(kind)
        }
    }

    /// The peers' recipe of each variant: its batch size, Adam at a constant 1e-3, 10 epochs.
    pub fn classic(kind: ModelKind) -> Self {
        let batch_size = match kind {
            ModelKind::Vanilla | ModelKind::Sparse => 256,
            ModelKind::Conv | ModelKind::Denoising | ModelKind::Vae => 128,
        };
        Self {
            batch_size,
            ..Self::default()
        }
    }

    /// Checks every value before anything is built.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!(
                "learning rate must be positive and finite, got {}",
                self.lr
            ));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} must be in [0, 1), got {b}"));
            }
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad(format!("eps must be positive, got {}", self.eps));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "weight decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if let Some(es) = &self.early_stopping
            && (es.patience == 0 || !(es.min_delta >= 0.0 && es.min_delta.is_finite()))
        {
            return bad(format!(
                "early stopping needs patience >= 1 and min_delta >= 0, got {} and {}",
                es.patience, es.min_delta
            ));
        }
        self.schedule.validate()
    }
}

/// Everything that defines a run; written to `config.json` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The model.
    pub model: ModelConfig,
    /// Where the data comes from.
    pub data: DataConfig,
    /// How to train.
    pub train: TrainConfig,
}

impl RunConfig {
    /// The default run of a variant on `data`, whose images have the shape
    /// `input` (the image size and channel count come from the data).
    pub fn for_kind(kind: ModelKind, data: DataConfig, input: ImageShape) -> Self {
        let mut cfg = Self {
            format_version: FORMAT_VERSION,
            model: ModelConfig::default_for(kind, input),
            data,
            train: TrainConfig::default_for(kind),
        };
        cfg.train.lr = cfg.recipe_lr();
        cfg
    }

    /// The peak learning rate of the default recipe for this run's model and data:
    /// [`RECIPE_PEAK_LR_MSE_IMAGES`] for a model trained with MSE on images, else
    /// [`RECIPE_PEAK_LR`]. A caller that changes the model's loss after
    /// [`RunConfig::for_kind`] sets `train.lr` from this again unless `--lr` was given.
    pub fn recipe_lr(&self) -> f64 {
        if self.model.loss() == Some(ReconLoss::Mse) && !self.data.is_table() {
            RECIPE_PEAK_LR_MSE_IMAGES
        } else {
            RECIPE_PEAK_LR
        }
    }

    /// Whether the run's data is a standardised table (its values are not in
    /// [0, 1], so the model needs a linear output and MSE).
    pub fn standardised(&self) -> bool {
        self.data
            .scaler
            .as_ref()
            .is_some_and(|s| s.is_standardise())
    }

    /// Settles the model's loss from the data: on a standardised table an
    /// unset loss becomes MSE (a linear output); BCE there, set or the only
    /// one the model has (conv), is an error that says why. Other data keep
    /// what the config says (unset: BCE). The trainer calls this before it
    /// writes `config.json`, which so records the choice.
    pub fn resolve_loss(&mut self) -> Result<()> {
        if !self.standardised() {
            return Ok(());
        }
        if self.model.loss().is_none() && self.model.set_loss(ReconLoss::Mse).is_err() {
            return Err(TrainError::InvalidConfig(format!(
                "the {} model has a sigmoid output trained with bce, whose targets must lie in \
                 [0, 1]; this run's table is standardised (mean 0, std 1 per column), so use a \
                 dense model (vanilla, sparse, a dense vae, or denoising with --base vanilla)",
                self.model.kind()
            )));
        }
        self.check_loss_for_data()
    }

    /// BCE on a standardised table is an error (its targets must lie in [0, 1]).
    fn check_loss_for_data(&self) -> Result<()> {
        if self.standardised() && self.model.loss() == Some(ReconLoss::Bce) {
            return Err(TrainError::InvalidConfig(
                "loss bce needs targets in [0, 1], but this run's table is standardised (mean 0, \
                 std 1 per column, values of either sign): use --loss mse (the default for tables)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Checks the model and training configs, and that an explicit BCE loss
    /// is not paired with a standardised table.
    pub fn validate(&self) -> Result<()> {
        self.check_loss_for_data()?;
        if self.format_version != FORMAT_VERSION {
            return Err(TrainError::InvalidConfig(format!(
                "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                self.format_version
            )));
        }
        self.model.validate()?;
        self.train.validate()?;
        // Training batches hold values and gradients; evaluation batches values only.
        let t = &self.train;
        self.model
            .check_footprint(t.batch_size.max(t.eval_batch_size.div_ceil(2)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ae_data::Scaler;

    fn on_table(kind: ModelKind, scaler: Scaler) -> RunConfig {
        let data = DataConfig {
            scaler: Some(scaler),
            ..DataConfig::default()
        };
        RunConfig::for_kind(kind, data, ImageShape::new(1, 1, 2))
    }

    fn cols() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn the_recipe_peaks_lower_for_mse_on_images_only() {
        let images = ImageShape::new(1, 28, 28);
        let mut cfg = RunConfig::for_kind(ModelKind::Vanilla, DataConfig::default(), images);
        assert_eq!(cfg.train.lr, RECIPE_PEAK_LR);
        cfg.model.set_loss(ReconLoss::Mse).unwrap();
        assert_eq!(cfg.recipe_lr(), RECIPE_PEAK_LR_MSE_IMAGES);
        cfg.model.set_loss(ReconLoss::Bce).unwrap();
        assert_eq!(cfg.recipe_lr(), RECIPE_PEAK_LR);
        // A table keeps the common peak, with either loss.
        let std = Scaler::fit(&[1.0, 2.0, 3.0, 5.0], &cols(), "t.csv").unwrap();
        let mut table = on_table(ModelKind::Vae, std);
        table.resolve_loss().unwrap();
        assert_eq!(table.model.loss(), Some(ReconLoss::Mse));
        assert_eq!(table.recipe_lr(), RECIPE_PEAK_LR);
    }

    #[test]
    fn a_standardised_table_trains_with_mse() {
        let std = Scaler::fit(&[1.0, 2.0, 3.0, 5.0], &cols(), "t.csv").unwrap();
        for kind in [ModelKind::Vanilla, ModelKind::Sparse, ModelKind::Vae] {
            let mut cfg = on_table(kind, std.clone());
            cfg.validate().unwrap();
            cfg.resolve_loss().unwrap();
            assert_eq!(cfg.model.loss(), Some(ReconLoss::Mse), "{kind}");
            cfg.validate().unwrap();
        }
        // an explicit bce is an error that says why, in validate too
        let mut cfg = on_table(ModelKind::Vanilla, std.clone());
        cfg.model.set_loss(ReconLoss::Bce).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("bce") && e.contains("standardised"), "{e}");
        assert!(cfg.resolve_loss().is_err());
        // the conv model has no linear output
        let mut conv = on_table(ModelKind::Conv, std);
        let e = conv.resolve_loss().unwrap_err().to_string();
        assert!(e.contains("conv") && e.contains("dense model"), "{e}");
        // a min-max table of an older run keeps its bce
        let mm = Scaler::fit_min_max(&[1.0, 2.0, 3.0, 5.0], &cols(), "t.csv").unwrap();
        let mut old = on_table(ModelKind::Vanilla, mm);
        old.resolve_loss().unwrap();
        assert_eq!(old.model.loss(), None);
        assert_eq!(old.model.recon_loss(), ReconLoss::Bce);
        // images keep the unset (bce) loss
        let mut images = RunConfig::for_kind(
            ModelKind::Vanilla,
            DataConfig::default(),
            ImageShape::default(),
        );
        images.resolve_loss().unwrap();
        assert_eq!(images.model.loss(), None);
    }
}
