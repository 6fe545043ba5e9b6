//! Running a model over a whole image set in batches, and checking that the
//! images fit the model.

use ae_data::ImageSet;
use ae_models::{Autoencoder, ImageShape};
use ae_train::fused::conv::{ConvOutput, conv_forward};
use candle_core::{DType, Device, Tensor};

use crate::error::{Result, UsesError};

pub use ae_train::model_image_size;

/// Images per batch when a caller does not choose.
pub const DEFAULT_BATCH: usize = 1000;

/// The model input that the images of `set` are (channels, height, width).
pub fn input_shape(set: &ImageSet) -> ImageShape {
    ImageShape::new(set.channels(), set.height(), set.width())
}

/// Fails with a clear [`UsesError::Mismatch`] unless the images of `set`
/// (`what`, e.g. "the test images of mnist") fit the model's input.
pub fn check_fits(model: &dyn Autoencoder, set: &ImageSet, what: &str) -> Result<()> {
    ae_train::misfit(model, set, what).map_or(Ok(()), |m| Err(UsesError::Mismatch(m)))
}

/// The tensor of the images `idx` of `set`, shaped for `model`.
pub fn batch_tensor(
    model: &dyn Autoencoder,
    set: &ImageSet,
    idx: &[usize],
    buf: &mut Vec<f32>,
    device: &Device,
) -> Result<Tensor> {
    set.gather(idx, buf)?;
    let shape = model.input_layout().shape(idx.len());
    Ok(Tensor::from_slice(buf, shape.as_slice(), device)?)
}

/// Runs `f` on every batch of `set` (images in order), concatenating the
/// flattened `f32` outputs ([`ae_train::map_set_batches`]: batches are gathered
/// one at a time, so a set held as bytes is never converted whole).
pub fn map_batches(
    model: &dyn Autoencoder,
    set: &ImageSet,
    batch: usize,
    device: &Device,
    f: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    ae_train::map_set_batches(model.input_layout(), set, set.len(), batch, device, f)
}

/// The codes of every image of `set`, `[N, latent_dim]` row-major (the VAE
/// gives its posterior mean).
pub fn encode_set(
    model: &dyn Autoencoder,
    set: &ImageSet,
    batch: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    check_fits(model, set, "the images to encode")?;
    map_batches(model, set, batch, device, |x| {
        match chain_batch(model, x, ConvOutput::Code)? {
            Some(code) => Ok(code),
            None => Ok(model.encode(x)?.flatten_from(1)?),
        }
    })
}

/// The reconstructions in [0, 1] of every image of `set`, `[N, C*H*W]` row-major.
pub fn reconstruct_set(
    model: &dyn Autoencoder,
    set: &ImageSet,
    batch: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    check_fits(model, set, "the images to reconstruct")?;
    map_batches(model, set, batch, device, |x| {
        match chain_batch(model, x, ConvOutput::Logits)? {
            Some(logits) => Ok(model.output(&logits)?),
            None => Ok(model.reconstruct(x)?.flatten_from(1)?),
        }
    })
}

/// The conv models' code or logits of the batch `x` through the conv chain, image at a time
/// (`ae_train::fused::conv`, as they train), flattened to `[N, ...]`; `None` for the other
/// models, or an `x` that is not `f32` on the CPU.
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
