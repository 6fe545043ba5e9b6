//! `cargo xtask anomaly-benchmark` and `cargo xtask uses`: the measured uses of
//! autoencoders (ae-uses), as tables in `runs/*.md` and `runs/*.json`. One module per task
//! ([`anomaly`], [`measured`]); the data loading and table writing they share are here.

mod anomaly;
mod measured;

use std::path::Path;

use ae_data::{DataConfig, Split};
use ae_train::checkpoint::write_atomic;
use anyhow::{Context, Result};
use serde::Serialize;

pub use anomaly::{AnomalyArgs, run_anomaly};
pub use measured::{UsesArgs, run_uses};

fn mnist(quick: bool, train: usize, test: usize) -> Result<(DataConfig, Split)> {
    let mut data = DataConfig::default();
    if quick {
        data.train_limit = Some(train);
        data.test_limit = Some(test);
    }
    let split = data
        .load()
        .context("loading the embedded MNIST (data/mnist)")?;
    Ok((data, split))
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

/// Writes `<out>/<name>.md` and `<out>/<name>.json`, atomically.
pub fn write_tables(out: &Path, name: &str, md: &str, json: &impl Serialize) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join(format!("{name}.md")), md.as_bytes())?;
    let mut j = serde_json::to_vec_pretty(json)?;
    j.push(b'\n');
    write_atomic(&out.join(format!("{name}.json")), &j)?;
    Ok(())
}
