//! Forward pass of `ae_kernels::linear` against candle's `x.matmul(&w.t())` + bias at the
//! dense autoencoders' layer sizes: `cargo run --release -p ae-kernels --example linear`
//! (`RAYON_NUM_THREADS=1` for one thread). Prints ms per call and GFLOP/s.
#![allow(clippy::unwrap_used)]
use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    for (n, i, o) in [(256, 784, 128), (256, 128, 784), (1024, 784, 128)] {
        let x = Tensor::randn(0f32, 1., (n, i), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (o, i), &dev).unwrap();
        let b = Tensor::randn(0f32, 1., o, &dev).unwrap();
        for _ in 0..20 {
            let _ = ae_kernels::linear(&x, &w, Some(&b)).unwrap();
        }
        let t = Instant::now();
        for _ in 0..200 {
            let _ = ae_kernels::linear(&x, &w, Some(&b)).unwrap();
        }
        let ours = t.elapsed().as_secs_f64() * 1e3 / 200.0;
        let t = Instant::now();
        for _ in 0..200 {
            let _ = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
        }
        let theirs = t.elapsed().as_secs_f64() * 1e3 / 200.0;
        let gf = 2.0 * (n * i * o) as f64 / 1e6;
        println!(
            "{n}x{i}x{o}: ours {ours:.3} ms ({:.0} GFLOP/s), candle {theirs:.3} ms ({:.0} GFLOP/s)",
            gf / ours,
            gf / theirs
        );
    }
}
