//! Where a data set's default folder is, looked up at run time (nothing is baked into the binary).
//!
//! A data set given neither explicit files nor a `data_dir` is looked for, in order:
//! 1. in `$AE_DATA_DIR/<name>/` when [`DATA_DIR_ENV`] is set (and only there);
//! 2. else in `data/<name>/` of the working directory, then of each folder above
//!    it: the first one holding the data set's training images
//!    (`train-images-idx3-ubyte` or `.gz`) is the data set's folder. From
//!    anywhere inside the repository that is the repository's `data/mnist/`.
//!
//! Nothing found is a [`DataError::DataDirNotFound`] listing every folder looked
//! at and the ways to point at the data.

use std::path::{Path, PathBuf};

use super::registry::{DataFile, DatasetName};
use crate::error::{DataError, Result};

/// The environment variable naming the folder that holds the data sets' folders
/// (`$AE_DATA_DIR/mnist/`, `$AE_DATA_DIR/fashion-mnist/`).
pub const DATA_DIR_ENV: &str = "AE_DATA_DIR";

/// The folder, under a root, that holds the data sets' folders.
pub const DATA_FOLDER: &str = "data";

/// Where default data folders are looked for (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSearch {
    /// The value of `$AE_DATA_DIR`: when set, the only place looked at.
    pub env_dir: Option<PathBuf>,
    /// The folder whose `data/`, and whose ancestors' `data/`, are searched
    /// (the working directory).
    pub start: PathBuf,
}

impl DataSearch {
    /// `$AE_DATA_DIR` (when set and not empty) and the working directory.
    pub fn from_env() -> DataSearch {
        DataSearch {
            env_dir: std::env::var_os(DATA_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            // A working directory that cannot be read (deleted) searches `./data`,
            // which then fails with the usual error.
            start: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// The folder of data set `name`: `$AE_DATA_DIR/<name>` when the variable is
    /// set (whether or not it holds the files: a missing file is then reported
    /// with its path), else the first `data/<name>/` at or above `start` that
    /// holds the training images.
    pub fn dataset_dir(&self, name: DatasetName) -> Result<PathBuf> {
        if let Some(env) = &self.env_dir {
            return Ok(env.join(name.as_str()));
        }
        let tried: Vec<PathBuf> = self
            .start
            .ancestors()
            .map(|dir| dir.join(DATA_FOLDER).join(name.as_str()))
            .collect();
        match tried.iter().find(|d| holds(d)) {
            Some(d) => Ok(d.clone()),
            None => Err(DataError::DataDirNotFound {
                dataset: name.to_string(),
                start: self.start.clone(),
                tried,
            }),
        }
    }

    /// The folder `ae data fetch` writes data set `name` to by default:
    /// `$AE_DATA_DIR/<name>` when set, else `<name>/` beside the first data set
    /// found at or above `start` (in its `data/` folder), else `<start>/data/<name>`.
    pub fn fetch_dir(&self, name: DatasetName) -> PathBuf {
        if let Some(env) = &self.env_dir {
            return env.join(name.as_str());
        }
        let root = self
            .start
            .ancestors()
            .map(|d| d.join(DATA_FOLDER))
            .find(|data| {
                DatasetName::KNOWN
                    .iter()
                    .any(|n| holds(&data.join(n.as_str())))
            });
        root.unwrap_or_else(|| self.start.join(DATA_FOLDER))
            .join(name.as_str())
    }
}

/// Whether `dir` holds a data set's training images (under either name).
fn holds(dir: &Path) -> bool {
    DataFile::TrainImages
        .candidate_names()
        .iter()
        .any(|n| dir.join(n).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn searches_the_start_and_the_folders_above_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let deep = root.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        let search = DataSearch {
            env_dir: None,
            start: deep.clone(),
        };
        // Nothing yet: the error lists every folder looked at, nearest first,
        // and says how to point at the data.
        let e = search.dataset_dir(DatasetName::Mnist).unwrap_err();
        let DataError::DataDirNotFound { tried, .. } = &e else {
            panic!("{e}");
        };
        assert_eq!(tried[0], deep.join("data/mnist"));
        assert!(tried.contains(&root.join("data/mnist")));
        let msg = e.to_string();
        for hint in ["--data-dir", "AE_DATA_DIR", "ae data fetch mnist"] {
            assert!(msg.contains(hint), "{msg}");
        }
        // A data folder without the training images does not count.
        std::fs::create_dir_all(root.join("a/data/mnist")).unwrap();
        touch(&root.join("a/data/mnist/t10k-images-idx3-ubyte.gz"));
        assert!(search.dataset_dir(DatasetName::Mnist).is_err());
        // The nearest folder holding them wins, gzipped or not.
        touch(&root.join("data/mnist/train-images-idx3-ubyte.gz"));
        assert_eq!(
            search.dataset_dir(DatasetName::Mnist).unwrap(),
            root.join("data/mnist")
        );
        touch(&root.join("a/b/data/mnist/train-images-idx3-ubyte"));
        assert_eq!(
            search.dataset_dir(DatasetName::Mnist).unwrap(),
            root.join("a/b/data/mnist")
        );
        // Each data set is looked for on its own.
        assert!(search.dataset_dir(DatasetName::FashionMnist).is_err());
        // Downloads go beside the nearest data set found, else under the start.
        assert_eq!(
            search.fetch_dir(DatasetName::FashionMnist),
            root.join("a/b/data/fashion-mnist")
        );
        assert_eq!(
            DataSearch {
                env_dir: None,
                start: root.join("a/x"),
            }
            .fetch_dir(DatasetName::Mnist),
            root.join("data/mnist")
        );
        let empty = tempfile::tempdir().unwrap();
        let elsewhere = DataSearch {
            env_dir: None,
            start: empty.path().join("x"),
        };
        assert_eq!(
            elsewhere.fetch_dir(DatasetName::Mnist),
            empty.path().join("x/data/mnist")
        );
    }

    #[test]
    fn the_environment_variable_is_the_only_place_when_set() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("data/mnist/train-images-idx3-ubyte.gz"));
        let env = tmp.path().join("elsewhere");
        let search = DataSearch {
            env_dir: Some(env.clone()),
            start: tmp.path().to_path_buf(),
        };
        assert_eq!(
            search.dataset_dir(DatasetName::Mnist).unwrap(),
            env.join("mnist")
        );
        assert_eq!(search.fetch_dir(DatasetName::Mnist), env.join("mnist"));
    }
}
