//! [`DataConfig`]: which data set to load and from where, checked by `validate()`, loaded as a [`Split`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::image_set::ImageSet;
use super::locate::DataSearch;
use super::registry::{DataFile, DatasetName};
use crate::error::{DataError, Result};
use crate::idx::{check_label_range, labels_to_u8, read_idx};
use crate::scaler::Scaler;
use crate::source::SourceOptions;

/// Which data set to load and where its files are (see the module docs for the
/// lookup order). `Default` is MNIST from the usual places.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub name: DatasetName,
    /// Directory holding the four files (overrides `$AE_DATA_DIR` and the search for `data/`).
    pub data_dir: Option<PathBuf>,
    /// Explicit training image file.
    pub train_images: Option<PathBuf>,
    /// Explicit training label file.
    pub train_labels: Option<PathBuf>,
    /// Explicit test image file.
    pub test_images: Option<PathBuf>,
    /// Explicit test label file.
    pub test_labels: Option<PathBuf>,
    /// Keep only the first N training images.
    pub train_limit: Option<usize>,
    /// Keep only the first N test images.
    pub test_limit: Option<usize>,
    /// `--data`: a folder of images, `.npy`, `.npz`, `.csv`, `.parquet` or IDX
    /// file (see [`crate::source`]); when set, the IDX fields above are unused.
    pub data: Option<PathBuf>,
    /// `--test-data`: the test split of `data`, of the same kind.
    pub test_data: Option<PathBuf>,
    /// Without `test_data`: the fraction of `data` held out (default 0.1).
    pub test_fraction: Option<f64>,
    /// Without `test_data`: the seed of the hold-out.
    pub split_seed: u64,
    /// How `data` and `test_data` are read.
    pub source: SourceOptions,
    /// A table's scaler, fitted on the training split (recorded by
    /// [`DataConfig::load_fitted`]).
    pub scaler: Option<Scaler>,
}

/// A training set and a test set with the same image shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training images.
    pub train: ImageSet,
    /// Test images.
    pub test: ImageSet,
}

impl DataConfig {
    /// MNIST from the usual places.
    pub fn mnist() -> DataConfig {
        DataConfig::default()
    }

    /// Fashion-MNIST from the usual places.
    pub fn fashion_mnist() -> DataConfig {
        DataConfig {
            name: DatasetName::FashionMnist,
            ..DataConfig::default()
        }
    }

    /// The explicit path for `file`, if set.
    pub fn explicit(&self, file: DataFile) -> Option<&Path> {
        match file {
            DataFile::TrainImages => self.train_images.as_deref(),
            DataFile::TrainLabels => self.train_labels.as_deref(),
            DataFile::TestImages => self.test_images.as_deref(),
            DataFile::TestLabels => self.test_labels.as_deref(),
        }
    }

    /// Checks the config without touching the file system.
    pub fn validate(&self) -> Result<()> {
        if self.data.is_none() {
            if self.test_data.is_some() || self.test_fraction.is_some() {
                return Err(DataError::InvalidConfig(
                    "test_data and test_fraction go with data (--data PATH)".into(),
                ));
            }
        } else {
            if let Some(f) = [
                &self.data_dir,
                &self.train_images,
                &self.train_labels,
                &self.test_images,
                &self.test_labels,
            ]
            .iter()
            .position(|p| p.is_some())
            {
                let names = [
                    "data_dir",
                    "train_images",
                    "train_labels",
                    "test_images",
                    "test_labels",
                ];
                return Err(DataError::InvalidConfig(format!(
                    "{} is for IDX data sets: it does not go with data (--data PATH)",
                    names[f]
                )));
            }
            if self.test_data.is_some() && self.test_fraction.is_some() {
                return Err(DataError::InvalidConfig(
                    "give test_data or test_fraction, not both".into(),
                ));
            }
            if let Some(f) = self.test_fraction
                && !(0.0..1.0).contains(&f)
            {
                return Err(DataError::InvalidConfig(format!(
                    "test_fraction {f}: expected a value in [0, 1)"
                )));
            }
            if let Some(s) = &self.scaler {
                s.validate()?;
            }
        }
        if self.name == DatasetName::Custom && self.data.is_none() && self.data_dir.is_none() {
            for f in [DataFile::TrainImages, DataFile::TestImages] {
                if self.explicit(f).is_none() {
                    return Err(DataError::InvalidConfig(format!(
                        "a custom data set needs data_dir or an explicit path for the {}",
                        f.description()
                    )));
                }
            }
        }
        if self.train_limit == Some(0) {
            return Err(DataError::InvalidConfig(
                "train_limit must be at least 1".into(),
            ));
        }
        if self.test_limit == Some(0) {
            return Err(DataError::InvalidConfig(
                "test_limit must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The path of `file` (see the module docs for the lookup order), reading
    /// `$AE_DATA_DIR` and the working directory. `Ok(None)` only for a custom
    /// data set's absent labels.
    pub fn resolve(&self, file: DataFile) -> Result<Option<PathBuf>> {
        self.resolve_with(file, &DataSearch::from_env())
    }

    /// [`DataConfig::resolve`] with `$AE_DATA_DIR` and the working directory given
    /// explicitly.
    pub fn resolve_with(&self, file: DataFile, search: &DataSearch) -> Result<Option<PathBuf>> {
        let custom = self.name == DatasetName::Custom;
        let missing = |tried: Vec<PathBuf>| DataError::MissingFile {
            what: file.description().into(),
            dataset: self.name.to_string(),
            tried,
        };
        if let Some(p) = self.explicit(file) {
            return if p.is_file() {
                Ok(Some(p.to_path_buf()))
            } else {
                Err(missing(vec![p.to_path_buf()]))
            };
        }
        let dir = match &self.data_dir {
            Some(d) => d.clone(),
            None if custom => {
                return if file.is_labels() {
                    Ok(None)
                } else {
                    Err(missing(Vec::new()))
                };
            }
            None => search.dataset_dir(self.name)?,
        };
        let tried: Vec<PathBuf> = file.candidate_names().iter().map(|n| dir.join(n)).collect();
        if let Some(p) = tried.iter().find(|p| p.is_file()) {
            return Ok(Some(p.clone()));
        }
        if custom && file.is_labels() {
            return Ok(None);
        }
        Err(missing(tried))
    }

    fn load_set(
        &self,
        images: DataFile,
        labels: DataFile,
        search: &DataSearch,
        limit: Option<usize>,
    ) -> Result<(ImageSet, String)> {
        let images_path =
            self.resolve_with(images, search)?
                .ok_or_else(|| DataError::MissingFile {
                    what: images.description().into(),
                    dataset: self.name.to_string(),
                    tried: Vec::new(),
                })?;
        let images_name = images_path.display().to_string();
        tracing::debug!(file = %images_name, "reading {}", images.description());
        let arr = read_idx(&images_path)?;
        let labels = match self.resolve_with(labels, search)? {
            Some(p) => {
                tracing::debug!(file = %p.display(), "reading {}", labels.description());
                Some((read_idx(&p)?, p.display().to_string()))
            }
            None => None,
        };
        let set = ImageSet::from_idx_owned(
            arr,
            &images_name,
            labels.as_ref().map(|(a, n)| (a, n.as_str())),
            self.name.num_classes(),
        )?;
        Ok((set.take(limit.unwrap_or(usize::MAX)), images_name))
    }

    /// Loads the training and test sets.
    pub fn load(&self) -> Result<Split> {
        self.load_with(&DataSearch::from_env())
    }

    /// Loads the split and records in `self` what a later load must repeat: a
    /// table's scaler fitted on the training split (when none is recorded yet)
    /// and the colour a folder's images were decoded to. Training commands call
    /// this, then save the config.
    pub fn load_fitted(&mut self) -> Result<Split> {
        self.validate()?;
        if self.data.is_some() {
            return crate::source::load_split(self, true);
        }
        self.load()
    }

    /// The whole of `path` (any kind `--data` takes), read the way this
    /// config's data is read: the same options and, for a table, the recorded
    /// scaler, whose columns it must have. A table given to a config of images
    /// (or the reverse) is an error.
    pub fn load_file(&self, path: &Path) -> Result<ImageSet> {
        self.validate()?;
        crate::source::load_file(self, path)
    }

    /// Whether the data is a table (a scaler is recorded, or `data` is a CSV or
    /// Parquet file).
    pub fn is_table(&self) -> bool {
        self.scaler.is_some()
            || self
                .data
                .as_deref()
                .and_then(|p| crate::source::SourceKind::of(p).ok())
                .is_some_and(|k| k.is_table())
    }

    /// [`DataConfig::load`] with `$AE_DATA_DIR` and the working directory given
    /// explicitly.
    pub fn load_with(&self, search: &DataSearch) -> Result<Split> {
        self.validate()?;
        if self.data.is_some() {
            return crate::source::load_split(&mut self.clone(), false);
        }
        let (train, train_file) = self.load_set(
            DataFile::TrainImages,
            DataFile::TrainLabels,
            search,
            self.train_limit,
        )?;
        let (test, test_file) = self.load_set(
            DataFile::TestImages,
            DataFile::TestLabels,
            search,
            self.test_limit,
        )?;
        if train.shape() != test.shape() {
            return Err(DataError::ShapeMismatch {
                train_file,
                train: train.shape(),
                test_file,
                test: test.shape(),
            });
        }
        Ok(Split { train, test })
    }
}

/// Converts a label array to `u8` and checks it against `num_classes` (helper for
/// callers that load labels on their own).
pub fn load_labels(path: &Path, num_classes: Option<usize>) -> Result<Vec<u8>> {
    let name = path.display().to_string();
    let labels = labels_to_u8(&read_idx(path)?, &name)?;
    if let Some(k) = num_classes {
        check_label_range(&labels, &name, k)?;
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Layout;

    #[test]
    fn config_serde_defaults() {
        let c: DataConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, DataConfig::default());
        assert_eq!(c.name, DatasetName::Mnist);
        let c: DataConfig =
            serde_json::from_str(r#"{"name":"fashion-mnist","train_limit":100}"#).unwrap();
        assert_eq!(c.name, DatasetName::FashionMnist);
        assert_eq!(c.train_limit, Some(100));
        assert!(serde_json::from_str::<DataConfig>(r#"{"nmae":"mnist"}"#).is_err());
        let l: Layout = serde_json::from_str("\"image\"").unwrap();
        assert_eq!(l, Layout::Image);
    }

    #[test]
    fn validate_rules() {
        assert!(DataConfig::default().validate().is_ok());
        let custom = DataConfig {
            name: DatasetName::Custom,
            ..DataConfig::default()
        };
        assert!(custom.validate().is_err());
        let custom = DataConfig {
            name: DatasetName::Custom,
            train_images: Some("a".into()),
            test_images: Some("b".into()),
            ..DataConfig::default()
        };
        assert!(custom.validate().is_ok());
        let zero = DataConfig {
            train_limit: Some(0),
            ..DataConfig::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir_all(env.join("mnist")).unwrap();
        let in_env = env.join("mnist").join("train-images-idx3-ubyte.gz");
        std::fs::write(&in_env, b"x").unwrap();
        // A working directory below a data/mnist/ holding all four files.
        let tree = dir.path().join("tree");
        for f in DataFile::ALL {
            let p = tree.join("data/mnist").join(f.standard_name());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p.with_extension("gz"), b"x").unwrap();
        }
        let cwd = tree.join("sub/dir");
        std::fs::create_dir_all(&cwd).unwrap();
        let with_env = DataSearch {
            env_dir: Some(env.clone()),
            start: cwd.clone(),
        };
        let no_env = DataSearch {
            env_dir: None,
            start: cwd.clone(),
        };
        let c = DataConfig::default();
        // env dir wins over the working directory's data/
        assert_eq!(
            c.resolve_with(DataFile::TrainImages, &with_env).unwrap(),
            Some(in_env.clone())
        );
        // no fall-through from the env dir to data/ above the working directory
        let e = c.resolve_with(DataFile::TestImages, &with_env).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("env"), "{msg}");
        // no env: data/mnist/ above the working directory
        assert_eq!(
            c.resolve_with(DataFile::TrainLabels, &no_env).unwrap(),
            Some(tree.join("data/mnist/train-labels-idx1-ubyte.gz"))
        );
        // none found: the typed error
        let lost = DataSearch {
            env_dir: None,
            start: dir.path().join("env"),
        };
        assert!(matches!(
            c.resolve_with(DataFile::TrainImages, &lost),
            Err(DataError::DataDirNotFound { .. })
        ));
        // data_dir wins over env, uncompressed preferred over .gz
        let dd = dir.path().join("dd");
        std::fs::create_dir_all(&dd).unwrap();
        std::fs::write(dd.join("train-images-idx3-ubyte"), b"x").unwrap();
        std::fs::write(dd.join("train-images-idx3-ubyte.gz"), b"x").unwrap();
        let c = DataConfig {
            data_dir: Some(dd.clone()),
            ..DataConfig::default()
        };
        assert_eq!(
            c.resolve_with(DataFile::TrainImages, &with_env).unwrap(),
            Some(dd.join("train-images-idx3-ubyte"))
        );
        // explicit path wins, and must exist
        let c = DataConfig {
            data_dir: Some(dd.clone()),
            train_images: Some(in_env.clone()),
            test_images: Some(dir.path().join("nope")),
            ..DataConfig::default()
        };
        assert_eq!(
            c.resolve_with(DataFile::TrainImages, &lost).unwrap(),
            Some(in_env)
        );
        assert!(matches!(
            c.resolve_with(DataFile::TestImages, &lost),
            Err(DataError::MissingFile { .. })
        ));
        // custom: labels optional
        let c = DataConfig {
            name: DatasetName::Custom,
            data_dir: Some(dd),
            ..DataConfig::default()
        };
        assert_eq!(c.resolve_with(DataFile::TrainLabels, &lost).unwrap(), None);
    }
}
