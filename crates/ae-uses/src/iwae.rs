//! The log-likelihood of test images under a VAE, estimated by importance
//! sampling with `K` samples of the posterior (the IWAE bound of Burda et al. 2016):
//!
//! `log p(x) ≥ L_K = E[ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) ]`, `z_k ~ q(z|x)`,
//!
//! with `p(x|z)` the Bernoulli likelihood of the decoder (`-BCE` summed over
//! pixels, as in the training loss), `p(z) = N(0, I)` and `q(z|x) =
//! N(μ, σ²)`. `L_1` is the ELBO; `L_K` grows with `K` towards `log p(x)`.
//! Values are in nats per image; `ε` is drawn from our seeded RNG.

use ae_data::{AeRng, ImageSet};
use ae_models::{Autoencoder, ModelKind};
use candle_core::{D, DType, Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::anomaly::bce_rows;
use crate::batches::{batch_tensor, check_fits};
use crate::error::{Result, UsesError};

/// The IWAE estimate over a set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IwaeResult {
    /// Importance samples per image.
    pub k: usize,
    /// Images.
    pub images: usize,
    /// Mean of `L_K` over the images, nats per image.
    pub log_likelihood: f64,
    /// `L_K` of each image.
    pub per_image: Vec<f64>,
}

const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// The most importance samples per image [`iwae`] takes.
pub const MAX_K: usize = 1_000_000;

/// Rows (image x sample) decoded at once: about 64k images' worth of logits.
const MAX_ROWS: usize = 65_536;

/// `L_K` of every image of `set` under the VAE `model`, `batch` images at a
/// time, `ε` from `rng` (drawn image by image, sample by sample, dimension by dimension).
///
/// Memory is bounded whatever `K` (at most [`MAX_K`]): at most 65,536 rows
/// (image x sample) are decoded at once; beyond that the samples of one image
/// go in chunks whose log-weights are combined by a running log-sum-exp
/// (the same draws, in the same order, as one chunk would take).
pub fn iwae(
    model: &dyn Autoencoder,
    set: &ImageSet,
    k: usize,
    batch: usize,
    device: &Device,
    rng: &mut AeRng,
) -> Result<IwaeResult> {
    iwae_chunked(model, set, k, batch, MAX_ROWS, device, rng)
}

/// [`iwae`] with the samples drawn from the `"iwae"` stream of `seed`, the
/// stream every caller uses so that its estimates repeat.
pub fn iwae_seeded(
    model: &dyn Autoencoder,
    set: &ImageSet,
    k: usize,
    batch: usize,
    device: &Device,
    seed: u64,
) -> Result<IwaeResult> {
    let mut rng = ae_data::rng::stream(seed, "iwae");
    iwae(model, set, k, batch, device, &mut rng)
}

/// [`iwae`] with at most `max_rows` rows decoded at once (for tests of the chunking).
#[doc(hidden)]
pub fn iwae_chunked(
    model: &dyn Autoencoder,
    set: &ImageSet,
    k: usize,
    batch: usize,
    max_rows: usize,
    device: &Device,
    rng: &mut AeRng,
) -> Result<IwaeResult> {
    if model.kind() != ModelKind::Vae {
        return Err(UsesError::Invalid(format!(
            "a log-likelihood needs a vae; this model is {}",
            model.kind()
        )));
    }
    if k == 0 || k > MAX_K {
        return Err(UsesError::Invalid(format!(
            "K (importance samples per image) must be in 1..={MAX_K}, got {k}"
        )));
    }
    check_fits(model, set, "the images to score")?;
    if set.is_empty() {
        return Err(UsesError::Invalid("no image to score".into()));
    }
    let latent = model.latent_dim();
    let max_rows = max_rows.max(1);
    // Images per batch, and samples per chunk (all K unless one image's K rows exceed max_rows).
    let batch = batch.max(1).min((max_rows / k).max(1));
    let kc = k.min(max_rows);
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut buf = Vec::new();
    let mut per_image = Vec::with_capacity(set.len());
    for chunk in idx.chunks(batch) {
        let b = chunk.len();
        let x = batch_tensor(model, set, chunk, &mut buf, device)?;
        let Some((mu, logvar)) = model.encode_dist(&x)? else {
            return Err(UsesError::Invalid("the model gives no posterior".into()));
        };
        let (mu, logvar) = (mu.to_dtype(DType::F32)?, logvar.to_dtype(DType::F32)?);
        let flat_x = x.flatten_from(1)?.to_dtype(DType::F32)?;
        // Running log-sum-exp of each image's log-weights: (max, sum of exp(w - max)).
        let mut acc = vec![(f64::NEG_INFINITY, 0f64); b];
        let mut done = 0;
        while done < k {
            let kk = kc.min(k - done);
            let rows = log_weights(model, &mu, &logvar, &flat_x, b, kk, latent, device, rng)?;
            for (row, (m, s)) in rows.iter().zip(acc.iter_mut()) {
                let rm = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let nm = m.max(rm);
                if nm == f64::NEG_INFINITY || nm.is_nan() {
                    *m = nm;
                    continue;
                }
                *s = *s * (*m - nm).exp() + row.iter().map(|v| (v - nm).exp()).sum::<f64>();
                *m = nm;
            }
            done += kk;
        }
        for (m, s) in acc {
            per_image.push(m + s.ln() - (k as f64).ln());
        }
    }
    let log_likelihood = per_image.iter().sum::<f64>() / per_image.len() as f64;
    if !log_likelihood.is_finite() {
        return Err(UsesError::Invalid(format!(
            "the log-likelihood estimate is {log_likelihood}: the model gives non-finite values"
        )));
    }
    Ok(IwaeResult {
        k,
        images: per_image.len(),
        log_likelihood,
        per_image,
    })
}

/// `log w = log p(x|z) + log p(z) - log q(z|x)` of `kk` samples of each of the
/// `b` images (`mu`, `logvar` `[b, latent]`, `flat_x` `[b, dim]`), `ε` drawn
/// image by image, sample by sample: `[b][kk]`.
#[allow(clippy::too_many_arguments)]
fn log_weights(
    model: &dyn Autoencoder,
    mu: &Tensor,
    logvar: &Tensor,
    flat_x: &Tensor,
    b: usize,
    kk: usize,
    latent: usize,
    device: &Device,
    rng: &mut AeRng,
) -> Result<Vec<Vec<f64>>> {
    // [b*kk, latent]: image i's samples are rows i*kk .. (i+1)*kk.
    let eps: Vec<f32> = (0..b * kk * latent)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    let eps = Tensor::from_vec(eps, (b, kk, latent), device)?;
    let mu3 = mu.unsqueeze(1)?.broadcast_as((b, kk, latent))?;
    let lv3 = logvar.unsqueeze(1)?.broadcast_as((b, kk, latent))?;
    let z = (&mu3 + (lv3.affine(0.5, 0.0)?.exp()? * &eps)?)?;
    let dim = flat_x.dim(1)?;
    let xk = flat_x
        .unsqueeze(1)?
        .broadcast_as((b, kk, dim))?
        .reshape((b * kk, dim))?;
    let logits = model
        .decode(&z.reshape((b * kk, latent))?)?
        .flatten_from(1)?
        .to_dtype(DType::F32)?;
    let log_px = bce_rows(&logits, &xk)?.neg()?.reshape((b, kk))?;
    let half_ln2pi = 0.5 * LN_2PI * latent as f64;
    let log_pz = z.sqr()?.sum(D::Minus1)?.affine(-0.5, -half_ln2pi)?;
    let log_qz = (eps.sqr()? + &lv3)?
        .sum(D::Minus1)?
        .affine(-0.5, -half_ln2pi)?;
    let log_w = ((log_px + log_pz)? - log_qz)?.to_dtype(DType::F64)?;
    Ok(log_w.to_vec2::<f64>()?)
}
