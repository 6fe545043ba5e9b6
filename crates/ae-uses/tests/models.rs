//! The uses on small trained models (a few hundred MNIST images, 2 epochs):
//! `.aez` round trips and failures, anomaly scores and thresholds, IWAE, denoising, probes.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::OnceLock;

use ae_data::{DataConfig, ImageSet, Noise, Split};
use ae_models::{DenseConfig, ImageShape, ModelConfig, ModelKind};
use ae_train::{LoadedRun, RunConfig, TrainOptions, evaluate, load_run, train_on};
use ae_uses::batches::reconstruct_set;
use ae_uses::stats::psnr;
use ae_uses::{ScoreKind, ThresholdRule, UsesError};
use candle_core::Device;

fn split() -> &'static Split {
    static S: OnceLock<Split> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = DataConfig {
            train_limit: Some(400),
            test_limit: Some(200),
            ..DataConfig::default()
        };
        cfg.load().unwrap()
    })
}

fn train_tiny(name: &str, model: ModelConfig, seed: u64) -> std::path::PathBuf {
    // Under cargo's per-target scratch folder with a fixed name, overwritten by every run:
    // these runs are shared through statics, which are never dropped, so a per-process
    // folder in the system temp dir was left behind by every test run.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ae-uses-models-{name}-{seed}"));
    let mut cfg = RunConfig::for_kind(model.kind(), DataConfig::default(), ImageShape::default());
    cfg.model = model;
    cfg.train.epochs = 2;
    cfg.train.batch_size = 32;
    cfg.train.seed = seed;
    let opts = TrainOptions {
        overwrite: true,
        progress: ae_train::ProgressMode::Off,
        ..TrainOptions::default()
    };
    train_on(&cfg, split().clone(), &dir, &opts).unwrap();
    dir
}

fn dense(latent: usize) -> ModelConfig {
    ModelConfig::Vanilla(
        DenseConfig::for_input(ImageShape::default())
            .with_hidden(vec![64])
            .with_latent_dim(latent),
    )
}

fn vanilla() -> LoadedRun {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    load_run(
        D.get_or_init(|| train_tiny("vanilla", dense(16), 1)),
        &Device::Cpu,
    )
    .unwrap()
}

fn other_vanilla() -> LoadedRun {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    load_run(
        D.get_or_init(|| train_tiny("vanilla", dense(16), 2)),
        &Device::Cpu,
    )
    .unwrap()
}

fn vae() -> LoadedRun {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    let cfg = ModelConfig::default_for(ModelKind::Vae, ImageShape::default());
    load_run(D.get_or_init(|| train_tiny("vae", cfg, 3)), &Device::Cpu).unwrap()
}

fn u8_grid(set: &ImageSet) -> Vec<f32> {
    ae_uses::baselines::to_u8(set)
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect()
}

#[test]
fn aez_roundtrip_is_close_to_the_models_reconstruction() {
    let run = vanilla();
    let test = &split().test;
    let rec = reconstruct_set(run.model.as_ref(), test, 100, &Device::Cpu).unwrap();
    let rec_psnr = psnr(&rec, &test.pixels());
    for (bits, tol) in [(8u8, 0.3), (4, 3.0)] {
        let bytes = ae_uses::compress(&run, test, bits, 100).unwrap();
        let file = ae_uses::decode_aez(&bytes, Path::new("t.aez")).unwrap();
        assert_eq!(file.header.count, test.len());
        assert_eq!(file.header.bits, bits);
        let back = ae_uses::decompress(&run, &bytes, Path::new("t.aez"), 100).unwrap();
        assert_eq!((back.len(), back.shape()), (test.len(), test.shape()));
        let p = psnr(&u8_grid(&back), &test.pixels());
        assert!(
            (p - rec_psnr).abs() < tol && p > 10.0,
            "{bits} bits: PSNR {p:.2} vs reconstruction {rec_psnr:.2}"
        );
        // Much smaller than the raw bytes.
        assert!(
            bytes.len() < test.len() * test.dim() / 10,
            "{} bytes",
            bytes.len()
        );
    }
}

#[test]
fn corrupted_truncated_and_foreign_aez_are_clear_errors() {
    let run = vanilla();
    let test = &split().test;
    let bytes = ae_uses::compress(&run, test, 8, 100).unwrap();
    let p = Path::new("codes.aez");
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 0x40;
    let e = ae_uses::decompress(&run, &bad, p, 100)
        .unwrap_err()
        .to_string();
    assert!(e.contains("codes.aez") && e.contains("corrupted"), "{e}");
    let e = ae_uses::decode_aez(&bytes[..bytes.len() - 10], p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupted") || e.contains("truncated"), "{e}");
    let e = ae_uses::decode_aez(b"PK\x03\x04 not aez", p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a .aez"), "{e}");
    let other = other_vanilla();
    let e = ae_uses::decompress(&other, &bytes, p, 100)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another model"), "{e}");
}

#[test]
fn mismatched_images_are_rejected() {
    let run = vanilla();
    let small = ImageSet::from_parts(vec![0.5; 3 * 16 * 16], None, 1, 16, 16).unwrap();
    let e = ae_uses::compress(&run, &small, 8, 10).unwrap_err();
    assert!(matches!(e, UsesError::Mismatch(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("1x16x16") && msg.contains("784"), "{msg}");
    let e = ae_uses::anomaly_scores(run.model.as_ref(), &small, ScoreKind::Mse, 10, &Device::Cpu)
        .unwrap_err();
    assert!(e.to_string().contains("1x16x16"), "{e}");
    assert!(
        ae_uses::denoise_table(
            run.model.as_ref(),
            &small,
            &[Noise::None],
            10,
            &Device::Cpu,
            0
        )
        .is_err()
    );
}

#[test]
fn anomaly_scores_thresholds_and_auc() {
    let run = vanilla();
    let test = &split().test;
    let scores =
        ae_uses::anomaly_scores(run.model.as_ref(), test, ScoreKind::Mse, 64, &Device::Cpu)
            .unwrap();
    assert_eq!(scores.len(), test.len());
    // Per-image MSE agrees with the reconstruction computed separately.
    let rec = reconstruct_set(run.model.as_ref(), test, 100, &Device::Cpu).unwrap();
    let d = test.dim();
    let first = ae_uses::stats::mse(&rec[..d], &test.pixels()[..d]);
    assert!((scores[0] - first).abs() < 1e-6, "{} vs {first}", scores[0]);
    // Blank images reconstruct worse than digits? At least: noise images score higher.
    let noise: Vec<f32> = (0..50 * d)
        .map(|i| ((i * 7919) % 101) as f32 / 100.0)
        .collect();
    let noise = ImageSet::from_parts(noise, None, 1, 28, 28).unwrap();
    let ns = ae_uses::anomaly_scores(run.model.as_ref(), &noise, ScoreKind::Mse, 64, &Device::Cpu)
        .unwrap();
    let mut all = scores.clone();
    all.extend(&ns);
    let labels: Vec<bool> = (0..all.len()).map(|i| i >= scores.len()).collect();
    let rule = ThresholdRule::Contamination { rate: 0.05 };
    let t = rule.threshold(&scores).unwrap();
    let ev = ae_uses::evaluate_scores(&all, &labels, t).unwrap();
    assert!(ev.roc_auc > 0.99, "noise vs digits: {}", ev.roc_auc);
    assert!(ev.recall > 0.99);
    // 5% contamination flags about 5% of the normal images the threshold came from.
    assert!(
        (ev.false_positive_rate - 0.05).abs() < 0.02,
        "{}",
        ev.false_positive_rate
    );
    assert!(
        ThresholdRule::Contamination { rate: 0.0 }
            .validate()
            .is_err()
    );
    assert!(
        ThresholdRule::Percentile { percentile: 100.0 }
            .validate()
            .is_err()
    );
    // The ELBO score needs a VAE.
    assert!(
        ae_uses::anomaly_scores(run.model.as_ref(), test, ScoreKind::Elbo, 64, &Device::Cpu)
            .is_err()
    );
    let v = vae();
    let e =
        ae_uses::anomaly_scores(v.model.as_ref(), test, ScoreKind::Elbo, 64, &Device::Cpu).unwrap();
    assert!(e.iter().all(|s| s.is_finite() && *s > 0.0));
}

#[test]
fn one_class_fit_writes_a_spec() {
    let dir = std::env::temp_dir().join(format!("ae-uses-test-{}-oneclass", std::process::id()));
    let mut cfg = RunConfig::for_kind(
        ModelKind::Vanilla,
        DataConfig::default(),
        ImageShape::default(),
    );
    cfg.model = dense(8);
    cfg.train.epochs = 1;
    cfg.train.batch_size = 16;
    let opts = TrainOptions {
        overwrite: true,
        progress: ae_train::ProgressMode::Off,
        ..TrainOptions::default()
    };
    let rule = ThresholdRule::Percentile { percentile: 90.0 };
    let spec =
        ae_uses::fit_one_class(&cfg, split(), Some(1), ScoreKind::Mse, rule, &dir, &opts).unwrap();
    assert_eq!(spec.normal_class, Some(1));
    assert_eq!(
        spec.train_images,
        split().train.with_class(1).unwrap().len()
    );
    assert!(spec.threshold > 0.0);
    let back = ae_uses::AnomalySpec::read(&dir).unwrap();
    assert_eq!(
        (back.normal_class, back.score, back.rule),
        (spec.normal_class, spec.score, spec.rule)
    );
    assert!((back.threshold - spec.threshold).abs() < 1e-12);
    let labels = ae_uses::anomaly_labels(&split().test, 1).unwrap();
    assert!(labels.iter().any(|&a| a) && labels.iter().any(|&a| !a));
    let e = ae_uses::AnomalySpec::read(Path::new("/nonexistent")).unwrap_err();
    assert!(e.to_string().contains("ae anomaly fit"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn iwae_bound_grows_with_k_and_beats_the_elbo() {
    let run = vae();
    let test = split().test.clone().take(100);
    let mut means = Vec::new();
    for k in [1usize, 5, 50] {
        let mut rng = ae_data::rng::stream(0, "iwae");
        let r = ae_uses::iwae(run.model.as_ref(), &test, k, 50, &Device::Cpu, &mut rng).unwrap();
        assert_eq!(r.per_image.len(), 100);
        means.push(r.log_likelihood);
    }
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
    let elbo = evaluate(run.model.as_ref(), &test, 100, &Device::Cpu, 0)
        .unwrap()
        .elbo
        .unwrap();
    assert!(means[2] > elbo, "IWAE-50 {} vs ELBO {elbo}", means[2]);
    // Not for plain autoencoders; K = 0 is an error.
    let mut rng = ae_data::rng::stream(0, "iwae");
    assert!(
        ae_uses::iwae(
            vanilla().model.as_ref(),
            &test,
            5,
            50,
            &Device::Cpu,
            &mut rng
        )
        .is_err()
    );
    assert!(ae_uses::iwae(run.model.as_ref(), &test, 0, 50, &Device::Cpu, &mut rng).is_err());
    let too_many = ae_uses::iwae::MAX_K + 1;
    assert!(
        ae_uses::iwae(
            run.model.as_ref(),
            &test,
            too_many,
            50,
            &Device::Cpu,
            &mut rng
        )
        .is_err()
    );
}

#[test]
fn iwae_in_chunks_of_samples_gives_the_one_chunk_estimate() {
    // K = 30 samples of 6 images, at most 7 rows decoded at once: one image per
    // batch, its samples in chunks of 7, 7, 7, 7, 2 combined by a running log-sum-exp.
    let run = vae();
    let test = split().test.clone().take(6);
    let one = |rows: usize| {
        let mut rng = ae_data::rng::stream(3, "iwae");
        ae_uses::iwae::iwae_chunked(
            run.model.as_ref(),
            &test,
            30,
            50,
            rows,
            &Device::Cpu,
            &mut rng,
        )
        .unwrap()
    };
    let (whole, chunked) = (one(65_536), one(7));
    for (a, b) in whole.per_image.iter().zip(&chunked.per_image) {
        assert!((a - b).abs() < 1e-3 * a.abs().max(1.0), "{a} vs {b}");
    }
    // Other draws give another estimate: the comparison above can fail.
    let mut rng = ae_data::rng::stream(4, "iwae");
    let other = ae_uses::iwae(run.model.as_ref(), &test, 30, 50, &Device::Cpu, &mut rng).unwrap();
    assert_ne!(other.per_image, whole.per_image);
}

#[test]
fn denoise_table_orders_the_noise_levels() {
    let run = vanilla();
    let test = split().test.clone().take(100);
    let noises = ae_uses::standard_noises();
    let rows =
        ae_uses::denoise_table(run.model.as_ref(), &test, &noises, 50, &Device::Cpu, 0).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].psnr_noisy > rows[1].psnr_noisy && rows[1].psnr_noisy > rows[2].psnr_noisy);
    assert!(rows[0].ssim_noisy > rows[2].ssim_noisy);
    for r in &rows {
        assert!(r.ssim_denoised <= 1.0 && r.ssim_noisy <= 1.0);
    }
    // Heavy noise: even a tiny autoencoder helps.
    assert!(rows[2].psnr_denoised > rows[2].psnr_noisy, "{:?}", rows[2]);
    // Same seed, same table.
    let again =
        ae_uses::denoise_table(run.model.as_ref(), &test, &noises, 50, &Device::Cpu, 0).unwrap();
    assert_eq!(rows, again);
}

#[test]
fn probe_separates_classes_and_checks_inputs() {
    // Three well-separated blobs in 4-d.
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..300usize {
        let c = (i % 3) as u8;
        let jitter = ((i * 7919) % 100) as f32 / 100.0 - 0.5;
        let mut row = [jitter, -jitter, jitter * 0.5, 0.1 * jitter];
        row[usize::from(c)] += 4.0;
        x.extend_from_slice(&row);
        y.push(c);
    }
    let r = ae_uses::linear_probe(&x, &y, &x, &y, 4, &Default::default()).unwrap();
    assert!(r.test_accuracy > 0.99, "{r:?}");
    assert!(ae_uses::linear_probe(&x, &y[..10], &x, &y, 4, &Default::default()).is_err());
    assert!(ae_uses::linear_probe(&x, &[0; 300], &x, &y, 4, &Default::default()).is_err());
    // Codes of a trained autoencoder beat chance by far on a small slice.
    let run = vanilla();
    let s = split();
    let ctr =
        ae_uses::batches::encode_set(run.model.as_ref(), &s.train, 100, &Device::Cpu).unwrap();
    let cte = ae_uses::batches::encode_set(run.model.as_ref(), &s.test, 100, &Device::Cpu).unwrap();
    let opts = ae_uses::ProbeOptions {
        standardize: true,
        max_iter: 100,
        ..Default::default()
    };
    let r = ae_uses::linear_probe(
        &ctr,
        s.train.labels().unwrap(),
        &cte,
        s.test.labels().unwrap(),
        16,
        &opts,
    )
    .unwrap();
    // (chance is 0.1; two epochs on 400 images leave the codes weak)
    assert!(r.test_accuracy > 0.3, "{r:?}");
}

#[test]
fn probe_with_baselines_gives_codes_pixels_and_pca_rows() {
    let run = vanilla();
    let cfg = ae_uses::ProbeConfig {
        options: ae_uses::ProbeOptions {
            max_iter: 50,
            ..Default::default()
        },
        baselines: true,
        batch_size: 100,
    };
    let rows =
        ae_uses::probe_with_baselines(run.model.as_ref(), "codes", split(), &cfg, &Device::Cpu)
            .unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.features.as_str()).collect();
    assert_eq!(names, ["codes", "raw pixels", "PCA, 16 components"]);
    assert_eq!(rows[0].result.features, 16);
    // (chance is 0.1)
    for r in &rows {
        assert!(r.result.test_accuracy > 0.3, "{r:?}");
    }
}

#[test]
fn an_ensemble_of_two_detectors_flags_a_planted_noise_image() {
    let s = split();
    let mut px = s.test.clone().take(50).pixels().to_vec();
    px.extend((0..784).map(|p| ((p * 7919) % 255) as f32 / 255.0));
    let images = ImageSet::from_parts(px, None, 1, 28, 28).unwrap();
    let spec = |score| ae_uses::AnomalySpec {
        normal_class: Some(1),
        score,
        rule: ThresholdRule::default(),
        threshold: 0.0,
        train_images: 0,
        train_score_mean: 0.0,
    };
    let mut ens = ae_uses::Ensemble::new(1);
    let (a, b) = (vanilla(), other_vanilla());
    ens.add(
        "a",
        a.model.as_ref(),
        &spec(ScoreKind::Mse),
        &s.train,
        &images,
        100,
        &Device::Cpu,
    )
    .unwrap();
    ens.add(
        "b",
        b.model.as_ref(),
        &spec(ScoreKind::Bce),
        &s.train,
        &images,
        100,
        &Device::Cpu,
    )
    .unwrap();
    let e = ens.finish().unwrap();
    assert!(
        e.scores[..50].iter().all(|&v| v < e.scores[50]),
        "{:?}",
        e.scores
    );
    assert!(e.scores[50] > e.threshold);
    // A detector of another class cannot join.
    let mut other = spec(ScoreKind::Mse);
    other.normal_class = Some(3);
    let err = ens
        .add(
            "runs/c",
            a.model.as_ref(),
            &other,
            &s.train,
            &images,
            100,
            &Device::Cpu,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("runs/c was trained on class 3, not on class 1"),
        "{err}"
    );
}

#[test]
fn aez_measure_beats_the_lossless_baselines_on_size() {
    let run = vanilla();
    let test = split().test.clone().take(50);
    let m8 = ae_uses::measure_aez(&run, &test, 8, 100).unwrap();
    let m4 = ae_uses::measure_aez(&run, &test, 4, 100).unwrap();
    let lossless = ae_uses::lossless_sizes(&test).unwrap();
    assert!(m4.bytes_per_image < m8.bytes_per_image, "{m4:?} {m8:?}");
    assert!(
        m8.bytes_per_image < lossless.gzip.min(lossless.png),
        "{m8:?} {lossless:?}"
    );
    // (two epochs on 400 images: 4 bits lose next to nothing against the model's own error)
    assert!(m8.psnr > 10.0 && m4.psnr > 10.0, "{m8:?} {m4:?}");
}

#[test]
fn the_seeded_iwae_repeats() {
    let run = vae();
    let set = split().test.clone().take(10);
    let est = |seed| {
        ae_uses::iwae_seeded(run.model.as_ref(), &set, 5, 10, &Device::Cpu, seed)
            .unwrap()
            .log_likelihood
    };
    assert_eq!(est(3), est(3));
    assert_ne!(est(3), est(4));
}

/// A model with a linear output trained with MSE (a standardised table, `--loss mse`) is
/// scored with its own loss: `mse`, or for a VAE an ELBO whose reconstruction term is the
/// Gaussian decoder's 0.5·SSE; the BCE score (targets in [0, 1]) is refused with the reason.
#[test]
fn mse_models_are_scored_with_their_own_loss() {
    use ae_models::{ReconLoss, VaeConfig};
    use candle_nn::{VarBuilder, VarMap};
    let test = &split().test;
    let build = |cfg: ModelConfig| {
        let vm = VarMap::new();
        let m = ae_models::build(
            &cfg,
            VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu),
        )
        .unwrap();
        (vm, m)
    };
    let input = ImageShape::default();
    let (_vm, dense) = build(ModelConfig::Vanilla(
        DenseConfig::for_input(input).with_loss(ReconLoss::Mse),
    ));
    let err = ae_uses::anomaly_scores(dense.as_ref(), test, ScoreKind::Bce, 64, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bce") && err.contains("--score mse"), "{err}");
    let mse =
        ae_uses::anomaly_scores(dense.as_ref(), test, ScoreKind::Mse, 64, &Device::Cpu).unwrap();
    assert_eq!(mse.len(), test.len());
    let (_vm, vae) = build(ModelConfig::Vae(
        VaeConfig::for_input(input).with_loss(ReconLoss::Mse),
    ));
    let elbo =
        ae_uses::anomaly_scores(vae.as_ref(), test, ScoreKind::Elbo, 64, &Device::Cpu).unwrap();
    let mse =
        ae_uses::anomaly_scores(vae.as_ref(), test, ScoreKind::Mse, 64, &Device::Cpu).unwrap();
    let d = input.dim() as f64;
    for (e, m) in elbo.iter().zip(&mse) {
        // ELBO = 0.5·SSE + KL, with SSE = d·MSE and KL >= 0 (up to f32 rounding).
        assert!(
            e.is_finite() && *e >= 0.5 * d * m * (1.0 - 1e-4),
            "{e} vs {m}"
        );
    }
}
