//! Training a run, or reusing it when the folder already holds the same
//! finished run (so that the tables can be rebuilt without retraining).

use std::path::Path;

use ae_data::Split;
use ae_train::checkpoint::{CONFIG_FILE, read_json};
use ae_train::{LoadedRun, ProgressMode, RunConfig, TrainOptions, load_run, train_on};
use candle_core::Device;

use crate::error::Result;

/// Whether `dir` holds a finished run of exactly `cfg`.
pub fn is_finished(cfg: &RunConfig, dir: &Path) -> bool {
    let Ok(saved) = read_json::<RunConfig>(&dir.join(CONFIG_FILE)) else {
        return false;
    };
    if saved != *cfg {
        return false;
    }
    match read_json::<ae_train::Metrics>(&dir.join(ae_train::checkpoint::METRICS_FILE)) {
        Ok(m) => m.stopped_early || m.epochs.len() >= cfg.train.epochs,
        Err(_) => false,
    }
}

/// Loads the run in `dir` if it is a finished run of `cfg` (and `retrain` is
/// false), else trains `cfg` on `split` into `dir` (replacing what is there).
pub fn train_or_reuse(
    cfg: &RunConfig,
    split: &Split,
    dir: &Path,
    device: &Device,
    retrain: bool,
) -> Result<LoadedRun> {
    if !retrain && is_finished(cfg, dir) {
        tracing::info!("reusing the finished run {}", dir.display());
    } else {
        tracing::info!(
            "training {} for {} epochs into {}",
            cfg.model.kind(),
            cfg.train.epochs,
            dir.display()
        );
        let opts = TrainOptions {
            overwrite: true,
            device: device.clone(),
            progress: ProgressMode::Auto,
            ..TrainOptions::default()
        };
        train_on(cfg, split.clone(), dir, &opts)?;
    }
    Ok(load_run(dir, device)?)
}
