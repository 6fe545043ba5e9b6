//! The figures of real (seeded, untrained) models on small synthetic image
//! sets: sizes, not blank, deterministic, and reconstruction rows that differ
//! from the originals by exactly the model's error (up to 8-bit quantisation).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ae_data::ImageSet;
use ae_data::noise::Noise;
use ae_data::rng::seeded;
use ae_models::{
    Autoencoder, ImageShape, ModelConfig, ModelKind, VaeConfig, build, init::seeded_init,
};
use ae_train::{EpochMetrics, LoadedRun, Metrics, RunConfig, evaluate};
use ae_viz::chart::{CHART_HEIGHT, CHART_WIDTH, colour};
use ae_viz::plots::{
    self, code_histogram, denoising, interpolations, latent_scatter, manifold, prior_samples,
    reconstructions,
};
use ae_viz::{ImageGrid, PlotManifest, PlotOptions, Rgb8Image, plot_run, read_png};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

/// `n` images of `c x h x w`: a bright square whose position depends on the
/// class (`i % 10`) over a faint gradient; labels are the classes.
fn images(n: usize, c: usize, h: usize, w: usize) -> ImageSet {
    let mut px = Vec::with_capacity(n * c * h * w);
    for i in 0..n {
        let class = i % 10;
        let (cy, cx) = ((class / 4) * h / 3 + 1, (class % 4) * w / 4 + 1);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let inside = y >= cy && y < cy + h / 3 && x >= cx && x < cx + w / 4;
                    let base = ((x + y + ch + i) % 7) as f32 / 40.0;
                    px.push(if inside { 0.9 - 0.1 * ch as f32 } else { base });
                }
            }
        }
    }
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    ImageSet::from_parts(px, Some(labels), c, h, w).unwrap()
}

fn model(cfg: &ModelConfig, seed: u64) -> (VarMap, Box<dyn Autoencoder>) {
    let varmap = VarMap::new();
    let m = build(
        cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    seeded_init(&varmap, &mut seeded(seed)).unwrap();
    (varmap, m)
}

fn shape(c: usize, h: usize, w: usize) -> ImageShape {
    ImageShape {
        channels: c,
        height: h,
        width: w,
    }
}

/// Mean squared difference, in [0,1] units over all channels, between the
/// images of row `a` and row `b` of a grid picture.
fn row_mse(img: &Rgb8Image, grid: &ImageGrid, c: usize, cols: usize, a: usize, b: usize) -> f64 {
    let (cw, chh) = grid.cell_size();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for col in 0..cols {
        let (xa, ya) = grid.cell_origin(a, col);
        let (xb, yb) = grid.cell_origin(b, col);
        for y in 0..chh {
            for x in 0..cw {
                let (pa, pb) = (img.pixel(xa + x, ya + y), img.pixel(xb + x, yb + y));
                for k in 0..c.min(3) {
                    let d = (pa[k] as f64 - pb[k] as f64) / 255.0;
                    sum += d * d;
                    count += 1;
                }
            }
        }
    }
    sum / count as f64
}

/// The tolerance of an MSE measured on 8-bit pixels against the exact one:
/// each pixel moves by at most 1/510 when quantised, so a difference by at most 1/255.
fn quantisation_tolerance(mse: f64) -> f64 {
    2.0 * mse.sqrt() / 255.0 + 1.0 / (255.0 * 255.0) + 1e-9
}

fn non_blank(img: &Rgb8Image) {
    assert!(img.width > 0 && img.height > 0);
    assert!(img.distinct_colours() > 2, "blank picture");
}

#[test]
fn reconstruction_rows_differ_from_the_originals_by_the_models_error() {
    let dev = Device::Cpu;
    for (kind, c, h, w) in [
        (ModelKind::Vanilla, 1, 28, 28),
        (ModelKind::Conv, 1, 28, 28),
        (ModelKind::Vanilla, 3, 20, 12),
        (ModelKind::Conv, 3, 20, 12),
        (ModelKind::Vae, 1, 16, 16),
    ] {
        let set = images(12, c, h, w);
        let (_vm, m) = model(&ModelConfig::default_for(kind, shape(c, h, w)), 3);
        let opts = PlotOptions {
            n: 7,
            ..PlotOptions::default()
        };
        let pic = reconstructions(m.as_ref(), &set, &opts, &dev).unwrap();
        let grid = ImageGrid::auto(c, h, w);
        assert_eq!((pic.image.width, pic.image.height), grid.picture_size(2, 7));
        non_blank(&pic.image);
        // Through the PNG file, as a reader of the picture sees it.
        let dir = tempfile::tempdir().unwrap();
        let path = pic.write(dir.path()).unwrap();
        let img = read_png(&path).unwrap();
        assert_eq!(img, pic.image);
        let measured = row_mse(&img, &grid, c, 7, 0, 1);
        // The model's error on these 7 images, as `ae eval` computes it (the
        // VAE's eval decodes a sample of z; its picture decodes the mean, so
        // its error is computed here from the mean's reconstruction).
        let first: Vec<usize> = (0..7).collect();
        let subset = set.subset(&first).unwrap();
        let model_mse = if kind == ModelKind::Vae {
            let x = subset
                .to_tensor(m.input_layout().data_layout(), &dev)
                .unwrap();
            let rec = m.reconstruct(&x).unwrap().flatten_all().unwrap();
            plots::mse(&subset.pixels(), &rec.to_vec1::<f32>().unwrap())
        } else {
            evaluate(m.as_ref(), &subset, 4, &dev, 0).unwrap().mse
        };
        let tol = quantisation_tolerance(model_mse);
        assert!(
            (measured - model_mse).abs() <= tol,
            "{kind} {c}x{h}x{w}: rows differ by {measured}, the model's MSE is {model_mse} (tolerance {tol})"
        );
        assert!(
            measured > 1e-3,
            "{kind}: the reconstructions are the originals"
        );
        assert!(
            pic.caption.contains(&format!("{model_mse:.5}")),
            "{}",
            pic.caption
        );
        // The top row is the originals themselves.
        let (x, y) = grid.cell_origin(0, 3);
        let v = set.image(3).unwrap()[0];
        assert_eq!(img.pixel(x, y)[0], (v * 255.0).round() as u8);
        // Deterministic.
        assert_eq!(reconstructions(m.as_ref(), &set, &opts, &dev).unwrap(), pic);
    }
}

#[test]
fn denoising_rows_are_noisy_denoised_clean() {
    let dev = Device::Cpu;
    let set = images(10, 1, 28, 28);
    let (_vm, m) = model(
        &ModelConfig::default_for(ModelKind::Denoising, shape(1, 28, 28)),
        1,
    );
    let opts = PlotOptions {
        n: 5,
        seed: 9,
        ..PlotOptions::default()
    };
    let (pic, stats) = denoising(m.as_ref(), &set, &opts, &dev).unwrap();
    let grid = ImageGrid::auto(1, 28, 28);
    assert_eq!((pic.image.width, pic.image.height), grid.picture_size(3, 5));
    assert_eq!(stats.noise, Noise::Gaussian { std: 0.4 });
    // Rows 0 and 2 differ by the noise, rows 1 and 2 by the model's error.
    let noisy_mse = row_mse(&pic.image, &grid, 1, 5, 0, 2);
    let expected = 10f64.powf(-stats.psnr_noisy / 10.0);
    assert!((noisy_mse - expected).abs() <= quantisation_tolerance(expected));
    let den_mse = row_mse(&pic.image, &grid, 1, 5, 1, 2);
    let expected = 10f64.powf(-stats.psnr_denoised / 10.0);
    assert!((den_mse - expected).abs() <= quantisation_tolerance(expected));
    assert_eq!(denoising(m.as_ref(), &set, &opts, &dev).unwrap().0, pic);
    // Another seed, other noise.
    let other = PlotOptions {
        seed: 10,
        ..opts.clone()
    };
    assert_ne!(denoising(m.as_ref(), &set, &other, &dev).unwrap().0, pic);
    let salt = PlotOptions {
        noise: Some(Noise::SaltPepper { prob: 0.2 }),
        ..opts
    };
    assert_eq!(
        denoising(m.as_ref(), &set, &salt, &dev).unwrap().1.noise,
        Noise::SaltPepper { prob: 0.2 }
    );
}

#[test]
fn vae_figures_samples_manifold_and_interpolations() {
    let dev = Device::Cpu;
    let s = shape(1, 28, 28);
    let set = images(10, 1, 28, 28);
    let cfg = ModelConfig::Vae(VaeConfig::for_input(s).with_latent_dim(2));
    let (_vm, m) = model(&cfg, 5);
    let grid = ImageGrid::auto(1, 28, 28);

    let samples = prior_samples(m.as_ref(), s, 10, 0, &dev).unwrap().unwrap();
    assert_eq!(
        (samples.image.width, samples.image.height),
        grid.picture_size(3, 4)
    );
    non_blank(&samples.image);
    assert_eq!(
        prior_samples(m.as_ref(), s, 10, 0, &dev).unwrap().unwrap(),
        samples
    );
    assert_ne!(
        prior_samples(m.as_ref(), s, 10, 1, &dev).unwrap().unwrap(),
        samples
    );

    let man = manifold(m.as_ref(), s, 6, &dev).unwrap().unwrap();
    assert_eq!((man.image.width, man.image.height), grid.picture_size(6, 6));
    non_blank(&man.image);

    let opts = PlotOptions {
        interpolation_pairs: 3,
        interpolation_steps: 5,
        ..PlotOptions::default()
    };
    let interp = interpolations(m.as_ref(), &set, &opts, &dev)
        .unwrap()
        .unwrap();
    assert_eq!(
        (interp.image.width, interp.image.height),
        grid.picture_size(3, 7)
    );
    // The ends of each row are the two test images themselves.
    for pair in 0..3 {
        for (col, idx) in [(0, 2 * pair), (6, 2 * pair + 1)] {
            let (x, y) = grid.cell_origin(pair, col);
            let img = set.image(idx).unwrap();
            for (yy, xx) in [(0, 0), (10, 10), (27, 13)] {
                let v = img[yy * 28 + xx];
                let (sx, sy) = (x + xx * 2, y + yy * 2);
                assert_eq!(interp.image.pixel(sx, sy)[0], (v * 255.0).round() as u8);
            }
        }
    }
    // Other models have neither samples nor a manifold nor interpolations.
    let (_v2, vanilla) = model(&ModelConfig::default_for(ModelKind::Vanilla, s), 5);
    assert!(
        prior_samples(vanilla.as_ref(), s, 4, 0, &dev)
            .unwrap()
            .is_none()
    );
    assert!(manifold(vanilla.as_ref(), s, 6, &dev).unwrap().is_none());
    assert!(
        interpolations(vanilla.as_ref(), &set, &opts, &dev)
            .unwrap()
            .is_none()
    );
    // A 20-d VAE has no manifold.
    let (_v3, vae20) = model(&ModelConfig::default_for(ModelKind::Vae, s), 5);
    assert!(manifold(vae20.as_ref(), s, 6, &dev).unwrap().is_none());
}

#[test]
fn latent_scatter_and_code_histogram_are_charts_with_every_class() {
    let dev = Device::Cpu;
    let s = shape(1, 28, 28);
    let set = images(60, 1, 28, 28);
    let opts = PlotOptions::default();
    let (_v1, vanilla) = model(&ModelConfig::default_for(ModelKind::Vanilla, s), 2);
    let (_v2, vae2) = model(
        &ModelConfig::Vae(VaeConfig::for_input(s).with_latent_dim(2)),
        2,
    );
    let (_v3, conv) = model(&ModelConfig::default_for(ModelKind::Conv, s), 2);
    for m in [&vanilla, &vae2, &conv] {
        let pic = latent_scatter(m.as_ref(), &set, &opts, &dev).unwrap();
        assert_eq!(
            (pic.image.width, pic.image.height),
            (CHART_WIDTH, CHART_HEIGHT)
        );
        for class in 0..10 {
            let c = colour(class);
            assert!(
                pic.image.data.chunks_exact(3).any(|p| p == [c.0, c.1, c.2]),
                "{}: class {class} is missing",
                m.kind()
            );
        }
        assert_eq!(latent_scatter(m.as_ref(), &set, &opts, &dev).unwrap(), pic);
    }
    assert!(
        latent_scatter(vae2.as_ref(), &set, &opts, &dev)
            .unwrap()
            .caption
            .contains("two dimensions")
    );
    assert!(
        latent_scatter(vanilla.as_ref(), &set, &opts, &dev)
            .unwrap()
            .caption
            .contains("principal components")
    );

    let (_v4, sparse) = model(&ModelConfig::default_for(ModelKind::Sparse, s), 2);
    let with_peer =
        code_histogram(sparse.as_ref(), Some(vanilla.as_ref()), &set, &opts, &dev).unwrap();
    assert_eq!(
        (with_peer.image.width, with_peer.image.height),
        (CHART_WIDTH, CHART_HEIGHT)
    );
    assert!(
        with_peer.caption.contains("vanilla"),
        "{}",
        with_peer.caption
    );
    let alone = code_histogram(sparse.as_ref(), None, &set, &opts, &dev).unwrap();
    assert_ne!(alone.image, with_peer.image);
    non_blank(&alone.image);
}

fn epoch(e: usize, train: f64, val: f64) -> EpochMetrics {
    EpochMetrics {
        epoch: e,
        lr: 1e-3,
        train_loss: train,
        val_loss: val,
        val_recon: val,
        val_kl: None,
        val_sparsity: None,
        seconds: 1.0,
        images_per_sec: 1000.0,
    }
}

fn loaded(dir: &Path, cfg: ModelConfig) -> LoadedRun {
    let (varmap, model) = model(&cfg, 11);
    let mut config = RunConfig::for_kind(cfg.kind(), Default::default(), cfg.input());
    config.model = cfg;
    let metrics = Metrics {
        epochs: vec![
            epoch(1, 0.3, 0.25),
            epoch(2, 0.2, 0.19),
            epoch(3, 0.15, 0.16),
        ],
        best_epoch: Some(3),
        ..Metrics::default()
    };
    LoadedRun {
        dir: dir.to_path_buf(),
        config,
        metrics,
        varmap,
        model,
        device: Device::Cpu,
    }
}

#[test]
fn plot_run_writes_every_picture_that_applies_deterministically() {
    let s = shape(1, 28, 28);
    let set = images(30, 1, 28, 28);
    let root = tempfile::tempdir().unwrap();
    let opts = PlotOptions {
        samples: 16,
        ..PlotOptions::default()
    };
    let vanilla = loaded(
        &root.path().join("vanilla"),
        ModelConfig::default_for(ModelKind::Vanilla, s),
    );
    let cases: Vec<(ModelConfig, &[&str])> = vec![
        (
            ModelConfig::default_for(ModelKind::Vanilla, s),
            &["loss.png", "reconstructions.png", "latent.png"],
        ),
        (
            ModelConfig::default_for(ModelKind::Sparse, s),
            &[
                "loss.png",
                "reconstructions.png",
                "latent.png",
                "code-histogram.png",
            ],
        ),
        (
            ModelConfig::default_for(ModelKind::Denoising, s),
            &[
                "loss.png",
                "reconstructions.png",
                "denoising.png",
                "latent.png",
            ],
        ),
        (
            ModelConfig::Vae(VaeConfig::for_input(s).with_latent_dim(2)),
            &[
                "loss.png",
                "reconstructions.png",
                "latent.png",
                "samples.png",
                "manifold.png",
                "interpolations.png",
            ],
        ),
    ];
    for (cfg, files) in cases {
        let kind = cfg.kind();
        let run = loaded(&root.path().join(kind.as_str()), cfg);
        let peer = (kind == ModelKind::Sparse).then_some(&vanilla);
        let a = root.path().join(format!("{kind}-a"));
        let b = root.path().join(format!("{kind}-b"));
        let manifest = plot_run(&run, &set, peer, &a, &opts).unwrap();
        assert_eq!(plot_run(&run, &set, peer, &b, &opts).unwrap(), manifest);
        let listed: Vec<&str> = manifest.pictures.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(listed, files, "{kind}");
        assert_eq!(PlotManifest::read(&a).unwrap().unwrap(), manifest);
        for info in &manifest.pictures {
            let bytes = std::fs::read(a.join(&info.file)).unwrap();
            assert_eq!(
                bytes,
                std::fs::read(b.join(&info.file)).unwrap(),
                "{kind}/{}",
                info.file
            );
            let img = read_png(&a.join(&info.file)).unwrap();
            assert_eq!(
                (img.width, img.height),
                (info.width, info.height),
                "{}",
                info.file
            );
            non_blank(&img);
            assert!(!info.caption.is_empty() && !info.title.is_empty());
        }
        // Nothing but the pictures and the manifest: no temporary files left.
        assert_eq!(std::fs::read_dir(&a).unwrap().count(), files.len() + 1);
    }
    assert!(PlotManifest::read(root.path()).unwrap().is_none());
}

#[test]
fn loss_curves_need_epochs_and_mismatched_images_are_errors() {
    let s = shape(1, 28, 28);
    assert!(
        plots::loss_curves(&Metrics::default(), ModelKind::Vanilla)
            .unwrap()
            .is_none()
    );
    let (_vm, m) = model(&ModelConfig::default_for(ModelKind::Vanilla, s), 0);
    let wrong = images(4, 1, 10, 10);
    let err =
        reconstructions(m.as_ref(), &wrong, &PlotOptions::default(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("1x10x10"), "{err}");
}
