//! `ae anomaly fit`: trains a one-class detector ([`ae_uses::DetectorConfig`],
//! [`ae_uses::fit_one_class`]) and writes its threshold.

use std::path::PathBuf;

use ae_models::ModelKind;
use ae_train::{ProgressMode, TrainOptions, parse_device};
use ae_uses::{DetectorConfig, ScoreKind, ThresholdRule};
use anyhow::{Context, Result};
use clap::Args;

use crate::model_opts::DataArgs;

#[derive(Debug, Args)]
pub struct AnomalyFitArgs {
    /// The class whose training images are normal (all training images when absent).
    #[arg(long)]
    pub normal_class: Option<u8>,
    /// Run folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// The model: vanilla (default: a dense 256-64-16 detector on images; on a
    /// table of C columns a dense 8k-4k-k one, k = C/4 rounded up, at least 2),
    /// sparse or vae.
    #[arg(long)]
    pub model: Option<ModelKind>,
    /// Code size.
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Hidden layer sizes, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Epochs (default 60).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per batch (default 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate (default 1e-3, constant).
    #[arg(long)]
    pub lr: Option<f64>,
    /// The score: mse, bce, or elbo (VAE only).
    #[arg(long, default_value = "mse")]
    pub score: ScoreKind,
    /// Expected fraction of anomalies: the threshold is this upper quantile of the training scores.
    #[arg(long, conflicts_with = "percentile")]
    pub contamination: Option<f64>,
    /// The threshold as a percentile of the training scores, in (0, 100).
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub data: DataArgs,
}

impl AnomalyFitArgs {
    fn detector(&self) -> DetectorConfig {
        DetectorConfig {
            model: self.model,
            latent_dim: self.latent_dim,
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
        }
    }

    fn rule(&self) -> ThresholdRule {
        match (self.contamination, self.percentile) {
            (_, Some(p)) => ThresholdRule::Percentile { percentile: p },
            (Some(c), None) => ThresholdRule::Contamination { rate: c },
            (None, None) => ThresholdRule::default(),
        }
    }
}

pub fn exec(a: AnomalyFitArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let mut data = a.data.config();
    let split = data.load_fitted()?;
    let cfg = a.detector().run_config_for(data, &split.train)?;
    let opts = TrainOptions {
        overwrite: a.overwrite,
        device,
        progress: ProgressMode::Auto,
        ..TrainOptions::default()
    };
    let spec = ae_uses::fit_one_class(
        &cfg,
        &split,
        a.normal_class,
        a.score,
        a.rule(),
        &a.out,
        &opts,
    )
    .with_context(|| format!("fitting the detector into {}", a.out.display()))?;
    println!(
        "{}: {} model trained on {} normal {}{}; score {}, threshold {:.6} ({})",
        a.out.display(),
        cfg.model.kind(),
        spec.train_images,
        if cfg.data.is_table() {
            "rows"
        } else {
            "images"
        },
        spec.normal_class
            .map(|c| format!(" (class {c})"))
            .unwrap_or_default(),
        spec.score,
        spec.threshold,
        spec.rule
    );
    Ok(())
}
