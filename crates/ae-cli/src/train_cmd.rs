//! `ae train`: builds a run config from the flags and trains it.

use std::path::PathBuf;

use ae_models::{ImageShape, ModelKind};
use ae_train::{EarlyStopping, LrSchedule, RunConfig, TrainOptions, parse_device, train_on};
use anyhow::{Context, Result, bail};
use clap::Args;

use crate::model_opts::{DataArgs, ModelArgs};

/// Options of `ae train`. Defaults reproduce the classic runs of each variant.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Which autoencoder.
    #[arg(long, default_value = "vanilla")]
    pub model: ModelKind,
    /// Epochs (default 10).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per batch (default 256 for vanilla and sparse, 128 otherwise).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate of Adam.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Decoupled weight decay (AdamW); 0 is plain Adam.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, exp:GAMMA, cosine:MIN_LR.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Stop when the validation loss has not improved for this many epochs.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Seed of every random draw (init, shuffles, noise, sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run folder (default runs/<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last complete epoch.
    #[arg(long)]
    pub resume: bool,
    /// Replace a run already in --out.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Stop after this many epochs in this call (resume later with --resume).
    #[arg(long)]
    pub max_epochs_this_call: Option<usize>,
    /// Run every step through candle's graph, not the fused CPU step of the
    /// dense models and the dense VAE (for checking one against the other)
    #[arg(long)]
    pub no_fused_step: bool,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the final test metrics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model_opts: ModelArgs,
}

fn parse_schedule(s: &str) -> Result<LrSchedule> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |x: &str| -> Result<f64> {
        x.parse()
            .with_context(|| format!("--schedule {s}: '{x}' is not a number"))
    };
    Ok(match parts.as_slice() {
        ["constant"] => LrSchedule::Constant,
        ["step", every, gamma] => LrSchedule::Step {
            every: every
                .parse()
                .with_context(|| format!("--schedule {s}: bad epoch count"))?,
            gamma: num(gamma)?,
        },
        ["exp", gamma] => LrSchedule::Exponential { gamma: num(gamma)? },
        ["cosine", min_lr] => LrSchedule::Cosine {
            min_lr: num(min_lr)?,
        },
        _ => {
            bail!("--schedule {s}: expected constant, step:EVERY:GAMMA, exp:GAMMA or cosine:MIN_LR")
        }
    })
}

/// Builds the run config the flags describe; the model is sized from the data's `input`.
pub fn run_config(a: &TrainArgs, input: ImageShape) -> Result<RunConfig> {
    let mut cfg = RunConfig::for_kind(a.model, a.data.config(), input);
    a.model_opts.apply(&mut cfg.model)?;
    let t = &mut cfg.train;
    t.seed = a.seed;
    if let Some(e) = a.epochs {
        t.epochs = e;
    }
    if let Some(b) = a.batch_size {
        t.batch_size = b;
    }
    if let Some(lr) = a.lr {
        t.lr = lr;
    }
    if let Some(wd) = a.weight_decay {
        t.weight_decay = wd;
    }
    if let Some(s) = &a.schedule {
        t.schedule = parse_schedule(s)?;
    }
    if let Some(p) = a.early_stopping {
        t.early_stopping = Some(EarlyStopping {
            patience: p,
            min_delta: 0.0,
        });
    }
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(a: TrainArgs) -> Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(a.model.to_string()));
    let device = parse_device(&a.device)?;
    let saved = out.join(ae_train::checkpoint::CONFIG_FILE);
    let (cfg, split) = if a.resume && saved.is_file() {
        // The run's own config rules; only the epoch count may be changed.
        let mut cfg: RunConfig = ae_train::checkpoint::read_json(&saved)?;
        if let Some(e) = a.epochs {
            cfg.train.epochs = e;
        }
        let split = cfg.data.load()?;
        (cfg, split)
    } else {
        // Records what later commands must repeat (a table's scaler, the colour of a folder).
        let mut data = a.data.config();
        let split = data.load_fitted()?;
        let t = &split.train;
        let input = ImageShape {
            channels: t.channels(),
            height: t.height(),
            width: t.width(),
        };
        // Before run_config, whose validation would fail with a less telling message.
        let mut model = ae_models::ModelConfig::default_for(a.model, input);
        if a.model_opts.apply(&mut model).is_ok() {
            crate::model_opts::check_model_for_data(&model, t)?;
        }
        let mut cfg = run_config(&a, input)?;
        cfg.data = data;
        (cfg, split)
    };
    let opts = TrainOptions {
        resume: a.resume,
        overwrite: a.overwrite,
        device,
        max_epochs_this_call: a.max_epochs_this_call,
        fused: !a.no_fused_step,
        ..TrainOptions::default()
    };
    let report = train_on(&cfg, split, &out, &opts)
        .with_context(|| format!("training into {}", out.display()))?;
    let t = &report.test;
    if a.json {
        println!("{}", serde_json::to_string_pretty(t)?);
    } else {
        println!(
            "{}: test bce {:.4} mse {:.5} psnr {:.2} dB loss {:.4}{} ({} epochs{}) -> {}",
            cfg.model.kind(),
            t.bce,
            t.mse,
            t.psnr,
            t.loss,
            t.elbo.map(|e| format!(" elbo {e:.2}")).unwrap_or_default(),
            report.metrics.len(),
            if report.stopped_early {
                ", stopped early"
            } else {
                ""
            },
            out.display()
        );
    }
    Ok(())
}
