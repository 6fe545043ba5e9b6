//! Test-set metrics of a model: BCE, MSE, PSNR, the model's own loss, and the ELBO for the VAE.
//!
//! MSE is measured on the model's reconstruction ([`Autoencoder::output`]): the
//! sigmoid of the logits for a BCE model, the linear output itself for an MSE
//! model (standardised tables, where it is the MSE of standardised features).

use ae_data::ImageSet;
use ae_data::noise::Noise;
use ae_data::rng::stream;
use ae_losses::{Reduction, bce_with_logits};
use ae_models::{Autoencoder, InputLayout, LossParts, ReconLoss};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused::conv::{ConvOutput, conv_forward};
use crate::{Result, TrainError};

/// Metrics over a whole image set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Images evaluated.
    pub images: usize,
    /// Binary cross-entropy per pixel (mean over pixels and images), from
    /// logits (for an MSE model, of the linear output read as logits: not
    /// meaningful for standardised tables).
    pub bce: f64,
    /// Mean squared error per pixel of the reconstruction (`sigmoid(logits)`,
    /// or the linear output of an MSE model) against the target.
    pub mse: f64,
    /// Peak signal-to-noise ratio in dB, `10·log10(1 / mse)` (pixels in [0, 1];
    /// not meaningful for standardised tables).
    pub psnr: f64,
    /// The model's training loss on this set (what `val_loss` reports).
    pub loss: f64,
    /// The reconstruction part of `loss`.
    pub recon: f64,
    /// The KL part of `loss` (VAE).
    pub kl: Option<f64>,
    /// The sparsity penalty part of `loss` (sparse).
    pub sparsity: Option<f64>,
    /// VAE only: the evidence lower bound per image in nats, `-(BCE sum + KL)`,
    /// one sample of z per image (the negative of PyTorch's VAE example's test
    /// loss); for the Gaussian (MSE) decoder `-(½·SSE + KL)`, without the
    /// constant `(D/2)·ln 2π`.
    pub elbo: Option<f64>,
}

/// Mean squared error between two equally long pixel buffers (over the shorter one's length
/// when they differ; 0 for empty buffers). The one definition the evaluation, `ae-uses` and
/// `ae-viz` share.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()).max(1);
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / n as f64
}

/// Peak signal-to-noise ratio in dB of `a` against `b` (values in [0, 1]):
/// `10 log10(1 / mse)`; infinite for identical inputs.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    psnr_of_mse(mse(a, b))
}

/// `10 log10(1 / mse)` (infinite for 0), the PSNR of pixels in [0, 1].
pub fn psnr_of_mse(mse: f64) -> f64 {
    if mse > 0.0 {
        10.0 * (1.0 / mse).log10()
    } else {
        f64::INFINITY
    }
}

/// Runs `f` on `pixels` (whole images of the layout's size, in order) in
/// batches of `batch_size` shaped for `layout`, and concatenates its outputs,
/// flattened to `f32`. With [`map_set_batches`], the one batching loop the CLI,
/// `ae-viz` and `ae-uses` share for encoding, reconstructing and scoring.
pub fn map_batches<E: From<candle_core::Error>>(
    layout: InputLayout,
    pixels: &[f32],
    batch_size: usize,
    device: &Device,
    f: impl FnMut(&Tensor) -> std::result::Result<Tensor, E>,
) -> std::result::Result<Vec<f32>, E> {
    let dim = layout.dim().max(1);
    let batches = pixels.chunks(batch_size.max(1) * dim).map(|chunk| {
        Ok(Tensor::from_slice(
            chunk,
            layout.shape(chunk.len() / dim).as_slice(),
            device,
        )?)
    });
    map_tensors(batches, f)
}

/// [`map_batches`] over the first `n` images of `set` (all of them when `n` is larger),
/// gathered one batch at a time: a set held as bytes is converted per batch, never whole.
pub fn map_set_batches<E: From<candle_core::Error> + From<ae_data::DataError>>(
    layout: InputLayout,
    set: &ImageSet,
    n: usize,
    batch_size: usize,
    device: &Device,
    f: impl FnMut(&Tensor) -> std::result::Result<Tensor, E>,
) -> std::result::Result<Vec<f32>, E> {
    let indices: Vec<usize> = (0..n.min(set.len())).collect();
    let mut buf = Vec::new();
    let batches = indices.chunks(batch_size.max(1)).map(|idx| {
        set.gather(idx, &mut buf)?;
        Ok(Tensor::from_slice(
            &buf,
            layout.shape(idx.len()).as_slice(),
            device,
        )?)
    });
    map_tensors(batches, f)
}

/// The codes of the batch `x` (`[N, ...]` in the model's input layout), flattened to
/// `[N, latent]`: for the conv models on the CPU through the conv chain, image at a time
/// (`crate::fused::conv`, as they train), else `model.encode`. The one encoding every
/// batch-wise caller (`ae-uses`, `ae-viz`) shares.
pub fn encode_batch(model: &dyn Autoencoder, x: &Tensor) -> Result<Tensor> {
    match chain_batch(model, x, ConvOutput::Code)? {
        Some(code) => Ok(code),
        None => Ok(model.encode(x)?.flatten_from(1)?),
    }
}

/// The reconstructions of the batch `x` in the output's range (`[0, 1]` for a BCE model),
/// flattened to `[N, ...]`: through the conv chain as [`encode_batch`], else
/// `model.reconstruct`.
pub fn reconstruct_batch(model: &dyn Autoencoder, x: &Tensor) -> Result<Tensor> {
    match chain_batch(model, x, ConvOutput::Logits)? {
        Some(logits) => Ok(model.output(&logits)?),
        None => Ok(model.reconstruct(x)?.flatten_from(1)?),
    }
}

/// The last layer's output (logits for a BCE model) of the batch `x` from its own code
/// (`decode(encode(x))`, no sampling), flattened to `[N, ...]`: through the conv chain as
/// [`encode_batch`], else the model's own layers.
pub fn logits_batch(model: &dyn Autoencoder, x: &Tensor) -> Result<Tensor> {
    match chain_batch(model, x, ConvOutput::Logits)? {
        Some(logits) => Ok(logits),
        None => Ok(model.decode(&model.encode(x)?)?.flatten_from(1)?),
    }
}

/// The conv models' code or logits of the batch `x` through the conv chain, flattened to
/// `[N, ...]`; `None` for the other models, or an `x` that is not `f32` on the CPU.
fn chain_batch(model: &dyn Autoencoder, x: &Tensor, what: ConvOutput) -> Result<Option<Tensor>> {
    let Some(view) = model.conv_view() else {
        return Ok(None);
    };
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let n = x.dim(0)?;
    let values = x.flatten_all()?.to_vec1::<f32>()?;
    let Some(out) = conv_forward(&view, &values, n, what)? else {
        return Ok(None);
    };
    let per = out.len() / n.max(1);
    Ok(Some(Tensor::from_vec(out, (n, per), x.device())?))
}

/// `f` on each batch, its outputs flattened to `f32` and concatenated.
fn map_tensors<E: From<candle_core::Error>>(
    batches: impl Iterator<Item = std::result::Result<Tensor, E>>,
    mut f: impl FnMut(&Tensor) -> std::result::Result<Tensor, E>,
) -> std::result::Result<Vec<f32>, E> {
    let mut out = Vec::new();
    for x in batches {
        out.extend(
            f(&x?)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
    }
    Ok(out)
}

/// `CxHxW` of the images a model takes (`N values (flat)` for a flat input).
pub fn model_image_size(model: &dyn Autoencoder) -> String {
    match model.input_layout() {
        InputLayout::Flat { dim } => format!("{dim} values (flat)"),
        InputLayout::Image {
            channels,
            height,
            width,
        } => format!("{channels}x{height}x{width}"),
    }
}

/// Why the images of `set` (`what`, e.g. "the test set") do not fit the model's input, or
/// `None` when they do: the one check the trainer, `ae-uses` and `ae-viz` share, each
/// wrapping the message in its own error.
pub fn misfit(model: &dyn Autoencoder, set: &ImageSet, what: &str) -> Option<String> {
    let (c, h, w) = (set.channels(), set.height(), set.width());
    if model.input_layout().accepts(c, h, w) {
        return None;
    }
    Some(format!(
        "{what} are images of {c}x{h}x{w} ({} values) but the model takes {}: \
         use data of the size the model was trained on",
        c * h * w,
        model_image_size(model)
    ))
}

/// Checks that `set`'s images fit the model's input layout ([`misfit`]).
pub(crate) fn check_fits(model: &dyn Autoencoder, set: &ImageSet, what: &str) -> Result<()> {
    misfit(model, set, what).map_or(Ok(()), |m| Err(TrainError::Mismatch(m)))
}

/// Evaluates `model` on every image of `set`, in batches of `batch_size`.
///
/// Deterministic for a given `seed`: the denoising model's input noise and the
/// VAE's sample of z come from RNG streams derived from it.
pub fn evaluate(
    model: &dyn Autoencoder,
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
    seed: u64,
) -> Result<EvalMetrics> {
    check_fits(model, set, "the evaluation set")?;
    if set.is_empty() {
        return Err(TrainError::Mismatch("the evaluation set is empty".into()));
    }
    let layout = model.input_layout();
    let mut noise_rng = stream(seed, "eval-noise");
    let mut sample_rng = stream(seed, "eval-sample");
    let noise = model.noise().filter(|n| !matches!(n, Noise::None)).cloned();
    let is_vae = model.kind() == ae_models::ModelKind::Vae;
    let (mut bce, mut mse, mut loss, mut recon) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut kl, mut sparsity) = (None::<f64>, None::<f64>);
    let mut clean = Vec::new();
    let view = model.conv_view();
    let indices: Vec<usize> = (0..set.len()).collect();
    for idx in indices.chunks(batch_size.max(1)) {
        set.gather(idx, &mut clean)?;
        let shape = layout.shape(idx.len());
        let target = Tensor::from_slice(&clean, shape.as_slice(), device)?;
        let noisy = noise.as_ref().map(|n| {
            let mut noisy = clean.clone();
            n.apply(&mut noisy, set.shape(), &mut noise_rng);
            noisy
        });
        let input = noisy.as_deref().unwrap_or(&clean);
        // The conv models' forward pass through the conv chain, image at a time (as their
        // training step), with the loss their description states; the others' through the
        // model.
        let chain = match &view {
            Some(v) => conv_forward(v, input, idx.len(), ConvOutput::Logits)?.map(|l| (v, l)),
            None => None,
        };
        let (logits, parts) = match chain {
            Some((v, logits)) => {
                let logits = Tensor::from_vec(logits, shape.as_slice(), device)?;
                let recon = bce_with_logits(&logits, &target, v.reduction)?;
                let parts = LossParts {
                    total: recon.clone(),
                    recon,
                    kl: None,
                    sparsity: None,
                };
                (logits, parts)
            }
            None => {
                let input = Tensor::from_slice(input, shape.as_slice(), device)?;
                let rng = if is_vae { Some(&mut sample_rng) } else { None };
                let out = model.forward(&input, rng)?;
                let parts = model.loss(&out, &target)?;
                (out.logits, parts)
            }
        };
        let b = idx.len() as f64;
        bce += bce_with_logits(&logits, &target, Reduction::Sum)?.to_scalar::<f32>()? as f64;
        let rec = model.output(&logits)?;
        mse += ae_losses::mse(&rec, &target, Reduction::Sum)?.to_scalar::<f32>()? as f64;
        loss += parts.total.to_scalar::<f32>()? as f64 * b;
        recon += parts.recon.to_scalar::<f32>()? as f64 * b;
        if let Some(t) = &parts.kl {
            *kl.get_or_insert(0.0) += t.to_scalar::<f32>()? as f64 * b;
        }
        if let Some(t) = &parts.sparsity {
            *sparsity.get_or_insert(0.0) += t.to_scalar::<f32>()? as f64 * b;
        }
    }
    let n = set.len() as f64;
    let pixels = n * set.dim() as f64;
    let mse = mse / pixels;
    let kl = kl.map(|k| k / n);
    let bce_per_pixel = bce / pixels;
    Ok(EvalMetrics {
        images: set.len(),
        bce: bce_per_pixel,
        mse,
        psnr: psnr_of_mse(mse),
        loss: loss / n,
        recon: recon / n,
        kl,
        sparsity: sparsity.map(|s| s / n),
        elbo: if is_vae {
            let recon_per_image = match model.recon_loss() {
                ReconLoss::Bce => bce / n,
                ReconLoss::Mse => recon / n,
            };
            Some(-(recon_per_image + kl.unwrap_or(0.0)))
        } else {
            None
        },
    })
}
