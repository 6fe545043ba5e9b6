//! Our side of the rows: the default runs (checked to be the peers' work), inference
//! passes and IDX reading.

use std::path::Path;
use std::time::Instant;

use ae_data::{DataConfig, ImageSet, Split};
use ae_models::init::seeded_model;
use ae_models::{
    Activation, Autoencoder, ConvConfig, DenseConfig, ImageShape, ModelConfig, ModelKind, VaeArch,
    VaeConfig,
};
use ae_train::{ProgressMode, RunConfig, TrainOptions, train_on};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};

/// Batch size of the inference rows.
pub(super) const INFER_BATCH: usize = 1024;

/// The peers' model of `kind` (torch_seed.py / jax_seed.py, torch_variants.py),
/// written out in full so that a change of our defaults cannot pass unseen.
pub(super) fn peer_model(kind: ModelKind) -> Option<ModelConfig> {
    let input = ImageShape::new(1, 28, 28);
    Some(match kind {
        ModelKind::Vanilla => ModelConfig::Vanilla(DenseConfig {
            input,
            hidden: vec![128, 64],
            latent_dim: 32,
            activation: Activation::Relu,
            code_activation: Activation::Relu,
            loss: None,
        }),
        ModelKind::Vae => ModelConfig::Vae(VaeConfig {
            input,
            arch: VaeArch::Dense { hidden: vec![400] },
            latent_dim: 20,
            beta: 1.0,
            activation: Activation::Relu,
            loss: None,
        }),
        ModelKind::Conv => ModelConfig::Conv(ConvConfig {
            input,
            channels: vec![32, 32],
            kernel: 3,
            activation: Activation::Relu,
            dense_code: None,
        }),
        ModelKind::Sparse | ModelKind::Denoising => return None,
    })
}

/// The default run of `kind`, checked to be the peers' model, batch size and
/// Adam learning rate.
pub(super) fn our_config(kind: ModelKind, data: &DataConfig) -> Result<RunConfig> {
    let mut cfg = RunConfig::for_kind(kind, data.clone(), ImageShape::default());
    // The peers' scripts run Adam at a constant 1e-3; our default recipe (a one-cycle
    // schedule, docs/results.md) costs the same per step, but the bench runs theirs.
    cfg.train.lr = 1e-3;
    cfg.train.schedule = ae_train::LrSchedule::Constant;
    let batch = match kind {
        ModelKind::Vanilla => 256,
        _ => 128,
    };
    if peer_model(kind).as_ref() != Some(&cfg.model)
        || cfg.train.batch_size != batch
        || cfg.train.lr != 1e-3
    {
        bail!(
            "the default {kind} run is no longer the peers' work (batch {}, lr {}, model \
             {:?}): update xtask/src/bench.rs and the peer scripts together",
            cfg.train.batch_size,
            cfg.train.lr,
            cfg.model
        );
    }
    Ok(cfg)
}

/// One training run of `epochs` epochs of `kind`: the training-loop seconds of
/// every epoch after the first.
pub(super) fn our_epochs(
    kind: ModelKind,
    split: &Split,
    data: &DataConfig,
    epochs: usize,
) -> Result<Vec<f64>> {
    let mut cfg = our_config(kind, data)?;
    cfg.train.epochs = epochs;
    let dir = tempfile::tempdir().context("creating a temporary run folder")?;
    let opts = TrainOptions {
        overwrite: true,
        progress: ProgressMode::Off,
        ..TrainOptions::default()
    };
    let report = train_on(&cfg, split.clone(), dir.path(), &opts)
        .with_context(|| format!("training {kind}"))?;
    Ok(report.metrics.iter().skip(1).map(|m| m.seconds).collect())
}

/// Our model of `kind` with seeded weights.
pub(super) fn our_model(kind: ModelKind) -> Result<Box<dyn Autoencoder>> {
    let cfg = ModelConfig::default_for(kind, ImageShape::default());
    Ok(seeded_model(&cfg, &Device::Cpu, &mut ae_data::rng::stream(0, "init"))?.0)
}

/// Seconds per pass of encode and reconstruct over `test` in batches of
/// [`INFER_BATCH`] (batches made before timing; one warm-up pass each).
pub(super) fn our_inference(
    model: &dyn Autoencoder,
    test: &ImageSet,
    reps: usize,
) -> Result<[(&'static str, Vec<f64>); 2]> {
    let layout = model.input_layout();
    let dim = layout.dim();
    let batches = test
        .pixels()
        .chunks(INFER_BATCH * dim)
        .map(|c| Tensor::from_slice(c, layout.shape(c.len() / dim).as_slice(), &Device::Cpu))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let time = |f: &dyn Fn(&Tensor) -> ae_models::Result<Tensor>| -> Result<Vec<f64>> {
        for x in &batches {
            f(x)?;
        }
        let mut v = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            for x in &batches {
                f(x)?;
            }
            v.push(t.elapsed().as_secs_f64());
        }
        Ok(v)
    };
    let enc = time(&|x| model.encode(x))?;
    let rec = time(&|x| model.reconstruct(x))?;
    Ok([("encode", enc), ("reconstruct", rec)])
}

/// GB/s of `ae_data::read_idx` on an uncompressed copy of the training images
/// (written to a temporary folder, so read from the page cache).
pub(super) fn idx_throughput(train_images: &Path, reps: usize) -> Result<(Vec<f64>, usize)> {
    let arr = ae_data::read_idx(train_images)?;
    let raw = ae_data::encode_idx(&arr);
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&path, &raw).with_context(|| format!("writing {}", path.display()))?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let a = ae_data::read_idx(&path)?;
        let secs = t.elapsed().as_secs_f64();
        if a.len() != arr.len() {
            bail!(
                "re-reading {} gave {} values, not {}",
                path.display(),
                a.len(),
                arr.len()
            );
        }
        v.push(raw.len() as f64 / secs.max(1e-9) / 1e9);
    }
    Ok((v, raw.len()))
}
