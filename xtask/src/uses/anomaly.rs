//! `cargo xtask anomaly-benchmark`: the one-class MNIST protocol per digit (an ensemble of
//! detectors against PCA(16), scikit-learn's PCA and Deep SVDD), as a table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ae_models::ModelConfig;
use ae_train::{TrainOptions, load_run};
use ae_uses::batches::input_shape;
use ae_uses::{AnomalySpec, DetectorConfig, Ensemble, ScoreKind, ThresholdRule, stats::roc_auc};
use anyhow::{Context, Result};
use candle_core::Device;
use serde::Serialize;

use super::{mean, mnist, write_tables};

/// One-class Deep SVDD, MNIST, ROC-AUC in % per digit (Ruff et al., ICML 2018, Table 1).
pub const DEEP_SVDD: [f64; 10] = [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5];
/// scikit-learn PCA(16) reconstruction error, ROC-AUC in % per digit
/// (`shared/anchors/sklearn_uses.py anomaly`).
pub const SKLEARN_PCA16: [f64; 10] = [99.1, 99.9, 91.7, 94.9, 95.8, 96.0, 97.8, 96.7, 85.9, 95.7];

/// Options of `cargo xtask anomaly-benchmark`.
#[derive(Debug, Clone)]
pub struct AnomalyOptions {
    /// Root of the run folders (`<out>/anomaly/digit-<d>`) and the tables.
    pub out: PathBuf,
    /// The normal digits to run.
    pub digits: Vec<u8>,
    /// Override the detector's epochs.
    pub epochs: Option<usize>,
    /// Seed of the first detector of each digit; the others use the next seeds.
    pub seed: u64,
    /// Detectors per digit (seeds `seed`, `seed + 1`, ...) whose standardised
    /// scores are averaged; 1 is a single detector.
    pub ensemble: usize,
    /// A smoke test: 2,000 training and 1,000 test images, 2 epochs.
    pub quick: bool,
    /// Retrain even where a finished run of the same config exists.
    pub retrain: bool,
}

/// One digit of the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyRow {
    /// The normal digit.
    pub digit: u8,
    /// Training images of the digit.
    pub train_images: usize,
    /// Our detector's ROC-AUC (the ensemble's where there are several), %.
    pub ae_auc: f64,
    /// ROC-AUC of the first detector alone (seed `seed`), %.
    pub single_auc: f64,
    /// Our autoencoder's PR-AUC (average precision, anomalies positive), %.
    pub ae_pr_auc: f64,
    /// PCA-16 by our PCA on the same data, ROC-AUC %.
    pub pca16_auc: f64,
    /// scikit-learn's PCA-16 (the anchor), %.
    pub sklearn_pca16_auc: f64,
    /// Deep SVDD (published), %.
    pub deep_svdd_auc: f64,
    /// Recall of anomalies at the detector's threshold (contamination 5%), %.
    pub recall: f64,
    /// False-positive rate on normal test images at the threshold, %.
    pub false_positive_rate: f64,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyTable {
    /// The command that made it.
    pub command: String,
    /// The detector.
    pub model: ModelConfig,
    /// Its epochs.
    pub epochs: usize,
    /// Detectors per digit, averaged.
    pub ensemble: usize,
    /// The score.
    pub score: ScoreKind,
    /// Test images (normal and anomalous together).
    pub test_images: usize,
    /// Per digit.
    pub rows: Vec<AnomalyRow>,
    /// Means over the digits run.
    pub mean_ae_auc: f64,
    /// Mean of the first detectors alone.
    pub mean_single_auc: f64,
    /// Mean of our PCA-16.
    pub mean_pca16_auc: f64,
    /// Seconds.
    pub seconds: f64,
    /// Detectors trained by this call (the others were finished runs, reused).
    pub detectors_trained: usize,
}

/// Detectors per digit in the benchmark's ensemble by default.
pub const DEFAULT_ENSEMBLE: usize = 3;

/// The run folder of detector `m` of `digit`: `anomaly/digit-<d>` for the
/// first (so a single detector lives where it always did), then
/// `anomaly/digit-<d>-member-<m>`.
pub fn member_dir(out: &Path, digit: u8, m: usize) -> PathBuf {
    let name = if m == 0 {
        format!("digit-{digit}")
    } else {
        format!("digit-{digit}-member-{m}")
    };
    out.join("anomaly").join(name)
}

/// Runs the one-class MNIST protocol for every digit of `opts.digits`.
pub fn anomaly_benchmark(opts: &AnomalyOptions) -> Result<AnomalyTable> {
    let started = Instant::now();
    let (data, split) = mnist(opts.quick, 2000, 1000)?;
    let input = input_shape(&split.train);
    let detector = |seed| DetectorConfig {
        epochs: opts.epochs.or(opts.quick.then_some(2)),
        seed,
        ..DetectorConfig::default()
    };
    let first = detector(opts.seed).run_config(data.clone(), input)?;
    let score = ScoreKind::Mse;
    let rule = ThresholdRule::default();
    let device = Device::Cpu;
    let dim = split.train.dim();
    if opts.ensemble == 0 {
        anyhow::bail!("--ensemble must be at least 1");
    }
    let topts = TrainOptions {
        overwrite: true,
        device: device.clone(),
        ..TrainOptions::default()
    };
    let mut rows = Vec::new();
    let mut trained = 0usize;
    for &digit in &opts.digits {
        let labels = ae_uses::anomaly_labels(&split.test, digit)?;
        let normal = split.train.with_class(digit)?;
        let mut ensemble = Ensemble::new(digit);
        let mut single = None;
        for m in 0..opts.ensemble {
            let dir = member_dir(&opts.out, digit, m);
            let cfg = detector(opts.seed + m as u64).run_config(data.clone(), input)?;
            let reuse = !opts.retrain
                && ae_uses::runs::is_finished(&cfg, &dir)
                && AnomalySpec::read(&dir)
                    .map(|s| s.normal_class == Some(digit) && s.score == score && s.rule == rule)
                    .unwrap_or(false);
            let spec = if reuse {
                tracing::info!("digit {digit}: reusing {}", dir.display());
                AnomalySpec::read(&dir)?
            } else {
                trained += 1;
                tracing::info!(
                    "digit {digit}: training {} epochs (seed {}) into {}",
                    cfg.train.epochs,
                    cfg.train.seed,
                    dir.display()
                );
                ae_uses::fit_one_class(&cfg, &split, Some(digit), score, rule, &dir, &topts)
                    .with_context(|| format!("training the detector of digit {digit}"))?
            };
            let run = load_run(&dir, &device)?;
            let name = dir.display().to_string();
            let member = ensemble.add(
                &name,
                run.model.as_ref(),
                &spec,
                &normal,
                &split.test,
                1000,
                &device,
            )?;
            if m == 0 {
                single = Some(ae_uses::evaluate_scores(
                    &member.scores,
                    &labels,
                    spec.threshold,
                )?);
            }
        }
        let Some(single_ev) = single else {
            anyhow::bail!("no detector for digit {digit}");
        };
        let ev = if opts.ensemble == 1 {
            single_ev.clone()
        } else {
            let e = ensemble.finish()?;
            ae_uses::evaluate_scores(&e.scores, &labels, e.threshold)?
        };
        let pca = ae_uses::pca_scores(&normal.pixels(), &split.test.pixels(), dim, 16)?;
        let row = AnomalyRow {
            digit,
            train_images: normal.len(),
            ae_auc: 100.0 * ev.roc_auc,
            single_auc: 100.0 * single_ev.roc_auc,
            ae_pr_auc: 100.0 * ev.pr_auc,
            pca16_auc: 100.0 * roc_auc(&pca, &labels)?,
            sklearn_pca16_auc: SKLEARN_PCA16[usize::from(digit) % 10],
            deep_svdd_auc: DEEP_SVDD[usize::from(digit) % 10],
            recall: 100.0 * ev.recall,
            false_positive_rate: 100.0 * ev.false_positive_rate,
        };
        tracing::info!(
            "digit {digit}: AE AUC {:.2} (first detector alone {:.2}), PCA-16 {:.2}",
            row.ae_auc,
            row.single_auc,
            row.pca16_auc
        );
        rows.push(row);
    }
    let table = AnomalyTable {
        command: format!(
            "cargo xtask anomaly-benchmark{}{}{}",
            if opts.quick { " --quick" } else { "" },
            opts.epochs
                .map(|e| format!(" --epochs {e}"))
                .unwrap_or_default(),
            if opts.ensemble == DEFAULT_ENSEMBLE {
                String::new()
            } else {
                format!(" --ensemble {}", opts.ensemble)
            }
        ),
        model: first.model,
        epochs: first.train.epochs,
        ensemble: opts.ensemble,
        score,
        test_images: split.test.len(),
        mean_ae_auc: mean(rows.iter().map(|r| r.ae_auc)),
        mean_single_auc: mean(rows.iter().map(|r| r.single_auc)),
        mean_pca16_auc: mean(rows.iter().map(|r| r.pca16_auc)),
        rows,
        seconds: started.elapsed().as_secs_f64(),
        detectors_trained: trained,
    };
    Ok(table)
}

/// The benchmark as a Markdown table.
pub fn anomaly_markdown(t: &AnomalyTable) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "One-class MNIST: trained on one digit's training images, tested on all {} test images \
         with the other digits as anomalies. ROC-AUC in %; score = per-image reconstruction {}, \
         {} epochs, {}. Made by `{}` in {:.0} s ({} of {} detectors trained in that call, the \
         others reused).\n",
        t.test_images,
        t.score,
        t.epochs,
        if t.ensemble > 1 {
            format!(
                "the mean of {} detectors' scores (seeds s, s+1, ...), each standardised by its own \
                 training scores",
                t.ensemble
            )
        } else {
            "one detector".to_string()
        },
        t.command,
        t.seconds,
        t.detectors_trained,
        t.rows.len() * t.ensemble
    );
    let _ = writeln!(
        s,
        "| digit | AE ROC-AUC | first detector alone | AE PR-AUC | PCA-16 (ours) | PCA-16 (scikit-learn) | Deep SVDD | AE ≥ PCA-16? | recall / FPR at 5% contamination |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in &t.rows {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} / {:.1} |",
            r.digit,
            r.ae_auc,
            r.single_auc,
            r.ae_pr_auc,
            r.pca16_auc,
            r.sklearn_pca16_auc,
            r.deep_svdd_auc,
            if r.ae_auc + 1e-9 >= r.sklearn_pca16_auc.max(r.pca16_auc) {
                "yes"
            } else {
                "**no**"
            },
            r.recall,
            r.false_positive_rate
        );
    }
    let _ = writeln!(
        s,
        "| mean | **{:.1}** | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | goal: mean ≥ 97 | |",
        t.mean_ae_auc,
        t.mean_single_auc,
        mean(t.rows.iter().map(|r| r.ae_pr_auc)),
        t.mean_pca16_auc,
        mean(t.rows.iter().map(|r| r.sklearn_pca16_auc)),
        mean(t.rows.iter().map(|r| r.deep_svdd_auc)),
    );
    s
}

/// Options of `cargo xtask anomaly-benchmark`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnomalyArgs {
    /// A smoke test: 2,000 training and 1,000 test images, 2 epochs.
    #[arg(long)]
    pub quick: bool,
    /// Where the runs and the tables go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Seed of every run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only these normal digits (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub digits: Option<Vec<u8>>,
    /// Override the detector's epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Detectors per digit (seeds --seed, --seed + 1, ...) whose standardised
    /// scores are averaged; 1 is a single detector.
    #[arg(long, default_value_t = DEFAULT_ENSEMBLE)]
    pub ensemble: usize,
    /// Retrain even where a finished run of the same config is there.
    #[arg(long)]
    pub retrain: bool,
}

impl AnomalyArgs {
    fn options(&self) -> AnomalyOptions {
        AnomalyOptions {
            out: self.out.clone(),
            digits: self.digits.clone().unwrap_or_else(|| (0..10).collect()),
            epochs: self.epochs,
            seed: self.seed,
            ensemble: self.ensemble,
            quick: self.quick,
            retrain: self.retrain,
        }
    }
}

/// `cargo xtask anomaly-benchmark`: runs it, writes the tables, returns the Markdown.
pub fn run_anomaly(a: &AnomalyArgs) -> Result<String> {
    let table = anomaly_benchmark(&a.options())?;
    let md = format!(
        "# One-class MNIST anomaly benchmark\n\n{}",
        anomaly_markdown(&table)
    );
    write_tables(&a.out, "anomaly-benchmark", &md, &table)?;
    Ok(md)
}
