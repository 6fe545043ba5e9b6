//! `ae`: the command line of the toolkit. Thin: parsing and printing live here,
//! the work lives in the `ae-*` crates.

mod data_cmd;
mod model_opts;
mod output;
mod plot_cmd;
mod train_cmd;
mod use_cmd;
mod uses_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Train, evaluate and use autoencoders (dense, sparse, denoising, convolutional, VAE).
#[derive(Debug, Parser)]
#[command(name = "ae", version, about, long_about = None, propagate_version = true, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Run on the CPU through candle's stock ops only (the portable path, exactly what a
    /// CUDA or Metal device computes) instead of ae's CPU kernels and fused steps; slower,
    /// for checking the device path without a GPU. `AE_PORTABLE=1` does the same.
    #[arg(long, global = true)]
    portable: bool,
    /// The most memory a model may need (bytes, estimated from its config:
    /// parameters, Adam's state and a batch's activations); a larger config is
    /// refused before anything is allocated.
    #[arg(long, global = true, default_value_t = ae_models::DEFAULT_MAX_MODEL_BYTES)]
    max_model_bytes: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model into a run folder.
    Train(Box<train_cmd::TrainArgs>),
    /// Test-set metrics of a trained run (BCE, MSE, PSNR; ELBO for the VAE).
    Eval(use_cmd::EvalArgs),
    /// Write originals above reconstructions as a PNG.
    Reconstruct(use_cmd::ReconstructArgs),
    /// Write the latent codes of a data split as CSV, NPY or safetensors.
    Encode(use_cmd::EncodeArgs),
    /// Write noisy, denoised and clean rows of test images as a PNG.
    Denoise(use_cmd::DenoiseArgs),
    /// Write a grid of samples from a VAE's prior as a PNG.
    Sample(use_cmd::SampleArgs),
    /// Write every picture that applies to a run (loss curves, reconstructions, latent space, ...) as PNGs.
    Plot(plot_cmd::PlotArgs),
    /// Data sets: download, inspect IDX files.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// PCA against autoencoders of the same code size: test MSE and BCE side by side.
    ComparePca(Box<uses_cmd::compare_pca::ComparePcaArgs>),
    /// Anomaly detection: fit a detector on normal data, score images, evaluate ROC-AUC / PR-AUC.
    #[command(subcommand)]
    Anomaly(uses_cmd::anomaly::AnomalyCommand),
    /// Compress IDX images to quantised latent codes (.aez).
    Compress(uses_cmd::aez::CompressArgs),
    /// Decompress a .aez file to IDX images with the model that made it.
    Decompress(uses_cmd::aez::DecompressArgs),
    /// Linear probe: logistic regression on the codes, test accuracy (beside pixels and PCA).
    Probe(uses_cmd::probe::ProbeArgs),
    /// A VAE's test log-likelihood by importance sampling (the IWAE bound), nats per image.
    #[command(alias = "loglik")]
    Iwae(uses_cmd::iwae::IwaeArgs),
    /// PSNR and SSIM of noisy and denoised test images for several noises.
    DenoiseTable(uses_cmd::denoise_table::DenoiseTableArgs),
}

fn main() -> ExitCode {
    // Keep candle's worker threads from spinning on the cores the GEMMs need
    // (docs/performance.md).
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    // candle allocates a fresh buffer per op: let glibc recycle them from the heap
    // instead of mmap-ing and page-faulting each one (2-3x on the conv models;
    // docs/performance.md).
    ae_kernels::tune_glibc_malloc();
    // The GEMM thresholds a many-core machine may be tuned with (AE_GEMM_*_FLOPS): a bad
    // value is an error here, not a silent default later.
    if let Err(e) = ae_kernels::tuning::GemmTuning::from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing();
    if cli.portable {
        ae_kernels::set_portable(true);
    }
    ae_models::set_max_model_bytes(cli.max_model_bytes);
    let result = match cli.command {
        Command::Train(a) => train_cmd::run(*a, matches.subcommand_matches("train")),
        Command::Eval(a) => use_cmd::eval(a),
        Command::Reconstruct(a) => use_cmd::reconstruct(a),
        Command::Encode(a) => use_cmd::encode(a),
        Command::Denoise(a) => use_cmd::denoise(a),
        Command::Sample(a) => use_cmd::sample(a),
        Command::Plot(a) => plot_cmd::run(a),
        Command::Data(c) => data_cmd::run(c),
        Command::ComparePca(a) => uses_cmd::compare_pca::exec(*a),
        Command::Anomaly(c) => uses_cmd::anomaly::exec(c),
        Command::Compress(a) => uses_cmd::aez::compress(a),
        Command::Decompress(a) => uses_cmd::aez::decompress(a),
        Command::Probe(a) => uses_cmd::probe::exec(a),
        Command::Iwae(a) => uses_cmd::iwae::exec(a),
        Command::DenoiseTable(a) => uses_cmd::denoise_table::exec(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `outer: inner: ...`, each cause
/// once: an error whose message already ends with its cause's text (as
/// `path: {source}` messages do) does not repeat it.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) || out.contains(&format!("{text}: ")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Logs go to stderr; `RUST_LOG` overrides the default level (info). Colours only when stderr
/// is a terminal, so that a redirected log file holds no ANSI escape codes.
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
