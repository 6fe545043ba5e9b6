//! `ae-train`: seeded, resumable training of the `ae-models` autoencoders.
//!
//! What this crate owns:
//! - [`Adam`]: plain Adam (no weight decay unless asked) whose state can be
//!   saved and restored, so a resumed run reaches the same weights.
//! - [`TrainConfig`] and [`RunConfig`]: serde configs with `Default` and
//!   `validate()`; a run's whole configuration is written to `config.json`.
//! - [`train`]: the loop. Weight init, shuffles, noise and VAE sampling all
//!   come from our seeded RNG ([`ae_data::rng`]), so the same seed on the same
//!   machine gives bit-identical weights.
//! - Run directories ([`checkpoint`]): written atomically after every epoch; a
//!   run killed at any moment leaves the last complete epoch loadable, and
//!   `resume` continues to the same final weights as an uninterrupted run.
//! - [`RunLock`]: one writer per run folder, held for the whole run; a second
//!   writer is refused at once, naming the holder's process id.
//! - [`fused`]: the fused CPU training step of the dense models (forward, loss and
//!   backward over plain slices, outside candle's graph), built from the model's
//!   description of itself (`Autoencoder::dense_view`) and `ae-losses`' definitions.
//! - [`evaluate`]: test-set metrics (BCE, MSE, PSNR, and the ELBO for the VAE).
//!
//! ```no_run
//! use ae_train::{RunConfig, TrainOptions, train};
//! use ae_models::ModelKind;
//! let mut cfg = RunConfig::for_kind(ModelKind::Vanilla, Default::default(), Default::default());
//! cfg.train.epochs = 1;
//! let report = train(&cfg, std::path::Path::new("runs/vanilla"), &TrainOptions::default())?;
//! println!("val loss {}", report.metrics.last().map(|m| m.val_loss).unwrap_or(f64::NAN));
//! # Ok::<(), ae_train::TrainError>(())
//! ```
#![warn(missing_docs)]

mod adam;
pub mod checkpoint;
mod config;
mod device;
mod device_loop;
mod error;
mod eval;
pub mod fused;
pub mod lock;
mod metrics;
mod progress;
mod schedule;
mod trainer;

pub use adam::{Adam, AdamConfig};
pub use checkpoint::{LoadedRun, load_run};
pub use config::{
    CONV_EPOCHS, DENOISING_EPOCHS, EarlyStopping, FORMAT_VERSION, LrSchedule, RECIPE_PEAK_LR,
    RECIPE_PEAK_LR_MSE_IMAGES, RunConfig, TrainConfig,
};
pub use device::parse_device;
pub use device_loop::DeviceLoop;
pub use error::{Result, TrainError};
pub use eval::{
    EvalMetrics, encode_batch, evaluate, logits_batch, map_batches, map_set_batches, misfit,
    model_image_size, mse, psnr, psnr_of_mse, reconstruct_batch,
};
pub use lock::RunLock;
pub use metrics::{EpochMetrics, Metrics};
pub use progress::ProgressMode;
pub use schedule::SCHEDULE_FORMS;
pub use trainer::{TrainOptions, TrainReport, train, train_on, train_step, train_step_on_device};
