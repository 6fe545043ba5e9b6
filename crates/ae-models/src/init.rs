//! Reproducible parameter initialisation from our RNG, and parameter counting.
//!
//! candle cannot seed its CPU RNG, so the initial values candle-nn draws when a
//! model is built are not reproducible. [`seeded_init`] overwrites every
//! parameter with values drawn from an [`AeRng`]: the same seed gives
//! bit-identical weights on every platform.

use ae_data::AeRng;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;

use crate::error::Result;

/// `fan_in + fan_out` of a weight of shape `dims`, as Keras computes it:
/// `[out, in]` → `in + out`; `[a, b, kh, kw]` (conv or conv-transpose) →
/// `(a + b)·kh·kw`; `[n]` → `2n`; scalar → 2.
pub fn fan_sum(dims: &[usize]) -> usize {
    match dims {
        [] => 2,
        [n] => 2 * n,
        [a, b, rest @ ..] => (a + b) * rest.iter().product::<usize>(),
    }
}

/// The Glorot/Xavier uniform limit `sqrt(6 / (fan_in + fan_out))` of a weight of shape `dims`.
pub fn glorot_limit(dims: &[usize]) -> f64 {
    (6.0 / fan_sum(dims).max(1) as f64).sqrt()
}

/// Re-initialises every variable of `varmap` from `rng`, visiting them sorted
/// by name: names ending in `weight` get Glorot-uniform values in
/// `[-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))` (one `f32`
/// draw per value, row-major; see [`fan_sum`]), names ending in `bias` get
/// zeros (no draws). Other variables are left as they are. These are the
/// Keras defaults. The same seed gives bit-identical parameters.
pub fn seeded_init(varmap: &VarMap, rng: &mut AeRng) -> Result<()> {
    let mut vars: Vec<(String, Var)> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("the VarMap lock is poisoned".to_string()))?;
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let t = var.as_tensor();
        let value = if name.ends_with("weight") {
            let limit = glorot_limit(t.dims()) as f32;
            let values: Vec<f32> = (0..t.elem_count())
                .map(|_| limit * (2.0 * rng.random::<f32>() - 1.0))
                .collect();
            Tensor::from_vec(values, t.shape(), t.device())?.to_dtype(t.dtype())?
        } else if name.ends_with("bias") {
            t.zeros_like()?
        } else {
            continue;
        };
        var.set(&value)?;
    }
    Ok(())
}

/// Total number of scalar parameters in `varmap`.
pub fn param_count(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// `(name, shape)` of every variable of `varmap`, sorted by name (the
/// safetensors keys of a saved checkpoint).
pub fn named_shapes(varmap: &VarMap) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = match varmap.data().lock() {
        Ok(data) => data
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect(),
        Err(poisoned) => poisoned
            .into_inner()
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect(),
    };
    out.sort();
    out
}

/// A new f32 model of `cfg` on `device`, its variables drawn by [`seeded_init`] from
/// `rng`, and the `VarMap` holding them (to train or save them).
pub fn seeded_model(
    cfg: &crate::ModelConfig,
    device: &candle_core::Device,
    rng: &mut AeRng,
) -> Result<(Box<dyn crate::Autoencoder>, VarMap)> {
    let varmap = VarMap::new();
    let model = crate::build(
        cfg,
        candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, device),
    )?;
    seeded_init(&varmap, rng)?;
    Ok((model, varmap))
}
