//! Loading the real MNIST shipped in `data/mnist/` (once), plus `inspect` on its label file.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};

use ae_data::dataset::{DataFile, DataSearch};
use ae_data::{DataConfig, DataError, DatasetName, Layout, inspect};
use candle_core::Device;

/// The repository's `data/` (the tests are built inside the repository).
fn repo_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

#[test]
fn loads_the_repository_mnist() {
    // Explicit directory so a stray $AE_DATA_DIR cannot redirect the test.
    let config = DataConfig {
        data_dir: Some(repo_data_dir().join("mnist")),
        ..DataConfig::default()
    };
    let split = config.load().unwrap();
    let (train, test) = (&split.train, &split.test);
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(train.shape(), [1, 28, 28]);
    assert_eq!(test.shape(), [1, 28, 28]);
    assert_eq!(train.dim(), 784);
    // The bytes are kept as bytes: a quarter of the f32 they stand for.
    assert_eq!(train.stored_bytes(), 60_000 * 784);
    assert_eq!(test.stored_bytes(), 10_000 * 784);
    let labels = train.labels().unwrap();
    assert_eq!(labels[0], 5);
    assert_eq!(&labels[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(test.labels().unwrap()[0], 7);
    assert_eq!(train.num_classes(), Some(10));
    assert!(labels.iter().all(|&l| l < 10));
    for set in [train, test] {
        let px = set.pixels();
        assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(px.contains(&0.0) && px.contains(&1.0));
    }
    // Mean pixel intensity of MNIST train is 0.1307.
    let mean =
        train.pixels().iter().map(|&v| f64::from(v)).sum::<f64>() / train.pixels().len() as f64;
    assert!((mean - 0.1307).abs() < 1e-3, "{mean}");

    let t = train
        .batch_tensor(&[0, 1, 2], Layout::Image, &Device::Cpu)
        .unwrap();
    assert_eq!(t.dims(), &[3, 1, 28, 28]);

    // Limits take the first N of the already-loaded sets.
    let small = split.train.clone().take(100);
    assert_eq!(small.labels().unwrap(), &labels[..100]);
    let fives = test.with_class(5).unwrap();
    assert_eq!(fives.len(), 892);
}

#[test]
fn inspect_reports_the_label_histogram() {
    let s = inspect(&repo_data_dir().join("mnist/train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(s.dims, vec![60_000]);
    assert_eq!(s.count, 60_000);
    let h = s.histogram.clone().unwrap();
    assert_eq!(h.len(), 10);
    assert_eq!(h[0], (0, 5923));
    assert_eq!(h[1], (1, 6742));
    assert_eq!(h.iter().map(|&(_, n)| n).sum::<usize>(), 60_000);
    let text = s.to_string();
    assert!(
        text.contains("u8, dims [60000], 60000 items, values 0..9, 10 classes: 0:5923 1:6742"),
        "{text}"
    );
}

#[test]
fn limits_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = repo_data_dir().join("mnist");
    // Small test slice, train and test from the (small) test files.
    let config = DataConfig {
        train_images: Some(mnist.join("t10k-images-idx3-ubyte.gz")),
        train_labels: Some(mnist.join("t10k-labels-idx1-ubyte.gz")),
        data_dir: Some(mnist.clone()),
        train_limit: Some(50),
        test_limit: Some(20),
        ..DataConfig::default()
    };
    let split = config.load().unwrap();
    assert_eq!((split.train.len(), split.test.len()), (50, 20));
    // Both come from the t10k files: the test slice is a prefix of the train slice.
    assert_eq!(
        &split.train.labels().unwrap()[..20],
        split.test.labels().unwrap()
    );
    assert_eq!(*split.train.first_pixels(20), *split.test.pixels());

    // A missing file lists what was tried.
    let config = DataConfig {
        name: DatasetName::FashionMnist,
        data_dir: Some(dir.path().to_path_buf()),
        ..DataConfig::default()
    };
    let e = config.load().unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("train-images-idx3-ubyte, "), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
}

#[test]
fn custom_sets_and_shape_mismatch() {
    use ae_data::{IdxArray, IdxData, write_idx};
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let train = IdxArray::new(vec![3, 2, 2], IdxData::U8(vec![255; 12])).unwrap();
    let test = IdxArray::new(vec![2, 1, 4], IdxData::U8(vec![0; 8])).unwrap();
    write_idx(&p("train"), &train, true).unwrap();
    write_idx(&p("test"), &test, false).unwrap();
    let config = DataConfig {
        name: DatasetName::Custom,
        train_images: Some(p("train")),
        test_images: Some(p("test")),
        ..DataConfig::default()
    };
    let e = config.load().unwrap_err();
    assert!(matches!(e, DataError::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("train"), "{e}");

    write_idx(
        &p("test"),
        &IdxArray::new(vec![1, 2, 2], IdxData::U8(vec![0; 4])).unwrap(),
        false,
    )
    .unwrap();
    let split = config.load().unwrap();
    assert_eq!(split.train.labels(), None);
    assert_eq!(*split.train.pixels(), [1.0; 12]);
    assert_eq!(split.test.len(), 1);

    // Custom labels: checked against the image count, any u8 value allowed.
    write_idx(
        &p("tl"),
        &IdxArray::new(vec![3], IdxData::U8(vec![0, 200, 7])).unwrap(),
        false,
    )
    .unwrap();
    let with_labels = DataConfig {
        train_labels: Some(p("tl")),
        ..config.clone()
    };
    assert_eq!(
        with_labels.load().unwrap().train.labels(),
        Some(&[0, 200, 7][..])
    );
    let bad = DataConfig {
        test_labels: Some(p("tl")),
        ..config
    };
    let e = bad.load().unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelCount {
                labels: 3,
                images: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn the_default_lookup_finds_the_repository_data_from_the_crate_folder() {
    // `cargo test` runs this with crates/ae-data as the working directory: the
    // search for data/mnist/ goes up to the repository root, whatever the binary.
    let search = DataSearch {
        env_dir: None,
        start: std::env::current_dir().unwrap(),
    };
    let found = DataConfig::default()
        .resolve_with(DataFile::TrainImages, &search)
        .unwrap()
        .unwrap();
    assert_eq!(
        found.canonicalize().unwrap(),
        repo_data_dir()
            .join("mnist/train-images-idx3-ubyte.gz")
            .canonicalize()
            .unwrap()
    );
}
