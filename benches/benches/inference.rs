//! Criterion bench of inference per variant: encode and reconstruct one batch
//! of 1024 MNIST test images (default models, seeded weights), as `ae encode`
//! and `ae reconstruct` run it.

use std::hint::black_box;
use std::time::Duration;

use ae_benches::{KINDS, batch_tensor, mnist, model};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group};

const BATCH: usize = 1024;

fn inference(c: &mut Criterion) {
    ae_kernels::tune_glibc_malloc();
    let split = match mnist(1, BATCH) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping inference: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("inference");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(BATCH as u64));
    for kind in KINDS {
        let prepared = model(kind).and_then(|(m, vars)| {
            let x = batch_tensor(m.as_ref(), &split.test.first_pixels(BATCH), BATCH)?;
            Ok((m, vars, x))
        });
        let (m, _vars, x) = match prepared {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipping inference/{kind}: {e}");
                continue;
            }
        };
        group.bench_function(format!("{kind}_encode_b{BATCH}"), |b| {
            b.iter(|| m.encode(black_box(&x)))
        });
        group.bench_function(format!("{kind}_reconstruct_b{BATCH}"), |b| {
            b.iter(|| m.reconstruct(black_box(&x)))
        });
    }
    group.finish();
}

criterion_group!(benches, inference);
fn main() {
    // As the `ae` and `xtask` binaries do (docs/performance.md): keep candle's worker
    // threads from spinning on the GEMMs' cores.
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
