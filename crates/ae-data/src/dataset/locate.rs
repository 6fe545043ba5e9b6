//! Where a data set's default folder is: `$AE_DATA_DIR/<name>/`, else the repository's `data/<name>/`.

use std::path::PathBuf;

/// The environment variable naming the root of the data directories.
pub const DATA_DIR_ENV: &str = "AE_DATA_DIR";

/// `<repo>/data`, where the repository ships `data/mnist/`.
pub fn repo_data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data"))
}
