//! The registry of known data sets ([`DatasetName`]) and the four files each has ([`DataFile`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The known data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST handwritten digits (28x28, 10 classes).
    #[default]
    Mnist,
    /// Fashion-MNIST (28x28, 10 classes).
    FashionMnist,
    /// Any IDX files given by path or `data_dir`.
    Custom,
}

impl DatasetName {
    /// The data sets with a default folder (`<data>/<name>/`) and a download.
    pub const KNOWN: [DatasetName; 2] = [DatasetName::Mnist, DatasetName::FashionMnist];

    /// The kebab-case name, also the directory name under `data/` and `$AE_DATA_DIR`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Custom => "custom",
        }
    }

    /// The number of classes, when known.
    pub fn num_classes(self) -> Option<usize> {
        match self {
            DatasetName::Mnist | DatasetName::FashionMnist => Some(10),
            DatasetName::Custom => None,
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    /// Accepts `mnist`, `fashion-mnist` (also `fashion_mnist`, `fashionmnist`) and
    /// `custom`, case-insensitively.
    fn from_str(s: &str) -> Result<DatasetName> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetName::FashionMnist),
            "custom" => Ok(DatasetName::Custom),
            _ => Err(DataError::UnknownDataset(s.to_string())),
        }
    }
}

/// One of the four files of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataFile {
    /// Training images.
    TrainImages,
    /// Training labels.
    TrainLabels,
    /// Test images.
    TestImages,
    /// Test labels.
    TestLabels,
}

impl DataFile {
    /// All four, in load order.
    pub const ALL: [DataFile; 4] = [
        DataFile::TrainImages,
        DataFile::TrainLabels,
        DataFile::TestImages,
        DataFile::TestLabels,
    ];

    /// The standard (uncompressed) file name.
    pub fn standard_name(self) -> &'static str {
        match self {
            DataFile::TrainImages => "train-images-idx3-ubyte",
            DataFile::TrainLabels => "train-labels-idx1-ubyte",
            DataFile::TestImages => "t10k-images-idx3-ubyte",
            DataFile::TestLabels => "t10k-labels-idx1-ubyte",
        }
    }

    /// The names tried in a folder, in order: the standard name, then with `.gz`.
    pub fn candidate_names(self) -> [String; 2] {
        let name = self.standard_name();
        [name.to_string(), format!("{name}.gz")]
    }

    /// Human description ("train images", ...).
    pub fn description(self) -> &'static str {
        match self {
            DataFile::TrainImages => "train images",
            DataFile::TrainLabels => "train labels",
            DataFile::TestImages => "test images",
            DataFile::TestLabels => "test labels",
        }
    }

    /// Whether this is a label file.
    pub fn is_labels(self) -> bool {
        matches!(self, DataFile::TrainLabels | DataFile::TestLabels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names() {
        for n in [
            DatasetName::Mnist,
            DatasetName::FashionMnist,
            DatasetName::Custom,
        ] {
            assert_eq!(n.to_string().parse::<DatasetName>().unwrap(), n);
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, format!("\"{n}\""));
        }
        assert_eq!(
            "Fashion_MNIST".parse::<DatasetName>().unwrap(),
            DatasetName::FashionMnist
        );
        assert!("cifar".parse::<DatasetName>().is_err());
        assert!(!DatasetName::KNOWN.contains(&DatasetName::Custom));
    }

    #[test]
    fn file_names() {
        assert_eq!(
            DataFile::TestLabels.candidate_names(),
            [
                "t10k-labels-idx1-ubyte".to_string(),
                "t10k-labels-idx1-ubyte.gz".to_string()
            ]
        );
        let labels: Vec<_> = DataFile::ALL.iter().filter(|f| f.is_labels()).collect();
        assert_eq!(labels, [&DataFile::TrainLabels, &DataFile::TestLabels]);
    }
}
