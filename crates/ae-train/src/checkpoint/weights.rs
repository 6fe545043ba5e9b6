//! Weights as safetensors: saving a model's variables (deterministic bytes),
//! loading them back with every tensor checked, and reading a file's header
//! (its tensor table) without its data.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use super::files::{read_bytes, write_atomic};
use crate::config::FORMAT_VERSION;
use crate::error::io_err;
use crate::{Result, TrainError};

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
/// its data: at most `MAX_HEADER_BYTES` (100 MiB), and never more than the file holds.
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
