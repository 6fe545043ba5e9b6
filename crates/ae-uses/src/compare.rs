//! Dimensionality reduction: PCA against autoencoders with the same code size.

use std::path::PathBuf;

use ae_data::{DataConfig, Split};
use ae_models::{Activation, DenseConfig, ImageShape, ModelConfig};
use ae_train::{RunConfig, TrainConfig, evaluate};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, UsesError};
use crate::pca::Pca;
use crate::runs::train_or_reuse;
use crate::stats::{bce_clipped, mse};

/// How the autoencoders of the comparison are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Code sizes to compare.
    pub dims: Vec<usize>,
    /// Encoder hidden sizes (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// Activation of the code layer.
    pub code_activation: Activation,
    /// Training epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Seed of every run.
    pub seed: u64,
    /// Runs go to `<runs_dir>/latent-<k>`.
    pub runs_dir: PathBuf,
    /// Retrain even when a finished run of the same config is there.
    pub retrain: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            dims: vec![2, 8, 32, 64],
            hidden: vec![512, 256],
            code_activation: Activation::LeakyRelu,
            epochs: 20,
            batch_size: 128,
            seed: 0,
            runs_dir: PathBuf::from("runs/compare-pca"),
            retrain: false,
        }
    }
}

impl CompareOptions {
    /// The run of the autoencoder with code size `k`.
    pub fn run_config(&self, data: &DataConfig, input: ImageShape, k: usize) -> RunConfig {
        let mut cfg = RunConfig::for_kind(ae_models::ModelKind::Vanilla, data.clone(), input);
        cfg.model = ModelConfig::Vanilla(
            DenseConfig::for_input(input)
                .with_hidden(self.hidden.clone())
                .with_latent_dim(k)
                .with_code_activation(self.code_activation),
        );
        cfg.train = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
            ..TrainConfig::default()
        };
        cfg
    }

    /// The run folder of code size `k`.
    pub fn run_dir(&self, k: usize) -> PathBuf {
        self.runs_dir.join(format!("latent-{k}"))
    }
}

/// One code size: PCA and the autoencoder on the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaRow {
    /// Code size (PCA components = autoencoder latent size).
    pub latent: usize,
    /// PCA: test MSE per pixel, reconstructions clipped to [1e-7, 1 - 1e-7].
    pub pca_mse: f64,
    /// PCA: test BCE per pixel, reconstructions clipped to [1e-7, 1 - 1e-7].
    pub pca_bce: f64,
    /// Autoencoder: test MSE per pixel.
    pub ae_mse: f64,
    /// Autoencoder: test BCE per pixel (from logits).
    pub ae_bce: f64,
    /// Epochs the autoencoder was trained.
    pub ae_epochs: usize,
    /// The autoencoder's run folder.
    pub run: String,
}

/// Test MSE and clipped BCE of PCA reconstructions with each of `dims`
/// components, PCA fitted once on `split.train`.
pub fn pca_errors(split: &Split, dims: &[usize]) -> Result<Vec<(usize, f64, f64)>> {
    let d = split.train.dim();
    let max = dims.iter().copied().max().unwrap_or(0);
    if max == 0 || max > d {
        return Err(UsesError::Invalid(format!(
            "latent sizes must be in 1..={d} for {d}-pixel images, got {dims:?}"
        )));
    }
    let pca = Pca::fit(&split.train.pixels(), d, max)?;
    let test = split.test.pixels();
    dims.iter()
        .map(|&k| {
            let (mse, bce) = pca_reconstruction_errors(&pca.truncated(k)?, &test)?;
            Ok((k, mse, bce))
        })
        .collect()
}

/// MSE and BCE per pixel of the reconstructions of `test` by a fitted PCA,
/// clipped to [1e-7, 1 - 1e-7] for both metrics as the scikit-learn baseline is.
pub fn pca_reconstruction_errors(pca: &Pca, test: &[f32]) -> Result<(f64, f64)> {
    let mut rec = pca.reconstruct(test)?;
    for v in &mut rec {
        *v = v.clamp(1e-7, 1.0 - 1e-7);
    }
    Ok((mse(&rec, test), bce_clipped(&rec, test)))
}

/// PCA against a dense autoencoder for every code size of `opts.dims`
/// (training each autoencoder, or reusing a finished run of the same config).
pub fn compare_pca(
    data: &DataConfig,
    split: &Split,
    opts: &CompareOptions,
    device: &Device,
) -> Result<Vec<PcaRow>> {
    if opts.dims.is_empty() {
        return Err(UsesError::Invalid("no latent size to compare".into()));
    }
    let pca = pca_errors(split, &opts.dims)?;
    let input = crate::batches::input_shape(&split.train);
    let mut rows = Vec::new();
    for (k, pca_mse, pca_bce) in pca {
        let cfg = opts.run_config(data, input, k);
        let dir = opts.run_dir(k);
        let run = train_or_reuse(&cfg, split, &dir, device, opts.retrain)?;
        let m = evaluate(
            run.model.as_ref(),
            &split.test,
            cfg.train.eval_batch_size,
            device,
            opts.seed,
        )?;
        rows.push(PcaRow {
            latent: k,
            pca_mse,
            pca_bce,
            ae_mse: m.mse,
            ae_bce: m.bce,
            ae_epochs: run.metrics.epochs.len(),
            run: dir.display().to_string(),
        });
    }
    Ok(rows)
}
