//! Running a model over a whole image set in batches, and checking that the
//! images fit the model.

use ae_data::ImageSet;
use ae_models::{Autoencoder, ImageShape};
use candle_core::{Device, Tensor};

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
        Ok(ae_train::encode_batch(model, x)?)
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
        Ok(ae_train::reconstruct_batch(model, x)?)
    })
}
