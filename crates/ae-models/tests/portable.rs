//! Same gradients on every device: one training step's loss and every parameter's gradient
//! through the CPU kernels (`ae_kernels`' custom ops) and through the portable path (candle's
//! stock ops, what CUDA and Metal run; forced on the CPU by `ae_kernels::with_portable`).
//!
//! The inputs have exact zeros (a black background, as MNIST has) and flat patches: with zero
//! biases the pre-activations are exactly 0 there (where ReLU's gradient conventions differ:
//! ours and PyTorch's pass nothing at 0, candle's `Tensor::relu` passes it all), and with
//! positive biases the max-pool windows there hold several equal maxima (where candle's
//! `max_pool2d` backward passes a quarter of the gradient to each, ours all of it to the
//! first). Both paths must agree everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ae_kernels::with_portable;
use ae_models::{
    Autoencoder, ConvConfig, DenoisingConfig, DenseConfig, ImageShape, ModelConfig, ModelKind,
    VaeArch, VaeConfig,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

const INPUT: ImageShape = ImageShape::new(1, 12, 12);

/// `n` 12x12 images: zero outside a square in the middle, which holds flat 2x2 patches and a
/// smooth ramp.
fn images(n: usize) -> Tensor {
    let mut v = vec![0f32; n * 144];
    for i in 0..n {
        for y in 2..10 {
            for x in 3..11 {
                v[i * 144 + y * 12 + x] = if (y + x + i) % 3 == 0 {
                    0.75
                } else {
                    (((y * 12 + x) * (i + 3)) % 17) as f32 / 16.0
                };
            }
        }
    }
    Tensor::from_vec(v, (n, 1, 12, 12), &Device::Cpu).unwrap()
}

/// The input of `model` built from [`images`] (flattened for the dense models).
fn input_for(model: &dyn Autoencoder, n: usize) -> Tensor {
    images(n)
        .reshape(model.input_layout().shape(n).as_slice())
        .unwrap()
}

/// Sets every bias of `varmap` to `value`.
fn fill_biases(varmap: &VarMap, value: f32) {
    for (name, var) in varmap.data().lock().unwrap().iter() {
        if name.ends_with("bias") {
            let t = var.as_tensor();
            var.set(&(t.ones_like().unwrap() * f64::from(value)).unwrap())
                .unwrap();
        }
    }
}

/// The loss and each variable's gradient (name-sorted) of one graph step, with the portable
/// path `portable`.
fn step(
    model: &dyn Autoencoder,
    varmap: &VarMap,
    x: &Tensor,
    portable: bool,
) -> (f64, Vec<(String, Vec<f32>)>) {
    with_portable(portable, || {
        let out = model.forward(x, Some(&mut ae_data::seeded(2))).unwrap();
        let loss = model.loss(&out, x).unwrap();
        let grads = loss.total.backward().unwrap();
        let mut named: Vec<(String, Vec<f32>)> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(name, var)| {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {name}"));
                (
                    name.clone(),
                    g.flatten_all()
                        .unwrap()
                        .to_dtype(DType::F32)
                        .unwrap()
                        .to_vec1()
                        .unwrap(),
                )
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        (common::scalar(&loss.total), named)
    })
}

/// Both paths give the same loss and gradients for `cfg` (biases set to `bias`).
fn check_same_gradients(cfg: &ModelConfig, bias: f32) {
    let (varmap, model) = common::build_seeded(cfg, DType::F32, 1);
    fill_biases(&varmap, bias);
    let x = input_for(model.as_ref(), 4);
    let (loss_k, grads_k) = step(model.as_ref(), &varmap, &x, false);
    let (loss_p, grads_p) = step(model.as_ref(), &varmap, &x, true);
    let what = format!("{:?} (biases {bias})", cfg.kind());
    let bad = mismatches(
        &what,
        "the portable path",
        (loss_k, &grads_k),
        (loss_p, &grads_p),
        1e-4,
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The mismatches of `other` (the loss and the name-sorted gradients of one step somewhere
/// else) against the CPU kernels', each gradient within `tol` of its tensor's largest value
/// (f32 rounding alone stays under 5e-7 of it on these models: measured against the portable
/// path in f64), the loss within `tol / 10`. Empty when they match.
fn mismatches(
    what: &str,
    where_: &str,
    (loss_k, grads_k): (f64, &[(String, Vec<f32>)]),
    (loss_p, grads_p): (f64, &[(String, Vec<f32>)]),
    tol: f32,
) -> Vec<String> {
    let mut bad = Vec::new();
    if (loss_k - loss_p).abs() > f64::from(tol) / 10.0 * loss_k.abs() {
        bad.push(format!(
            "{what}: loss {loss_k} on the kernels vs {loss_p} on {where_}"
        ));
    }
    assert_eq!(grads_k.len(), grads_p.len(), "{what}: parameter count");
    for ((name, k), (_, p)) in grads_k.iter().zip(grads_p) {
        let scale = k.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let (i, err) = k
            .iter()
            .zip(p)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0f32), |m, (i, e)| if e > m.1 { (i, e) } else { m });
        let over = k
            .iter()
            .zip(p)
            .filter(|(a, b)| (*a - *b).abs() > tol * scale)
            .count();
        if err > tol * scale {
            bad.push(format!(
                "{what}: {name}[{i}] is {} on the kernels, {} on {where_} (largest {scale}; \
                 {over} of {} values off by more than {tol} of it)",
                k[i],
                p[i],
                k.len()
            ));
        }
    }
    bad
}

/// Every model of [`all_models`] on the first CUDA device: one step's loss and gradients
/// match the CPU kernels' (the weights are copied from the CPU model, the VAE's noise comes
/// from the same seeded RNG). GPU sums run in another order, hence the looser tolerance; ties
/// in max-pool windows and zeros before ReLU are exact on both (zeros and equal biases).
/// Every mismatch is reported, not only the first: an H200 run on 2026-11-30 found the
/// default conv model's `decoder.1.weight` 3.4e-3 (of its largest value) off, far above f32
/// rounding; the cause is not found yet (docs/performance.md, GPU).
#[cfg(feature = "cuda")]
#[test]
fn every_model_has_the_same_gradients_on_cuda_and_the_cpu_kernels() {
    let cuda = Device::new_cuda(0).expect("a build with the cuda feature tests on a CUDA device");
    let mut bad = Vec::new();
    for cfg in &all_models() {
        for bias in [0.0, 0.1] {
            let (varmap, model) = common::build_seeded(cfg, DType::F32, 1);
            fill_biases(&varmap, bias);
            let x = input_for(model.as_ref(), 4);
            let cpu = step(model.as_ref(), &varmap, &x, false);
            let gpu_vars = VarMap::new();
            let gpu_model = ae_models::build(
                cfg,
                candle_nn::VarBuilder::from_varmap(&gpu_vars, DType::F32, &cuda),
            )
            .unwrap();
            {
                let cpu_vars = varmap.data().lock().unwrap();
                for (name, var) in gpu_vars.data().lock().unwrap().iter() {
                    var.set(&cpu_vars[name].as_tensor().to_device(&cuda).unwrap())
                        .unwrap();
                }
            }
            let gpu = step(
                gpu_model.as_ref(),
                &gpu_vars,
                &x.to_device(&cuda).unwrap(),
                false,
            );
            let what = format!("{:?} (biases {bias})", cfg.kind());
            bad.extend(mismatches(
                &what,
                "CUDA",
                (cpu.0, &cpu.1),
                (gpu.0, &gpu.1),
                1e-3,
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn conv() -> ModelConfig {
    ModelConfig::Conv(ConvConfig {
        channels: vec![8, 8],
        ..ConvConfig::for_input(INPUT)
    })
}

/// Every variant's default, plus the conv shapes the defaults do not cover (small channels, a
/// dense code, the conv VAE, denoising on a dense base).
fn all_models() -> Vec<ModelConfig> {
    let mut cfgs: Vec<ModelConfig> = ModelKind::ALL
        .iter()
        .map(|&k| ModelConfig::default_for(k, INPUT))
        .collect();
    cfgs.push(conv());
    cfgs.push(ModelConfig::Conv(ConvConfig {
        dense_code: Some(6),
        ..ConvConfig::for_input(INPUT)
    }));
    cfgs.push(ModelConfig::Vae(VaeConfig::for_input(INPUT).with_arch(
        VaeArch::Conv {
            channels: vec![4, 8],
            kernel: 3,
        },
    )));
    cfgs.push(ModelConfig::Denoising(DenoisingConfig {
        base: Box::new(ModelConfig::Vanilla(DenseConfig::for_input(INPUT))),
        ..DenoisingConfig::for_input(INPUT)
    }));
    cfgs
}

#[test]
fn every_model_has_the_same_gradients_on_the_kernels_and_the_portable_path() {
    for cfg in &all_models() {
        for bias in [0.0, 0.1] {
            check_same_gradients(cfg, bias);
        }
    }
}

/// The check above can fail: candle's own max-pool (a quarter of the gradient) and ReLU
/// (gradient at 0) give other gradients on these inputs.
#[test]
fn candles_own_max_pool_and_relu_give_other_gradients_on_these_inputs() {
    let x = candle_core::Var::from_tensor(&images(2)).unwrap();
    let ours = with_portable(true, || {
        let y = ae_kernels::max_pool2d(&ae_kernels::relu(x.as_tensor()).unwrap(), 2).unwrap();
        y.sum_all().unwrap().backward().unwrap()
    });
    let theirs = x
        .as_tensor()
        .relu()
        .unwrap()
        .max_pool2d(2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let sum = |g: &candle_core::backprop::GradStore| {
        common::scalar(&g.get(x.as_tensor()).unwrap().sum_all().unwrap())
    };
    // One unit of gradient per window whose maximum is positive, all of it on one element.
    let positive = x.as_tensor().max_pool2d(2).unwrap().flatten_all().unwrap();
    let positive = positive
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .filter(|v| **v > 0.0)
        .count();
    assert!(positive > 20);
    assert_eq!(sum(&ours), positive as f64);
    let g = ours.get(x.as_tensor()).unwrap().flatten_all().unwrap();
    assert!(
        g.to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| *v == 0.0 || *v == 1.0)
    );
    // candle's: a quarter of it to a single maximum, and all of it to each zero of an
    // all-zero window.
    let t = theirs.get(x.as_tensor()).unwrap().flatten_all().unwrap();
    let t = t.to_vec1::<f32>().unwrap();
    assert!(t.contains(&0.25) && t.contains(&1.0), "{t:?}");
    assert_ne!(sum(&theirs), sum(&ours));
}
