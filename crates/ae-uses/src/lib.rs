//! `ae-uses`: what autoencoders are for, measured against the baselines they compete with.
//!
//! | use | module | measured by |
//! |---|---|---|
//! | dimensionality reduction | [`compare`], [`pca`] | test MSE / BCE of PCA and an autoencoder with the same code size |
//! | anomaly detection | [`anomaly`], [`detector`] | per-image reconstruction error (or the VAE's negative ELBO), a threshold from a contamination rate or a percentile, ROC-AUC and PR-AUC ([`stats`]) |
//! | denoising | [`denoise`] | PSNR and SSIM of noisy and denoised images |
//! | compression | [`aez`], [`baselines`] | the `.aez` format of quantised codes; bytes per image and PSNR against gzip and PNG |
//! | feature learning | [`probe`] | multinomial logistic regression (linfa-logistic's solver and settings) on codes, pixels or PCA codes |
//! | generation | [`iwae`](mod@iwae) | the IWAE bound on the test log-likelihood of a VAE, nats per image |
//!
//! The maths that a well-kept crate already does is taken from it: the
//! eigendecomposition of the covariance from `nalgebra`, the covariance
//! product from candle's matmul, the L-BFGS of the logistic regression from
//! `argmin` (as `linfa-logistic` runs it). ROC-AUC, average precision, SSIM and the `.aez` format are
//! small and written here (see `docs/uses.md` for why). Everything random
//! (noise, VAE samples) comes from `ae_data::rng` streams.
//!
//! ```
//! use ae_uses::stats::{roc_auc, average_precision};
//! // Anomalies (true) all score above the normal items: a perfect detector.
//! let scores = [0.1, 0.2, 0.9, 0.8];
//! let anomalous = [false, false, true, true];
//! assert_eq!(roc_auc(&scores, &anomalous)?, 1.0);
//! assert_eq!(average_precision(&scores, &anomalous)?, 1.0);
//! // Every score tied: chance.
//! assert_eq!(roc_auc(&[1.0; 4], &anomalous)?, 0.5);
//! # Ok::<(), ae_uses::UsesError>(())
//! ```
#![warn(missing_docs)]

pub mod aez;
pub mod anomaly;
pub mod baselines;
pub mod batches;
pub mod compare;
pub mod denoise;
pub mod detector;
mod error;
pub mod iwae;
mod logreg;
pub mod pca;
pub mod probe;
pub mod runs;
pub mod stats;

pub use aez::{
    AezFile, AezHeader, AezParts, compress, decode_aez, decompress, decompress_to, encode_aez,
    model_fingerprint, parse_aez,
};
pub use anomaly::{
    ANOMALY_FILE, AnomalyEval, AnomalySpec, ScoreKind, ThresholdRule, anomaly_labels,
    anomaly_scores, evaluate_scores, fit_one_class, mean_scores, pca_scores, standardize_by,
};
pub use baselines::{AezMeasure, LosslessSizes, lossless_sizes, measure_aez};
pub use compare::{CompareOptions, PcaRow, compare_pca, pca_errors, pca_reconstruction_errors};
pub use denoise::{DenoiseRow, denoise_table, standard_noises};
pub use detector::{
    DetectorConfig, Ensemble, EnsembleScores, MemberScores, TABLE_CODE_DIVISOR, TableDetector,
    table_detector,
};
pub use error::{Result, UsesError};
pub use iwae::{IwaeResult, iwae, iwae_seeded};
pub use pca::Pca;
pub use probe::{
    Features, ProbeConfig, ProbeOptions, ProbeResult, ProbeRow, linear_probe, probe_with_baselines,
    split_labels,
};
