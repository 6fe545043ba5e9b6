//! `ae anomaly score`: per-image scores of a detector (or a plain run), with
//! the detector's threshold where it applies, optionally as CSV.

use std::fmt::Write as _;
use std::path::PathBuf;

use ae_train::checkpoint::write_atomic;
use ae_uses::{AnomalySpec, ScoreKind};
use anyhow::Result;
use clap::Args;

use crate::uses_cmd::{ImagesArgs, UseRunArgs, print_json};

#[derive(Debug, Args)]
pub struct AnomalyScoreArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// The score (default: the detector's).
    #[arg(long)]
    pub score: Option<ScoreKind>,
    /// Write `index,label,score,anomaly` rows to this CSV file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(a: AnomalyScoreArgs) -> Result<()> {
    let run = a.run.load()?;
    let spec = AnomalySpec::read_optional(&run.dir)?;
    let (set, what) = a.images.load(&run)?;
    let kind = a
        .score
        .or(spec.as_ref().map(|s| s.score))
        .unwrap_or_default();
    let scores = super::score_images(&run, &set, kind, a.run.batch_size, &what)?;
    // A threshold only applies to the score it was set for.
    let threshold = spec
        .as_ref()
        .filter(|s| s.score == kind)
        .map(|s| s.threshold);
    let flagged = threshold.map(|t| scores.iter().filter(|&&s| s > t).count());
    if let Some(out) = &a.out {
        let mut csv = String::from("index,label,score,anomaly\n");
        for (i, s) in scores.iter().enumerate() {
            let label = set.label(i).map(|l| l.to_string()).unwrap_or_default();
            let flag = threshold
                .map(|t| u8::from(*s > t).to_string())
                .unwrap_or_default();
            let _ = writeln!(csv, "{i},{label},{s},{flag}");
        }
        write_atomic(out, csv.as_bytes())?;
    }
    let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    if a.json {
        return print_json(&serde_json::json!({
            "images": scores.len(),
            "score": kind,
            "mean": mean,
            "threshold": threshold,
            "flagged": flagged,
        }));
    }
    println!(
        "scored {} images of {what} by {kind}: mean {mean:.6}{}{}",
        scores.len(),
        match (threshold, flagged) {
            (Some(t), Some(f)) => format!(
                ", {f} above the threshold {t:.6} ({:.1}%)",
                100.0 * f as f64 / scores.len().max(1) as f64
            ),
            _ => ", no threshold (not a detector made by `ae anomaly fit`)".into(),
        },
        a.out
            .as_ref()
            .map(|p| format!("; wrote {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
