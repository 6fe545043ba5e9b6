//! Command-line options shared by commands: data selection and model hyper-parameters.

use std::path::PathBuf;

use ae_data::noise::Noise;
use ae_data::{DataConfig, DatasetName};
use ae_models::{ModelConfig, Sparsity, VaeArch};
use anyhow::{Result, bail};
use clap::Args;

/// Where the images come from (see `ae-data`: explicit paths, else
/// `--data-dir`, else `$AE_DATA_DIR`, else the repo's `data/<name>/`).
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
}

impl DataArgs {
    /// The data config these options describe.
    pub fn config(&self) -> DataConfig {
        DataConfig {
            name: self.dataset,
            data_dir: self.data_dir.clone(),
            train_images: self.train_images.clone(),
            train_labels: self.train_labels.clone(),
            test_images: self.test_images.clone(),
            test_labels: self.test_labels.clone(),
            train_limit: self.train_limit,
            test_limit: self.test_limit,
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
        apply_inner(self, cfg)
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
