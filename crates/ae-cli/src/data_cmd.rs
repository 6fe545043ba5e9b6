//! `ae data fetch` and `ae data inspect`.

use std::path::PathBuf;

use ae_data::DatasetName;
use anyhow::{Result, bail};
use clap::Subcommand;

/// Data-set commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a data set, verify its checksums and write it atomically.
    Fetch {
        /// mnist or fashion-mnist.
        name: DatasetName,
        /// Folder to write the four files to (default: $AE_DATA_DIR/<name>, else <name>/ beside
        /// the nearest data set in data/ in or above the working directory, else ./data/<name>).
        // The doc comment is the --help text, shown as written: `<name>` is not HTML.
        #[allow(rustdoc::invalid_html_tags)]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Mirror to download from (the files are appended to it).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Print type, dimensions, count, value range (and class histogram) of IDX files.
    Inspect {
        /// IDX files, gzipped or not.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Fetch {
            name,
            data_dir,
            base_url,
        } => {
            if name == DatasetName::Custom {
                bail!(
                    "a custom data set has no download: pass its IDX files with --train-images etc."
                );
            }
            let dir = data_dir
                .unwrap_or_else(|| ae_data::dataset::DataSearch::from_env().fetch_dir(name));
            let report = ae_data::fetch::fetch(name, &dir, base_url.as_deref())?;
            println!("{report}");
            Ok(())
        }
        DataCommand::Inspect { files } => {
            if let [one] = files.as_slice() {
                // One file: its error is the one line printed.
                println!("{}", ae_data::inspect::inspect(one)?);
                return Ok(());
            }
            let mut failed = 0;
            for f in &files {
                match ae_data::inspect::inspect(f) {
                    Ok(summary) => println!("{summary}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} files could not be read", files.len());
            }
            Ok(())
        }
    }
}
