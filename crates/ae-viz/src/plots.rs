//! Figures of a trained model: what [`plot_run`] (and so `ae plot` and
//! `cargo xtask train-all`) writes into a run folder, and what `ae
//! reconstruct`, `ae denoise` and `ae sample` write one at a time.
//!
//! | file | when | what |
//! |---|---|---|
//! | `loss.png` | the run has metrics | training and validation loss per epoch |
//! | `reconstructions.png` | always | test images above their reconstructions (`2 x n`) |
//! | `denoising.png` | denoising model | noisy, denoised and clean rows |
//! | `latent.png` | always | the codes of test images in 2-D, coloured by class: the two latent dimensions of a 2-D code, else a PCA projection |
//! | `samples.png` | VAE | decoded samples from the prior |
//! | `manifold.png` | VAE with a 2-D latent | decoded grid of the latent plane at Gaussian quantiles |
//! | `interpolations.png` | VAE | rows from one test image to another, decoded along the line between their codes |
//! | `code-histogram.png` | sparse | code activations, against the vanilla model's when its run sits beside this one |
//! | `plots.json` | always | [`PlotManifest`]: file, title, caption and size of each picture |
//!
//! Everything random (noise, prior samples) comes from `ae_data::rng::stream`
//! of the seed, so a checkpoint and a seed give the same bytes every time.

use std::path::{Path, PathBuf};

use ae_data::noise::Noise;
use ae_data::rng::stream;
use ae_data::{ImageSet, Split};
use ae_models::{Autoencoder, ImageShape, ModelKind};
use ae_train::{LoadedRun, Metrics, load_run};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::chart::{self, Series};
use crate::grid::{ImageGrid, Rgb8Image, write_png};
use crate::pca::pca2;
use crate::{Result, VizError};

/// The manifest of the pictures of a run folder.
pub const MANIFEST_FILE: &str = "plots.json";

/// Version of the manifest format.
const MANIFEST_VERSION: u32 = 1;

/// Sizes and seeds of the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Images per row of the reconstruction and denoising figures.
    pub n: usize,
    /// Seed of the noise and of the prior samples.
    pub seed: u64,
    /// Samples from the prior (VAE).
    pub samples: usize,
    /// Test images at most in the latent scatter plot and the code histogram.
    pub max_points: usize,
    /// Steps per side of the 2-D manifold (VAE with a 2-D latent).
    pub manifold_steps: usize,
    /// Pairs of test images interpolated between (VAE).
    pub interpolation_pairs: usize,
    /// Decoded steps between the two images of a pair, ends included.
    pub interpolation_steps: usize,
    /// Bins of the code histogram.
    pub bins: usize,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Noise of the denoising figure (default: the model's own, else Gaussian 0.4).
    pub noise: Option<Noise>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            n: 10,
            seed: 0,
            samples: 64,
            max_points: 2000,
            manifold_steps: 15,
            interpolation_pairs: 5,
            interpolation_steps: 8,
            bins: 40,
            batch_size: 256,
            noise: None,
        }
    }
}

/// One picture in memory, with what the report says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// File name in the output folder, e.g. `reconstructions.png`.
    pub file: String,
    /// A short title.
    pub title: String,
    /// What the picture shows, in a sentence or two.
    pub caption: String,
    /// The pixels.
    pub image: Rgb8Image,
}

impl Picture {
    /// Writes the picture as `dir/<file>` (atomically) and returns the path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(&self.file);
        write_png(&path, &self.image)?;
        Ok(path)
    }

    /// What the manifest records of the picture.
    pub fn info(&self) -> PictureInfo {
        PictureInfo {
            file: self.file.clone(),
            title: self.title.clone(),
            caption: self.caption.clone(),
            width: self.image.width,
            height: self.image.height,
        }
    }
}

/// One picture of a run folder, as listed in `plots.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureInfo {
    /// File name, relative to the run folder.
    pub file: String,
    /// A short title.
    pub title: String,
    /// What the picture shows.
    pub caption: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// `plots.json`: the pictures [`plot_run`] wrote, in the order to show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlotManifest {
    /// Format version.
    pub format_version: u32,
    /// The model kind of the run.
    pub model: String,
    /// The seed the pictures were drawn with.
    pub seed: u64,
    /// The pictures.
    pub pictures: Vec<PictureInfo>,
}

impl PlotManifest {
    /// Reads `dir/plots.json`; `Ok(None)` when the folder has none.
    pub fn read(dir: &Path) -> Result<Option<PlotManifest>> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(VizError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| VizError::Json { path, source })
    }

    /// Writes `dir/plots.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(MANIFEST_FILE);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|source| VizError::Json {
            path: path.clone(),
            source,
        })?;
        bytes.push(b'\n');
        ae_train::checkpoint::write_atomic(&path, &bytes)?;
        Ok(path)
    }
}

/// PSNR of the noisy input and of the denoised output against the clean images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenoiseStats {
    /// The noise that was applied.
    pub noise: Noise,
    /// PSNR (dB) of the noisy images.
    pub psnr_noisy: f64,
    /// PSNR (dB) of the denoised images.
    pub psnr_denoised: f64,
}

/// MSE and PSNR of pixel buffers: defined once, in `ae-train` (its evaluation reports them).
pub use ae_train::{mse, psnr};

/// The grid images of `set` are drawn with.
fn grid_for(shape: [usize; 3]) -> ImageGrid {
    ImageGrid::auto(shape[0], shape[1], shape[2])
}

fn set_shape(set: &ImageSet) -> [usize; 3] {
    [set.channels(), set.height(), set.width()]
}

/// Fails unless `set`'s images fit the model's input.
fn check_fits(model: &dyn Autoencoder, set: &ImageSet) -> Result<()> {
    if let Some(why) = ae_train::misfit(model, set, "the images") {
        return Err(VizError::Data(why));
    }
    if set.is_empty() {
        return Err(VizError::Data("an empty image set".into()));
    }
    Ok(())
}

/// The reconstructions (in `[0, 1]`) of the first `n` images of `set`.
pub fn reconstruct_images(
    model: &dyn Autoencoder,
    set: &ImageSet,
    n: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    check_fits(model, set)?;
    let n = n.min(set.len());
    ae_train::map_batches(
        model.input_layout(),
        &set.first_pixels(n),
        batch_size,
        device,
        |x| Ok::<_, VizError>(model.reconstruct(x)?),
    )
}

/// The codes (flattened, `latent_dim` values each) of the first `n` images of `set`.
pub fn encode_images(
    model: &dyn Autoencoder,
    set: &ImageSet,
    n: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    check_fits(model, set)?;
    let n = n.min(set.len());
    ae_train::map_batches(
        model.input_layout(),
        &set.first_pixels(n),
        batch_size,
        device,
        |x| Ok::<_, VizError>(model.encode(x)?.flatten_from(1)?),
    )
}

/// Originals above reconstructions: the first `opts.n` test images in the top
/// row, the model's reconstructions below (`reconstructions.png`).
pub fn reconstructions(
    model: &dyn Autoencoder,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Picture> {
    let n = opts.n.min(set.len());
    if n == 0 {
        return Err(VizError::Data("a reconstruction figure of 0 images".into()));
    }
    let rec = reconstruct_images(model, set, n, opts.batch_size, device)?;
    let originals = set.first_pixels(n);
    let err = mse(&originals, &rec);
    let mut pixels = Vec::with_capacity(2 * rec.len());
    pixels.extend_from_slice(&originals);
    pixels.extend_from_slice(&rec);
    let image = grid_for(set_shape(set)).render(&pixels, 2, n)?;
    Ok(Picture {
        file: "reconstructions.png".into(),
        title: "Reconstructions".into(),
        caption: format!(
            "Top: {n} test images; bottom: their reconstructions{} (MSE {err:.5} per pixel, PSNR {:.2} dB).",
            if model.kind() == ModelKind::Vae {
                ", decoded from the posterior means"
            } else {
                ""
            },
            psnr(&originals, &rec)
        ),
        image,
    })
}

/// The noise the denoising figure applies: `opts.noise`, else the model's
/// own, else Gaussian with std 0.4.
fn denoise_noise(model: &dyn Autoencoder, opts: &PlotOptions) -> Noise {
    match (&opts.noise, model.noise()) {
        (Some(n), _) => *n,
        (None, Some(n)) if !matches!(n, Noise::None) => *n,
        _ => Noise::Gaussian { std: 0.4 },
    }
}

/// Noisy, denoised and clean rows of the first `opts.n` test images
/// (`denoising.png`); the noise is drawn from the stream `"denoise"` of `opts.seed`.
pub fn denoising(
    model: &dyn Autoencoder,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<(Picture, DenoiseStats)> {
    check_fits(model, set)?;
    let n = opts.n.min(set.len());
    if n == 0 {
        return Err(VizError::Data("a denoising figure of 0 images".into()));
    }
    let noise = denoise_noise(model, opts);
    noise.validate()?;
    let clean = &*set.first_pixels(n);
    let mut noisy = clean.to_vec();
    noise.apply(&mut noisy, set.shape(), &mut stream(opts.seed, "denoise"));
    let den = ae_train::map_batches(model.input_layout(), &noisy, opts.batch_size, device, |x| {
        Ok::<_, VizError>(model.reconstruct(x)?)
    })?;
    let stats = DenoiseStats {
        noise,
        psnr_noisy: psnr(&noisy, clean),
        psnr_denoised: psnr(&den, clean),
    };
    let mut pixels = noisy;
    pixels.extend_from_slice(&den);
    pixels.extend_from_slice(clean);
    let image = grid_for(set_shape(set)).render(&pixels, 3, n)?;
    Ok((
        Picture {
            file: "denoising.png".into(),
            title: "Denoising".into(),
            caption: format!(
                "Rows: test images with {noise} noise (PSNR {:.2} dB), denoised by the model ({:.2} dB), clean.",
                stats.psnr_noisy, stats.psnr_denoised
            ),
            image,
        },
        stats,
    ))
}

/// `n` samples from a generative model's prior, decoded, in a near-square
/// grid (`samples.png`); `Ok(None)` for a model without a prior. Drawn from
/// the stream `"prior"` of `seed` (what `ae sample` draws).
pub fn prior_samples(
    model: &dyn Autoencoder,
    shape: ImageShape,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<Option<Picture>> {
    if n == 0 || n > 4096 {
        return Err(VizError::Data(format!(
            "{n} samples (between 1 and 4096 can be drawn)"
        )));
    }
    let mut rng = stream(seed, "prior");
    let Some(logits) = model.sample_prior(n, &mut rng, device)? else {
        return Ok(None);
    };
    let mut pixels = ae_kernels::sigmoid(&logits)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    pixels.resize(rows * cols * shape.dim(), 0.0);
    let image =
        grid_for([shape.channels, shape.height, shape.width]).render(&pixels, rows, cols)?;
    Ok(Some(Picture {
        file: "samples.png".into(),
        title: "Samples from the prior".into(),
        caption: format!("{n} images decoded from z ~ N(0, I) (seed {seed})."),
        image,
    }))
}

/// The inverse of the standard normal CDF (Acklam's rational approximation,
/// relative error below 1.2e-9), for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const P_LOW: f64 = 0.02425;
    if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// A VAE with a 2-D latent only: the decoded images of a `steps x steps` grid
/// of the latent plane at the Gaussian quantiles 0.05 … 0.95 (`manifold.png`;
/// `z1` grows to the right, `z2` upwards). `Ok(None)` for other models.
pub fn manifold(
    model: &dyn Autoencoder,
    shape: ImageShape,
    steps: usize,
    device: &Device,
) -> Result<Option<Picture>> {
    if model.kind() != ModelKind::Vae || model.latent_dim() != 2 {
        return Ok(None);
    }
    let steps = steps.clamp(2, 40);
    let q: Vec<f32> = (0..steps)
        .map(|i| normal_quantile(0.05 + 0.9 * i as f64 / (steps - 1) as f64) as f32)
        .collect();
    let mut z = Vec::with_capacity(2 * steps * steps);
    for row in 0..steps {
        for &z1 in &q {
            z.extend_from_slice(&[z1, q[steps - 1 - row]]);
        }
    }
    let z = Tensor::from_vec(z, (steps * steps, 2), device)?;
    let pixels = ae_kernels::sigmoid(&model.decode(&z)?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let image =
        grid_for([shape.channels, shape.height, shape.width]).render(&pixels, steps, steps)?;
    Ok(Some(Picture {
        file: "manifold.png".into(),
        title: "Latent manifold".into(),
        caption: format!(
            "Decoded points of the 2-D latent plane on a {steps}x{steps} grid at the Gaussian quantiles 0.05 to 0.95 (z1 to the right, z2 upwards)."
        ),
        image,
    }))
}

/// VAE only: for pairs of test images (0, 1), (2, 3), …, a row from the first
/// image to the second: the two originals at the ends and between them the
/// decoded points of the line between their codes, ends included
/// (`interpolations.png`). `Ok(None)` for other models or fewer than 2 images.
pub fn interpolations(
    model: &dyn Autoencoder,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Option<Picture>> {
    if model.kind() != ModelKind::Vae {
        return Ok(None);
    }
    let pairs = opts.interpolation_pairs.min(set.len() / 2);
    let steps = opts.interpolation_steps.max(2);
    if pairs == 0 {
        return Ok(None);
    }
    let codes = encode_images(model, set, 2 * pairs, opts.batch_size, device)?;
    let k = model.latent_dim();
    let mut z = Vec::with_capacity(pairs * steps * k);
    for p in 0..pairs {
        let (a, b) = (&codes[2 * p * k..][..k], &codes[(2 * p + 1) * k..][..k]);
        for s in 0..steps {
            let t = s as f32 / (steps - 1) as f32;
            z.extend(a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y));
        }
    }
    let z = Tensor::from_vec(z, (pairs * steps, k), device)?;
    let decoded = ae_kernels::sigmoid(&model.decode(&z)?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let dim = set.dim();
    let cols = steps + 2;
    let ends = set.first_pixels(2 * pairs);
    let mut pixels = Vec::with_capacity(pairs * cols * dim);
    for p in 0..pairs {
        pixels.extend_from_slice(&ends[2 * p * dim..][..dim]);
        pixels.extend_from_slice(&decoded[p * steps * dim..][..steps * dim]);
        pixels.extend_from_slice(&ends[(2 * p + 1) * dim..][..dim]);
    }
    let image = grid_for(set_shape(set)).render(&pixels, pairs, cols)?;
    Ok(Some(Picture {
        file: "interpolations.png".into(),
        title: "Interpolations".into(),
        caption: format!(
            "Each row: a test image, {steps} images decoded along the line between the posterior means of it and the next test image, and that image."
        ),
        image,
    }))
}

/// The codes of up to `opts.max_points` test images in 2-D, coloured by
/// class (`latent.png`): the code itself when it has two dimensions, else its
/// projection on the first two principal components.
pub fn latent_scatter(
    model: &dyn Autoencoder,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Picture> {
    let m = opts.max_points.min(set.len()).max(1);
    let codes = encode_images(model, set, m, opts.batch_size, device)?;
    let k = model.latent_dim();
    if codes.len() != m * k {
        return Err(VizError::Data(format!(
            "{} code values for {m} images of latent size {k}",
            codes.len()
        )));
    }
    let what = if model.kind() == ModelKind::Vae {
        "posterior means"
    } else {
        "codes"
    };
    let (points, title, xd, yd, how) = if k == 2 {
        let points: Vec<[f64; 2]> = codes
            .chunks_exact(2)
            .map(|c| [c[0] as f64, c[1] as f64])
            .collect();
        (
            points,
            "Latent space".to_string(),
            "z1".to_string(),
            "z2".to_string(),
            format!("the two dimensions of the {what}"),
        )
    } else {
        let p = pca2(&codes, m, k)?;
        let pct = |v: f64| {
            if p.total_variance > 0.0 {
                100.0 * v / p.total_variance
            } else {
                0.0
            }
        };
        (
            p.points.clone(),
            format!("Latent space: PCA of the {k}-d {what}"),
            format!("PC 1 ({:.0}% of variance)", pct(p.variance[0])),
            format!("PC 2 ({:.0}% of variance)", pct(p.variance[1])),
            format!(
                "the first two principal components of the {k}-dimensional {what} ({:.0}% of their variance)",
                100.0 * p.explained()
            ),
        )
    };
    let labels = set.labels().map(|l| &l[..m]);
    let image = chart::scatter(&title, &xd, &yd, &points, labels)?;
    Ok(Picture {
        file: "latent.png".into(),
        title: "Latent space".into(),
        caption: format!(
            "{m} test images placed by {how}{}.",
            if labels.is_some() {
                ", coloured by class"
            } else {
                ""
            }
        ),
        image,
    })
}

/// Histogram of the code activations of `model` over up to
/// `opts.max_points` test images, against those of `peer` (the vanilla
/// model) on the same images when given (`code-histogram.png`).
pub fn code_histogram(
    model: &dyn Autoencoder,
    peer: Option<&dyn Autoencoder>,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Picture> {
    let m = opts.max_points.min(set.len()).max(1);
    let ours = encode_images(model, set, m, opts.batch_size, device)?;
    let mean_abs =
        |v: &[f32]| v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len().max(1) as f64;
    let name = model.kind().to_string();
    let (image, caption) = match peer {
        Some(p) => {
            let theirs = encode_images(p, set, m, opts.batch_size, device)?;
            let pname = p.kind().to_string();
            let (a, b) = (mean_abs(&ours), mean_abs(&theirs));
            let title = format!("Code activations: {name} vs {pname}");
            let image = chart::histogram(
                &title,
                "code activation",
                "fraction of activations",
                &[(&name, &ours), (&pname, &theirs)],
                opts.bins,
            )?;
            (
                image,
                format!(
                    "Code values of {m} test images: {name} (mean |z| {a:.4}) against {pname} (mean |z| {b:.4}, {:.2}x).",
                    a / b.max(1e-12)
                ),
            )
        }
        None => {
            let title = format!("Code activations: {name}");
            let image = chart::histogram(
                &title,
                "code activation",
                "fraction of activations",
                &[(&name, &ours)],
                opts.bins,
            )?;
            (
                image,
                format!(
                    "Code values of {m} test images (mean |z| {:.4}); no vanilla run beside this one to compare with.",
                    mean_abs(&ours)
                ),
            )
        }
    };
    Ok(Picture {
        file: "code-histogram.png".into(),
        title: "Code activations".into(),
        caption,
        image,
    })
}

/// Training and validation loss per epoch (`loss.png`); `Ok(None)` when the
/// run has no completed epoch.
pub fn loss_curves(metrics: &Metrics, kind: ModelKind) -> Result<Option<Picture>> {
    if metrics.epochs.is_empty() {
        return Ok(None);
    }
    let train: Vec<(f64, f64)> = metrics
        .epochs
        .iter()
        .map(|e| (e.epoch as f64, e.train_loss))
        .collect();
    let val: Vec<(f64, f64)> = metrics
        .epochs
        .iter()
        .map(|e| (e.epoch as f64, e.val_loss))
        .collect();
    let y = if kind == ModelKind::Vae {
        "loss per image (BCE sum + β·KL)"
    } else {
        "loss (the training objective)"
    };
    let image = chart::line_chart(
        &format!("{kind}: loss per epoch"),
        "epoch",
        y,
        &[
            Series {
                name: "training",
                points: &train,
            },
            Series {
                name: "validation",
                points: &val,
            },
        ],
        true,
    )?;
    let last = &metrics.epochs[metrics.epochs.len() - 1];
    Ok(Some(Picture {
        file: "loss.png".into(),
        title: "Loss curves".into(),
        caption: format!(
            "Training and validation loss over {} epoch{} (last: {:.4} and {:.4}{}).",
            metrics.epochs.len(),
            if metrics.epochs.len() == 1 { "" } else { "s" },
            last.train_loss,
            last.val_loss,
            metrics
                .best_epoch
                .map(|b| format!("; best validation loss at epoch {b}"))
                .unwrap_or_default()
        ),
        image,
    }))
}

/// The test images of a run's data set (only the test split is kept), the
/// first `limit` of them when given.
pub fn test_images(run: &LoadedRun, limit: Option<usize>) -> Result<ImageSet> {
    let mut cfg = run.config.data.clone();
    cfg.train_limit = Some(1);
    if limit.is_some() {
        cfg.test_limit = limit;
    }
    let Split { test, .. } = cfg.load()?;
    Ok(test)
}

/// For a sparse run, the vanilla run beside it (`../vanilla`, as `cargo
/// xtask train-all` lays them out) when there is one of the same input shape:
/// the peer of the code histogram. `Ok(None)` otherwise.
pub fn vanilla_peer(run: &LoadedRun) -> Result<Option<LoadedRun>> {
    if run.config.model.kind() != ModelKind::Sparse {
        return Ok(None);
    }
    let Some(parent) = run.dir.parent() else {
        return Ok(None);
    };
    let dir = parent.join(ModelKind::Vanilla.as_str());
    if !dir.join(ae_train::checkpoint::CONFIG_FILE).is_file() {
        return Ok(None);
    }
    let peer = load_run(&dir, &run.device)?;
    if peer.config.model.kind() != ModelKind::Vanilla
        || peer.model.input_layout().dim() != run.model.input_layout().dim()
    {
        return Ok(None);
    }
    Ok(Some(peer))
}

/// Every picture that applies to `model` (see the table of this module), in memory.
pub fn run_pictures(
    model: &dyn Autoencoder,
    shape: ImageShape,
    metrics: &Metrics,
    test: &ImageSet,
    peer: Option<&dyn Autoencoder>,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Vec<Picture>> {
    let mut pictures = Vec::new();
    pictures.extend(loss_curves(metrics, model.kind())?);
    if test.is_table() {
        // Rows of a table are not pictures: only the curves, the latent
        // scatter and the code histogram apply.
        pictures.push(latent_scatter(model, test, opts, device)?);
        if model.kind() == ModelKind::Sparse {
            pictures.push(code_histogram(model, peer, test, opts, device)?);
        }
        return Ok(pictures);
    }
    pictures.push(reconstructions(model, test, opts, device)?);
    if model.kind() == ModelKind::Denoising {
        pictures.push(denoising(model, test, opts, device)?.0);
    }
    pictures.push(latent_scatter(model, test, opts, device)?);
    pictures.extend(prior_samples(
        model,
        shape,
        opts.samples,
        opts.seed,
        device,
    )?);
    pictures.extend(manifold(model, shape, opts.manifold_steps, device)?);
    pictures.extend(interpolations(model, test, opts, device)?);
    if model.kind() == ModelKind::Sparse {
        pictures.push(code_histogram(model, peer, test, opts, device)?);
    }
    Ok(pictures)
}

/// Writes every picture that applies to the run into `out_dir` (created if
/// needed) and the manifest `plots.json` listing them; returns the manifest.
///
/// `test` are the images to show (usually [`test_images`]); `peer` is the
/// vanilla run the sparse model's code histogram compares with (usually
/// [`vanilla_peer`]).
pub fn plot_run(
    run: &LoadedRun,
    test: &ImageSet,
    peer: Option<&LoadedRun>,
    out_dir: &Path,
    opts: &PlotOptions,
) -> Result<PlotManifest> {
    std::fs::create_dir_all(out_dir).map_err(|source| VizError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let pictures = run_pictures(
        run.model.as_ref(),
        run.config.model.input(),
        &run.metrics,
        test,
        peer.map(|p| p.model.as_ref()),
        opts,
        &run.device,
    )?;
    for p in &pictures {
        p.write(out_dir)?;
    }
    let manifest = PlotManifest {
        format_version: MANIFEST_VERSION,
        model: run.config.model.kind().to_string(),
        seed: opts.seed,
        pictures: pictures.iter().map(Picture::info).collect(),
    };
    manifest.write(out_dir)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-7);
        assert!((normal_quantile(0.05) + 1.644_853_627).abs() < 1e-7);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-7);
        assert!((normal_quantile(0.99) - 2.326_347_874).abs() < 1e-7);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn mse_and_psnr() {
        assert_eq!(mse(&[0.0, 1.0], &[0.0, 0.0]), 0.5);
        assert!((psnr(&[0.0; 4], &[0.1; 4]) - 20.0).abs() < 1e-5);
        assert_eq!(psnr(&[0.3], &[0.3]), f64::INFINITY);
    }
}
