//! The measured uses of autoencoders (ae-uses), one file per subcommand family,
//! each a thin `exec()` that reads its arguments and calls the library:
//! [`compare_pca`], [`anomaly`] (`fit`, `score`, `eval`), [`aez`] (`compress`,
//! `decompress`), [`probe`], [`iwae`] and [`denoise_table`]. The arguments they
//! share (the run, the images) are here.

pub mod aez;
pub mod anomaly;
pub mod compare_pca;
pub mod denoise_table;
pub mod iwae;
pub mod probe;

use std::path::{Path, PathBuf};

use ae_data::{ImageSet, read_idx};
use ae_train::{LoadedRun, load_run, parse_device};
use anyhow::{Context, Result};
use clap::Args;

/// Options of every command that uses a trained run.
#[derive(Debug, Clone, Args)]
pub struct UseRunArgs {
    /// The run folder written by `ae train` (or `ae anomaly fit`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of the random draws (noise, VAE samples); commands that draw nothing ignore it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

impl UseRunArgs {
    fn load(&self) -> Result<LoadedRun> {
        let device = parse_device(&self.device)?;
        load_run(&self.checkpoint, &device)
            .with_context(|| format!("loading the run {}", self.checkpoint.display()))
    }
}

/// Which images a command works on: the run's own test (or training) split,
/// or any IDX image file (with its labels where they are needed).
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// IDX file of images to use instead of the run's data set (any image size the model takes).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Data to use instead of the run's test split, read like the run's own --data
    /// (a folder, .npy, .npz, .csv, .parquet; a table is scaled by the run's scaler).
    #[arg(long, conflicts_with_all = ["images", "train_split"])]
    pub data: Option<PathBuf>,
    /// With --data, a table: its label column (default: the run's).
    #[arg(long, requires = "data")]
    pub label_column: Option<String>,
    /// IDX file of the labels of --images.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Use the run's training images instead of its test images.
    #[arg(long, conflicts_with = "images")]
    pub train_split: bool,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Reads an IDX image file (and optional labels) as an image set.
fn read_images(images: &Path, labels: Option<&Path>) -> Result<ImageSet> {
    let arr = read_idx(images)?;
    let name = images.display().to_string();
    let labels = match labels {
        Some(p) => Some((read_idx(p)?, p.display().to_string())),
        None => None,
    };
    Ok(ImageSet::from_idx(
        &arr,
        &name,
        labels.as_ref().map(|(a, n)| (a, n.as_str())),
        None,
    )?)
}

impl ImagesArgs {
    /// The images, and a description for messages.
    fn load(&self, run: &LoadedRun) -> Result<(ImageSet, String)> {
        let limit = self.limit.unwrap_or(usize::MAX);
        if let Some(p) = &self.data {
            let mut cfg = run.config.data.clone();
            if self.label_column.is_some() {
                cfg.source.label_column = self.label_column.clone();
            }
            let set = cfg.load_file(p).with_context(|| {
                format!("reading {} for the run {}", p.display(), run.dir.display())
            })?;
            return Ok((set.take(limit), p.display().to_string()));
        }
        if let Some(p) = &self.images {
            let set = read_images(p, self.labels.as_deref())?;
            return Ok((set.take(limit), p.display().to_string()));
        }
        let mut cfg = run.config.data.clone();
        let (set, what) = if self.train_split {
            cfg.test_limit = Some(1);
            if self.limit.is_some() {
                cfg.train_limit = self.limit;
            }
            (cfg.load()?.train, "training")
        } else {
            cfg.train_limit = Some(1);
            if self.limit.is_some() {
                cfg.test_limit = self.limit;
            }
            (cfg.load()?.test, "test")
        };
        Ok((set, format!("the {what} images of {}", cfg.name)))
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
