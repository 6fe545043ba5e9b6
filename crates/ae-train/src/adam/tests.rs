//! Adam against closed forms, the CPU kernel, and across a save and restore.

use super::*;
use candle_core::{DType, Device};

#[test]
fn moments_built_from_a_tracked_gradient_hold_no_graph() {
    // d(x·y)/dx = y, a variable: candle hands back a gradient that tracks it (as a conv
    // weight's gradient tracks the forward graph). The moments must not.
    let dev = Device::Cpu;
    let x = Var::new(&[1f32, 2.0], &dev).unwrap();
    let y = Var::new(&[3f32, -1.0], &dev).unwrap();
    let vars = vec![("x".to_string(), x.clone()), ("y".to_string(), y.clone())];
    // The tensor moments (what a GPU uses): the portable path on the CPU.
    let mut adam =
        ae_kernels::with_portable(true, || Adam::new(vars, AdamConfig::default())).unwrap();
    for _ in 0..3 {
        let grads = (x.as_tensor() * y.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(x.as_tensor()).unwrap().track_op());
        adam.step(&grads).unwrap();
    }
    let state = adam.state_tensors().unwrap();
    assert_eq!(state.len(), 4);
    for (name, t) in &state {
        assert!(!t.track_op(), "{name} holds a graph");
    }
}

/// Minimises (θ - 3)² and checks the first step against Adam's closed form.
#[test]
fn first_step_moves_by_lr_and_converges() {
    let dev = Device::Cpu;
    let var = Var::from_tensor(&Tensor::new(&[0.0f32], &dev).unwrap()).unwrap();
    let cfg = AdamConfig {
        lr: 0.1,
        ..Default::default()
    };
    let mut opt = Adam::new(vec![("w".into(), var.clone())], cfg).unwrap();
    for i in 0..500 {
        let loss = (var.as_tensor() - 3.0)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads).unwrap();
        if i == 0 {
            // m̂ / sqrt(v̂) = sign(g) on the first step: θ moves by lr exactly.
            let w = var.as_tensor().to_vec1::<f32>().unwrap()[0];
            assert!((w - 0.1).abs() < 1e-5, "{w}");
        }
    }
    let w = var.as_tensor().to_vec1::<f32>().unwrap()[0];
    assert!((w - 3.0).abs() < 1e-2, "{w}");
    assert_eq!(opt.step_count(), 500);
}

#[test]
fn weight_decay_is_decoupled_from_the_adam_step() {
    let dev = Device::Cpu;
    let var = Var::ones(2, DType::F32, &dev).unwrap();
    let cfg = AdamConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    };
    let mut opt = Adam::new(vec![("w".into(), var.clone())], cfg).unwrap();
    // g = 1: Adam's first step moves by lr (0.1), the decay by lr*wd*θ (0.05).
    let loss = var.as_tensor().sum_all().unwrap();
    opt.step(&loss.backward().unwrap()).unwrap();
    let w = var.as_tensor().to_vec1::<f32>().unwrap();
    assert!((w[0] - 0.85).abs() < 1e-6, "{w:?}");
}

#[test]
fn state_round_trip_continues_identically() {
    let dev = Device::Cpu;
    let run = |split: bool| -> Vec<f32> {
        let var = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &dev).unwrap()).unwrap();
        let mut opt = Adam::new(vec![("w".into(), var.clone())], AdamConfig::default()).unwrap();
        for i in 0..10 {
            if split && i == 5 {
                let state = opt.state_tensors().unwrap();
                let step = opt.step_count();
                opt = Adam::new(vec![("w".into(), var.clone())], AdamConfig::default()).unwrap();
                opt.load_state(&state, step, "mem").unwrap();
            }
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        var.as_tensor().to_vec1::<f32>().unwrap()
    };
    assert_eq!(run(false), run(true));
}

/// The flat tensor path (what a GPU runs) gives the CPU kernel's result, with a variable
/// that misses its gradient on some steps, across a save and restore.
#[test]
fn flat_moments_match_the_cpu_kernel() {
    let dev = Device::Cpu;
    let run = |portable: bool| -> Vec<Vec<f32>> {
        ae_kernels::with_portable(portable, || {
            let a = Var::new(&[[1f32, -2.0], [0.5, 3.0]], &dev).unwrap();
            let b = Var::new(&[0.25f32, -0.75, 2.0], &dev).unwrap();
            let c = Var::new(&[4f32], &dev).unwrap();
            let vars = || {
                vec![
                    ("a".to_string(), a.clone()),
                    ("b".to_string(), b.clone()),
                    ("c".to_string(), c.clone()),
                ]
            };
            let cfg = AdamConfig {
                lr: 0.05,
                weight_decay: 0.1,
                ..Default::default()
            };
            let mut opt = Adam::new(vars(), cfg).unwrap();
            for i in 0..12 {
                if i == 6 {
                    let (state, step) = (opt.state_tensors().unwrap(), opt.step_count());
                    opt = Adam::new(vars(), cfg).unwrap();
                    opt.load_state(&state, step, "mem").unwrap();
                }
                let mut loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
                    + (b.as_tensor() * 3.0)
                        .unwrap()
                        .sin()
                        .unwrap()
                        .sum_all()
                        .unwrap())
                .unwrap();
                if i % 3 != 0 {
                    // c gets a gradient on two steps of three.
                    loss = (loss + c.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
                }
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            [&a, &b, &c]
                .iter()
                .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                .collect()
        })
    };
    let (kernel, flat) = (run(false), run(true));
    assert_ne!(kernel[2], vec![4f32], "c moved");
    for (k, f) in kernel.iter().zip(&flat) {
        for (x, y) in k.iter().zip(f) {
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{k:?} vs {f:?}");
        }
    }
}

#[test]
fn missing_state_is_named() {
    let dev = Device::Cpu;
    let var = Var::ones(2, DType::F32, &dev).unwrap();
    let mut opt = Adam::new(vec![("enc.w".into(), var)], AdamConfig::default()).unwrap();
    let err = opt
        .load_state(&HashMap::new(), 3, "opt.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("opt.safetensors") && err.contains("m.enc.w"),
        "{err}"
    );
}

/// Where a CPU tensor's values live.
fn data_ptr(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => v.as_ptr() as usize,
        _ => panic!("a CPU f32 tensor"),
    }
}

/// The tensor path writes every result in place (what lets a step be recorded once into a
/// CUDA graph and replayed): the variables, the moments and the step's scalars keep their
/// buffers, with and without a missing gradient and weight decay, and a staged step is
/// applied once.
#[test]
fn tensor_path_updates_in_place() {
    let dev = Device::Cpu;
    let a = Var::new(&[[1f32, -2.0], [0.5, 3.0]], &dev).unwrap();
    let b = Var::new(&[0.25f32, -0.75, 2.0], &dev).unwrap();
    let vars = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    let cfg = AdamConfig {
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = ae_kernels::with_portable(true, || Adam::new(vars, cfg)).unwrap();
    let ptrs = |opt: &Adam| -> Vec<usize> {
        let g = &opt.groups[0];
        let mut p = vec![data_ptr(a.as_tensor()), data_ptr(b.as_tensor())];
        p.extend([g.m.as_tensor(), g.v.as_tensor()].map(data_ptr));
        p
    };
    let before = ptrs(&opt);
    let a0 = a
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for i in 0..4 {
        let mut loss = a.as_tensor().sqr().unwrap().sum_all().unwrap();
        if i % 2 == 0 {
            loss = (loss + b.as_tensor().sum_all().unwrap()).unwrap();
        }
        ae_kernels::with_portable(true, || opt.step(&loss.backward().unwrap())).unwrap();
        assert_eq!(ptrs(&opt), before, "step {i} moved a buffer");
    }
    assert_ne!(
        a.as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        a0
    );
    let grads = a.as_tensor().sum_all().unwrap().backward().unwrap();
    assert!(opt.apply_staged(&grads).is_err(), "nothing staged");
    opt.stage().unwrap();
    opt.apply_staged(&grads).unwrap();
    assert!(
        opt.apply_staged(&grads).is_err(),
        "a staged step applies once"
    );
    assert_eq!(opt.step_count(), 5);
}
