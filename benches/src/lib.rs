//! Shared helpers for the criterion benches in `benches/` (see `benches/benches/*.rs`):
//! the MNIST images, seeded default models, and one training step exactly as
//! `ae_train`'s loop takes it (noise for denoising, the fused CPU step of the
//! dense models and the VAE, or batch tensor, forward, loss, loss read back and
//! backward; then Adam).

use ae_data::rng::{AeRng, stream};
use ae_data::{DataConfig, Noise, Split};
use ae_models::init::seeded_model;
use ae_models::{Autoencoder, ImageShape, ModelConfig, ModelKind};
use ae_train::{Adam, AdamConfig, TrainConfig};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

/// Errors of the helpers.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The five variants, in the order the benches report them.
pub const KINDS: [ModelKind; 5] = [
    ModelKind::Vanilla,
    ModelKind::Sparse,
    ModelKind::Denoising,
    ModelKind::Conv,
    ModelKind::Vae,
];

/// The first `train` training and `test` test images of the repository's MNIST.
pub fn mnist(train: usize, test: usize) -> Result<Split, Error> {
    let data = DataConfig {
        train_limit: Some(train),
        test_limit: Some(test),
        ..DataConfig::default()
    };
    Ok(data.load()?)
}

/// The default model of `kind` for MNIST, weights drawn from seed 0, and its variables.
pub fn model(kind: ModelKind) -> Result<(Box<dyn Autoencoder>, VarMap), Error> {
    let cfg = ModelConfig::default_for(kind, ImageShape::default());
    Ok(seeded_model(&cfg, &Device::Cpu, &mut stream(0, "init"))?)
}

/// The default training batch size of `kind` (256 dense, 128 conv/denoising/VAE).
pub fn batch_size(kind: ModelKind) -> usize {
    TrainConfig::default_for(kind).batch_size
}

/// `n` images from `pixels` (whole images, in order, cycling if needed) as one
/// batch tensor in the model's layout.
pub fn batch_tensor(model: &dyn Autoencoder, pixels: &[f32], n: usize) -> Result<Tensor, Error> {
    let layout = model.input_layout();
    let dim = layout.dim();
    if pixels.len() < dim {
        return Err("no images".into());
    }
    let data: Vec<f32> = pixels.iter().copied().cycle().take(n * dim).collect();
    Ok(Tensor::from_vec(
        data,
        layout.shape(n).as_slice(),
        &Device::Cpu,
    )?)
}

/// One default model of a kind with its optimiser and a fixed batch: each
/// [`TrainStep::step`] is one iteration of `ae_train`'s training loop.
pub struct TrainStep {
    model: Box<dyn Autoencoder>,
    adam: Adam,
    clean: Vec<f32>,
    noisy: Vec<f32>,
    noise: Option<Noise>,
    noise_rng: AeRng,
    sample_rng: AeRng,
    _varmap: VarMap,
}

impl TrainStep {
    /// The default model of `kind`, default Adam, and a batch of the default
    /// size taken from `pixels` (whole images, cycled if there are too few).
    pub fn new(kind: ModelKind, pixels: &[f32]) -> Result<Self, Error> {
        Self::with_batch(kind, pixels, batch_size(kind))
    }

    /// As [`TrainStep::new`] with a batch of `batch` images.
    pub fn with_batch(kind: ModelKind, pixels: &[f32], batch: usize) -> Result<Self, Error> {
        let (model, varmap) = model(kind)?;
        let t = TrainConfig::default_for(kind);
        let adam = Adam::new(
            ae_train::checkpoint::named_vars(&varmap),
            AdamConfig {
                lr: t.lr,
                beta1: t.beta1,
                beta2: t.beta2,
                eps: t.eps,
                weight_decay: t.weight_decay,
            },
        )?;
        let clean = batch_tensor(model.as_ref(), pixels, batch)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let noise = model.noise().filter(|n| !matches!(n, Noise::None)).cloned();
        Ok(Self {
            model,
            adam,
            clean,
            noisy: Vec::new(),
            noise,
            noise_rng: stream(0, "noise"),
            sample_rng: stream(0, "sample"),
            _varmap: varmap,
        })
    }

    /// One step as `ae_train`'s loop takes it (`ae_train::train_step`): the
    /// noisy input for denoising, then the fused CPU step or candle's graph,
    /// then Adam. Returns the loss.
    pub fn step(&mut self) -> Result<f32, Error> {
        let input: &[f32] = match &self.noise {
            Some(nz) => {
                self.noisy.clone_from(&self.clean);
                let i = ImageShape::default();
                nz.apply(
                    &mut self.noisy,
                    [i.channels, i.height, i.width],
                    &mut self.noise_rng,
                );
                &self.noisy
            }
            None => &self.clean,
        };
        let loss = ae_train::train_step(
            self.model.as_ref(),
            &mut self.adam,
            input,
            &self.clean,
            true,
            &Device::Cpu,
            &mut self.sample_rng,
        )?;
        Ok(loss as f32)
    }

    /// The model being trained.
    pub fn model(&self) -> &dyn Autoencoder {
        self.model.as_ref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Images in [0,1] without the data files: a smooth pattern per image.
    fn pixels(n: usize) -> Vec<f32> {
        (0..n * 784)
            .map(|i| ((i % 784) as f32 * 0.37 + (i / 784) as f32).sin() * 0.5 + 0.5)
            .collect()
    }

    #[test]
    fn every_variants_step_trains_on_one_batch() {
        let px = pixels(8);
        for kind in KINDS {
            let mut s = TrainStep::with_batch(kind, &px, 8).unwrap();
            let first = s.step().unwrap();
            let mut last = first;
            for _ in 0..20 {
                last = s.step().unwrap();
            }
            assert!(first.is_finite() && last.is_finite(), "{kind}");
            // Twenty Adam steps on one batch lower its loss.
            assert!(last < first, "{kind}: {first} -> {last}");
        }
    }

    #[test]
    fn batches_cycle_whole_images_into_the_models_layout() {
        let (m, _) = model(ModelKind::Conv).unwrap();
        let x = batch_tensor(m.as_ref(), &pixels(3), 5).unwrap();
        assert_eq!(x.dims(), &[5, 1, 28, 28]);
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v[3 * 784..4 * 784], pixels(3)[..784]);
        assert_eq!(batch_size(ModelKind::Vanilla), 256);
        assert_eq!(batch_size(ModelKind::Conv), 128);
        assert!(batch_tensor(m.as_ref(), &[0.0; 10], 1).is_err());
    }
}
