//! Criterion bench of `--data` loading (docs/data.md): decoding a folder of
//! 10,000 32x32 RGB PNGs, and reading a 100 MB `.npy` (uint8 `[N, H, W, C]`,
//! converted to f32 in [0, 1]; and float32 `[N, D]`), both written to a temp
//! folder first. Throughput is in images, and in file bytes for the `.npy`.

use std::hint::black_box;
use std::time::Duration;

use ae_data::fixtures::{self, Format};
use ae_data::{SourceOptions, folder, npy};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const PNGS: usize = 10_000;

fn data_load(c: &mut Criterion) {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skipping data_load: {e}");
            return;
        }
    };
    let dir = tmp.path().join("pngs");
    let npy_u8 = tmp.path().join("u8.npy");
    let npy_f32 = tmp.path().join("f32.npy");
    // 100 MB: 34,134 images of 32x32x3 u8; 25,000,000 f32 as [250000, 100].
    let n_u8 = 100_000_000 / (32 * 32 * 3);
    let prepared = fixtures::write_folder(&dir, PNGS, (32, 32), 3, Format::Png, 10, 0)
        .and_then(|()| {
            std::fs::write(&npy_u8, fixtures::npy_u8(n_u8, 32, 32, 3, 0))
                .map_err(|e| ae_data::DataError::io(&npy_u8, e))
        })
        .and_then(|()| {
            let v: Vec<f32> = (0..25_000_000).map(|i| (i % 1000) as f32).collect();
            std::fs::write(&npy_f32, fixtures::npy_f32(&[250_000, 100], &v))
                .map_err(|e| ae_data::DataError::io(&npy_f32, e))
        });
    if let Err(e) = prepared {
        eprintln!("skipping data_load: {e}");
        return;
    }
    let opts = SourceOptions::default();
    let mut group = c.benchmark_group("data_load");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(PNGS as u64));
    group.bench_function("folder_10k_png_32x32_rgb", |b| {
        b.iter(|| folder::read(black_box(&dir), &opts).map(|s| s.len()))
    });
    for path in [&npy_u8, &npy_f32] {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        group.throughput(Throughput::Bytes(bytes));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("npy")
            .to_string();
        group.bench_function(format!("npy_100MB_{name}"), |b| {
            b.iter(|| npy::read(black_box(path), &opts).map(|_| ()))
        });
    }
    group.finish();
}

criterion_group!(benches, data_load);
criterion_main!(benches);
