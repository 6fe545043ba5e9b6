//! Linear probe: multinomial logistic regression on features (codes, pixels,
//! PCA codes) of the training images, accuracy on the test images.
//!
//! The regression is `linfa-logistic`'s `MultiLogisticRegression`: L-BFGS
//! with a More-Thuente line search on `Σ cross-entropy + α/2 ‖W‖²` (intercept
//! not penalised), the objective of scikit-learn's `LogisticRegression` with
//! `C = 1/α`, so with the defaults (α = 1, 300 iterations) the numbers compare
//! with the scikit-learn anchors (`LogisticRegression(max_iter=300)`).

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Result, UsesError};

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

fn accuracy(pred: &Array1<usize>, truth: &[u8]) -> f64 {
    let right = pred
        .iter()
        .zip(truth)
        .filter(|&(&p, &t)| p == usize::from(t))
        .count();
    right as f64 / truth.len().max(1) as f64
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
    if !(opts.alpha >= 0.0 && opts.alpha.is_finite()) || opts.max_iter == 0 {
        return Err(UsesError::Invalid(format!(
            "probe needs alpha >= 0 and max_iter >= 1, got {} and {}",
            opts.alpha, opts.max_iter
        )));
    }
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
    let ytr: Array1<usize> = train_labels.iter().map(|&l| usize::from(l)).collect();
    let data = Dataset::new(xtr, ytr);
    let model = MultiLogisticRegression::default()
        .alpha(opts.alpha)
        .max_iterations(opts.max_iter)
        .fit(&data)
        .map_err(|e| UsesError::Probe(e.to_string()))?;
    let train_pred = model.predict(data.records());
    let test_pred = model.predict(&xte);
    Ok(ProbeResult {
        features: dim,
        train_images: train_labels.len(),
        test_images: test_labels.len(),
        train_accuracy: accuracy(&train_pred, train_labels),
        test_accuracy: accuracy(&test_pred, test_labels),
    })
}
