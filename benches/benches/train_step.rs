//! Criterion bench of one training step per variant at its default config and
//! batch size: forward, loss, backward and Adam update, as `ae_train` runs it.
//! An epoch of 60k images is this time x 235 (dense, batch 256) or x 469 (batch 128).

use std::time::Duration;

use ae_benches::{KINDS, TrainStep, batch_size, mnist};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group};

fn train_step(c: &mut Criterion) {
    // As the `ae` and `xtask` binaries do (docs/performance.md).
    ae_kernels::tune_glibc_malloc();
    let split = match mnist(1024, 1) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping train_step: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat);
    for kind in KINDS {
        let mut step = match TrainStep::new(kind, &split.train.first_pixels(batch_size(kind))) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping train_step/{kind}: {e}");
                continue;
            }
        };
        group.throughput(Throughput::Elements(batch_size(kind) as u64));
        group.bench_function(format!("{kind}_b{}", batch_size(kind)), |b| {
            b.iter(|| step.step().map(std::hint::black_box))
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
fn main() {
    // As the `ae` and `xtask` binaries do (docs/performance.md): keep candle's worker
    // threads from spinning on the GEMMs' cores.
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
