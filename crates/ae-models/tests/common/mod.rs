//! Helpers shared by the integration tests of ae-models.
#![allow(dead_code, clippy::unwrap_used)]

use ae_models::{Autoencoder, ModelConfig, build, init};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;

/// Builds `cfg` on the CPU in `dtype` and initialises it from `seed`.
pub fn build_seeded(cfg: &ModelConfig, dtype: DType, seed: u64) -> (VarMap, Box<dyn Autoencoder>) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
    let model = build(cfg, vb).unwrap();
    init::seeded_init(&varmap, &mut ae_data::seeded(seed)).unwrap();
    (varmap, model)
}

/// A deterministic batch in [0, 1] of `n` samples in the model's input layout
/// (smooth blobs plus noise, like digit strokes).
pub fn batch(model: &dyn Autoencoder, n: usize, dtype: DType, seed: u64) -> Tensor {
    let shape = model.input_layout().shape(n);
    let numel: usize = shape.iter().product();
    let mut rng = ae_data::seeded(seed);
    let data: Vec<f32> = (0..numel)
        .map(|i| {
            let wave = ((i as f32 * 0.37).sin() * 0.5 + 0.5).powi(3);
            (0.8 * wave + 0.2 * rng.random::<f32>()).clamp(0.0, 1.0)
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Whether every value of `t` is finite.
pub fn all_finite(t: &Tensor) -> bool {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite())
}

/// A scalar tensor as f64.
pub fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}
