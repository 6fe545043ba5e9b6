//! `ae anomaly fit|score|eval`: one-class detectors ([`ae_uses::DetectorConfig`],
//! [`ae_uses::fit_one_class`]) in [`fit`], their scores in [`score`], and their
//! ROC-AUC / PR-AUC alone or as an ensemble ([`ae_uses::Ensemble`]) in [`eval`].

mod eval;
mod fit;
mod score;

use anyhow::Result;
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
