//! `ae probe`: a linear probe of a run's codes, beside raw pixels and PCA with
//! `--baselines` ([`ae_uses::probe_with_baselines`]).

use anyhow::Result;
use clap::Args;

use super::{UseRunArgs, print_json};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Also probe raw pixels and PCA codes of the same size.
    #[arg(long)]
    pub baselines: bool,
    /// Standardise each feature before the regression.
    #[arg(long)]
    pub standardize: bool,
    /// L2 weight (scikit-learn's 1/C).
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// L-BFGS iterations at most.
    #[arg(long, default_value_t = 300)]
    pub max_iter: u64,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ProbeArgs {
    fn config(&self) -> Result<ae_uses::ProbeConfig> {
        let cfg = ae_uses::ProbeConfig {
            options: ae_uses::ProbeOptions {
                alpha: self.alpha,
                max_iter: self.max_iter,
                standardize: self.standardize,
            },
            baselines: self.baselines,
            batch_size: self.run.batch_size,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn exec(a: ProbeArgs) -> Result<()> {
    let cfg = a.config()?;
    let run = a.run.load()?;
    let mut data = run.config.data.clone();
    data.train_limit = a.train_limit.or(data.train_limit);
    data.test_limit = a.test_limit.or(data.test_limit);
    let split = data.load()?;
    ae_uses::split_labels(&split, &run.dir.display().to_string())?;
    let name = format!("{} codes", run.config.model.kind());
    let rows = ae_uses::probe_with_baselines(run.model.as_ref(), &name, &split, &cfg, &run.device)?;
    if a.json {
        return print_json(&rows);
    }
    for r in &rows {
        println!(
            "{:<24} {:>4} features: test accuracy {:.2}% (train {:.2}%)",
            r.features,
            r.result.features,
            100.0 * r.result.test_accuracy,
            100.0 * r.result.train_accuracy
        );
    }
    Ok(())
}
