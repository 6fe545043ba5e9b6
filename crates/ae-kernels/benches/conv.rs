//! One training step (forward, BCE loss, backward; no optimizer) of the MNIST conv
//! autoencoder at batch 128: candle's stock ops, `ae_kernels` convolutions only,
//! `ae_kernels` convolutions + relu + max-pool, and the same with the ReLUs fused into the
//! convolutions.
//!
//! `cargo bench -p ae-kernels --bench conv`

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use std::time::Duration;

#[path = "support/conv_ae.rs"]
mod conv_ae;

fn bench_step(c: &mut Criterion) {
    let ([stock, fast_conv, fast_all, fast_fused], x) = match conv_ae::setup(128) {
        Ok(v) => v,
        Err(e) => panic!("setup failed: {e}"),
    };
    let mut group = c.benchmark_group("conv_ae_step_b128");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    let models = [
        ("ae_kernels_fused_relu", &fast_fused),
        ("ae_kernels_all", &fast_all),
        ("ae_kernels_conv_only", &fast_conv),
        ("candle_stock", &stock),
    ];
    for (name, model) in models {
        group.bench_function(name, |b| {
            b.iter(|| match model.step(&x) {
                Ok(loss) => loss,
                Err(e) => panic!("step failed: {e}"),
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
