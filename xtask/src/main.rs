//! `cargo xtask`: project automation (train-all, bench), in Rust so it runs wherever cargo does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod report;
mod train_all;
mod uses;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "ae project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train all five variants on the embedded MNIST at their default settings
    /// and write runs/<variant>/ (with its pictures), runs/summary.md and runs/report.html.
    // The doc comment is the --help text, shown as written: `<variant>` is not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    TrainAll {
        /// A smoke test on a small slice (1,000 training and 500 test images, 1 epoch).
        #[arg(long)]
        quick: bool,
        /// Where the runs go.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Seed of every run.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only these variants (comma separated), in this order.
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<ae_models::ModelKind>>,
        /// Override the epochs of every variant.
        #[arg(long)]
        epochs: Option<usize>,
    },
    /// One-class MNIST: a detector per digit, ROC-AUC beside PCA-16 and Deep SVDD;
    /// writes runs/anomaly-benchmark.md and .json.
    AnomalyBenchmark(uses::AnomalyArgs),
    /// Every measured use (PCA, anomalies, denoising, compression, probe, IWAE);
    /// writes runs/uses.md and runs/uses.json.
    Uses(uses::UsesArgs),
    /// Our epoch, inference, IDX and memory figures against PyTorch and JAX on the
    /// same work, alternately; writes runs/bench.md and runs/bench.json.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    // See docs/performance.md: candle's spinning worker threads, and glibc's mmap threshold
    // that makes every candle buffer a page-fault storm.
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    ae_kernels::tune_glibc_malloc();
    if let Err(e) = ae_kernels::tuning::GemmTuning::from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stdout (tracing's default writer), coloured only when it is a terminal, so
    // that a redirected log file holds no ANSI escape codes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false)
        .try_init();
    let result = match Cli::parse().command {
        Command::TrainAll {
            quick,
            out,
            seed,
            only,
            epochs,
        } => {
            let opts = train_all::Options {
                quick,
                out,
                seed,
                only,
                epochs,
            };
            train_all::run(&opts).map(|summary| println!("{summary}"))
        }
        Command::AnomalyBenchmark(a) => uses::run_anomaly(&a).map(|md| println!("{md}")),
        Command::Uses(a) => uses::run_uses(&a).map(|md| println!("{md}")),
        Command::Bench(a) => bench::run(&a).map(|md| println!("{md}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
