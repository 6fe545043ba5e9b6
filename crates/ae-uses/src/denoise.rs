//! Denoising measured: PSNR and SSIM of noisy and of denoised test images
//! against the clean ones, for several kinds of noise.

use ae_data::rng::stream;
use ae_data::{ImageSet, Noise};
use ae_models::Autoencoder;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::batches::check_fits;
use crate::error::Result;
use crate::stats::{mse, psnr_of_mse, ssim};

/// The noises of the standard table: Gaussian 0.2, 0.4, 0.6 and salt-and-pepper 0.2.
pub fn standard_noises() -> Vec<Noise> {
    vec![
        Noise::Gaussian { std: 0.2 },
        Noise::Gaussian { std: 0.4 },
        Noise::Gaussian { std: 0.6 },
        Noise::SaltPepper { prob: 0.2 },
    ]
}

/// One row of the table: means over the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseRow {
    /// The noise, as `gaussian:0.4`, `salt-pepper:0.2`, ...
    pub noise: String,
    /// Images.
    pub images: usize,
    /// Mean per-image PSNR (dB) of the noisy images against the clean ones.
    pub psnr_noisy: f64,
    /// Mean per-image PSNR (dB) of the denoised images.
    pub psnr_denoised: f64,
    /// Mean SSIM of the noisy images.
    pub ssim_noisy: f64,
    /// Mean SSIM of the denoised images.
    pub ssim_denoised: f64,
}

/// Per-image PSNR with the MSE floored at 1e-10 (100 dB), so that an
/// untouched image does not make the mean infinite.
fn image_psnr(a: &[f32], b: &[f32]) -> f64 {
    psnr_of_mse(mse(a, b).max(1e-10))
}

/// For each noise: corrupts every image of `set` (noise drawn from
/// `stream(seed, "denoise-table/<noise>")`), denoises it with the model's
/// reconstruction, and averages PSNR and SSIM against the clean image.
pub fn denoise_table(
    model: &dyn Autoencoder,
    set: &ImageSet,
    noises: &[Noise],
    batch: usize,
    device: &Device,
    seed: u64,
) -> Result<Vec<DenoiseRow>> {
    check_fits(model, set, "the images to denoise")?;
    let [c, h, w] = set.shape();
    let d = set.dim();
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut rows = Vec::new();
    for noise in noises {
        noise.validate()?;
        let mut rng = stream(seed, &format!("denoise-table/{noise}"));
        let (mut pn, mut pd, mut sn, mut sd) = (0.0, 0.0, 0.0, 0.0);
        let mut clean = Vec::new();
        for chunk in idx.chunks(batch.max(1)) {
            set.gather(chunk, &mut clean)?;
            let mut noisy = clean.clone();
            noise.apply(&mut noisy, set.shape(), &mut rng);
            let x = Tensor::from_slice(
                &noisy,
                model.input_layout().shape(chunk.len()).as_slice(),
                device,
            )?;
            let den = ae_train::reconstruct_batch(model, &x)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for i in 0..chunk.len() {
                let r = i * d..(i + 1) * d;
                let (cl, no, de) = (&clean[r.clone()], &noisy[r.clone()], &den[r]);
                pn += image_psnr(no, cl);
                pd += image_psnr(de, cl);
                sn += ssim(no, cl, c, h, w)?;
                sd += ssim(de, cl, c, h, w)?;
            }
        }
        let n = set.len().max(1) as f64;
        rows.push(DenoiseRow {
            noise: noise.to_string(),
            images: set.len(),
            psnr_noisy: pn / n,
            psnr_denoised: pd / n,
            ssim_noisy: sn / n,
            ssim_denoised: sd / n,
        });
    }
    Ok(rows)
}
