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
//!
//! One file per kind of figure, every item re-exported here: `images` (the
//! reconstruction and denoising grids), `vae` (prior samples, the latent
//! manifold, interpolations), `charts` (loss curves, the latent scatter plot,
//! the code histogram). This module holds the options, the [`Picture`] and
//! its manifest, the batched encode / reconstruct the figures share, and the
//! run-level entry points ([`run_pictures`], [`plot_run`]).

use std::path::{Path, PathBuf};

use ae_data::noise::Noise;
use ae_data::{ImageSet, Split};
use ae_models::{Autoencoder, ImageShape, ModelKind};
use ae_train::{LoadedRun, Metrics, load_run};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::grid::{ImageGrid, Rgb8Image, write_png};
use crate::{Result, VizError};

mod charts;
mod images;
mod vae;

pub use charts::{code_histogram, latent_scatter, loss_curves};
pub use images::{DenoiseStats, denoising, reconstructions};
pub use vae::{interpolations, manifold, normal_quantile, prior_samples};

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
    map_first(model, set, (n, batch_size), device, |x| {
        Ok(ae_train::reconstruct_batch(model, x)?)
    })
}

/// The codes (flattened, `latent_dim` values each) of the first `n` images of `set`.
pub fn encode_images(
    model: &dyn Autoencoder,
    set: &ImageSet,
    n: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    map_first(model, set, (n, batch_size), device, |x| {
        Ok(ae_train::encode_batch(model, x)?)
    })
}

/// `f` over the first `n` images of `set` in batches of `batch_size`, the flattened outputs
/// concatenated, once the images are checked to fit `model`.
fn map_first(
    model: &dyn Autoencoder,
    set: &ImageSet,
    (n, batch_size): (usize, usize),
    device: &Device,
    f: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    check_fits(model, set)?;
    ae_train::map_set_batches(model.input_layout(), set, n, batch_size, device, f)
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
    fn mse_and_psnr() {
        assert_eq!(mse(&[0.0, 1.0], &[0.0, 0.0]), 0.5);
        assert!((psnr(&[0.0; 4], &[0.1; 4]) - 20.0).abs() < 1e-5);
        assert_eq!(psnr(&[0.3], &[0.3]), f64::INFINITY);
    }
}
