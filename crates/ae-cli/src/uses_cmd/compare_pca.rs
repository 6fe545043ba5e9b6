//! `ae compare-pca`: PCA against autoencoders of the same code size
//! ([`ae_uses::compare_pca`]), as a table.

use std::path::PathBuf;

use ae_train::parse_device;
use anyhow::Result;
use clap::Args;

use super::print_json;
use crate::model_opts::DataArgs;

#[derive(Debug, Args)]
pub struct ComparePcaArgs {
    /// Code sizes to compare (PCA components = autoencoder latent size).
    #[arg(long, value_delimiter = ',', default_value = "2,8,32,64")]
    pub latent_dims: Vec<usize>,
    /// Epochs of each autoencoder.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Hidden sizes of the autoencoders' encoder (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_value = "512,256")]
    pub hidden: Vec<usize>,
    /// Images per training batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Where the autoencoders' runs go (`<dir>/latent-<k>`); finished runs of the same config are reused.
    #[arg(long, default_value = "runs/compare-pca")]
    pub runs_dir: PathBuf,
    /// Retrain even when a finished run is there.
    #[arg(long)]
    pub retrain: bool,
    /// Seed of every run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn exec(a: ComparePcaArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let mut data = a.data.config();
    let split = data.load_fitted()?;
    let opts = ae_uses::CompareOptions {
        dims: a.latent_dims.clone(),
        hidden: a.hidden.clone(),
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        runs_dir: a.runs_dir.clone(),
        retrain: a.retrain,
        ..ae_uses::CompareOptions::default()
    };
    let rows = ae_uses::compare_pca(&data, &split, &opts, &device)?;
    if a.json {
        return print_json(&rows);
    }
    println!("latent  PCA mse   AE mse    PCA bce   AE bce    AE better?");
    for r in &rows {
        let wins = r.ae_mse < r.pca_mse && r.ae_bce < r.pca_bce;
        println!(
            "{:>6}  {:.5}   {:.5}   {:.5}   {:.5}   {}",
            r.latent,
            r.pca_mse,
            r.ae_mse,
            r.pca_bce,
            r.ae_bce,
            if wins { "yes" } else { "no" }
        );
    }
    Ok(())
}
