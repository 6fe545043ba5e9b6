//! `ae`: the command line of the toolkit. Thin: parsing and printing live here,
//! the work lives in the `ae-*` crates.

mod data_cmd;
mod model_opts;
mod output;
mod train_cmd;
mod use_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train, evaluate and use autoencoders (dense, sparse, denoising, convolutional, VAE).
#[derive(Debug, Parser)]
#[command(name = "ae", version, about, long_about = None, propagate_version = true, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Data sets: download, inspect IDX files.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Train(a) => train_cmd::run(*a),
        Command::Eval(a) => use_cmd::eval(a),
        Command::Reconstruct(a) => use_cmd::reconstruct(a),
        Command::Encode(a) => use_cmd::encode(a),
        Command::Denoise(a) => use_cmd::denoise(a),
        Command::Sample(a) => use_cmd::sample(a),
        Command::Data(c) => data_cmd::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default level (info).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
