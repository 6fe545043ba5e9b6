//! `ae plot`: every picture that applies to a trained run (loss curves,
//! reconstructions, latent space, and per model: denoising rows, VAE samples,
//! manifold and interpolations, sparse code histogram), drawn by `ae-viz`.

use std::path::PathBuf;

use ae_train::load_run;
use ae_viz::{PlotOptions, plot_run, test_images, vanilla_peer};
use anyhow::{Context, Result, bail};
use clap::Args;

use crate::use_cmd::RunArgs;

#[derive(Debug, Args)]
pub struct PlotArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Folder to write the pictures and plots.json into (default: the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Test images per row of the reconstruction and denoising figures.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub n: usize,
    /// Test images at most in the latent scatter plot and the code histogram.
    #[arg(long, default_value_t = 2000)]
    pub max_points: usize,
    /// Samples from the prior (VAE).
    #[arg(long, default_value_t = 64)]
    pub samples: usize,
    /// The vanilla run a sparse model's code activations are compared with
    /// (default: `vanilla` beside the run folder, when there is one).
    #[arg(long)]
    pub vanilla: Option<PathBuf>,
}

pub fn run(a: PlotArgs) -> Result<()> {
    if a.n == 0 || a.max_points == 0 {
        bail!("-n and --max-points must be at least 1");
    }
    if a.samples == 0 || a.samples > 4096 {
        bail!("--samples must be between 1 and 4096, got {}", a.samples);
    }
    let run = a.run.load()?;
    let test = test_images(&run, a.run.limit)
        .with_context(|| format!("loading the test images of {}", a.run.checkpoint.display()))?;
    let peer = match &a.vanilla {
        Some(dir) => Some(
            load_run(dir, &run.device)
                .with_context(|| format!("loading the vanilla run {}", dir.display()))?,
        ),
        None => vanilla_peer(&run)?,
    };
    let out = a.out.clone().unwrap_or_else(|| a.run.checkpoint.clone());
    let opts = PlotOptions {
        n: a.n,
        seed: a.run.seed,
        samples: a.samples,
        max_points: a.max_points,
        batch_size: run.config.train.eval_batch_size,
        ..PlotOptions::default()
    };
    let manifest = plot_run(&run, &test, peer.as_ref(), &out, &opts)
        .with_context(|| format!("drawing the pictures of {}", a.run.checkpoint.display()))?;
    for p in &manifest.pictures {
        println!(
            "wrote {} ({}x{}): {}",
            out.join(&p.file).display(),
            p.width,
            p.height,
            p.caption
        );
    }
    println!(
        "wrote {} ({} pictures)",
        out.join(ae_viz::MANIFEST_FILE).display(),
        manifest.pictures.len()
    );
    Ok(())
}
