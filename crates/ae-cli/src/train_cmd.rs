//! `ae train`: builds a run config from the flags and trains it.

use std::path::PathBuf;

use ae_models::{ImageShape, ModelKind};
use ae_train::{EarlyStopping, LrSchedule, RunConfig, TrainOptions, parse_device, train_on};
use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

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
    /// Learning-rate schedule (default: each variant's recipe, see docs/results.md):
    /// constant, step:EVERY:GAMMA, exp:GAMMA, cosine:MIN_LR, warmup:FRACTION,
    /// warmup-cosine:FRACTION:MIN_LR, onecycle[:PCT_START[:DIV:FINAL_DIV]]. `--lr` is
    /// the rate of `constant` and the peak of the others; `--schedule constant --lr 1e-3`
    /// is the classic recipe.
    // The doc comment is the --help text, shown as written: `[:DIV:FINAL_DIV]` is not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long)]
    pub schedule: Option<String>,
    /// Adam's beta1 (default 0.9).
    #[arg(long)]
    pub beta1: Option<f64>,
    /// Adam's beta2 (default 0.999).
    #[arg(long)]
    pub beta2: Option<f64>,
    /// Stop when the validation loss has not improved for this many epochs.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Seed of every random draw (init, shuffles, noise, sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run folder (default runs/<model>).
    // The doc comment is the --help text, shown as written: `<model>` is not HTML.
    #[allow(rustdoc::invalid_html_tags)]
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
    /// dense models, the dense VAE and the conv model (for checking one against the other)
    #[arg(long)]
    pub no_fused_step: bool,
    /// On CUDA, launch every op of every step instead of recording the step into a CUDA
    /// graph once and replaying it (for checking one against the other)
    #[arg(long)]
    pub no_cuda_graph: bool,
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

/// Builds the run config the flags describe; the model is sized from the data's `input`.
pub fn run_config(a: &TrainArgs, input: ImageShape) -> Result<RunConfig> {
    let mut cfg = RunConfig::for_kind(a.model, a.data.config(), input);
    a.model_opts.apply(&mut cfg.model)?;
    // --loss may have changed the recipe's peak.
    cfg.train.lr = cfg.recipe_lr();
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
        t.schedule = s
            .parse::<LrSchedule>()
            .with_context(|| format!("--schedule {s}"))?;
    }
    if let Some(b) = a.beta1 {
        t.beta1 = b;
    }
    if let Some(b) = a.beta2 {
        t.beta2 = b;
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

/// The flags of `ae train` that may differ from the run's on `--resume` (the
/// epoch count, and how this call runs); every other flag given must agree
/// with the run's `config.json`.
const RESUMABLE: &[&str] = &[
    "epochs",
    "resume",
    "out",
    "max_epochs_this_call",
    "no_fused_step",
    "no_cuda_graph",
    "device",
    "json",
    "max_model_bytes",
    "portable",
];

/// The ids of the arguments given on the command line.
fn given_flags(m: &ArgMatches) -> Vec<String> {
    m.ids()
        .map(|id| id.as_str().to_string())
        // Argument groups (the flattened structs) are named in CamelCase.
        .filter(|id| !id.starts_with(|c: char| c.is_ascii_uppercase()))
        .filter(|id| m.value_source(id) == Some(ValueSource::CommandLine))
        .collect()
}

/// `--flag-name` of an argument id.
fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// What each given flag that contradicts the run's saved config says, one
/// line per flag (empty when they all agree).
fn resume_conflicts(a: &TrainArgs, given: &[String], saved: &RunConfig) -> Vec<String> {
    let t = &saved.train;
    let d = &saved.data;
    let fresh = a.data.config();
    let mut out = Vec::new();
    for id in given.iter().filter(|id| !RESUMABLE.contains(&id.as_str())) {
        let show = |v: &dyn std::fmt::Debug| {
            let s = format!("{v:?}");
            match s.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
                Some(inner) => inner.to_string(),
                None if s == "None" => "none".to_string(),
                None => s,
            }
        };
        // What the flag says and what the run has, shown alike; the arms that decide
        // on their own `continue`.
        let (flag_says, run_has) = match id.as_str() {
            "model" => (a.model.to_string(), saved.model.kind().to_string()),
            "seed" => (a.seed.to_string(), t.seed.to_string()),
            "batch_size" => (show(&a.batch_size), show(&Some(t.batch_size))),
            "lr" => (show(&a.lr), show(&Some(t.lr))),
            "weight_decay" => (show(&a.weight_decay), show(&Some(t.weight_decay))),
            "beta1" => (show(&a.beta1), show(&Some(t.beta1))),
            "beta2" => (show(&a.beta2), show(&Some(t.beta2))),
            "early_stopping" => (
                show(&a.early_stopping),
                show(&t.early_stopping.map(|e| e.patience)),
            ),
            "schedule" => match a.schedule.as_deref().map(str::parse::<LrSchedule>) {
                Some(Ok(s)) => (show(&s), show(&t.schedule)),
                Some(Err(e)) => {
                    out.push(format!("{e}"));
                    continue;
                }
                None => continue,
            },
            "dataset" => (fresh.name.to_string(), d.name.to_string()),
            "data_dir" => (show(&fresh.data_dir), show(&d.data_dir)),
            "train_images" => (show(&fresh.train_images), show(&d.train_images)),
            "train_labels" => (show(&fresh.train_labels), show(&d.train_labels)),
            "test_images" => (show(&fresh.test_images), show(&d.test_images)),
            "test_labels" => (show(&fresh.test_labels), show(&d.test_labels)),
            "train_limit" => (show(&fresh.train_limit), show(&d.train_limit)),
            "test_limit" => (show(&fresh.test_limit), show(&d.test_limit)),
            "data" => (show(&fresh.data), show(&d.data)),
            "test_data" => (show(&fresh.test_data), show(&d.test_data)),
            "test_fraction" => (show(&fresh.test_fraction), show(&d.test_fraction)),
            "split_seed" => (show(&fresh.split_seed), show(&d.split_seed)),
            "image_size" => (show(&fresh.source.image_size), show(&d.source.image_size)),
            // `auto` is resolved when the run's data is first read: it agrees with either.
            "color" if fresh.source.color == ae_data::Color::Auto => continue,
            "color" => (show(&fresh.source.color), show(&d.source.color)),
            "crop" => (show(&fresh.source.crop), show(&d.source.crop)),
            "channels_first" => (
                show(&fresh.source.channels_first),
                show(&d.source.channels_first),
            ),
            "normalize" => (show(&fresh.source.normalize), show(&d.source.normalize)),
            "array" => (show(&fresh.source.array), show(&d.source.array)),
            "label_array" => (show(&fresh.source.label_array), show(&d.source.label_array)),
            "label_column" => (
                show(&fresh.source.label_column),
                show(&d.source.label_column),
            ),
            "skip_bad_images" => (
                show(&fresh.source.skip_bad_images),
                show(&d.source.skip_bad_images),
            ),
            "latent_dim" | "dense_code" | "hidden" | "channels" | "sparsity" | "noise" | "base"
            | "beta" | "vae_arch" | "loss" => {
                let mut model = saved.model.clone();
                match a.model_opts.only(id).apply(&mut model) {
                    Err(e) => out.push(format!("{}: {e}", flag(id))),
                    Ok(()) if model != saved.model => out.push(format!(
                        "{}: changes the run's {} model",
                        flag(id),
                        saved.model.kind()
                    )),
                    Ok(()) => {}
                }
                continue;
            }
            other => {
                out.push(format!("{}: cannot change on --resume", flag(other)));
                continue;
            }
        };
        if flag_says != run_has {
            out.push(format!("{} {flag_says}: the run has {run_has}", flag(id)));
        }
    }
    out
}

pub fn run(a: TrainArgs, matches: Option<&ArgMatches>) -> Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(a.model.to_string()));
    let device = parse_device(&a.device)?;
    if out.is_dir() {
        // Refuse at once, before loading data, when another process writes there
        // (`train_on` takes the lock for the whole run; this is a quick probe).
        drop(ae_train::RunLock::acquire(&out)?);
    }
    let saved = out.join(ae_train::checkpoint::CONFIG_FILE);
    let (cfg, split) = if a.resume && saved.is_file() {
        // The run's own config rules; only the epoch count may be changed.
        let mut cfg: RunConfig = ae_train::checkpoint::read_json(&saved)?;
        let given = matches.map(given_flags).unwrap_or_default();
        let conflicts = resume_conflicts(&a, &given, &cfg);
        if !conflicts.is_empty() {
            bail!(
                "--resume continues the run in {} with its own config.json; these flags \
                 contradict it (drop them, or train a new run with another --out):\n  {}",
                out.display(),
                conflicts.join("\n  ")
            );
        }
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
        cuda_graph: !a.no_cuda_graph,
        ..TrainOptions::default()
    };
    let report = train_on(&cfg, split, &out, &opts)
        .with_context(|| format!("training into {}", out.display()))?;
    let t = &report.test;
    if a.json {
        println!("{}", serde_json::to_string_pretty(t)?);
    } else {
        // BCE and PSNR mean nothing on standardised features.
        let scores = if cfg.standardised() {
            format!("test mse {:.5} (standardised features)", t.mse)
        } else {
            format!(
                "test bce {:.4} mse {:.5} psnr {:.2} dB",
                t.bce, t.mse, t.psnr
            )
        };
        println!(
            "{}: {scores} loss {:.4}{} ({} epochs{}) -> {}",
            cfg.model.kind(),
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
