//! `ae denoise-table`: PSNR and SSIM of noisy and denoised images for several
//! noises ([`ae_uses::denoise_table`]).

use ae_data::Noise;
use anyhow::{Context, Result};
use clap::Args;

use super::{ImagesArgs, UseRunArgs, print_json};

#[derive(Debug, Args)]
pub struct DenoiseTableArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// Noises (comma separated; default gaussian:0.2, 0.4, 0.6 and salt-pepper:0.2).
    #[arg(long, value_delimiter = ',')]
    pub noise: Option<Vec<Noise>>,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(a: DenoiseTableArgs) -> Result<()> {
    let run = a.run.load()?;
    let (set, what) = a.images.load(&run)?;
    let noises = a.noise.clone().unwrap_or_else(ae_uses::standard_noises);
    let rows = ae_uses::denoise_table(
        run.model.as_ref(),
        &set,
        &noises,
        a.run.batch_size,
        &run.device,
        a.run.seed,
    )
    .with_context(|| format!("denoising {what}"))?;
    if a.json {
        return print_json(&rows);
    }
    println!("{} images of {what}; PSNR in dB, mean per image", set.len());
    println!("noise              PSNR noisy  PSNR denoised  SSIM noisy  SSIM denoised");
    for r in &rows {
        println!(
            "{:<18} {:>10.2}  {:>13.2}  {:>10.3}  {:>13.3}",
            r.noise, r.psnr_noisy, r.psnr_denoised, r.ssim_noisy, r.ssim_denoised
        );
    }
    Ok(())
}
