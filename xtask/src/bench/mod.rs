//! `cargo xtask bench`: our throughput against the peers' on the same work.
//!
//! Each row is one piece of work measured on our side and, where a peer does
//! the same work, on the peer's side, alternately (ours, peer, ours, peer ...
//! for `--rounds`), so that a change in the machine's load hits both sides.
//! Training rows time the training loop only, as the peers' scripts do: our
//! `EpochMetrics::seconds` (batches, forward, loss, backward, Adam; no
//! evaluation, no checkpoint) against the `time` each peer prints per epoch.
//! The first epoch of every run, ours and the peers', is dropped (JAX
//! compiles its step in epoch 0). The ratio of a row is peer time / our time
//! (> 1: we are faster), from the chosen statistic of each side.
//!
//! Writes `<out>/bench.md` (the table, also printed) and `<out>/bench.json`
//! (every sample). See docs/performance.md.

mod machine;
mod ours;
mod parse;
mod peers;
mod rows;
mod table;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use ae_data::{DataConfig, DataFile, Split};
use ae_models::ModelKind;
use anyhow::{Context, Result, bail};
use serde::Serialize;

use machine::{cpu_name, load_average, memory_row};
use ours::idx_throughput;
use peers::{JAX_SEED, Peers, TORCH_CONV, TORCH_SEED, TORCH_VAE, peers};
use rows::{inference_rows, training_rows};
use table::{Machine, Report, Row, Samples, Target, Unit, render_markdown, to_json};

/// Training and test images of a `--quick` run (small: the integration test
/// runs it in a debug build).
const QUICK_TRAIN: usize = 256;
const QUICK_TEST: usize = 256;

/// The rows `--only` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Work {
    /// Dense seed model, one training epoch, against PyTorch and JAX.
    Dense,
    /// VAE 784-400-20, one training epoch, against PyTorch.
    Vae,
    /// Conv autoencoder, one training epoch, against PyTorch.
    Conv,
    /// Encode and reconstruct the test set at batch 1024, against PyTorch.
    Infer,
    /// Reading an uncompressed IDX file (ours only).
    Idx,
}

const ALL_WORK: [Work; 5] = [Work::Dense, Work::Vae, Work::Conv, Work::Infer, Work::Idx];

/// Which statistic of each side's samples the table compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stat {
    /// The median sample.
    Median,
    /// The best sample: the shortest time, the highest throughput.
    Min,
}

/// `cargo xtask bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Alternating rounds (ours, peer, ours, peer ...) per row.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Epochs per training run, ours and each peer's (at least 2: the first is dropped).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Timed passes over the test set per round in the inference rows (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub infer_reps: usize,
    /// Only these rows (comma separated): dense, vae, conv, infer, idx.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<Work>>,
    /// Also measure the peak resident memory of a whole `train-all` run (a child process).
    #[arg(long)]
    pub memory: bool,
    /// Smoke test: 256 training and test images, one round, 2 epochs, no peers;
    /// `train-all --quick` for --memory.
    #[arg(long)]
    pub quick: bool,
    /// The peers' Python (with torch, and jax + optax for the JAX row); default
    /// $AE_PEER_PYTHON, else anchors/bin/python in the temporary folder ($TMPDIR, else /tmp;
    /// where ../shared/anchors/setup.sh makes it) if it exists.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The peers' scripts (default: ../shared/anchors beside the repository).
    #[arg(long)]
    pub anchors: Option<PathBuf>,
    /// Measure our side only.
    #[arg(long)]
    pub no_peers: bool,
    /// The statistic each side is summarised by.
    #[arg(long, value_enum, default_value_t = Stat::Median)]
    pub stat: Stat,
    /// Where bench.md and bench.json go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
}

struct Ctx<'a> {
    split: &'a Split,
    data: &'a DataConfig,
    peers: &'a std::result::Result<Peers, String>,
    rounds: usize,
    epochs: usize,
    quick: bool,
}

/// Runs the bench, writes `bench.md` and `bench.json` into `args.out`, returns the markdown.
pub fn run(args: &BenchArgs) -> Result<String> {
    let rounds = if args.quick { 1 } else { args.rounds };
    let epochs = if args.quick { 2 } else { args.epochs };
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if epochs < 2 {
        bail!("--epochs must be at least 2 (the first epoch of every run is dropped)");
    }
    if args.infer_reps == 0 {
        bail!("--infer-reps must be at least 1");
    }
    let load_start = load_average();
    let mut data = DataConfig::default();
    if args.quick {
        data.train_limit = Some(QUICK_TRAIN);
        data.test_limit = Some(QUICK_TEST);
    }
    let work = args.only.clone().unwrap_or_else(|| ALL_WORK.to_vec());
    let train_images = data
        .resolve(DataFile::TrainImages)?
        .context("no MNIST training images (data/mnist)")?;
    let mnist_dir = train_images
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // Every row but IDX reading trains or runs models on MNIST and has a peer.
    let (split, peers) = if work.iter().any(|w| *w != Work::Idx) {
        let peers = peers(args, &mnist_dir);
        if let Err(why) = &peers {
            tracing::info!("bench: peers {why}");
        }
        (Some(data.load().context("loading MNIST")?), peers)
    } else {
        (None, Err("no peer rows".to_string()))
    };
    let mut rows = Vec::new();
    for w in &work {
        let ctx = split.as_ref().map(|split| Ctx {
            split,
            data: &data,
            peers: &peers,
            rounds,
            epochs,
            quick: args.quick,
        });
        let ctx = || ctx.as_ref().context("MNIST was not loaded");
        match w {
            Work::Dense => rows.extend(training_rows(
                ModelKind::Vanilla,
                "dense 784-128-64-32 training epoch, batch 256",
                &[(&TORCH_SEED, 2.0), (&JAX_SEED, 1.3)],
                ctx()?,
            )?),
            Work::Vae => rows.extend(training_rows(
                ModelKind::Vae,
                "VAE 784-400-20 training epoch, batch 128",
                &[(&TORCH_VAE, 1.5)],
                ctx()?,
            )?),
            Work::Conv => rows.extend(training_rows(
                ModelKind::Conv,
                "conv AE training epoch, batch 128",
                &[(&TORCH_CONV, 1.0)],
                ctx()?,
            )?),
            Work::Infer => {
                let reps = if args.quick { 1 } else { args.infer_reps };
                rows.extend(inference_rows(ctx()?, reps)?)
            }
            Work::Idx => {
                tracing::info!("bench: IDX reading");
                let reps = if args.quick { 2 } else { 5 * rounds };
                let (v, bytes) = idx_throughput(&train_images, reps)?;
                rows.push(Row {
                    work: "reading uncompressed IDX".into(),
                    unit: Unit::GbPerSec,
                    ours: Samples::new(v),
                    peer: None,
                    target: Target::AtLeast { value: 1.0 },
                    note: format!(
                        "`ae_data::read_idx` of the training images \
                         ({bytes} bytes, decompressed into a temporary folder, so from the page \
                         cache), {reps} reads"
                    ),
                });
            }
        }
    }
    if args.memory {
        rows.push(memory_row(args.quick)?);
    }
    let report = Report {
        command: format!(
            "cargo xtask {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        stat: args.stat,
        rounds,
        epochs,
        quick: args.quick,
        machine: Machine {
            cpu: cpu_name(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_start,
            load_end: load_average(),
        },
        rows,
    };
    let md = render_markdown(&report);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    ae_train::checkpoint::write_atomic(&args.out.join("bench.md"), md.as_bytes())?;
    let json = to_json(&report)?;
    ae_train::checkpoint::write_atomic(&args.out.join("bench.json"), json.as_bytes())?;
    Ok(md)
}
