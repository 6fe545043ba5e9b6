//! `ae anomaly eval`: ROC-AUC, PR-AUC and the confusion at the threshold of
//! one detector, or of an ensemble of detectors of one class ([`ae_uses::Ensemble`]).

use std::path::PathBuf;

use ae_data::ImageSet;
use ae_train::{LoadedRun, load_run};
use ae_uses::{AnomalySpec, Ensemble};
use anyhow::{Context, Result, bail};
use clap::Args;

use crate::uses_cmd::{ImagesArgs, UseRunArgs, print_json};

#[derive(Debug, Args)]
pub struct AnomalyEvalArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// The normal class (default: the detector's; for a detector fitted on all its rows and
    /// labels that are 0 or 1, class 0: label 1 marks the anomalies, as in PyOD).
    #[arg(long)]
    pub normal_class: Option<u8>,
    /// Another detector of the same class (e.g. `ae anomaly fit` with another
    /// --seed), repeatable: every detector's scores are standardised by its
    /// scores of the normal training images and their mean is evaluated (an
    /// ensemble, as `cargo xtask anomaly-benchmark` does with three).
    #[arg(long = "with", value_name = "DIR")]
    pub with: Vec<PathBuf>,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Adds the detector `run` to `ens`: its spec, and its normal training images
/// read from its own data set.
fn add_member(
    ens: &mut Ensemble,
    run: &LoadedRun,
    normal: u8,
    set: &ImageSet,
    batch: usize,
) -> Result<()> {
    let Some(spec) = AnomalySpec::read_optional(&run.dir)? else {
        bail!(
            "{} is not a detector made by `ae anomaly fit`: an ensemble needs each \
             detector's threshold rule and score",
            run.dir.display()
        );
    };
    let mut cfg = run.config.data.clone();
    cfg.test_limit = Some(1);
    let train = cfg
        .load()
        .with_context(|| format!("loading the training images of {}", run.dir.display()))?
        .train;
    // A detector fitted on all its rows took every one of them as normal.
    let train = match spec.normal_class {
        Some(_) => train.with_class(normal)?,
        None => train,
    };
    let name = run.dir.display().to_string();
    ens.add(
        &name,
        run.model.as_ref(),
        &spec,
        &train,
        set,
        batch,
        &run.device,
    )?;
    Ok(())
}

pub fn exec(a: AnomalyEvalArgs) -> Result<()> {
    let run = a.run.load()?;
    let spec = AnomalySpec::read_optional(&run.dir)?;
    let (set, what) = a.images.load(&run)?;
    let normal = match (a.normal_class, spec.as_ref().map(|s| s.normal_class)) {
        (Some(c), _) | (None, Some(Some(c))) => c,
        // Fitted on all its rows: with labels 0/1 (PyOD's inlier/outlier), 0 is normal.
        (None, Some(None)) if set.num_classes().is_some_and(|k| k <= 2) => 0,
        (None, Some(None)) => bail!(
            "{}: no normal class: pass --normal-class (the detector was trained on every \
             class, and the labels of {what} are not only 0 and 1)",
            run.dir.display()
        ),
        (None, None) => bail!(
            "{}: no normal class: pass --normal-class (the run is not a detector made by \
             `ae anomaly fit`)",
            run.dir.display()
        ),
    };
    let detectors = 1 + a.with.len();
    let (scores, threshold, kind) = if a.with.is_empty() {
        let kind = spec.as_ref().map(|s| s.score).unwrap_or_default();
        let scores = super::score_images(&run, &set, kind, a.run.batch_size, &what)?;
        let threshold = spec.as_ref().map_or(f64::INFINITY, |s| s.threshold);
        (scores, threshold, kind)
    } else {
        let mut ens = Ensemble::new(normal);
        let context = || format!("scoring {what} with {detectors} detectors");
        add_member(&mut ens, &run, normal, &set, a.run.batch_size).with_context(context)?;
        for dir in &a.with {
            let r = load_run(dir, &run.device)
                .with_context(|| format!("loading the run {}", dir.display()))?;
            add_member(&mut ens, &r, normal, &set, a.run.batch_size).with_context(context)?;
        }
        let e = ens.finish().with_context(context)?;
        (e.scores, e.threshold, e.score)
    };
    let labels =
        ae_uses::anomaly_labels(&set, normal).with_context(|| format!("labels of {what}"))?;
    let ev = ae_uses::evaluate_scores(&scores, &labels, threshold)
        .with_context(|| format!("evaluating on {what} with normal class {normal}"))?;
    if a.json {
        return print_json(&ev);
    }
    println!(
        "images     {} normal (class {normal}), {} anomalous, of {what}",
        ev.normal, ev.anomalous
    );
    if detectors > 1 {
        println!(
            "score      {kind}, the mean of {detectors} detectors' scores, each standardised by \
             its training scores"
        );
    } else {
        println!("score      {kind}");
    }
    println!("roc-auc    {:.4}", ev.roc_auc);
    println!(
        "pr-auc     {:.4} (average precision, anomalies positive)",
        ev.pr_auc
    );
    if threshold.is_finite() {
        println!(
            "threshold  {:.6}: precision {:.3}, recall {:.3}, false-positive rate {:.3}",
            ev.threshold, ev.precision, ev.recall, ev.false_positive_rate
        );
    }
    Ok(())
}
