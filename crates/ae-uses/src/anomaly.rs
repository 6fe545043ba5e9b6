//! Anomaly detection with an autoencoder trained on normal data only
//! (PyOD-style): per-image scores, a threshold from a contamination rate or a
//! percentile of the training scores, and ROC-AUC / PR-AUC.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ae_data::{ImageSet, Split};
use ae_models::{Autoencoder, DenseConfig, ImageShape, ModelConfig, ModelKind, ReconLoss};
use ae_train::{RunConfig, TrainConfig, TrainOptions, train_on};
use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::batches::{check_fits, map_batches};
use crate::error::{Result, UsesError, io_err};
use crate::stats::{average_precision, quantile, roc_auc};

/// The file in a run folder that makes it an anomaly detector.
pub const ANOMALY_FILE: &str = "anomaly.json";

/// What is measured per image (higher = more anomalous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    /// Mean squared error of the reconstruction, per pixel.
    #[default]
    Mse,
    /// Binary cross-entropy of the reconstruction, per pixel.
    Bce,
    /// VAE only: the negative ELBO in nats, `BCE sum + KL`, decoding the
    /// posterior mean (deterministic).
    Elbo,
}

impl fmt::Display for ScoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScoreKind::Mse => "mse",
            ScoreKind::Bce => "bce",
            ScoreKind::Elbo => "elbo",
        })
    }
}

impl FromStr for ScoreKind {
    type Err = UsesError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mse" => Ok(ScoreKind::Mse),
            "bce" => Ok(ScoreKind::Bce),
            "elbo" => Ok(ScoreKind::Elbo),
            other => Err(UsesError::Invalid(format!(
                "unknown anomaly score {other:?}: expected mse, bce or elbo"
            ))),
        }
    }
}

/// Per-image anomaly scores of every image of `set`, in order.
pub fn anomaly_scores(
    model: &dyn Autoencoder,
    set: &ImageSet,
    kind: ScoreKind,
    batch: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    check_fits(model, set, "the images to score")?;
    if kind == ScoreKind::Elbo && model.kind() != ModelKind::Vae {
        return Err(UsesError::Invalid(format!(
            "the elbo score needs a vae, this model is {}: use --score mse or bce",
            model.kind()
        )));
    }
    let mse_model = model.recon_loss() == ReconLoss::Mse;
    if kind == ScoreKind::Bce && mse_model {
        return Err(UsesError::Invalid(
            "the bce score needs a model with a sigmoid output (targets in [0, 1]); this one \
             has a linear output trained with MSE (a standardised table, or --loss mse): use \
             --score mse (or elbo for a vae)"
                .into(),
        ));
    }
    // `xi`: the batch in the model's input layout; `x`: the same values, one row per image.
    let scores = map_batches(model, set, batch, device, |xi| {
        let x = xi.flatten_from(1)?;
        Ok(match kind {
            ScoreKind::Mse => {
                let rec = ae_train::reconstruct_batch(model, xi)?;
                (rec - &x)?.sqr()?.mean(D::Minus1)?
            }
            ScoreKind::Bce => {
                let logits = ae_train::logits_batch(model, xi)?;
                bce_rows(&logits, &x)?.affine(1.0 / x.dim(1)? as f64, 0.0)?
            }
            ScoreKind::Elbo => {
                let Some((mu, logvar)) = model.encode_dist(xi)? else {
                    return Err(UsesError::Invalid(
                        "the model gives no posterior: the elbo score needs a vae".into(),
                    ));
                };
                let logits = model.decode(&mu)?.flatten_from(1)?;
                let kl = ((mu.sqr()? + logvar.exp()? - &logvar)? - 1.0)?
                    .sum(D::Minus1)?
                    .affine(0.5, 0.0)?;
                // The reconstruction term of the model's own loss: BCE, or the Gaussian
                // decoder's 0.5·SSE for an MSE model (as its training loss).
                let recon = if mse_model {
                    (&logits - &x)?.sqr()?.sum(D::Minus1)?.affine(0.5, 0.0)?
                } else {
                    bce_rows(&logits, &x)?
                };
                (recon + kl)?
            }
        })
    })?;
    Ok(scores.into_iter().map(f64::from).collect())
}

/// Per-row sums of the binary cross-entropy of `logits` against `target`
/// (both `[N, D]`), in the stable form `max(l, 0) - l·t + ln(1 + e^{-|l|})`.
pub(crate) fn bce_rows(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    // e^{-|l|} is in (0, 1], where ln(1 + v) loses nothing that matters here.
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let terms = ((logits.relu()? - (logits * target)?)? + softplus)?;
    Ok(terms.sum(D::Minus1)?)
}

/// How the decision threshold is set from the training scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ThresholdRule {
    /// The expected fraction of anomalies in the training data (PyOD's
    /// `contamination`): the threshold is the `1 - c` quantile of the training scores.
    Contamination {
        /// In (0, 0.5].
        rate: f64,
    },
    /// A percentile of the training scores, in (0, 100).
    Percentile {
        /// The percentile.
        percentile: f64,
    },
}

impl Default for ThresholdRule {
    fn default() -> Self {
        ThresholdRule::Contamination { rate: 0.05 }
    }
}

impl ThresholdRule {
    /// Checks the value's range.
    pub fn validate(&self) -> Result<()> {
        match *self {
            ThresholdRule::Contamination { rate } if rate > 0.0 && rate <= 0.5 => Ok(()),
            ThresholdRule::Contamination { rate } => Err(UsesError::Invalid(format!(
                "contamination must be in (0, 0.5], got {rate}"
            ))),
            ThresholdRule::Percentile { percentile } if percentile > 0.0 && percentile < 100.0 => {
                Ok(())
            }
            ThresholdRule::Percentile { percentile } => Err(UsesError::Invalid(format!(
                "percentile must be in (0, 100), got {percentile}"
            ))),
        }
    }

    /// The threshold for the training scores `train`: scores above it are anomalies.
    pub fn threshold(&self, train: &[f64]) -> Result<f64> {
        self.validate()?;
        match *self {
            ThresholdRule::Contamination { rate } => quantile(train, 1.0 - rate),
            ThresholdRule::Percentile { percentile } => quantile(train, percentile / 100.0),
        }
    }
}

impl fmt::Display for ThresholdRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdRule::Contamination { rate } => write!(f, "contamination {rate}"),
            ThresholdRule::Percentile { percentile } => {
                write!(f, "percentile {percentile} of the training scores")
            }
        }
    }
}

/// What `anomaly.json` holds: how to score and where the threshold is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalySpec {
    /// The class the model was trained on (`None`: all the training images).
    pub normal_class: Option<u8>,
    /// The score.
    pub score: ScoreKind,
    /// How the threshold was chosen.
    pub rule: ThresholdRule,
    /// Scores above this are anomalies.
    pub threshold: f64,
    /// Number of training images.
    pub train_images: usize,
    /// Mean training score.
    pub train_score_mean: f64,
}

impl AnomalySpec {
    /// Reads `anomaly.json` of a run folder.
    pub fn read(dir: &Path) -> Result<AnomalySpec> {
        let path = dir.join(ANOMALY_FILE);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => UsesError::File {
                path: path.clone(),
                message: "missing: this run is not an anomaly detector (make one with \
                          `ae anomaly fit`)"
                    .into(),
            },
            _ => io_err(&path)(e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| UsesError::File {
            path,
            message: format!("not a valid anomaly spec: {e}"),
        })
    }

    /// Reads `anomaly.json` of a run folder; `None` when the folder has none
    /// (a plain run, not a detector made by `ae anomaly fit`).
    pub fn read_optional(dir: &Path) -> Result<Option<AnomalySpec>> {
        match AnomalySpec::read(dir) {
            Ok(s) => Ok(Some(s)),
            Err(UsesError::File { .. }) if !dir.join(ANOMALY_FILE).exists() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `anomaly.json` into a run folder, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(ANOMALY_FILE);
        ae_train::checkpoint::write_json(&path, self)?;
        Ok(())
    }
}

/// `true` for the images of `set` that are *not* of `normal_class` (the anomalies).
pub fn anomaly_labels(set: &ImageSet, normal_class: u8) -> Result<Vec<bool>> {
    let labels = set.labels().ok_or_else(|| {
        UsesError::Invalid(
            "evaluating a detector needs labels: the images have no label file".into(),
        )
    })?;
    Ok(labels.iter().map(|&l| l != normal_class).collect())
}

/// Detection quality on labelled scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEval {
    /// Normal images.
    pub normal: usize,
    /// Anomalous images.
    pub anomalous: usize,
    /// Area under the ROC curve (threshold-free).
    pub roc_auc: f64,
    /// Area under the precision-recall curve, as the average precision.
    pub pr_auc: f64,
    /// The threshold used for the counts below.
    pub threshold: f64,
    /// Images flagged (score > threshold).
    pub flagged: usize,
    /// Of the flagged, the fraction that are anomalies.
    pub precision: f64,
    /// Of the anomalies, the fraction flagged.
    pub recall: f64,
    /// Of the normal images, the fraction flagged.
    pub false_positive_rate: f64,
}

/// ROC-AUC, PR-AUC and the confusion at `threshold` of `scores` against
/// `anomalous` (`true` = anomaly).
pub fn evaluate_scores(scores: &[f64], anomalous: &[bool], threshold: f64) -> Result<AnomalyEval> {
    let roc = roc_auc(scores, anomalous)?;
    let pr = average_precision(scores, anomalous)?;
    let positives = anomalous.iter().filter(|&&a| a).count();
    let negatives = anomalous.len() - positives;
    let (mut tp, mut fp) = (0usize, 0usize);
    for (&s, &a) in scores.iter().zip(anomalous) {
        if s > threshold {
            if a {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    let flagged = tp + fp;
    Ok(AnomalyEval {
        normal: negatives,
        anomalous: positives,
        roc_auc: roc,
        pr_auc: pr,
        threshold,
        flagged,
        precision: if flagged > 0 {
            tp as f64 / flagged as f64
        } else {
            0.0
        },
        recall: tp as f64 / positives.max(1) as f64,
        false_positive_rate: fp as f64 / negatives.max(1) as f64,
    })
}

/// `scores` standardised by the mean and (population) standard deviation of
/// `train`, the same detector's scores of its normal training images, so that
/// the scores of detectors with different scales can be averaged. An error
/// when `train` is empty, not finite or constant.
pub fn standardize_by(train: &[f64], scores: &[f64]) -> Result<Vec<f64>> {
    if train.is_empty() || train.iter().any(|v| !v.is_finite()) {
        return Err(UsesError::Invalid(format!(
            "standardising needs finite training scores, got {} values",
            train.len()
        )));
    }
    let n = train.len() as f64;
    let mean = train.iter().sum::<f64>() / n;
    let std = (train.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    if std <= 0.0 || !std.is_finite() {
        return Err(UsesError::Invalid(format!(
            "the training scores are all {mean}: they cannot be standardised"
        )));
    }
    Ok(scores.iter().map(|v| (v - mean) / std).collect())
}

/// The element-wise mean of several detectors' scores of the same images
/// (an ensemble). An error when there are none or their lengths differ.
pub fn mean_scores(members: &[Vec<f64>]) -> Result<Vec<f64>> {
    let Some(first) = members.first() else {
        return Err(UsesError::Invalid(
            "an ensemble needs at least one detector".into(),
        ));
    };
    if let Some(m) = members.iter().find(|m| m.len() != first.len()) {
        return Err(UsesError::Mismatch(format!(
            "ensemble members score different numbers of images: {} and {}",
            first.len(),
            m.len()
        )));
    }
    let k = members.len() as f64;
    Ok((0..first.len())
        .map(|i| members.iter().map(|m| m[i]).sum::<f64>() / k)
        .collect())
}

/// The PCA baseline of a detector: per-image MSE of the reconstructions of
/// `test` by PCA-`k` fitted on `train` (both `[N, dim]` row-major).
pub fn pca_scores(train: &[f32], test: &[f32], dim: usize, k: usize) -> Result<Vec<f64>> {
    let pca = crate::pca::Pca::fit(train, dim, k)?;
    let rec = pca.reconstruct(test)?;
    Ok(rec
        .chunks_exact(dim)
        .zip(test.chunks_exact(dim))
        .map(|(r, x)| crate::stats::mse(r, x))
        .collect())
}

/// The default one-class detector: a small dense autoencoder (784-256-64-16
/// for MNIST, ReLU, BCE loss) trained on one class's images; the score is the
/// per-image MSE.
pub fn default_detector(input: ImageShape) -> ModelConfig {
    ModelConfig::Vanilla(
        DenseConfig::for_input(input)
            .with_hidden(vec![256, 64])
            .with_latent_dim(16),
    )
}

/// Training settings of the default detector: 60 epochs, batch 64 (about
/// 5,500 MNIST images of one class take ~20 s of training per class).
pub fn default_detector_training(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 60,
        batch_size: 64,
        seed,
        ..TrainConfig::default()
    }
}

/// Trains a one-class detector into `out`: `run` is trained on the images of
/// `normal_class` in `split.train` (and validated on those of `split.test`),
/// then the threshold is set from the training scores and `anomaly.json` is
/// written. Returns the spec and the model's scores of the whole test set.
pub fn fit_one_class(
    run: &RunConfig,
    split: &Split,
    normal_class: Option<u8>,
    score: ScoreKind,
    rule: ThresholdRule,
    out: &Path,
    opts: &TrainOptions,
) -> Result<AnomalySpec> {
    rule.validate()?;
    let (train, test) = match normal_class {
        Some(c) => (split.train.with_class(c)?, split.test.with_class(c)?),
        None => (split.train.clone(), split.test.clone()),
    };
    if train.is_empty() {
        return Err(UsesError::Invalid(format!(
            "the training images hold no image of class {}",
            normal_class.map_or("-".into(), |c| c.to_string())
        )));
    }
    let test = if test.is_empty() {
        train.clone().take(1)
    } else {
        test
    };
    if score == ScoreKind::Elbo && run.model.kind() != ModelKind::Vae {
        return Err(UsesError::Invalid(format!(
            "the elbo score needs a vae, not a {} model",
            run.model.kind()
        )));
    }
    train_on(
        run,
        Split {
            train: train.clone(),
            test,
        },
        out,
        opts,
    )?;
    let loaded = ae_train::load_run(out, &opts.device)?;
    let batch = run.train.eval_batch_size;
    let scores = anomaly_scores(loaded.model.as_ref(), &train, score, batch, &opts.device)?;
    let spec = AnomalySpec {
        normal_class,
        score,
        rule,
        threshold: rule.threshold(&scores)?,
        train_images: train.len(),
        train_score_mean: scores.iter().sum::<f64>() / scores.len() as f64,
    };
    spec.write(out)?;
    Ok(spec)
}

#[cfg(test)]
mod ensemble_tests {
    use super::*;

    #[test]
    fn standardised_training_scores_have_mean_0_and_std_1() {
        let train = [1.0, 2.0, 3.0, 6.0];
        let z = standardize_by(&train, &train).unwrap();
        let mean = z.iter().sum::<f64>() / 4.0;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12, "{z:?}");
        // mean 3, population std sqrt(3.5)
        let other = standardize_by(&train, &[3.0, 3.0 + 3.5f64.sqrt()]).unwrap();
        assert!((other[0]).abs() < 1e-12 && (other[1] - 1.0).abs() < 1e-12);
        assert!(standardize_by(&[2.0, 2.0], &[1.0]).is_err());
        assert!(standardize_by(&[], &[1.0]).is_err());
        assert!(standardize_by(&[f64::NAN, 1.0], &[1.0]).is_err());
    }

    #[test]
    fn the_ensemble_is_the_mean_and_checks_lengths() {
        let m = mean_scores(&[vec![1.0, 4.0], vec![3.0, 0.0]]).unwrap();
        assert_eq!(m, vec![2.0, 2.0]);
        assert_eq!(mean_scores(&[vec![5.0]]).unwrap(), vec![5.0]);
        assert!(mean_scores(&[]).is_err());
        assert!(mean_scores(&[vec![1.0], vec![1.0, 2.0]]).is_err());
    }

    #[test]
    fn averaging_two_noisy_detectors_can_beat_each() {
        // Normal items 0..4 (score ideally low), anomalies 4..8; each detector
        // misranks a different pair, the average ranks all correctly.
        let labels = [false, false, false, false, true, true, true, true];
        let a = vec![0.1, 0.2, 0.3, 0.9, 0.6, 0.7, 0.8, 0.85];
        let b = vec![0.9, 0.2, 0.3, 0.1, 0.6, 0.7, 0.8, 0.85];
        let single = roc_auc(&a, &labels).unwrap();
        let both = roc_auc(&mean_scores(&[a, b]).unwrap(), &labels).unwrap();
        assert!(single < 1.0 && both == 1.0, "{single} {both}");
    }
}
