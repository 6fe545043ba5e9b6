//! Criterion bench of IDX parsing: the 60k MNIST training images, gzipped (repo file) and uncompressed.

use std::hint::black_box;
use std::path::PathBuf;

use ae_data::{ImageSet, encode_idx, parse_idx};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn train_images_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/mnist/train-images-idx3-ubyte.gz"
    ))
}

fn idx_load(c: &mut Criterion) {
    let path = train_images_path();
    let gz = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping idx_load: {}: {e}", path.display());
            return;
        }
    };
    // Decompress once, so the raw bench measures parsing alone.
    let raw = match decompress(&gz) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipping idx_load: {e}");
            return;
        }
    };

    let mut group = c.benchmark_group("idx_load");
    group.sample_size(10);
    // Both benches report throughput in uncompressed IDX bytes.
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("parse_raw_60k", |b| {
        b.iter(|| parse_idx(black_box(&raw), "train-images").map(|a| a.len()))
    });
    group.bench_function("parse_gzip_60k", |b| {
        b.iter(|| parse_idx(black_box(&gz), "train-images.gz").map(|a| a.len()))
    });
    if let Ok(arr) = parse_idx(&raw, "train-images") {
        group.bench_function("to_image_set_60k", |b| {
            b.iter(|| {
                ImageSet::from_idx(black_box(&arr), "train-images", None, None).map(|s| s.len())
            })
        });
    }
    group.finish();
}

/// The uncompressed IDX bytes of a gzipped IDX file (the benches crate has no
/// gzip dependency of its own: parse, then re-encode, which is byte-identical).
fn decompress(gz: &[u8]) -> ae_data::Result<Vec<u8>> {
    Ok(encode_idx(&parse_idx(gz, "train-images.gz")?))
}

criterion_group!(benches, idx_load);
criterion_main!(benches);
