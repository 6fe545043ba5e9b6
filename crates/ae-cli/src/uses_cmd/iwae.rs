//! `ae iwae` (alias `loglik`): a VAE's log-likelihood bound ([`ae_uses::iwae_seeded`])
//! for one or several numbers of importance samples.

use anyhow::{Context, Result};
use clap::Args;

use super::{ImagesArgs, UseRunArgs, print_json};

#[derive(Debug, Args)]
pub struct IwaeArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// Importance samples per image (comma separated for several estimates).
    #[arg(
        short = 'k',
        long = "samples",
        value_delimiter = ',',
        default_value = "100"
    )]
    pub k: Vec<usize>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(a: IwaeArgs) -> Result<()> {
    let run = a.run.load()?;
    let (set, what) = a.images.load(&run)?;
    let mut out = Vec::new();
    for &k in &a.k {
        let r = ae_uses::iwae_seeded(
            run.model.as_ref(),
            &set,
            k,
            a.run.batch_size,
            &run.device,
            a.run.seed,
        )
        .with_context(|| format!("estimating the log-likelihood of {what}"))?;
        out.push(
            serde_json::json!({"k": k, "images": r.images, "log_likelihood": r.log_likelihood}),
        );
        if !a.json {
            println!(
                "K = {k:>5}: log p(x) >= {:.2} nats per image ({} images of {what})",
                r.log_likelihood, r.images
            );
        }
    }
    if a.json {
        print_json(&out)?;
    }
    Ok(())
}
