//! Where one training step's time goes, per phase (forward, loss, backward, Adam), for a
//! model variant: `cargo run --release -p ae-benches --example step_profile -- vanilla 50`.
//! A third argument `cuda` runs it on the first CUDA device (build with
//! `--features ae-benches/cuda`); the device is synchronised after each phase, so each
//! phase's time includes its kernels, and the sum is a step with one sync per phase.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ae_models::{ImageShape, ModelConfig, ModelKind, build, init::seeded_init};
use ae_train::{Adam, AdamConfig, checkpoint::named_vars};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn main() {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    ae_kernels::tune_glibc_malloc();
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("vanilla");
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let model_kind: ModelKind = serde_json::from_value(serde_json::json!(kind)).unwrap();
    let cfg = ModelConfig::default_for(model_kind, ImageShape::default());
    let batch = if kind == "vanilla" || kind == "sparse" {
        256
    } else {
        128
    };
    let dev = match args.get(3).map(String::as_str) {
        None | Some("cpu") => Device::Cpu,
        Some("cuda") => Device::new_cuda(0).unwrap(),
        Some(other) => panic!("device {other}: expected cpu or cuda"),
    };
    let sync = |d: &Device| d.synchronize().unwrap();
    let varmap = VarMap::new();
    let model = build(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
    seeded_init(&varmap, &mut ae_data::rng::seeded(0)).unwrap();
    let mut adam = Adam::new(named_vars(&varmap), AdamConfig::default()).unwrap();
    let mut rng = ae_data::rng::seeded(1);
    let shape = model.input_layout().shape(batch);
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let x = Tensor::from_slice(&data, shape.as_slice(), &dev).unwrap();
    let mut t = [0f64; 4];
    for s in 0..steps + 3 {
        let t0 = Instant::now();
        let out = model.forward(&x, Some(&mut rng)).unwrap();
        sync(&dev);
        let t1 = Instant::now();
        let parts = model.loss(&out, &x).unwrap();
        let _v = parts.total.to_scalar::<f32>().unwrap();
        let t2 = Instant::now();
        let grads = parts.total.backward().unwrap();
        sync(&dev);
        let t3 = Instant::now();
        adam.step(&grads).unwrap();
        sync(&dev);
        let t4 = Instant::now();
        if s >= 3 {
            for (acc, d) in t.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
                *acc += d.as_secs_f64() * 1e3 / steps as f64;
            }
        }
    }
    let total: f64 = t.iter().sum();
    println!(
        "{kind} batch {batch} on {dev:?}: forward {:.3} ms, loss {:.3} ms, backward {:.3} ms, adam {:.3} ms, step {:.3} ms, est. {:.2} s/epoch",
        t[0],
        t[1],
        t[2],
        t[3],
        total,
        total * 60000.0 / batch as f64 / 1e3
    );
}
