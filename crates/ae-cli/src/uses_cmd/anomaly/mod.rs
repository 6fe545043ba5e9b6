//! `ae anomaly fit|score|eval`: one-class detectors ([`ae_uses::DetectorConfig`],
//! [`ae_uses::fit_one_class`]) in [`fit`], their scores in [`score`], and their
//! ROC-AUC / PR-AUC alone or as an ensemble ([`ae_uses::Ensemble`]) in [`eval`].

mod eval;
mod fit;
mod score;

use ae_data::ImageSet;
use ae_train::LoadedRun;
use ae_uses::ScoreKind;
use anyhow::{Context, Result};
use clap::Subcommand;

pub use eval::AnomalyEvalArgs;
pub use fit::AnomalyFitArgs;
pub use score::AnomalyScoreArgs;

#[derive(Debug, Subcommand)]
pub enum AnomalyCommand {
    /// Train a detector on the normal images (e.g. one class) and set its threshold.
    Fit(Box<AnomalyFitArgs>),
    /// Score images: reconstruction error per image, and whether it passes the threshold.
    Score(AnomalyScoreArgs),
    /// ROC-AUC and PR-AUC on labelled test images (the normal class against the rest).
    Eval(AnomalyEvalArgs),
}

pub fn exec(c: AnomalyCommand) -> Result<()> {
    match c {
        AnomalyCommand::Fit(a) => fit::exec(*a),
        AnomalyCommand::Score(a) => score::exec(a),
        AnomalyCommand::Eval(a) => eval::exec(a),
    }
}

/// The run's `kind` scores of the images `set` (`what`, for messages).
fn score_images(
    run: &LoadedRun,
    set: &ImageSet,
    kind: ScoreKind,
    batch: usize,
    what: &str,
) -> Result<Vec<f64>> {
    ae_uses::anomaly_scores(run.model.as_ref(), set, kind, batch, &run.device)
        .with_context(|| format!("scoring {what}"))
}
