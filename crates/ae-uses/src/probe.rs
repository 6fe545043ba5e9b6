//! Linear probe: multinomial logistic regression on features (codes, pixels,
//! PCA codes) of the training images, accuracy on the test images.
//!
//! The regression is that of `linfa-logistic`'s `MultiLogisticRegression`
//! (argmin's L-BFGS with a More-Thuente line search, its settings and stopping
//! rule) on `Σ cross-entropy + α/2 ‖W‖²` (intercept not penalised), the
//! objective of scikit-learn's `LogisticRegression` with `C = 1/α`, so with the
//! defaults (α = 1, 300 iterations) the numbers compare with the scikit-learn
//! anchors (`LogisticRegression(max_iter=300)`). The objective and its gradient
//! are computed in `logreg.rs` (one fused, parallel pass per point instead
//! of linfa's two), about eight times faster on 60,000 codes.

use std::borrow::Cow;

use ae_data::Split;
use ae_models::Autoencoder;
use candle_core::Device;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::batches::{DEFAULT_BATCH, encode_set};
use crate::error::{Result, UsesError};
use crate::logreg;
use crate::pca::Pca;

/// Settings of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeOptions {
    /// L2 weight α (scikit-learn's `1/C`).
    pub alpha: f64,
    /// L-BFGS iterations at most.
    pub max_iter: u64,
    /// Standardise each feature with the training mean and standard deviation.
    pub standardize: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            alpha: 1.0,
            max_iter: 300,
            standardize: false,
        }
    }
}

impl ProbeOptions {
    /// Checks the ranges: `alpha >= 0` and finite, `max_iter >= 1`.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) || self.max_iter == 0 {
            return Err(UsesError::Invalid(format!(
                "probe needs alpha >= 0 and max_iter >= 1, got {} and {}",
                self.alpha, self.max_iter
            )));
        }
        Ok(())
    }
}

/// What a probe measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Features per image.
    pub features: usize,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Accuracy on the training features.
    pub train_accuracy: f64,
    /// Accuracy on the test features.
    pub test_accuracy: f64,
}

fn matrix(x: &[f32], dim: usize, what: &str) -> Result<Array2<f64>> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(UsesError::Mismatch(format!(
            "{what}: {} values are not rows of {dim} features",
            x.len()
        )));
    }
    Array2::from_shape_vec(
        (x.len() / dim, dim),
        x.iter().map(|&v| f64::from(v)).collect(),
    )
    .map_err(|e| UsesError::Mismatch(format!("{what}: {e}")))
}

fn accuracy(pred: &[usize], classes: &[u8], truth: &[u8]) -> f64 {
    let right = pred
        .iter()
        .zip(truth)
        .filter(|&(&p, &t)| classes[p] == t)
        .count();
    right as f64 / truth.len().max(1) as f64
}

fn contiguous(a: Array2<f64>) -> Vec<f64> {
    if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().copied().collect()
    }
}

/// Fits the probe on `train` (`[N, dim]` row-major) with `train_labels` and
/// measures it on `test` with `test_labels`.
pub fn linear_probe(
    train: &[f32],
    train_labels: &[u8],
    test: &[f32],
    test_labels: &[u8],
    dim: usize,
    opts: &ProbeOptions,
) -> Result<ProbeResult> {
    let mut xtr = matrix(train, dim, "probe training features")?;
    let mut xte = matrix(test, dim, "probe test features")?;
    if xtr.nrows() != train_labels.len() || xte.nrows() != test_labels.len() {
        return Err(UsesError::Mismatch(format!(
            "probe: {} training rows for {} labels, {} test rows for {} labels",
            xtr.nrows(),
            train_labels.len(),
            xte.nrows(),
            test_labels.len()
        )));
    }
    let classes: std::collections::BTreeSet<u8> = train_labels.iter().copied().collect();
    if classes.len() < 2 {
        return Err(UsesError::Invalid(format!(
            "a probe needs at least two classes in the training labels, found {}",
            classes.len()
        )));
    }
    opts.validate()?;
    if opts.standardize {
        let n = xtr.nrows() as f64;
        for j in 0..dim {
            let col = xtr.column(j);
            let mean = col.sum() / n;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let sd = if var > 1e-24 { var.sqrt() } else { 1.0 };
            xtr.column_mut(j).mapv_inplace(|v| (v - mean) / sd);
            xte.column_mut(j).mapv_inplace(|v| (v - mean) / sd);
        }
    }
    // Class indices in label order, as linfa numbers them.
    let classes: Vec<u8> = classes.into_iter().collect();
    let mut index = [0usize; 256];
    for (i, &c) in classes.iter().enumerate() {
        index[usize::from(c)] = i;
    }
    let ytr: Vec<usize> = train_labels
        .iter()
        .map(|&l| index[usize::from(l)])
        .collect();
    let (xtr, xte) = (contiguous(xtr), contiguous(xte));
    if xtr.iter().any(|v| !v.is_finite()) {
        return Err(UsesError::Probe(
            "the training features are not all finite".into(),
        ));
    }
    let objective = logreg::Objective::new(&xtr, &ytr, dim, classes.len(), opts.alpha);
    let model =
        logreg::fit(objective, opts.max_iter).map_err(|e| UsesError::Probe(e.to_string()))?;
    let train_pred = model.predict(&xtr);
    let test_pred = model.predict(&xte);
    Ok(ProbeResult {
        features: dim,
        train_images: train_labels.len(),
        test_images: test_labels.len(),
        train_accuracy: accuracy(&train_pred, &classes, train_labels),
        test_accuracy: accuracy(&test_pred, &classes, test_labels),
    })
}

/// The training and test labels of `split`; an error naming `what` (the data
/// set, the run) when it has none.
pub fn split_labels<'a>(split: &'a Split, what: &str) -> Result<(&'a [u8], &'a [u8])> {
    match (split.train.labels(), split.test.labels()) {
        (Some(train), Some(test)) => Ok((train, test)),
        _ => Err(UsesError::Invalid(format!(
            "a linear probe needs labels: the data set of {what} has none"
        ))),
    }
}

/// Features of the training and test images of a split, `[N, dim]` row-major:
/// what a probe is fitted and measured on.
#[derive(Debug, Clone)]
pub struct Features<'a> {
    /// Features per image.
    pub dim: usize,
    /// Of the training images.
    pub train: Cow<'a, [f32]>,
    /// Of the test images.
    pub test: Cow<'a, [f32]>,
}

impl<'a> Features<'a> {
    /// The model's codes (the VAE's posterior means).
    pub fn codes(
        model: &dyn Autoencoder,
        split: &Split,
        batch: usize,
        device: &Device,
    ) -> Result<Features<'static>> {
        Ok(Features {
            dim: model.latent_dim(),
            train: Cow::Owned(encode_set(model, &split.train, batch, device)?),
            test: Cow::Owned(encode_set(model, &split.test, batch, device)?),
        })
    }

    /// The raw pixels (borrowed when the sets hold `f32`, converted when they hold bytes).
    pub fn pixels(split: &'a Split) -> Features<'a> {
        Features {
            dim: split.train.dim(),
            train: split.train.pixels(),
            test: split.test.pixels(),
        }
    }

    /// The codes of a fitted PCA.
    pub fn pca(pca: &Pca, split: &Split) -> Result<Features<'static>> {
        Ok(Features {
            dim: pca.n_components(),
            train: Cow::Owned(pca.transform(&split.train.pixels())?),
            test: Cow::Owned(pca.transform(&split.test.pixels())?),
        })
    }

    /// The probe of these features against the labels of `split`.
    pub fn probe(&self, split: &Split, opts: &ProbeOptions) -> Result<ProbeResult> {
        let (ytr, yte) = split_labels(split, "the probe")?;
        linear_probe(&self.train, ytr, &self.test, yte, self.dim, opts)
    }
}

/// How `ae probe` measures a model's codes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// The regression.
    pub options: ProbeOptions,
    /// Also probe the raw pixels and the codes of a PCA of the same size.
    pub baselines: bool,
    /// Images per batch when encoding.
    pub batch_size: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            options: ProbeOptions::default(),
            baselines: false,
            batch_size: DEFAULT_BATCH,
        }
    }
}

impl ProbeConfig {
    /// Checks the regression's settings and the batch size.
    pub fn validate(&self) -> Result<()> {
        self.options.validate()?;
        if self.batch_size == 0 {
            return Err(UsesError::Invalid(
                "the batch size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One row of a probe table: which features, and what their probe measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// The features, in words.
    pub features: String,
    /// The probe.
    pub result: ProbeResult,
}

/// The probe of `model`'s codes (named `name`, e.g. "vae codes"), then with
/// `cfg.baselines` those of the raw pixels and of PCA with as many components
/// as the code (when the code is no larger than an image).
pub fn probe_with_baselines(
    model: &dyn Autoencoder,
    name: &str,
    split: &Split,
    cfg: &ProbeConfig,
    device: &Device,
) -> Result<Vec<ProbeRow>> {
    cfg.validate()?;
    split_labels(split, name)?;
    let opts = &cfg.options;
    let codes = Features::codes(model, split, cfg.batch_size, device)?;
    let mut rows = vec![ProbeRow {
        features: name.to_string(),
        result: codes.probe(split, opts)?,
    }];
    if cfg.baselines {
        let d = split.train.dim();
        rows.push(ProbeRow {
            features: "raw pixels".into(),
            result: Features::pixels(split).probe(split, opts)?,
        });
        let k = codes.dim;
        if k <= d {
            let pca = Pca::fit(&split.train.pixels(), d, k)?;
            rows.push(ProbeRow {
                features: format!("PCA, {k} components"),
                result: Features::pca(&pca, split)?.probe(split, opts)?,
            });
        }
    }
    Ok(rows)
}
