//! Loading a run folder back: which weights a reader uses, and the model built
//! from `config.json` with them.

use std::path::{Path, PathBuf};

use ae_models::{Autoencoder, build};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use super::files::{read_json, same_contents};
use super::weights::{load_weights, read_header};
use super::{CONFIG_FILE, METRICS_FILE, MODEL_FILE, latest_checkpoint};
use crate::config::RunConfig;
use crate::metrics::Metrics;
use crate::{Result, TrainError};

/// The weights file and metrics file a reader of `dir` uses (see [`load_run`]),
/// and a note to log once they have loaded.
fn run_weights(dir: &Path) -> Result<(PathBuf, PathBuf, Option<String>)> {
    let top = dir.join(MODEL_FILE);
    let ck = latest_checkpoint(dir)?;
    match (top.exists(), ck) {
        (true, ck) => {
            if let Some(ck) = ck {
                let ckw = ck.join(MODEL_FILE);
                if ckw.is_file() && !same_contents(&top, &ckw)? {
                    let note = format!(
                        "{} differs from the newest checkpoint {}: using {} (the run's model; \
                         checkpoints are only for --resume)",
                        top.display(),
                        ckw.display(),
                        top.display()
                    );
                    return Ok((top, dir.join(METRICS_FILE), Some(note)));
                }
            }
            Ok((top, dir.join(METRICS_FILE), None))
        }
        (false, Some(ck)) => {
            let note = format!(
                "{} is missing (the run stopped before writing it): using the newest checkpoint {}",
                top.display(),
                ck.display()
            );
            Ok((ck.join(MODEL_FILE), ck.join(METRICS_FILE), Some(note)))
        }
        (false, None) => Err(TrainError::Checkpoint {
            path: top,
            message: "missing: the run has no complete epoch yet".into(),
        }),
    }
}

/// A trained run loaded back: its config, metrics and model with weights.
pub struct LoadedRun {
    /// The run folder.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: RunConfig,
    /// `metrics.json` (empty when the run has none).
    pub metrics: Metrics,
    /// The variables (weights) of the model.
    pub varmap: VarMap,
    /// The model.
    pub model: Box<dyn Autoencoder>,
    /// The device the model lives on.
    pub device: Device,
}

/// Loads a run folder: `config.json`, then the weights' header (checked
/// against the config before anything is built), then the model with the
/// weights of `model.safetensors`.
///
/// `model.safetensors` at the top of the folder is the run's model for every
/// command (weights edited in Python and saved back there are used);
/// checkpoints are only for `--resume`. When the two differ, a warning says
/// which is used and why; when the top-level file is missing (a run killed
/// before its first copy), the newest checkpoint's weights are used, with a
/// warning. A truncated or damaged `model.safetensors` is an error, never a
/// silent fall-back.
pub fn load_run(dir: &Path, device: &Device) -> Result<LoadedRun> {
    if !dir.is_dir() {
        return Err(TrainError::Checkpoint {
            path: dir.into(),
            message: "is not a run folder (no such directory)".into(),
        });
    }
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(TrainError::Checkpoint {
            path: config_path,
            message: "missing: this folder is not a run made by `ae train`".into(),
        });
    }
    let config: RunConfig = read_json(&config_path)?;
    config.validate().map_err(|e| TrainError::Checkpoint {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    let (weights, metrics_path, note) = run_weights(dir)?;
    let header = read_header(&weights)?;
    header.check_against(&weights, &config.model)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = build(&config.model, vb)?;
    load_weights(&varmap, &weights)?;
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
    let mut metrics: Metrics = if metrics_path.is_file() {
        read_json(&metrics_path)?
    } else {
        Metrics::default()
    };
    if let Some(epoch) = header.epoch {
        // A reader between the writer's two renames: metrics.json is one epoch ahead.
        metrics.epochs.retain(|m| m.epoch <= epoch);
    }
    Ok(LoadedRun {
        dir: dir.into(),
        config,
        metrics,
        varmap,
        model,
        device: device.clone(),
    })
}
