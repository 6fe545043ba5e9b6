//! Run directories: atomic, crash-safe checkpoints and loading them back.
//!
//! Layout of a run folder `DIR`:
//!
//! | path | what |
//! |---|---|
//! | `config.json` | [`RunConfig`]: model, data and training config, format version |
//! | `model.safetensors` | weights of the last complete epoch (tensor names in `docs/models.md`) |
//! | `metrics.json` | [`Metrics`]: per-epoch losses, seconds, images/s |
//! | `checkpoints/LATEST` | the name of the newest complete checkpoint folder |
//! | `checkpoints/epoch-NNNN/` | `model.safetensors`, `optimizer.safetensors` (Adam moments), `state.json` (epoch, Adam step, RNG states), `metrics.json` |
//!
//! Every file is written to a temporary name, synced and renamed. A checkpoint
//! folder is filled under a temporary name and renamed whole, and only then
//! does `LATEST` move to it, so a run killed at any moment (even `kill -9`)
//! leaves `LATEST` naming a complete epoch. Loading goes through `LATEST`.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ae_data::rng::RngState;
use ae_models::{Autoencoder, build};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::config::{FORMAT_VERSION, RunConfig};
use crate::error::io_err;
use crate::metrics::Metrics;
use crate::{Result, TrainError};

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

/// The largest safetensors or JSON file a run may hold (guards against reading junk).
const MAX_FILE_BYTES: u64 = 4 << 30;

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

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = ae_data::atomic::temp_in(dir, ".tmp-", "").map_err(io_err(path))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.into(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    Ok(ae_data::input::read_capped(
        path,
        MAX_FILE_BYTES,
        "a run file",
    )?)
}

/// Reads a JSON file of a run.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
        path: path.into(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// The variables of a map, sorted by name.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut vars: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Serialises named tensors to safetensors bytes (sorted names, so the same
/// weights give the same bytes as long as `metadata` has at most one key).
pub fn safetensors_bytes(
    tensors: &HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
    what: &Path,
) -> Result<Vec<u8>> {
    let mut items: Vec<(&String, &Tensor)> = tensors.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::serialize(items, Some(metadata)).map_err(|e| TrainError::Checkpoint {
        path: what.into(),
        message: format!("cannot serialise tensors: {e}"),
    })
}

/// Reads a safetensors file into named tensors, with an error naming the file
/// when it is truncated or not safetensors at all.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = read_bytes(path)?;
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| TrainError::Checkpoint {
        path: path.into(),
        message: format!("not a readable safetensors file (truncated or damaged?): {e}"),
    })
}

/// Saves the weights of `varmap` to `path` atomically.
pub fn save_weights(varmap: &VarMap, path: &Path, kind: &str) -> Result<()> {
    save_weights_of_epoch(varmap, path, kind, None)
}

/// [`save_weights`], recording in the file's metadata the epoch they are the
/// weights of (so that a reader can match `metrics.json` to them).
pub fn save_weights_of_epoch(
    varmap: &VarMap,
    path: &Path,
    kind: &str,
    epoch: Option<usize>,
) -> Result<()> {
    let tensors: HashMap<String, Tensor> = named_vars(varmap)
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    // One metadata key: safetensors writes its metadata map in hash order, so
    // several keys would make the bytes of identical weights differ.
    let meta = HashMap::from([(
        "ae".to_string(),
        match epoch {
            Some(e) => format!(
                "{{\"format_version\":{FORMAT_VERSION},\"model\":\"{kind}\",\"epoch\":{e}}}"
            ),
            None => format!("{{\"format_version\":{FORMAT_VERSION},\"model\":\"{kind}\"}}"),
        },
    )]);
    write_atomic(path, &safetensors_bytes(&tensors, meta, path)?)
}

/// Fills every variable of `varmap` from the safetensors file at `path`.
///
/// The file must hold exactly the model's tensors with the model's shapes:
/// a missing, extra or differently shaped tensor (weights of another model) is
/// an error naming the file and the tensor.
pub fn load_weights(varmap: &VarMap, path: &Path) -> Result<()> {
    let vars = named_vars(varmap);
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    let tensors = read_safetensors(path, &device)?;
    let mismatch = |message: String| TrainError::Checkpoint {
        path: path.into(),
        message,
    };
    for (name, var) in &vars {
        let t = tensors.get(name).ok_or_else(|| {
            mismatch(format!(
                "has no tensor '{name}': the weights are not of this model's config"
            ))
        })?;
        if t.dims() != var.dims() {
            return Err(mismatch(format!(
                "tensor '{name}' has shape {:?} but the model's config needs {:?}",
                t.dims(),
                var.dims()
            )));
        }
        if !t.dtype().is_float() {
            return Err(mismatch(format!(
                "tensor '{name}' is {:?}: weights must be floating point (f32, f16, bf16 or f64)",
                t.dtype()
            )));
        }
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(mismatch(format!(
                "tensor '{name}' holds {} at flat index {i}: weights must be finite",
                values[i]
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    if let Some(extra) = tensors
        .keys()
        .filter(|k| !vars.iter().any(|(n, _)| n == *k))
        .min()
    {
        return Err(mismatch(format!(
            "holds tensor '{extra}' that this model's config does not have: the weights are of another model"
        )));
    }
    Ok(())
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

/// Whether two files hold the same bytes (compared in blocks, never whole in memory).
fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let (fa, la) = ae_data::input::open_regular(a)?;
    let (fb, lb) = ae_data::input::open_regular(b)?;
    if la != lb {
        return Ok(false);
    }
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = ra.read(&mut ba).map_err(io_err(a))?;
        if n == 0 {
            return Ok(true);
        }
        rb.read_exact(&mut bb[..n]).map_err(io_err(b))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

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

/// The largest safetensors header we read (the JSON table of tensors).
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// The table of a safetensors file, read without its data.
#[derive(Debug, Clone)]
pub struct WeightsHeader {
    /// `(name, dtype, shape)` of every tensor, sorted by name.
    pub tensors: Vec<(String, String, Vec<usize>)>,
    /// The epoch `ae` recorded in the metadata, if any.
    pub epoch: Option<usize>,
}

impl WeightsHeader {
    /// Total scalar count (saturating).
    pub fn elements(&self) -> u128 {
        self.tensors
            .iter()
            .map(|(_, _, s)| s.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128)))
            .fold(0u128, u128::saturating_add)
    }

    /// Checks the dtypes and the parameter count against `model` before it is
    /// built: weights of another (possibly huge) model are refused without
    /// allocating it.
    pub fn check_against(&self, path: &Path, model: &ae_models::ModelConfig) -> Result<()> {
        let bad = |message: String| TrainError::Checkpoint {
            path: path.into(),
            message,
        };
        if let Some((name, dtype, _)) = self
            .tensors
            .iter()
            .find(|(_, d, _)| !matches!(d.as_str(), "F32" | "F16" | "BF16" | "F64"))
        {
            return Err(bad(format!(
                "tensor '{name}' is {dtype}: weights must be floating point (F32, F16, BF16 or F64)"
            )));
        }
        let want = model.footprint().parameters;
        let have = self.elements();
        if have != want {
            return Err(bad(format!(
                "holds {have} values in {} tensors, but config.json describes a {} model of \
                 {want} parameters: the weights are of another model",
                self.tensors.len(),
                model.kind()
            )));
        }
        Ok(())
    }
}

/// Reads the header (tensor table) of the safetensors file at `path` without
/// its data: at most [`MAX_HEADER_BYTES`], and never more than the file holds.
pub fn read_header(path: &Path) -> Result<WeightsHeader> {
    use std::io::Read;
    let bad = |message: String| TrainError::Checkpoint {
        path: path.into(),
        message,
    };
    let (file, len) = ae_data::input::open_regular(path)?;
    let mut r = std::io::BufReader::new(file);
    let mut n = [0u8; 8];
    r.read_exact(&mut n)
        .map_err(|_| bad(format!("truncated: {len} bytes, not a safetensors file")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || n > len.saturating_sub(8) {
        return Err(bad(format!(
            "not a readable safetensors file (truncated or damaged?): its header claims {n} \
             bytes, the file has {len}"
        )));
    }
    let mut head = vec![0u8; n as usize];
    r.read_exact(&mut head).map_err(io_err(path))?;
    let table: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&head)
        .map_err(|e| bad(format!("not a readable safetensors header: {e}")))?;
    let mut tensors = Vec::new();
    let mut epoch = None;
    for (name, v) in &table {
        if name == "__metadata__" {
            epoch = v
                .get("ae")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|m| m.get("epoch").and_then(|e| e.as_u64()))
                .and_then(|e| usize::try_from(e).ok());
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
        let shape: Option<Vec<usize>> = v.get("shape").and_then(|s| s.as_array()).and_then(|a| {
            a.iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect()
        });
        let shape = shape.ok_or_else(|| bad(format!("tensor '{name}' has no valid shape")))?;
        tensors.push((name.clone(), dtype.to_string(), shape));
    }
    tensors.sort();
    Ok(WeightsHeader { tensors, epoch })
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
