//! `cargo xtask uses`: every measured use of autoencoders (PCA comparison, denoising,
//! compression, linear probes, the IWAE bound, and the anomaly benchmark) as one report.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use ae_data::DataConfig;
use ae_models::{ImageShape, ModelConfig};
use ae_train::{RunConfig, load_run};
use ae_uses::{Features, Pca};
use anyhow::Result;
use candle_core::Device;
use serde::Serialize;

use super::anomaly::{
    AnomalyOptions, AnomalyTable, DEFAULT_ENSEMBLE, anomaly_benchmark, anomaly_markdown,
};
use super::{mnist, write_tables};

/// Options of `cargo xtask uses`.
#[derive(Debug, Clone, clap::Args)]
pub struct UsesArgs {
    /// A smoke test: 2,000 training and 1,000 test images, 1-2 epochs.
    #[arg(long)]
    pub quick: bool,
    /// Where the runs and the tables go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Seed of every run and every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Retrain even where a finished run of the same config is there.
    #[arg(long)]
    pub retrain: bool,
    /// Leave out the anomaly benchmark (ten detectors).
    #[arg(long)]
    pub skip_anomaly: bool,
    /// Leave out the probe on raw pixels (about two minutes).
    #[arg(long)]
    pub skip_raw_probe: bool,
    /// Importance samples of the IWAE estimates (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub iwae_k: Vec<usize>,
}

/// Everything `cargo xtask uses` measured (written to `runs/uses.json`).
#[derive(Debug, Clone, Serialize)]
pub struct UsesReport {
    /// The command.
    pub command: String,
    /// PCA against autoencoders.
    pub compare_pca: Vec<ae_uses::PcaRow>,
    /// The anomaly benchmark, unless skipped.
    pub anomaly: Option<AnomalyTable>,
    /// The denoising table.
    pub denoise: Vec<ae_uses::DenoiseRow>,
    /// Compression.
    pub compression: Vec<CompressionRow>,
    /// Linear probes.
    pub probe: Vec<ProbeRow>,
    /// IWAE estimates.
    pub iwae: Vec<IwaeRow>,
    /// Seconds.
    pub seconds: f64,
}

/// One compression method.
#[derive(Debug, Clone, Serialize)]
pub struct CompressionRow {
    /// What.
    pub method: String,
    /// Bytes per image (the whole file over the images).
    pub bytes_per_image: f64,
    /// PSNR of the decompressed images (8-bit) against the originals, dB.
    pub psnr: f64,
}

/// One linear probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRow {
    /// Which features.
    pub features: String,
    /// Their size.
    pub dim: usize,
    /// Test accuracy, %.
    pub test_accuracy: f64,
    /// Training accuracy, %.
    pub train_accuracy: f64,
    /// The scikit-learn anchor where there is one, %.
    pub sklearn: Option<f64>,
}

/// One IWAE estimate.
#[derive(Debug, Clone, Serialize)]
pub struct IwaeRow {
    /// Samples per image.
    pub k: usize,
    /// Mean `L_K`, nats per image.
    pub log_likelihood: f64,
    /// Seconds.
    pub seconds: f64,
}

/// The model whose 32-d code the probe table shows beside raw pixels and
/// PCA-32: the default conv encoder (Conv 32 - pool - Conv 32 - pool) with a
/// dense code of 32 units, trained as a denoising autoencoder against
/// translations of up to 2 pixels (`ae train --model denoising --base conv
/// --dense-code 32 --noise shift:2`): to put the digit back in place, the code
/// has to ignore where it was, which is what makes the classes separable.
pub fn probe_model(input: ImageShape) -> ModelConfig {
    ModelConfig::Denoising(
        ae_models::DenoisingConfig::for_input(input)
            .with_base(ModelConfig::Conv(
                ae_models::ConvConfig::for_input(input).with_dense_code(Some(32)),
            ))
            .with_noise(ae_data::Noise::Shift { pixels: 2 }),
    )
}

/// Its epochs, its run folder under `runs/uses/`, and its name in the table.
pub const PROBE_MODEL_EPOCHS: usize = 12;
const PROBE_MODEL_DIR: &str = "probe-shift-conv-dense-32";
const PROBE_MODEL_NAME: &str =
    "conv autoencoder codes (dense code, trained to undo 2-pixel shifts), latent 32";

fn run_cfg(
    data: &DataConfig,
    input: ImageShape,
    model: ModelConfig,
    epochs: usize,
    batch: usize,
    seed: u64,
) -> RunConfig {
    let mut cfg = RunConfig::for_kind(model.kind(), data.clone(), input);
    cfg.model = model;
    // The recipe the figures of docs/uses.md were measured with: Adam at a constant 1e-3.
    cfg.train = ae_train::TrainConfig::classic(cfg.model.kind());
    cfg.train.epochs = epochs;
    cfg.train.batch_size = batch;
    cfg.train.seed = seed;
    cfg
}

/// `cargo xtask uses`: measures every use, writes `runs/uses.md` and `runs/uses.json`.
pub fn run_uses(a: &UsesArgs) -> Result<String> {
    let started = Instant::now();
    let (data, split) = mnist(a.quick, 2000, 1000)?;
    let input = ae_uses::batches::input_shape(&split.train);
    let device = Device::Cpu;
    let epochs = |full: usize| if a.quick { 1 } else { full };
    let uses_dir = a.out.join("uses");

    // 1. PCA against autoencoders.
    let copts = ae_uses::CompareOptions {
        epochs: epochs(20),
        seed: a.seed,
        runs_dir: a.out.join("compare-pca"),
        retrain: a.retrain,
        ..ae_uses::CompareOptions::default()
    };
    let compare_pca = ae_uses::compare_pca(&data, &split, &copts, &device)?;

    // 2. Anomalies.
    let anomaly = if a.skip_anomaly {
        None
    } else {
        let opts = AnomalyOptions {
            out: a.out.clone(),
            digits: (0..10).collect(),
            epochs: None,
            seed: a.seed,
            ensemble: DEFAULT_ENSEMBLE,
            quick: a.quick,
            retrain: a.retrain,
        };
        let t = anomaly_benchmark(&opts)?;
        let md = format!(
            "# One-class MNIST anomaly benchmark\n\n{}",
            anomaly_markdown(&t)
        );
        write_tables(&a.out, "anomaly-benchmark", &md, &t)?;
        Some(t)
    };

    // 3. Denoising: a dense denoising autoencoder (Gaussian 0.4).
    let den_model = ModelConfig::Denoising(
        ae_models::DenoisingConfig::for_input(input)
            .with_base(ModelConfig::Vanilla(
                ae_models::DenseConfig::for_input(input)
                    .with_hidden(vec![512, 256])
                    .with_latent_dim(64),
            ))
            .with_noise(ae_data::Noise::Gaussian { std: 0.4 }),
    );
    let den_cfg = run_cfg(&data, input, den_model, epochs(20), 128, a.seed);
    let den_run = ae_uses::runs::train_or_reuse(
        &den_cfg,
        &split,
        &uses_dir.join("denoising-dense"),
        &device,
        a.retrain,
    )?;
    let denoise = ae_uses::denoise_table(
        den_run.model.as_ref(),
        &split.test,
        &ae_uses::standard_noises(),
        1000,
        &device,
        a.seed,
    )?;

    // 4. Compression with the autoencoders of the PCA comparison.
    let lossless = ae_uses::lossless_sizes(&split.test)?;
    let mut compression = vec![
        CompressionRow {
            method: "gzip -9 of the raw 8-bit pixels (lossless)".into(),
            bytes_per_image: lossless.gzip,
            psnr: f64::INFINITY,
        },
        CompressionRow {
            method: "PNG per image, best compression (lossless)".into(),
            bytes_per_image: lossless.png,
            psnr: f64::INFINITY,
        },
    ];
    let orig = ae_uses::baselines::quantised(&split.test);
    for k in [32usize, 64] {
        if !copts.dims.contains(&k) {
            continue;
        }
        let run = load_run(&copts.run_dir(k), &device)?;
        let rec =
            ae_uses::batches::reconstruct_set(run.model.as_ref(), &split.test, 1000, &device)?;
        let rec_u8: Vec<f32> = rec.iter().map(|v| (v * 255.0).round() / 255.0).collect();
        compression.push(CompressionRow {
            method: format!(
                "autoencoder latent {k}, float codes (reconstruction, no quantisation)"
            ),
            bytes_per_image: (4 * k) as f64,
            psnr: ae_uses::stats::psnr(&rec_u8, &orig),
        });
        for bits in [8u8, 4] {
            let m = ae_uses::measure_aez(&run, &split.test, bits, 1000)?;
            compression.push(CompressionRow {
                method: format!("`ae compress` latent {k}, {bits} bits (.aez)"),
                bytes_per_image: m.bytes_per_image,
                psnr: m.psnr,
            });
        }
    }

    // 5. Linear probes.
    ae_uses::split_labels(&split, "MNIST")?;
    let popts = ae_uses::ProbeOptions::default();
    let std = ae_uses::ProbeOptions {
        standardize: true,
        ..popts
    };
    let mut probe = Vec::new();
    let mut probe_row = |name: String, f: &Features<'_>, o: &ae_uses::ProbeOptions, sk| {
        let r = f.probe(&split, o)?;
        tracing::info!("probe {name}: {:.2}%", 100.0 * r.test_accuracy);
        probe.push(ProbeRow {
            features: name,
            dim: f.dim,
            test_accuracy: 100.0 * r.test_accuracy,
            train_accuracy: 100.0 * r.train_accuracy,
            sklearn: sk,
        });
        anyhow::Ok(())
    };
    if !a.skip_raw_probe {
        probe_row(
            "raw pixels".into(),
            &Features::pixels(&split),
            &popts,
            Some(92.63),
        )?;
    }
    let pca = Pca::fit(&split.train.pixels(), split.train.dim(), 32)?;
    let f = Features::pca(&pca, &split)?;
    probe_row("PCA, 32 components".into(), &f, &popts, Some(90.07))?;
    if copts.dims.contains(&32) {
        let run = load_run(&copts.run_dir(32), &device)?;
        let f = Features::codes(run.model.as_ref(), &split, 1000, &device)?;
        let name = "autoencoder codes, latent 32";
        probe_row(name.into(), &f, &popts, None)?;
        probe_row(format!("{name}, standardised"), &f, &std, None)?;
    }

    // The 32-d code made for the probe goal (a conv encoder with a dense code).
    let pm = probe_model(input);
    let pm_cfg = run_cfg(&data, input, pm, epochs(PROBE_MODEL_EPOCHS), 128, a.seed);
    let pm_run = ae_uses::runs::train_or_reuse(
        &pm_cfg,
        &split,
        &uses_dir.join(PROBE_MODEL_DIR),
        &device,
        a.retrain,
    )?;
    let f = Features::codes(pm_run.model.as_ref(), &split, 1000, &device)?;
    probe_row(PROBE_MODEL_NAME.to_string(), &f, &popts, None)?;
    probe_row(format!("{PROBE_MODEL_NAME}, standardised"), &f, &std, None)?;

    // 6. Generation: the VAE's test log-likelihood.
    let vae_model = ModelConfig::default_for(ae_models::ModelKind::Vae, input);
    let vae_cfg = run_cfg(&data, input, vae_model, epochs(20), 128, a.seed);
    let vae =
        ae_uses::runs::train_or_reuse(&vae_cfg, &split, &uses_dir.join("vae"), &device, a.retrain)?;
    let mut iwae = Vec::new();
    for &k in &a.iwae_k {
        let t = Instant::now();
        let r = ae_uses::iwae_seeded(vae.model.as_ref(), &split.test, k, 500, &device, a.seed)?;
        iwae.push(IwaeRow {
            k,
            log_likelihood: r.log_likelihood,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let vae_elbo = ae_train::evaluate(vae.model.as_ref(), &split.test, 1000, &device, a.seed)?.elbo;

    let report = UsesReport {
        command: format!("cargo xtask uses{}", if a.quick { " --quick" } else { "" }),
        compare_pca,
        anomaly,
        denoise,
        compression,
        probe,
        iwae,
        seconds: started.elapsed().as_secs_f64(),
    };
    let md = uses_markdown(&report, vae_elbo, a.quick);
    write_tables(&a.out, "uses", &md, &report)?;
    Ok(md)
}

fn uses_markdown(r: &UsesReport, vae_elbo: Option<f64>, quick: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# The uses of autoencoders, measured\n");
    let _ = writeln!(
        s,
        "Made by `{}` in {:.0} s (seed fixed; reruns reuse finished runs).{}\n",
        r.command,
        r.seconds,
        if quick {
            " **Quick smoke test on 2,000 / 1,000 images: not the real figures.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "## 1. Dimensionality reduction: PCA against autoencoders\n"
    );
    let _ = writeln!(
        s,
        "Test MSE and BCE per pixel. PCA fitted on the training set, reconstructions clipped to [1e-7, 1-1e-7] \
         (as scikit-learn's baseline: PCA-32 MSE 0.0152, PCA-2 0.0555). Autoencoder: dense, hidden 512-256, \
         leaky-ReLU code, BCE loss, Adam 1e-3, batch 128.\n"
    );
    let _ = writeln!(
        s,
        "| latent | PCA MSE | AE MSE | PCA BCE | AE BCE | AE epochs | AE better? |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for p in &r.compare_pca {
        let wins = p.ae_mse < p.pca_mse && p.ae_bce < p.pca_bce;
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} |",
            p.latent,
            p.pca_mse,
            p.ae_mse,
            p.pca_bce,
            p.ae_bce,
            p.ae_epochs,
            if wins { "yes" } else { "**no**" }
        );
    }
    if let Some(t) = &r.anomaly {
        let _ = writeln!(s, "\n## 2. Anomaly detection (one-class MNIST)\n");
        s.push_str(&anomaly_markdown(t));
    }
    let _ = writeln!(s, "\n## 3. Denoising\n");
    let _ = writeln!(
        s,
        "Dense denoising autoencoder (hidden 512-256, latent 64, trained on Gaussian noise 0.4) on the test \
         images. Mean per-image PSNR (dB) and SSIM (Gaussian 11x11, σ 1.5) against the clean images.\n"
    );
    let _ = writeln!(
        s,
        "| noise | PSNR noisy | PSNR denoised | SSIM noisy | SSIM denoised |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for d in &r.denoise {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {:.3} | {:.3} |",
            d.noise, d.psnr_noisy, d.psnr_denoised, d.ssim_noisy, d.ssim_denoised
        );
    }
    let _ = writeln!(s, "\n## 4. Compression\n");
    let _ = writeln!(
        s,
        "The test images; bytes per image include every header; PSNR of the 8-bit decompressed images.\n"
    );
    let _ = writeln!(s, "| method | bytes / image | PSNR (dB) |");
    let _ = writeln!(s, "|---|---|---|");
    for c in &r.compression {
        let psnr = if c.psnr.is_finite() {
            format!("{:.2}", c.psnr)
        } else {
            "∞ (lossless)".into()
        };
        let _ = writeln!(s, "| {} | {:.1} | {psnr} |", c.method, c.bytes_per_image);
    }
    let _ = writeln!(s, "\n## 5. Feature learning: linear probe\n");
    let _ = writeln!(
        s,
        "Multinomial logistic regression (`ae_uses::logreg`'s objective on argmin's L-BFGS with \
         linfa-logistic's settings, α = 1 i.e. scikit-learn's C = 1, 300 iterations) on the training \
         features, accuracy on the test features. Goal: ≥ 95% from 32-d codes.\n"
    );
    let _ = writeln!(
        s,
        "| features | size | test accuracy | train accuracy | scikit-learn |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for p in &r.probe {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2}% | {:.2}% | {} |",
            p.features,
            p.dim,
            p.test_accuracy,
            p.train_accuracy,
            p.sklearn
                .map(|v| format!("{v:.2}%"))
                .unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(s, "\n## 6. Generation: test log-likelihood of the VAE\n");
    let _ = writeln!(
        s,
        "Dense VAE 784-400-20 (PyTorch's example). IWAE bound L_K in nats per test image (Bernoulli \
         likelihood of the grey levels, as in the training loss); L_1 is a one-sample ELBO. Analytic-KL ELBO of \
         the same model: {}.\n",
        vae_elbo
            .map(|e| format!("{e:.2}"))
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(s, "| K | log-likelihood bound (nats / image) | seconds |");
    let _ = writeln!(s, "|---|---|---|");
    for i in &r.iwae {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.1} |",
            i.k, i.log_likelihood, i.seconds
        );
    }
    s
}
