//! Image-grid figures of reconstruction: originals above reconstructions
//! (`reconstructions.png`) and noisy / denoised / clean rows (`denoising.png`).

use ae_data::ImageSet;
use ae_data::noise::Noise;
use ae_data::rng::stream;
use ae_models::{Autoencoder, ModelKind};
use candle_core::Device;

use super::{Picture, PlotOptions, check_fits, grid_for, mse, psnr, reconstruct_images, set_shape};
use crate::{Result, VizError};

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
        Ok::<_, VizError>(ae_train::reconstruct_batch(model, x)?)
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
