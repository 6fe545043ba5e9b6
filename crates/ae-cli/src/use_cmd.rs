//! Commands that use a trained run: eval, reconstruct, encode, denoise, sample.

use std::path::{Path, PathBuf};

use ae_data::noise::Noise;
use ae_data::{ImageSet, Split};
use ae_train::{LoadedRun, evaluate, load_run, parse_device};
use ae_viz::{PlotOptions, plots, write_png};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::output::{Codes, write_codes};

/// Options every command on a trained run takes.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The run folder written by `ae train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Use only the first N images of the split.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Data to use instead of the run's split, read like the run's own --data
    /// (a folder, .npy, .npz, .csv, .parquet; a table is scaled by the run's scaler).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed of the random draws (noise, VAE samples).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl RunArgs {
    pub(crate) fn load(&self) -> Result<LoadedRun> {
        let device = parse_device(&self.device)?;
        load_run(&self.checkpoint, &device)
            .with_context(|| format!("loading the run {}", self.checkpoint.display()))
    }

    /// The run's data, limited to `--limit` images (only the split that is used).
    fn data(&self, run: &LoadedRun, split: SplitName) -> Result<ImageSet> {
        if let Some(p) = &self.data {
            let set = run.config.data.load_file(p).with_context(|| {
                format!("reading {} for the run {}", p.display(), run.dir.display())
            })?;
            return Ok(set.take(self.limit.unwrap_or(usize::MAX)));
        }
        let mut cfg = run.config.data.clone();
        match split {
            SplitName::Test => {
                cfg.train_limit = Some(1);
                if self.limit.is_some() {
                    cfg.test_limit = self.limit;
                }
            }
            SplitName::Train => {
                cfg.test_limit = Some(1);
                if self.limit.is_some() {
                    cfg.train_limit = self.limit;
                }
            }
        }
        let Split { train, test } = cfg.load()?;
        Ok(match split {
            SplitName::Train => train,
            SplitName::Test => test,
        })
    }
}

/// Which split of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitName {
    /// The training images.
    Train,
    /// The test images.
    Test,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let run = a.run.load()?;
    let test = a.run.data(&run, SplitName::Test)?;
    let m = evaluate(
        run.model.as_ref(),
        &test,
        run.config.train.eval_batch_size,
        &run.device,
        a.run.seed,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!("model      {}", run.config.model.kind());
        println!("images     {}", m.images);
        if run.config.standardised() {
            // BCE and PSNR mean nothing on standardised features.
            println!("mse        {:.5} (per standardised feature)", m.mse);
        } else {
            println!("bce        {:.5} (per pixel)", m.bce);
            println!("mse        {:.5} (per pixel)", m.mse);
            println!("psnr       {:.2} dB", m.psnr);
        }
        println!("loss       {:.5} (the training objective)", m.loss);
        if let Some(e) = m.elbo {
            let recon = match run.config.model.recon_loss() {
                ae_models::ReconLoss::Bce => "BCE sum",
                ae_models::ReconLoss::Mse => "SSE/2",
            };
            println!(
                "elbo       {e:.2} nats per image ({recon} + KL = {:.2})",
                -e
            );
        }
    }
    Ok(())
}

/// Picture options of a command on `run`: `n` images per row, `--seed`.
fn plot_options(run: &LoadedRun, args: &RunArgs, n: usize) -> PlotOptions {
    PlotOptions {
        n,
        seed: args.seed,
        batch_size: run.config.train.eval_batch_size,
        ..PlotOptions::default()
    }
}

fn check_png(path: &Path) -> Result<()> {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.eq_ignore_ascii_case("png"))
        != Some(true)
    {
        bail!(
            "{}: the picture is written as PNG: name it *.png",
            path.display()
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// PNG to write: originals above reconstructions.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of test images.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub n: usize,
}

pub fn reconstruct(a: ReconstructArgs) -> Result<()> {
    check_png(&a.out)?;
    let run = a.run.load()?;
    let test = a.run.data(&run, SplitName::Test)?;
    let n = a.n.min(test.len());
    if n == 0 {
        bail!("-n must be at least 1");
    }
    let opts = plot_options(&run, &a.run, n);
    let pic = plots::reconstructions(run.model.as_ref(), &test, &opts, &run.device)?;
    write_png(&a.out, &pic.image)?;
    println!(
        "wrote {} (top: {n} test images, bottom: reconstructions)",
        a.out.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Output file: .csv, .npy or .safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// Which split to encode.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitName,
}

pub fn encode(a: EncodeArgs) -> Result<()> {
    let run = a.run.load()?;
    let set = a.run.data(&run, a.split)?;
    let k = run.model.latent_dim();
    let codes = ae_train::map_batches(
        run.model.input_layout(),
        &set.pixels(),
        run.config.train.eval_batch_size,
        &run.device,
        |x| Ok::<_, anyhow::Error>(ae_train::encode_batch(run.model.as_ref(), x)?),
    )?;
    if codes.len() != set.len() * k {
        bail!(
            "the model gave {} code values for {} images of latent size {k}",
            codes.len(),
            set.len()
        );
    }
    write_codes(
        &a.out,
        &Codes {
            rows: set.len(),
            cols: k,
            values: &codes,
            labels: set.labels(),
        },
    )?;
    println!(
        "wrote {} codes of size {k} to {}",
        set.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct DenoiseArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// PNG to write: noisy, denoised and clean rows.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of test images.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub n: usize,
    /// Noise to add (default: the model's own, else gaussian:0.4).
    #[arg(long)]
    pub noise: Option<Noise>,
}

pub fn denoise(a: DenoiseArgs) -> Result<()> {
    check_png(&a.out)?;
    let run = a.run.load()?;
    let test = a.run.data(&run, SplitName::Test)?;
    let n = a.n.min(test.len());
    if n == 0 {
        bail!("-n must be at least 1");
    }
    let opts = PlotOptions {
        noise: a.noise,
        ..plot_options(&run, &a.run, n)
    };
    let (pic, stats) = plots::denoising(run.model.as_ref(), &test, &opts, &run.device)?;
    write_png(&a.out, &pic.image)?;
    println!(
        "wrote {} (rows: noisy {}, denoised, clean); PSNR noisy {:.2} dB, denoised {:.2} dB",
        a.out.display(),
        stats.noise,
        stats.psnr_noisy,
        stats.psnr_denoised
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// PNG to write: a grid of samples.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 64)]
    pub n: usize,
}

pub fn sample(a: SampleArgs) -> Result<()> {
    check_png(&a.out)?;
    if a.n == 0 || a.n > 4096 {
        bail!("-n must be between 1 and 4096, got {}", a.n);
    }
    let run = a.run.load()?;
    let shape = run.config.model.input();
    let Some(pic) = plots::prior_samples(run.model.as_ref(), shape, a.n, a.run.seed, &run.device)?
    else {
        bail!(
            "{}: the {} model has no prior to sample from: train a vae",
            a.run.checkpoint.display(),
            run.config.model.kind()
        );
    };
    write_png(&a.out, &pic.image)?;
    println!("wrote {} ({} samples from the prior)", a.out.display(), a.n);
    Ok(())
}
