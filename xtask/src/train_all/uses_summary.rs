//! The "Uses" section of `runs/summary.md` (and so of `runs/report.html`):
//! each use of an autoencoder next to its baseline.
//!
//! The cheap uses are measured by `cargo xtask train-all` itself from its own
//! runs, in seconds: PCA-32 against the vanilla run's 32-d code (reconstruction
//! and linear probe), the linear probe of the `features` run's 32-d code (a conv
//! encoder trained to undo small shifts) against PCA-32's, `.aez` compression of the vanilla run against gzip and
//! PNG, the denoising run's PSNR/SSIM against the noisy images, and the VAE
//! run's IWAE bound against its ELBO. The long tables (the ten-digit anomaly
//! benchmark, the probes with the raw-pixel baseline and the full PCA
//! comparison) take tens of minutes; they are included from
//! `runs/anomaly-benchmark.json` and `runs/uses.json` when those files exist,
//! with the command that made them, and the section says so when they do not.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ae_data::{ImageSet, Split};
use ae_models::ModelKind;
use ae_train::load_run;

use anyhow::{Context, Result};
use candle_core::Device;
use serde_json::Value;

/// Test images the denoising table uses (SSIM is the slow part).
const DENOISE_IMAGES: usize = 2000;
/// Test images of the IWAE estimate, and its samples per image.
const IWAE_IMAGES: usize = 1000;
const IWAE_K: usize = 10;
/// The anomaly benchmark's output, in the runs folder.
pub const ANOMALY_JSON: &str = "anomaly-benchmark.json";
/// `cargo xtask uses`'s output, in the runs folder.
pub const USES_JSON: &str = "uses.json";

/// The run whose codes the feature-learning row probes (besides the vanilla run's).
pub struct Features {
    /// Its run folder.
    pub dir: PathBuf,
    /// The model and its training, in words.
    pub what: String,
}

/// The whole section: the cheap uses measured from the runs under `out`
/// (those of `trained`, and the probe's `features` run), then the long tables found in `out`.
pub fn section(
    split: &Split,
    out: &Path,
    trained: &[ModelKind],
    features: Option<&Features>,
    seed: u64,
) -> Result<String> {
    let started = Instant::now();
    let rows = cheap_rows(split, out, trained, features, seed)?;
    let mut s = String::new();
    let _ = writeln!(s, "## Uses: each against its baseline\n");
    let _ = writeln!(
        s,
        "Measured by this command from its own runs in {:.1} s, on the {} test images (denoising: the \
         first {}; IWAE: the first {}, K = {IWAE_K}). docs/uses.md explains each measure.\n",
        started.elapsed().as_secs_f64(),
        split.test.len(),
        DENOISE_IMAGES.min(split.test.len()),
        IWAE_IMAGES.min(split.test.len()),
    );
    let _ = writeln!(s, "| use | ours | baseline |");
    let _ = writeln!(s, "|---|---|---|");
    for (what, ours, base) in rows {
        let _ = writeln!(s, "| {what} | {ours} | {base} |");
    }
    s.push('\n');
    s.push_str(&long_tables(out));
    Ok(s)
}

type Row = (String, String, String);

fn not_trained(kind: ModelKind) -> String {
    format!("no `{kind}` run in this train-all (see --only)")
}

/// The cheap uses, one row each: (use, ours, baseline).
fn cheap_rows(
    split: &Split,
    out: &Path,
    trained: &[ModelKind],
    features: Option<&Features>,
    seed: u64,
) -> Result<Vec<Row>> {
    let device = Device::Cpu;
    let test = &split.test;
    let mut rows = Vec::new();
    let d = split.train.dim();
    // PCA with as many components as the vanilla code (32 by default).
    let vanilla = if trained.contains(&ModelKind::Vanilla) {
        Some(load_run(&out.join("vanilla"), &device)?)
    } else {
        None
    };
    let k = vanilla.as_ref().map_or(32, |r| r.model.latent_dim()).min(d);
    let pca = ae_uses::Pca::fit(&split.train.pixels(), d, k).context("fitting PCA")?;
    let test_pixels = test.pixels();
    let (pca_mse, pca_bce) = ae_uses::pca_reconstruction_errors(&pca, &test_pixels)?;
    let pca_cell = format!("PCA-{k}: MSE {pca_mse:.4}, BCE {pca_bce:.4}");
    let labelled = ae_uses::split_labels(split, "train-all").is_ok();
    let opts = ae_uses::ProbeOptions::default();
    let pca_probe = if labelled {
        Some(ae_uses::Features::pca(&pca, split)?.probe(split, &opts)?)
    } else {
        None
    };
    let probe_cell = |r: &ae_uses::ProbeResult| format!("{:.2}%", 100.0 * r.test_accuracy);
    let codes_probe = |run: &ae_train::LoadedRun| -> Result<ae_uses::ProbeResult> {
        let f = ae_uses::Features::codes(run.model.as_ref(), split, 1000, &device)?;
        Ok(f.probe(split, &opts)?)
    };
    // The probe of the features run's codes against PCA's, when it was trained.
    if let (Some(f), Some(p)) = (features, &pca_probe) {
        let run = load_run(&f.dir, &device)?;
        let dim = run.model.latent_dim();
        let r = codes_probe(&run)?;
        rows.push((
            format!("feature learning: linear probe on {dim}-d codes, test accuracy"),
            format!("{}: {}", f.what, probe_cell(&r)),
            format!("PCA-{k} codes: {}", probe_cell(p)),
        ));
    }
    match &vanilla {
        Some(run) => {
            let rec = ae_uses::batches::reconstruct_set(run.model.as_ref(), test, 1000, &device)?;
            rows.push((
                format!("dimensionality reduction ({k}-d code), test reconstruction"),
                format!(
                    "vanilla: MSE {:.4}, BCE {:.4}",
                    ae_uses::stats::mse(&rec, &test_pixels),
                    ae_uses::stats::bce_clipped(&rec, &test_pixels)
                ),
                pca_cell,
            ));
            if let Some(p) = &pca_probe {
                let r = codes_probe(run)?;
                rows.push((
                    format!("linear probe on the vanilla run's {k}-d codes, test accuracy"),
                    format!("vanilla codes: {}", probe_cell(&r)),
                    format!("PCA-{k} codes: {}", probe_cell(p)),
                ));
            }
            let mut cells = Vec::new();
            for bits in [8u8, 4] {
                let m = ae_uses::measure_aez(run, test, bits, 1000)?;
                cells.push(format!(
                    "{bits} bits: {:.1} bytes, {:.2} dB",
                    m.bytes_per_image, m.psnr
                ));
            }
            let lossless = ae_uses::lossless_sizes(test)?;
            rows.push((
                "compression, bytes per image and PSNR".into(),
                format!("vanilla `.aez` {}", cells.join("; ")),
                format!(
                    "gzip -9 of the pixels: {:.1} bytes; one PNG per image: {:.1} bytes (both lossless)",
                    lossless.gzip, lossless.png
                ),
            ));
        }
        None => {
            rows.push((
                format!("dimensionality reduction ({k}-d code)"),
                not_trained(ModelKind::Vanilla),
                pca_cell,
            ));
        }
    }
    if trained.contains(&ModelKind::Denoising) {
        let run = load_run(&out.join("denoising"), &device)?;
        let subset: ImageSet = test.clone().take(DENOISE_IMAGES);
        let table = ae_uses::denoise_table(
            run.model.as_ref(),
            &subset,
            &ae_uses::standard_noises(),
            500,
            &device,
            seed,
        )?;
        for r in table {
            rows.push((
                format!("denoising, {}: PSNR and SSIM", r.noise),
                format!(
                    "denoised: {:.2} dB, SSIM {:.3}",
                    r.psnr_denoised, r.ssim_denoised
                ),
                format!("noisy: {:.2} dB, SSIM {:.3}", r.psnr_noisy, r.ssim_noisy),
            ));
        }
    } else {
        rows.push((
            "denoising".into(),
            not_trained(ModelKind::Denoising),
            "-".into(),
        ));
    }
    if trained.contains(&ModelKind::Vae) {
        let run = load_run(&out.join("vae"), &device)?;
        let subset = test.clone().take(IWAE_IMAGES);
        let r = ae_uses::iwae_seeded(run.model.as_ref(), &subset, IWAE_K, 500, &device, seed)?;
        let elbo = ae_train::evaluate(run.model.as_ref(), &subset, 500, &device, seed)?.elbo;
        rows.push((
            "generation: test log-likelihood, nats per image".into(),
            format!("VAE, IWAE bound K = {IWAE_K}: {:.2}", r.log_likelihood),
            format!(
                "the same VAE's ELBO: {}",
                elbo.map_or_else(|| "-".into(), |e| format!("{e:.2}"))
            ),
        ));
    } else {
        rows.push(("generation".into(), not_trained(ModelKind::Vae), "-".into()));
    }
    Ok(rows)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

fn read_json(path: &Path) -> std::result::Result<Option<Value>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("`{}` could not be read as JSON: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("`{}` could not be read: {e}", path.display())),
    }
}

/// The anomaly benchmark's table, from its JSON.
pub fn anomaly_from_json(v: &Value, file: &str) -> String {
    let mut s = String::new();
    let command = v.get("command").and_then(Value::as_str).unwrap_or("?");
    let ensemble = v.get("ensemble").and_then(Value::as_u64).unwrap_or(1);
    let _ = writeln!(
        s,
        "ROC-AUC in % per normal digit (one-class MNIST, all test images, the other digits anomalous). \
         From `{file}`, made by `{command}` ({} epochs, {} detector(s) per digit, {:.0} s{}).\n",
        v.get("epochs").and_then(Value::as_u64).unwrap_or(0),
        ensemble,
        num(v, "seconds").unwrap_or(0.0),
        v.get("detectors_trained")
            .and_then(Value::as_u64)
            .map(|n| format!(", {n} detector(s) trained in that call, the others reused"))
            .unwrap_or_default(),
    );
    let _ = writeln!(s, "| digit | AE | PCA-16 | Deep SVDD (published) |");
    let _ = writeln!(s, "|---|---|---|---|");
    let rows = v
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (mut svdd, mut n) = (0.0, 0usize);
    for r in &rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.get("digit").and_then(Value::as_u64).unwrap_or(0),
            cell(num(r, "ae_auc"), 1),
            cell(num(r, "pca16_auc"), 1),
            cell(num(r, "deep_svdd_auc"), 1),
        );
        if let Some(x) = num(r, "deep_svdd_auc") {
            svdd += x;
            n += 1;
        }
    }
    let _ = writeln!(
        s,
        "| mean (goal: 97) | {} | {} | {} |",
        cell(num(v, "mean_ae_auc"), 1),
        cell(num(v, "mean_pca16_auc"), 1),
        cell((n > 0).then(|| svdd / n as f64), 1),
    );
    s
}

/// The probes and the PCA comparison, from `cargo xtask uses`'s JSON.
pub fn uses_from_json(v: &Value, file: &str) -> String {
    let mut s = String::new();
    let command = v.get("command").and_then(Value::as_str).unwrap_or("?");
    let _ = writeln!(
        s,
        "From `{file}`, made by `{command}` in {:.0} s.\n",
        num(v, "seconds").unwrap_or(0.0)
    );
    let _ = writeln!(
        s,
        "Linear probe (logistic regression, α = 1), test accuracy; goal: 95% from 32-d codes.\n"
    );
    let _ = writeln!(s, "| features | size | test accuracy | scikit-learn |");
    let _ = writeln!(s, "|---|---|---|---|");
    for p in v
        .get("probe")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let _ = writeln!(
            s,
            "| {} | {} | {}% | {} |",
            p.get("features").and_then(Value::as_str).unwrap_or("?"),
            p.get("dim").and_then(Value::as_u64).unwrap_or(0),
            cell(num(&p, "test_accuracy"), 2),
            num(&p, "sklearn").map_or_else(|| "-".into(), |x| format!("{x:.2}%")),
        );
    }
    let _ = writeln!(
        s,
        "\nPCA against autoencoders of the same code size (test MSE and BCE per pixel).\n"
    );
    let _ = writeln!(s, "| latent | PCA MSE | AE MSE | PCA BCE | AE BCE |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for p in v
        .get("compare_pca")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            p.get("latent").and_then(Value::as_u64).unwrap_or(0),
            cell(num(&p, "pca_mse"), 4),
            cell(num(&p, "ae_mse"), 4),
            cell(num(&p, "pca_bce"), 4),
            cell(num(&p, "ae_bce"), 4),
        );
    }
    s
}

/// The long tables found in `out`, or what to run when they are not there.
pub fn long_tables(out: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Anomaly detection\n");
    let path = out.join(ANOMALY_JSON);
    let file = path.display().to_string();
    match read_json(&path) {
        Ok(Some(v)) => s.push_str(&anomaly_from_json(&v, &file)),
        Ok(None) => {
            let _ = writeln!(
                s,
                "Not measured here: `{file}` is absent. `cargo xtask anomaly-benchmark` writes it \
                 (ten digits, three detectors each: tens of minutes on 2 cores; `cargo xtask uses` runs it too)."
            );
        }
        Err(e) => {
            let _ = writeln!(s, "{e}");
        }
    }
    let _ = writeln!(s, "\n### Linear probe and PCA comparison\n");
    let path = out.join(USES_JSON);
    let file = path.display().to_string();
    match read_json(&path) {
        Ok(Some(v)) => s.push_str(&uses_from_json(&v, &file)),
        Ok(None) => {
            let _ = writeln!(
                s,
                "Not measured here: `{file}` is absent. `cargo xtask uses` writes it (the probes \
                 with the raw-pixel baseline, PCA at 2, 8, 32 and 64 dimensions; tens of minutes)."
            );
        }
        Err(e) => {
            let _ = writeln!(s, "{e}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn absent_tables_say_which_command_makes_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = long_tables(dir.path());
        assert!(
            s.contains("`cargo xtask anomaly-benchmark` writes it"),
            "{s}"
        );
        assert!(s.contains("`cargo xtask uses` writes it"), "{s}");
    }

    #[test]
    fn present_tables_are_included_with_their_command() {
        let dir = tempfile::tempdir().unwrap();
        let anomaly = serde_json::json!({
            "command": "cargo xtask anomaly-benchmark --digits 8",
            "epochs": 60, "ensemble": 3, "seconds": 12.0, "detectors_trained": 2,
            "rows": [{"digit": 8, "ae_auc": 91.24, "pca16_auc": 85.9, "deep_svdd_auc": 93.9}],
            "mean_ae_auc": 91.24, "mean_pca16_auc": 85.9
        });
        std::fs::write(dir.path().join(ANOMALY_JSON), anomaly.to_string()).unwrap();
        let uses = serde_json::json!({
            "command": "cargo xtask uses", "seconds": 100.0,
            "probe": [{"features": "raw pixels", "dim": 784, "test_accuracy": 92.62, "sklearn": 92.63}],
            "compare_pca": [{"latent": 32, "pca_mse": 0.0152, "ae_mse": 0.0053, "pca_bce": 0.1174, "ae_bce": 0.0771}]
        });
        std::fs::write(dir.path().join(USES_JSON), uses.to_string()).unwrap();
        let s = long_tables(dir.path());
        assert!(
            s.contains("made by `cargo xtask anomaly-benchmark --digits 8`"),
            "{s}"
        );
        assert!(
            s.contains("12 s, 2 detector(s) trained in that call"),
            "{s}"
        );
        assert!(s.contains("| 8 | 91.2 | 85.9 | 93.9 |"), "{s}");
        assert!(
            s.contains("| mean (goal: 97) | 91.2 | 85.9 | 93.9 |"),
            "{s}"
        );
        assert!(s.contains("| raw pixels | 784 | 92.62% | 92.63% |"), "{s}");
        assert!(
            s.contains("| 32 | 0.0152 | 0.0053 | 0.1174 | 0.0771 |"),
            "{s}"
        );

        std::fs::write(dir.path().join(USES_JSON), b"{not json").unwrap();
        assert!(long_tables(dir.path()).contains("could not be read as JSON"));
    }
}
