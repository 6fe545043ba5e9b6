//! Run directories: atomic, crash-safe checkpoints and loading them back.
//!
//! Layout of a run folder `DIR`:
//!
//! | path | what |
//! |---|---|
//! | `config.json` | [`RunConfig`](crate::config::RunConfig): model, data and training config, format version |
//! | `model.safetensors` | weights of the last complete epoch (tensor names in `docs/models.md`) |
//! | `metrics.json` | [`Metrics`]: per-epoch losses, seconds, images/s |
//! | `checkpoints/LATEST` | the name of the newest complete checkpoint folder |
//! | `checkpoints/epoch-NNNN/` | `model.safetensors`, `optimizer.safetensors` (Adam moments), `state.json` (epoch, Adam step, RNG states), `metrics.json` |
//!
//! Every file is written to a temporary name, synced and renamed. A checkpoint
//! folder is filled under a temporary name and renamed whole, and only then
//! does `LATEST` move to it, so a run killed at any moment (even `kill -9`)
//! leaves `LATEST` naming a complete epoch. Loading goes through `LATEST`.
//!
//! A file per concern, every item re-exported here: `files` (atomic writes,
//! JSON, capped reads), `weights` (safetensors: saving, loading and checking
//! weights, reading a file's header without its data), `run` (loading a run
//! folder back: [`load_run`]). This module holds the layout's names, the
//! resume state and the checkpoint folders themselves.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use ae_data::rng::RngState;
use candle_core::Tensor;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::config::FORMAT_VERSION;
use crate::error::io_err;
use crate::metrics::Metrics;
use crate::{Result, TrainError};

mod files;
mod run;
mod weights;

use files::sync_dir;
pub use files::{read_json, write_atomic, write_json};
pub use run::{LoadedRun, load_run};
pub use weights::{
    WeightsHeader, load_weights, named_vars, read_header, read_safetensors, safetensors_bytes,
    save_weights, save_weights_of_epoch,
};

/// `config.json`.
pub const CONFIG_FILE: &str = "config.json";
/// `model.safetensors`.
pub const MODEL_FILE: &str = "model.safetensors";
/// `metrics.json`.
pub const METRICS_FILE: &str = "metrics.json";
/// `optimizer.safetensors` (inside a checkpoint folder).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// `state.json` (inside a checkpoint folder).
pub const STATE_FILE: &str = "state.json";
/// The folder of checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The pointer to the newest complete checkpoint.
pub const LATEST_FILE: &str = "LATEST";

/// The RNG streams of a run, saved at the end of each epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngStates {
    /// Shuffles.
    pub shuffle: RngState,
    /// Input noise (denoising).
    pub noise: RngState,
    /// VAE sampling.
    pub sample: RngState,
}

/// Everything besides weights and Adam moments needed to resume a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Format version.
    pub format_version: u32,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Adam steps taken.
    pub adam_step: u64,
    /// RNG states after the last completed epoch.
    pub rng: RngStates,
    /// Lowest validation loss so far.
    pub best_val: Option<f64>,
    /// Epochs since the validation loss last improved.
    pub bad_epochs: usize,
}

/// Checks a checkpoint's `state.json` against its folder name and its
/// `metrics.json`: a hand-edited or foreign state (`epochs_done` 10^18) is an
/// error naming the file, not a run that silently skips its epochs.
pub fn check_state(ck: &Path, state: &TrainState, metrics: &Metrics) -> Result<()> {
    let path = ck.join(STATE_FILE);
    let bad = |message: String| {
        Err(TrainError::Checkpoint {
            path: path.clone(),
            message,
        })
    };
    if state.format_version != FORMAT_VERSION {
        return bad(format!(
            "format version {} is not supported (this build reads version {FORMAT_VERSION})",
            state.format_version
        ));
    }
    let folder = ck
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("epoch-"))
        .and_then(|n| n.parse::<usize>().ok());
    if folder != Some(state.epochs_done) {
        return bad(format!(
            "says {} epochs are done, but it is in the checkpoint folder {}",
            state.epochs_done,
            ck.display()
        ));
    }
    if metrics.epochs.len() != state.epochs_done {
        return bad(format!(
            "says {} epochs are done, but the checkpoint's metrics.json holds {}",
            state.epochs_done,
            metrics.epochs.len()
        ));
    }
    Ok(())
}

/// The newest complete checkpoint folder of a run, if it has one.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    let latest = run_dir.join(CHECKPOINTS_DIR).join(LATEST_FILE);
    match fs::read_to_string(&latest) {
        Ok(name) => {
            let name = name.trim();
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                return Err(TrainError::Checkpoint {
                    path: latest,
                    message: format!("does not name a checkpoint folder: '{name}'"),
                });
            }
            let dir = run_dir.join(CHECKPOINTS_DIR).join(name);
            if !dir.is_dir() {
                return Err(TrainError::Checkpoint {
                    path: latest,
                    message: format!("names '{name}', which does not exist"),
                });
            }
            Ok(Some(dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(latest)(e)),
    }
}

/// What one checkpoint holds besides the model's variables.
pub(crate) struct CheckpointData<'a> {
    pub(crate) kind: &'a str,
    pub(crate) optimizer: HashMap<String, Tensor>,
    pub(crate) state: &'a TrainState,
    pub(crate) metrics: &'a Metrics,
}

/// Writes checkpoint `epoch-NNNN` and moves `LATEST` to it; then refreshes the
/// run's top-level `model.safetensors` and `metrics.json` and removes older
/// checkpoint folders.
pub(crate) fn save_checkpoint(
    run_dir: &Path,
    varmap: &VarMap,
    data: CheckpointData<'_>,
) -> Result<()> {
    let ck_root = run_dir.join(CHECKPOINTS_DIR);
    fs::create_dir_all(&ck_root).map_err(io_err(&ck_root))?;
    let name = format!("epoch-{:04}", data.state.epochs_done);
    let tmp = ck_root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    save_weights_of_epoch(
        varmap,
        &tmp.join(MODEL_FILE),
        data.kind,
        Some(data.state.epochs_done),
    )?;
    let opt_path = tmp.join(OPTIMIZER_FILE);
    let meta = HashMap::from([("format".to_string(), "ae-adam".to_string())]);
    write_atomic(
        &opt_path,
        &safetensors_bytes(&data.optimizer, meta, &opt_path)?,
    )?;
    write_json(&tmp.join(STATE_FILE), data.state)?;
    write_json(&tmp.join(METRICS_FILE), data.metrics)?;
    sync_dir(&tmp)?;
    let dst = ck_root.join(&name);
    if dst.exists() {
        // Left by a run killed after the rename but before LATEST moved: stale.
        fs::remove_dir_all(&dst).map_err(io_err(&dst))?;
    }
    fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    sync_dir(&ck_root)?;
    write_atomic(&ck_root.join(LATEST_FILE), name.as_bytes())?;
    sync_dir(&ck_root)?;
    // The run's model at the top of the folder. metrics.json first: a reader
    // between the two renames sees one epoch too many in it, which `load_run`
    // trims to the epoch recorded in model.safetensors.
    write_json(&run_dir.join(METRICS_FILE), data.metrics)?;
    let top_tmp = run_dir.join(".tmp-model.safetensors");
    fs::copy(dst.join(MODEL_FILE), &top_tmp).map_err(io_err(run_dir.join(MODEL_FILE)))?;
    fs::File::open(&top_tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(run_dir.join(MODEL_FILE)))?;
    fs::rename(&top_tmp, run_dir.join(MODEL_FILE)).map_err(io_err(run_dir.join(MODEL_FILE)))?;
    sync_dir(run_dir)?;
    for entry in fs::read_dir(&ck_root).map_err(io_err(&ck_root))? {
        let entry = entry.map_err(io_err(&ck_root))?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if n != name && n != LATEST_FILE && entry.path().is_dir() {
            fs::remove_dir_all(entry.path()).map_err(io_err(entry.path()))?;
        }
    }
    Ok(())
}
