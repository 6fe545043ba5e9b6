//! Training and run configuration: plain serde structs with `Default`, checked by `validate()`.

use ae_data::DataConfig;
use ae_models::{ImageShape, ModelConfig, ModelKind};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// The version of the run-directory format (`config.json`, `state.json`, ...).
pub const FORMAT_VERSION: u32 = 1;

/// How the learning rate changes from epoch to epoch. A pure function of the
/// epoch, so a resumed run follows the same schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same rate every epoch.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// Cosine annealing from the base rate down to `min_lr` at the last epoch.
    Cosine {
        /// The rate reached at the last epoch.
        min_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate of epoch `epoch` (0-based) out of `epochs`.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            LrSchedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            LrSchedule::Cosine { min_lr } => {
                let t = if epochs <= 1 {
                    0.0
                } else {
                    epoch as f64 / (epochs - 1) as f64
                };
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { every, gamma }
                if every == 0 || !(gamma > 0.0 && gamma.is_finite()) =>
            {
                bad(format!(
                    "step schedule needs every >= 1 and gamma > 0, got every {every}, gamma {gamma}"
                ))
            }
            LrSchedule::Exponential { gamma } if !(gamma > 0.0 && gamma.is_finite()) => {
                bad(format!("exponential schedule needs gamma > 0, got {gamma}"))
            }
            LrSchedule::Cosine { min_lr } if !(min_lr >= 0.0 && min_lr.is_finite()) => {
                bad(format!("cosine schedule needs min_lr >= 0, got {min_lr}"))
            }
            _ => Ok(()),
        }
    }
}

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
    /// The classic settings of each variant's peer: batch 256 for the dense
    /// models (Keras blog), 128 for conv, denoising and the VAE (keras.io and
    /// PyTorch examples); 10 epochs.
    pub fn default_for(kind: ModelKind) -> Self {
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
        Self {
            format_version: FORMAT_VERSION,
            model: ModelConfig::default_for(kind, input),
            data,
            train: TrainConfig::default_for(kind),
        }
    }

    /// Checks the model and training configs.
    pub fn validate(&self) -> Result<()> {
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
