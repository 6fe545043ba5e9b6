//! Each op of the conv models, forward and backward, on CUDA against the CPU kernels: where
//! one training step's gradients differ between the devices (an H200 run found the conv
//! model's `decoder.1.weight` 3.4e-3 of its scale off), this names the op. Only in builds
//! with the `cuda` feature, on a machine with a CUDA device (`scripts/gpu-session.sh`).
//! Every op is checked and every mismatch listed before the test fails.
#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::{DType, Device, Tensor, Var};

type Op = fn(&[Tensor]) -> candle_core::Result<Tensor>;

/// Deterministic values in [-1, 1] with exact zeros (a fifth of them) and repeats.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i * 2_654_435_761 + seed * 40_503) % 1_000_003;
            if h.is_multiple_of(5) {
                0.0
            } else {
                ((h % 201) as f32 - 100.0) / 100.0
            }
        })
        .collect()
}

/// `op`'s output and the gradients of `sum(out * probe)` with respect to every input, on `dev`.
fn run(op: Op, shapes: &[&[usize]], dev: &Device) -> Vec<(String, Vec<f32>)> {
    let vars: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let n = s.iter().product();
            Var::from_tensor(&Tensor::from_vec(values(n, k + 1), *s, &Device::Cpu).unwrap())
                .unwrap()
        })
        .map(|v| Var::from_tensor(&v.as_tensor().to_device(dev).unwrap()).unwrap())
        .collect();
    let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = op(&inputs).unwrap();
    let probe = Tensor::from_vec(values(out.elem_count(), 99), out.dims(), &Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap();
    let grads = (&out * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let flat = |t: &Tensor| {
        t.to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let mut res = vec![("output".to_string(), flat(&out))];
    for (k, v) in vars.iter().enumerate() {
        let g = grads.get(v.as_tensor()).map(flat).unwrap_or_default();
        res.push((format!("grad of input {k}"), g));
    }
    res
}

#[test]
fn every_conv_model_op_matches_the_cpu_on_cuda() {
    let cuda = Device::new_cuda(0).expect("a build with the cuda feature tests on a CUDA device");
    let cases: Vec<(&str, Op, Vec<&[usize]>)> = vec![
        ("relu", |t| ae_kernels::relu(&t[0]), vec![&[2, 3, 6, 6]]),
        (
            "max_pool2d(2)",
            |t| ae_kernels::max_pool2d(&t[0], 2),
            vec![&[2, 3, 6, 6]],
        ),
        (
            "max_pool2d(relu)",
            |t| ae_kernels::max_pool2d(&ae_kernels::relu(&t[0])?, 2),
            vec![&[2, 3, 6, 6]],
        ),
        (
            "conv2d 3x3 pad 1",
            |t| ae_kernels::conv2d(&t[0], &t[1], Some(&t[2]), 1, 1),
            vec![&[2, 4, 6, 6], &[5, 4, 3, 3], &[5]],
        ),
        (
            "conv2d_relu 3x3 pad 1",
            |t| ae_kernels::conv2d_relu(&t[0], &t[1], Some(&t[2]), 1, 1),
            vec![&[2, 4, 6, 6], &[5, 4, 3, 3], &[5]],
        ),
        (
            "conv_transpose2d 3x3 stride 2 pad 1 out-pad 1",
            |t| ae_kernels::conv_transpose2d(&t[0], &t[1], Some(&t[2]), 1, 1, 2),
            vec![&[2, 4, 3, 3], &[4, 5, 3, 3], &[5]],
        ),
        (
            "conv_transpose2d_relu 3x3 stride 2 pad 1 out-pad 1",
            |t| ae_kernels::conv_transpose2d_relu(&t[0], &t[1], Some(&t[2]), 1, 1, 2),
            vec![&[2, 4, 3, 3], &[4, 5, 3, 3], &[5]],
        ),
        (
            "candle conv_transpose2d (no bias)",
            |t| t[0].conv_transpose2d(&t[1], 1, 1, 2, 1),
            vec![&[2, 4, 3, 3], &[4, 5, 3, 3]],
        ),
        (
            "candle conv2d, dilation 2 (convT's weight gradient)",
            |t| t[0].conv2d(&t[1], 1, 1, 2, 1),
            vec![&[3, 2, 6, 6], &[4, 2, 3, 3]],
        ),
        (
            "candle conv2d on transposed inputs",
            |t| {
                t[0].transpose(0, 1)?
                    .conv2d(&t[1].transpose(0, 1)?, 1, 1, 1, 1)
            },
            vec![&[2, 3, 6, 6], &[2, 4, 3, 3]],
        ),
        (
            "bias broadcast add",
            |t| t[0].broadcast_add(&t[1].reshape((1, t[1].dim(0)?, 1, 1))?),
            vec![&[2, 3, 4, 4], &[3]],
        ),
    ];
    let mut bad = Vec::new();
    for (name, op, shapes) in &cases {
        let cpu = run(*op, shapes, &Device::Cpu);
        let gpu = run(*op, shapes, &cuda);
        for ((what, c), (_, g)) in cpu.iter().zip(&gpu) {
            let scale = c.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let err = c
                .iter()
                .zip(g)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let differ = c
                .iter()
                .zip(g)
                .filter(|(a, b)| (*a - *b).abs() > 1e-5 * scale)
                .count();
            eprintln!(
                "{name}: {what}: largest difference {:.2e} of scale {scale:.3}",
                err / scale
            );
            if c.len() != g.len() || err > 1e-5 * scale {
                bad.push(format!(
                    "{name}: {what}: {differ} of {} values differ, the largest by {:.2e} of {scale}",
                    c.len(),
                    err / scale
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
