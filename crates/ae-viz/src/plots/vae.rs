//! Figures of a VAE's generative side: decoded prior samples (`samples.png`),
//! the 2-D latent manifold at Gaussian quantiles (`manifold.png`) and
//! interpolations between test images (`interpolations.png`).

use ae_data::ImageSet;
use ae_data::rng::stream;
use ae_models::{Autoencoder, ImageShape, ModelKind};
use candle_core::{Device, Tensor};

use super::{Picture, PlotOptions, encode_images, grid_for, set_shape};
use crate::{Result, VizError};

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
}
