//! Command-line options shared by commands: data selection and model hyper-parameters.
//!
//! `--loss mse|bce` sets a dense model's or the VAE's output and reconstruction
//! loss; without it images train with BCE and standardised tables with MSE
//! (resolved by the trainer, see `ae_train::RunConfig::resolve_loss`).

use std::path::PathBuf;

use ae_data::noise::Noise;
use ae_data::{Color, Crop, DataConfig, DatasetName, ImageSize, Normalize, SourceOptions};
use ae_models::{ModelConfig, ReconLoss, Sparsity, VaeArch};
use anyhow::{Result, bail};
use clap::Args;

/// Where the images come from (see `ae-data`: explicit paths, else
/// `--data-dir`, else `$AE_DATA_DIR/<name>/`, else the first `data/<name>/` in
/// or above the working directory).
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data set: mnist, fashion-mnist, or custom (with explicit IDX paths).
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetName,
    /// Folder holding the data set's four IDX files (gzipped or not).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// IDX file of training images.
    #[arg(long)]
    pub train_images: Option<PathBuf>,
    /// IDX file of training labels.
    #[arg(long)]
    pub train_labels: Option<PathBuf>,
    /// IDX file of test images.
    #[arg(long)]
    pub test_images: Option<PathBuf>,
    /// IDX file of test labels.
    #[arg(long)]
    pub test_labels: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Your own data: a folder of images (class subfolders or flat), .npy, .npz,
    /// .csv, .parquet, or an IDX file (docs/data.md).
    #[arg(long, conflicts_with_all = ["data_dir", "train_images", "train_labels", "test_images", "test_labels"])]
    pub data: Option<PathBuf>,
    /// The test data, of the same kind as --data (default: hold out --test-fraction of it).
    #[arg(long, requires = "data", conflicts_with = "test_fraction")]
    pub test_data: Option<PathBuf>,
    /// Without --test-data, the fraction of --data held out for testing [default: 0.1].
    #[arg(long, requires = "data")]
    pub test_fraction: Option<f64>,
    /// Without --test-data, the seed of the hold-out.
    #[arg(long, default_value_t = 0, requires = "data")]
    pub split_seed: u64,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// How --data is read (recorded in the run's config.json).
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Image folders: resize every image to HxW (bilinear); without it all images must have one size.
    #[arg(long, requires = "data")]
    pub image_size: Option<ImageSize>,
    /// Image folders: with --image-size, cut the centred region of the target's aspect ratio first.
    #[arg(long, requires = "image_size")]
    pub crop: Option<Crop>,
    /// Image folders: rgb, gray, or auto (gray when every image is gray).
    #[arg(long, requires = "data")]
    pub color: Option<Color>,
    /// .npy/.npz: 4-d arrays are [N, C, H, W] (default numpy's [N, H, W, C]).
    #[arg(long, requires = "data")]
    pub channels_first: bool,
    /// .npy/.npz: float values outside [0, 1] are min-max scaled (minmax) instead of an error.
    #[arg(long, requires = "data")]
    pub normalize: Option<Normalize>,
    /// .npz: the array holding the data (default: the only one, or x).
    #[arg(long, requires = "data")]
    pub array: Option<String>,
    /// .npz: the array holding integer labels.
    #[arg(long, requires = "data")]
    pub label_array: Option<String>,
    /// Tables (.csv, .parquet): the label column; every other column is a numeric feature.
    #[arg(long, requires = "data")]
    pub label_column: Option<String>,
    /// Image folders: skip images the decoder rejects (a warning with the count) instead of failing.
    #[arg(long, requires = "data")]
    pub skip_bad_images: bool,
}

impl SourceArgs {
    /// The reading options these flags describe.
    pub fn options(&self) -> SourceOptions {
        SourceOptions {
            image_size: self.image_size,
            crop: self.crop.unwrap_or_default(),
            color: self.color.unwrap_or_default(),
            channels_first: self.channels_first,
            normalize: self.normalize.unwrap_or_default(),
            array: self.array.clone(),
            label_array: self.label_array.clone(),
            label_column: self.label_column.clone(),
            skip_bad_images: self.skip_bad_images,
        }
    }
}

impl DataArgs {
    /// The data config these options describe.
    pub fn config(&self) -> DataConfig {
        DataConfig {
            name: if self.data.is_some() {
                DatasetName::Custom
            } else {
                self.dataset
            },
            data_dir: self.data_dir.clone(),
            train_images: self.train_images.clone(),
            train_labels: self.train_labels.clone(),
            test_images: self.test_images.clone(),
            test_labels: self.test_labels.clone(),
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            data: self.data.clone(),
            test_data: self.test_data.clone(),
            test_fraction: self.test_fraction,
            split_seed: self.split_seed,
            source: self.source.options(),
            scaler: None,
        }
    }
}

/// Model hyper-parameters; each applies to the variants that have it.
#[derive(Debug, Clone, Default, Args)]
pub struct ModelArgs {
    /// Size of the code (dense, sparse, VAE; conv with --dense-code). The conv
    /// model's code is otherwise set by --channels.
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Conv model: flatten the last feature map into a dense (linear) code of
    /// this many units (`encoder.fc` / `decoder.fc`).
    #[arg(long)]
    pub dense_code: Option<usize>,
    /// Hidden layer sizes of the dense encoder, comma separated (the decoder mirrors them).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Channels of the conv encoder stages, comma separated (conv, denoising, conv VAE).
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// Sparsity penalty of the sparse model: l1:LAMBDA or kl:RHO:BETA.
    #[arg(long)]
    pub sparsity: Option<String>,
    /// Input noise of the denoising model: gaussian:STD, salt-pepper:P, mask:FRACTION, shift:PIXELS.
    #[arg(long)]
    pub noise: Option<Noise>,
    /// Base of the denoising model: vanilla, sparse or conv.
    #[arg(long)]
    pub base: Option<ae_models::ModelKind>,
    /// Weight of the KL term of the VAE (beta-VAE).
    #[arg(long)]
    pub beta: Option<f64>,
    /// Architecture of the VAE: dense or conv.
    #[arg(long)]
    pub vae_arch: Option<String>,
    /// Reconstruction loss and output: bce (sigmoid output; images, the default
    /// there) or mse (linear output; tables, the default there). Dense models and
    /// the VAE; bce on a standardised table is an error.
    #[arg(long)]
    pub loss: Option<ReconLoss>,
}

fn parse_sparsity(s: &str) -> Result<Sparsity> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |x: &str| -> Result<f64> {
        x.parse::<f64>()
            .map_err(|_| anyhow::anyhow!("--sparsity {s}: '{x}' is not a number"))
    };
    match parts.as_slice() {
        ["l1", l] => Ok(Sparsity::L1 { lambda: num(l)? }),
        ["kl", rho, beta] => Ok(Sparsity::Kl {
            rho: num(rho)?,
            beta: num(beta)?,
        }),
        _ => bail!("--sparsity {s}: expected l1:LAMBDA or kl:RHO:BETA"),
    }
}

impl ModelArgs {
    /// These options with only the one of argument id `id` kept (`latent_dim`, ...).
    pub fn only(&self, id: &str) -> ModelArgs {
        let a = self.clone();
        let mut o = ModelArgs::default();
        match id {
            "latent_dim" => o.latent_dim = a.latent_dim,
            "dense_code" => o.dense_code = a.dense_code,
            "hidden" => o.hidden = a.hidden,
            "channels" => o.channels = a.channels,
            "sparsity" => o.sparsity = a.sparsity,
            "noise" => o.noise = a.noise,
            "base" => o.base = a.base,
            "beta" => o.beta = a.beta,
            "vae_arch" => o.vae_arch = a.vae_arch,
            "loss" => o.loss = a.loss,
            _ => {}
        }
        o
    }

    /// Applies the options to `cfg`; an option the variant does not have is an error.
    pub fn apply(&self, cfg: &mut ModelConfig) -> Result<()> {
        if let (ModelConfig::Denoising(d), Some(base)) = (&mut *cfg, self.base) {
            let input = d.base.input();
            *d.base = ModelConfig::default_for(base, input);
        }
        apply_inner(self, cfg)?;
        if let Some(loss) = self.loss {
            cfg.set_loss(loss)
                .map_err(|e| anyhow::anyhow!("--loss {loss}: {e}"))?;
        }
        Ok(())
    }
}

fn apply_inner(a: &ModelArgs, cfg: &mut ModelConfig) -> Result<()> {
    let kind = cfg.kind();
    let not_for = |flag: &str| anyhow::anyhow!("{flag} does not apply to the {kind} model");
    match cfg {
        ModelConfig::Vanilla(d) => {
            if let Some(k) = a.latent_dim {
                d.latent_dim = k;
            }
            if let Some(h) = &a.hidden {
                d.hidden = h.clone();
            }
            for (flag, given) in [
                ("--channels", a.channels.is_some()),
                ("--sparsity", a.sparsity.is_some()),
                ("--beta", a.beta.is_some()),
                ("--vae-arch", a.vae_arch.is_some()),
                ("--dense-code", a.dense_code.is_some()),
            ] {
                if given {
                    return Err(not_for(flag));
                }
            }
        }
        ModelConfig::Sparse(s) => {
            if let Some(k) = a.latent_dim {
                s.dense.latent_dim = k;
            }
            if let Some(h) = &a.hidden {
                s.dense.hidden = h.clone();
            }
            if let Some(p) = &a.sparsity {
                s.penalty = parse_sparsity(p)?;
            }
            for (flag, given) in [
                ("--channels", a.channels.is_some()),
                ("--beta", a.beta.is_some()),
                ("--vae-arch", a.vae_arch.is_some()),
                ("--dense-code", a.dense_code.is_some()),
            ] {
                if given {
                    return Err(not_for(flag));
                }
            }
        }
        ModelConfig::Conv(c) => {
            if let Some(ch) = &a.channels {
                c.channels = ch.clone();
            }
            if let Some(k) = a.dense_code {
                c.dense_code = Some(k);
            }
            match (a.latent_dim, a.dense_code) {
                (Some(k), Some(d)) if k != d => {
                    bail!("--latent-dim {k} and --dense-code {d} disagree: give one of them")
                }
                (Some(_), None) => {
                    return Err(anyhow::anyhow!(
                        "--latent-dim does not apply to the conv model without --dense-code: its \
                         code is the last --channels entry times the image size over 2^stages"
                    ));
                }
                _ => {}
            }
            for (flag, given) in [
                ("--hidden", a.hidden.is_some()),
                ("--sparsity", a.sparsity.is_some()),
                ("--beta", a.beta.is_some()),
                ("--vae-arch", a.vae_arch.is_some()),
            ] {
                if given {
                    return Err(not_for(flag));
                }
            }
        }
        ModelConfig::Denoising(d) => {
            if let Some(n) = &a.noise {
                d.noise = *n;
            }
            let inner = ModelArgs {
                noise: None,
                base: None,
                ..a.clone()
            };
            apply_inner(&inner, &mut d.base)?;
        }
        ModelConfig::Vae(v) => {
            if let Some(arch) = &a.vae_arch {
                v.arch = match arch.as_str() {
                    "dense" => VaeArch::default(),
                    "conv" => VaeArch::Conv {
                        channels: vec![32, 64],
                        kernel: 3,
                    },
                    other => bail!("--vae-arch {other}: expected dense or conv"),
                };
            }
            if let Some(k) = a.latent_dim {
                v.latent_dim = k;
            }
            if let Some(b) = a.beta {
                v.beta = b;
            }
            match (&mut v.arch, &a.hidden, &a.channels) {
                (VaeArch::Dense { hidden }, Some(h), None) => *hidden = h.clone(),
                (VaeArch::Conv { channels, .. }, None, Some(c)) => *channels = c.clone(),
                (_, None, None) => {}
                _ => bail!("--hidden goes with --vae-arch dense, --channels with --vae-arch conv"),
            }
            if a.sparsity.is_some() {
                return Err(not_for("--sparsity"));
            }
            if a.dense_code.is_some() {
                return Err(not_for("--dense-code"));
            }
        }
    }
    if a.noise.is_some() && kind != ae_models::ModelKind::Denoising {
        return Err(not_for("--noise"));
    }
    Ok(())
}

/// Whether `model` convolves (conv, a denoising conv, a conv VAE).
fn is_conv(model: &ModelConfig) -> bool {
    match model {
        ModelConfig::Conv(_) => true,
        ModelConfig::Denoising(d) => is_conv(&d.base),
        ModelConfig::Vae(v) => matches!(v.arch, VaeArch::Conv { .. }),
        _ => false,
    }
}

/// A convolutional model on a table is an error that says why.
pub fn check_model_for_data(model: &ModelConfig, train: &ae_data::ImageSet) -> Result<()> {
    if train.is_table() && is_conv(model) {
        bail!(
            "the {} model convolves over neighbouring pixels, but the rows of a table ({} columns) \
             have no neighbourhood: use a dense model (vanilla, sparse, vae, or denoising with \
             --base vanilla)",
            model.kind(),
            train.dim()
        );
    }
    Ok(())
}
