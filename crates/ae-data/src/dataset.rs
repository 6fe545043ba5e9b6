//! Image sets in [0,1] built from IDX files, batch tensors, and the `DataConfig` that finds and loads a data set.
//!
//! # Shapes
//! Image files may be 2-d `[N, D]` (read as C=1, H=1, W=D), 3-d `[N, H, W]` (C=1)
//! or 4-d `[N, C, H, W]` (**channel-first**). Other ranks, or images of zero
//! pixels, are an error. N = 0 (an empty set) is allowed.
//!
//! # Scaling to [0,1]
//! * `u8`: `v / 255`; `i8`: `(v + 128) / 255`.
//! * `i16`, `i32`: `(v - min) / (max - min)` with min and max over the whole file
//!   (all values equal → 0).
//! * `f32`, `f64`: kept as they are when every value is in [0,1], else min-max
//!   scaled as above. NaN or ±∞ is an error naming the file and element.
//!
//! # Finding the files
//! For each of the four files (train/test images/labels), in order:
//! 1. the explicit path in the config (`train_images`, ...), used as given;
//! 2. else `data_dir` (the directory holding the files themselves);
//! 3. else `$AE_DATA_DIR/<name>/` (e.g. `$AE_DATA_DIR/mnist/`; files placed
//!    directly in `$AE_DATA_DIR` are *not* looked at);
//! 4. else `<repo>/data/<name>/` (the repo ships `data/mnist/`).
//!
//! Only the first applicable directory is searched (no silent fall-through to
//! other data). In a directory the standard names `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`
//! are tried as given, then with `.gz`. A missing file is an error listing every
//! path tried.
//!
//! A `custom` data set has no default directory: it needs `data_dir`, or
//! explicit `train_images` and `test_images`. Its labels are optional (an
//! explicit label path must exist; a label file missing from `data_dir` just means
//! no labels) and are only checked to fit in `u8`. MNIST and Fashion-MNIST need
//! all four files and labels in 0..10.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::idx::{IdxArray, IdxData, check_label_range, check_labels, labels_to_u8, read_idx};
use crate::scaler::Scaler;
use crate::source::SourceOptions;

/// Tensor layout of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `[B, C*H*W]` (dense models).
    #[default]
    Flat,
    /// `[B, C, H, W]` (convolutional models).
    Image,
}

impl Layout {
    /// The tensor shape of `batch` images of `[c, h, w]`.
    pub fn shape(self, batch: usize, c: usize, h: usize, w: usize) -> Vec<usize> {
        match self {
            Layout::Flat => vec![batch, c * h * w],
            Layout::Image => vec![batch, c, h, w],
        }
    }
}

/// N images as `f32` in [0,1], row-major `[N, C, H, W]`, with optional `u8` labels.
///
/// A table's rows are held as `1 x 1 x D` images with their column names
/// ([`ImageSet::is_table`]); their values are standardised (any real number,
/// see [`crate::scaler`]), not in [0, 1].
#[derive(Clone, PartialEq)]
pub struct ImageSet {
    images: Vec<f32>,
    labels: Option<Vec<u8>>,
    channels: usize,
    height: usize,
    width: usize,
    columns: Option<Arc<[String]>>,
}

impl fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSet")
            .field("len", &self.len())
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("labels", &self.labels.is_some())
            .field("table", &self.columns.is_some())
            .finish()
    }
}

/// `[C, H, W]` of an image file's dims (see the module docs).
fn image_shape(dims: &[usize], file: &str) -> Result<[usize; 3]> {
    let shape = match *dims {
        [_, d] => [1, 1, d],
        [_, h, w] => [1, h, w],
        [_, c, h, w] => [c, h, w],
        _ => [0, 0, 0],
    };
    let pixels = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(0);
    if pixels == 0 {
        return Err(DataError::ImageShape {
            file: file.into(),
            dims: dims.to_vec(),
        });
    }
    Ok(shape)
}

fn min_max_scale<T: Copy + Into<f64>>(v: &[T]) -> Vec<f32> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in v {
        let x: f64 = x.into();
        lo = lo.min(x);
        hi = hi.max(x);
    }
    // Halving is exact, and keeps `hi - lo` finite for any finite inputs.
    let (lo, range) = (lo / 2.0, hi / 2.0 - lo / 2.0);
    if range.is_nan() || range <= 0.0 {
        return vec![0.0; v.len()];
    }
    v.iter()
        .map(|&x| (((x.into() / 2.0 - lo) / range) as f32).clamp(0.0, 1.0))
        .collect()
}

fn check_finite<T: Copy + Into<f64>>(v: &[T], file: &str) -> Result<()> {
    match v.iter().position(|&x| !x.into().is_finite()) {
        Some(index) => Err(DataError::NonFinite {
            file: file.into(),
            index,
            value: v.get(index).map_or(f64::NAN, |&x| x.into()),
        }),
        None => Ok(()),
    }
}

/// Converts IDX elements to [0,1] (see the module docs).
fn to_unit(data: &IdxData, file: &str) -> Result<Vec<f32>> {
    Ok(match data {
        IdxData::U8(v) => v.iter().map(|&x| f32::from(x) / 255.0).collect(),
        IdxData::I8(v) => v.iter().map(|&x| (f32::from(x) + 128.0) / 255.0).collect(),
        IdxData::I16(v) => min_max_scale(v),
        IdxData::I32(v) => min_max_scale(v),
        IdxData::F32(v) => {
            check_finite(v, file)?;
            if v.iter().all(|x| (0.0..=1.0).contains(x)) {
                v.clone()
            } else {
                min_max_scale(v)
            }
        }
        IdxData::F64(v) => {
            check_finite(v, file)?;
            if v.iter().all(|x| (0.0..=1.0).contains(x)) {
                v.iter().map(|&x| x as f32).collect()
            } else {
                min_max_scale(v)
            }
        }
    })
}

impl ImageSet {
    /// Builds a set from an image IDX array and optional labels `(array, file name)`;
    /// labels are checked against the images and, when given, `num_classes`.
    pub fn from_idx(
        images: &IdxArray,
        images_file: &str,
        labels: Option<(&IdxArray, &str)>,
        num_classes: Option<usize>,
    ) -> Result<ImageSet> {
        let [channels, height, width] = image_shape(images.dims(), images_file)?;
        let labels = match labels {
            Some((arr, file)) => Some(check_labels(arr, file, images, images_file, num_classes)?),
            None => None,
        };
        let pixels = to_unit(images.data(), images_file)?;
        Ok(ImageSet {
            images: pixels,
            labels,
            channels,
            height,
            width,
            columns: None,
        })
    }

    /// Builds a set from pixels (`[N, C, H, W]` row-major, every value in [0,1])
    /// and optional labels (one per image).
    pub fn from_parts(
        images: Vec<f32>,
        labels: Option<Vec<u8>>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<ImageSet> {
        let dim = channels
            .checked_mul(height)
            .and_then(|d| d.checked_mul(width))
            .filter(|&d| d > 0)
            .ok_or_else(|| {
                DataError::InvalidImageSet(format!(
                    "image size [{channels}, {height}, {width}] must be non-zero and fit in usize"
                ))
            })?;
        if !images.len().is_multiple_of(dim) {
            return Err(DataError::InvalidImageSet(format!(
                "{} pixels is not a multiple of the image size {dim}",
                images.len()
            )));
        }
        if let Some(i) = images.iter().position(|x| !(0.0..=1.0).contains(x)) {
            return Err(DataError::InvalidImageSet(format!(
                "pixel #{i} is {}, expected a value in [0, 1]",
                images[i]
            )));
        }
        let n = images.len() / dim;
        if let Some(l) = &labels
            && l.len() != n
        {
            return Err(DataError::InvalidImageSet(format!(
                "{} labels for {n} images",
                l.len()
            )));
        }
        Ok(ImageSet {
            images,
            labels,
            channels,
            height,
            width,
            columns: None,
        })
    }

    /// Builds a table's set: `values` row-major with `columns.len()` finite values
    /// per row (any range: scaled rows, see [`crate::scaler`]), optional labels.
    pub fn from_table(
        values: Vec<f32>,
        labels: Option<Vec<u8>>,
        columns: Vec<String>,
    ) -> Result<ImageSet> {
        let d = columns.len();
        if d == 0 || !values.len().is_multiple_of(d) {
            return Err(DataError::InvalidImageSet(format!(
                "{} values do not make rows of {d} columns",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(DataError::InvalidImageSet(format!(
                "value #{i} (row {}, column {:?}) is {}",
                i / d,
                columns[i % d],
                values[i]
            )));
        }
        if let Some(l) = &labels
            && l.len() != values.len() / d
        {
            return Err(DataError::InvalidImageSet(format!(
                "{} labels for {} rows",
                l.len(),
                values.len() / d
            )));
        }
        Ok(ImageSet {
            images: values,
            labels,
            channels: 1,
            height: 1,
            width: d,
            columns: Some(columns.into()),
        })
    }

    /// Whether the set holds the rows of a table (see [`ImageSet::from_table`]).
    pub fn is_table(&self) -> bool {
        self.columns.is_some()
    }

    /// A table's feature column names.
    pub fn columns(&self) -> Option<&[String]> {
        self.columns.as_deref()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len() / self.dim()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Channels per image.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Image height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Values per image: C*H*W.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i` (`C*H*W` values), `None` when out of range.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let d = self.dim();
        self.images.get(i.checked_mul(d)?..(i + 1).checked_mul(d)?)
    }

    /// All pixels, `[N, C, H, W]` row-major.
    pub fn pixels(&self) -> &[f32] {
        &self.images
    }

    /// The labels, if any.
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// The label of image `i`, if there are labels and `i` is in range.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.as_ref()?.get(i).copied()
    }

    /// `max label + 1` (`Some(0)` for an empty labelled set), `None` without labels.
    pub fn num_classes(&self) -> Option<usize> {
        let l = self.labels.as_ref()?;
        Some(l.iter().max().map_or(0, |&m| usize::from(m) + 1))
    }

    fn check_indices(&self, indices: &[usize]) -> Result<()> {
        let len = self.len();
        match indices.iter().find(|&&i| i >= len) {
            Some(&index) => Err(DataError::IndexOutOfRange { index, len }),
            None => Ok(()),
        }
    }

    /// A new set with the images at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<ImageSet> {
        let mut images = Vec::new();
        self.gather(indices, &mut images)?;
        let labels = self
            .labels
            .as_ref()
            .map(|l| indices.iter().map(|&i| l[i]).collect());
        Ok(ImageSet {
            images,
            labels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            columns: self.columns.clone(),
        })
    }

    /// The first `n` images (all of them when `n >= len`).
    pub fn take(mut self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        self.images.truncate(n * self.dim());
        if let Some(l) = &mut self.labels {
            l.truncate(n);
        }
        self
    }

    /// The images whose label satisfies `keep` (order kept); an error without labels.
    pub fn filter_labels(&self, keep: impl Fn(u8) -> bool) -> Result<ImageSet> {
        let labels = self.labels.as_ref().ok_or(DataError::NoLabels)?;
        let indices: Vec<usize> = labels
            .iter()
            .enumerate()
            .filter(|&(_, &l)| keep(l))
            .map(|(i, _)| i)
            .collect();
        self.subset(&indices)
    }

    /// The images of class `class`.
    pub fn with_class(&self, class: u8) -> Result<ImageSet> {
        self.filter_labels(|l| l == class)
    }

    /// The images of every class but `class` (e.g. for anomaly detection).
    pub fn without_class(&self, class: u8) -> Result<ImageSet> {
        self.filter_labels(|l| l != class)
    }

    /// Replaces `out` with the pixels of the images at `indices` (`[B, C*H*W]` row-major).
    pub fn gather(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        self.check_indices(indices)?;
        let d = self.dim();
        out.clear();
        out.reserve(indices.len() * d);
        for &i in indices {
            out.extend_from_slice(&self.images[i * d..(i + 1) * d]);
        }
        Ok(())
    }

    /// The labels of the images at `indices`; an error without labels.
    pub fn batch_labels(&self, indices: &[usize]) -> Result<Vec<u8>> {
        let labels = self.labels.as_ref().ok_or(DataError::NoLabels)?;
        self.check_indices(indices)?;
        Ok(indices.iter().map(|&i| labels[i]).collect())
    }

    /// An `f32` tensor of the images at `indices`: `[B, C*H*W]` for [`Layout::Flat`],
    /// `[B, C, H, W]` for [`Layout::Image`].
    pub fn batch_tensor(
        &self,
        indices: &[usize],
        layout: Layout,
        device: &Device,
    ) -> Result<Tensor> {
        let mut buf = Vec::new();
        self.gather(indices, &mut buf)?;
        let shape = layout.shape(indices.len(), self.channels, self.height, self.width);
        Ok(Tensor::from_vec(buf, shape, device)?)
    }

    /// The whole set as one `f32` tensor (see [`ImageSet::batch_tensor`] for shapes).
    pub fn to_tensor(&self, layout: Layout, device: &Device) -> Result<Tensor> {
        let shape = layout.shape(self.len(), self.channels, self.height, self.width);
        Ok(Tensor::from_slice(&self.images, shape, device)?)
    }
}

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

/// The environment variable naming the root of the data directories.
pub const DATA_DIR_ENV: &str = "AE_DATA_DIR";

/// `<repo>/data`, where the repository ships `data/mnist/`.
pub fn repo_data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data"))
}

/// Which data set to load and where its files are (see the module docs for the
/// lookup order). `Default` is MNIST from the usual places.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub name: DatasetName,
    /// Directory holding the four files (overrides `$AE_DATA_DIR` and the repo).
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
    /// `$AE_DATA_DIR`. `Ok(None)` only for a custom data set's absent labels.
    pub fn resolve(&self, file: DataFile) -> Result<Option<PathBuf>> {
        let env = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        self.resolve_with(file, env.as_deref())
    }

    /// [`DataConfig::resolve`] with the value of `$AE_DATA_DIR` given explicitly.
    pub fn resolve_with(&self, file: DataFile, env_dir: Option<&Path>) -> Result<Option<PathBuf>> {
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
        let dir = match (&self.data_dir, env_dir) {
            (Some(d), _) => d.clone(),
            (None, _) if custom => {
                return if file.is_labels() {
                    Ok(None)
                } else {
                    Err(missing(Vec::new()))
                };
            }
            (None, Some(env)) => env.join(self.name.as_str()),
            (None, None) => repo_data_dir().join(self.name.as_str()),
        };
        let name = file.standard_name();
        let tried = vec![dir.join(name), dir.join(format!("{name}.gz"))];
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
        env_dir: Option<&Path>,
        limit: Option<usize>,
    ) -> Result<(ImageSet, String)> {
        let images_path =
            self.resolve_with(images, env_dir)?
                .ok_or_else(|| DataError::MissingFile {
                    what: images.description().into(),
                    dataset: self.name.to_string(),
                    tried: Vec::new(),
                })?;
        let images_name = images_path.display().to_string();
        tracing::debug!(file = %images_name, "reading {}", images.description());
        let arr = read_idx(&images_path)?;
        let labels = match self.resolve_with(labels, env_dir)? {
            Some(p) => {
                tracing::debug!(file = %p.display(), "reading {}", labels.description());
                Some((read_idx(&p)?, p.display().to_string()))
            }
            None => None,
        };
        let set = ImageSet::from_idx(
            &arr,
            &images_name,
            labels.as_ref().map(|(a, n)| (a, n.as_str())),
            self.name.num_classes(),
        )?;
        Ok((set.take(limit.unwrap_or(usize::MAX)), images_name))
    }

    /// Loads the training and test sets.
    pub fn load(&self) -> Result<Split> {
        let env = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        self.load_with(env.as_deref())
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

    /// [`DataConfig::load`] with the value of `$AE_DATA_DIR` given explicitly.
    pub fn load_with(&self, env_dir: Option<&Path>) -> Result<Split> {
        self.validate()?;
        if self.data.is_some() {
            return crate::source::load_split(&mut self.clone(), false);
        }
        let (train, train_file) = self.load_set(
            DataFile::TrainImages,
            DataFile::TrainLabels,
            env_dir,
            self.train_limit,
        )?;
        let (test, test_file) = self.load_set(
            DataFile::TestImages,
            DataFile::TestLabels,
            env_dir,
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

    fn arr(dims: Vec<usize>, data: IdxData) -> IdxArray {
        IdxArray::new(dims, data).unwrap()
    }

    fn small() -> ImageSet {
        // 4 images of 1x1x2, labels 0..4
        let px: Vec<f32> = (0..8).map(|i| i as f32 / 8.0).collect();
        ImageSet::from_parts(px, Some(vec![0, 1, 2, 1]), 1, 1, 2).unwrap()
    }

    #[test]
    fn shapes_from_dims() {
        let s = ImageSet::from_idx(&arr(vec![2, 6], IdxData::U8(vec![0; 12])), "a", None, None)
            .unwrap();
        assert_eq!(s.shape(), [1, 1, 6]);
        let s = ImageSet::from_idx(
            &arr(vec![2, 3, 2, 2], IdxData::U8(vec![0; 24])),
            "b",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.shape(), [3, 2, 2]);
        assert_eq!(s.len(), 2);
        let e = ImageSet::from_idx(&arr(vec![12], IdxData::U8(vec![0; 12])), "c", None, None)
            .unwrap_err();
        assert!(matches!(e, DataError::ImageShape { .. }), "{e}");
        let e = ImageSet::from_idx(&arr(vec![2, 0, 3], IdxData::U8(vec![])), "d", None, None)
            .unwrap_err();
        assert!(matches!(e, DataError::ImageShape { .. }), "{e}");
        let s =
            ImageSet::from_idx(&arr(vec![0, 2, 3], IdxData::U8(vec![])), "e", None, None).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn scaling_rules() {
        let s = ImageSet::from_idx(
            &arr(vec![1, 3], IdxData::U8(vec![0, 51, 255])),
            "u",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.pixels(), &[0.0, 0.2, 1.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 2], IdxData::I8(vec![-128, 127])),
            "i",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.pixels(), &[0.0, 1.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 3], IdxData::I32(vec![-10, 0, 10])),
            "i32",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.pixels(), &[0.0, 0.5, 1.0]);
        let s = ImageSet::from_idx(&arr(vec![1, 2], IdxData::I16(vec![7, 7])), "c", None, None)
            .unwrap();
        assert_eq!(s.pixels(), &[0.0, 0.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 2], IdxData::F32(vec![0.25, 1.0])),
            "f",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.pixels(), &[0.25, 1.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 3], IdxData::F64(vec![-1.0, 0.0, 3.0])),
            "g",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.pixels(), &[0.0, 0.25, 1.0]);
        let e = ImageSet::from_idx(
            &arr(vec![1, 2], IdxData::F32(vec![0.5, f32::NAN])),
            "nan.idx",
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, DataError::NonFinite { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("nan.idx"));
        let e = ImageSet::from_idx(
            &arr(vec![1, 1], IdxData::F64(vec![f64::INFINITY])),
            "inf.idx",
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, DataError::NonFinite { .. }), "{e}");
    }

    #[test]
    fn from_parts_validates() {
        assert!(ImageSet::from_parts(vec![0.0; 5], None, 1, 1, 2).is_err());
        assert!(ImageSet::from_parts(vec![0.0; 4], Some(vec![1]), 1, 1, 2).is_err());
        assert!(ImageSet::from_parts(vec![0.0, 2.0], None, 1, 1, 2).is_err());
        assert!(ImageSet::from_parts(vec![0.0, f32::NAN], None, 1, 1, 2).is_err());
        assert!(ImageSet::from_parts(vec![], None, 0, 1, 2).is_err());
        assert!(ImageSet::from_parts(vec![], None, usize::MAX, 2, 2).is_err());
    }

    #[test]
    fn subsets_and_filters() {
        let s = small();
        assert_eq!(s.num_classes(), Some(3));
        assert_eq!(s.image(1), Some(&[0.25, 0.375][..]));
        assert_eq!(s.image(4), None);
        assert_eq!(s.image(usize::MAX), None);
        let sub = s.subset(&[3, 0, 3]).unwrap();
        assert_eq!(sub.labels(), Some(&[1, 0, 1][..]));
        assert_eq!(sub.image(0), s.image(3));
        assert!(matches!(
            s.subset(&[4]),
            Err(DataError::IndexOutOfRange { index: 4, len: 4 })
        ));
        let ones = s.with_class(1).unwrap();
        assert_eq!(ones.len(), 2);
        assert_eq!(ones.image(1), s.image(3));
        assert_eq!(s.without_class(1).unwrap().labels(), Some(&[0, 2][..]));
        let t = s.clone().take(2);
        assert_eq!(t.len(), 2);
        assert_eq!(t.labels(), Some(&[0, 1][..]));
        assert_eq!(s.clone().take(100).len(), 4);
        let unlabelled = ImageSet::from_parts(vec![0.0; 2], None, 1, 1, 1).unwrap();
        assert!(matches!(unlabelled.with_class(0), Err(DataError::NoLabels)));
        assert_eq!(s.batch_labels(&[2, 1]).unwrap(), vec![2, 1]);
    }

    #[test]
    fn tensors_have_the_layout_shapes() {
        let s = small();
        let t = s.batch_tensor(&[2, 0], Layout::Flat, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 2]);
        let v: Vec<Vec<f32>> = t.to_vec2().unwrap();
        assert_eq!(v, vec![vec![0.5, 0.625], vec![0.0, 0.125]]);
        let t = s.batch_tensor(&[1], Layout::Image, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 1, 1, 2]);
        let t = s.to_tensor(Layout::Image, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[4, 1, 1, 2]);
        assert!(s.batch_tensor(&[9], Layout::Flat, &Device::Cpu).is_err());
        let mut buf = vec![9.0];
        s.gather(&[], &mut buf).unwrap();
        assert!(buf.is_empty());
    }

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
    }

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
        let c = DataConfig::default();
        // env dir wins over the repo
        assert_eq!(
            c.resolve_with(DataFile::TrainImages, Some(&env)).unwrap(),
            Some(in_env.clone())
        );
        // no fall-through from the env dir to the repo
        let e = c
            .resolve_with(DataFile::TestImages, Some(&env))
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("env"), "{msg}");
        // no env: the repo dir
        let repo = c
            .resolve_with(DataFile::TrainLabels, None)
            .unwrap()
            .unwrap();
        assert!(
            repo.ends_with("data/mnist/train-labels-idx1-ubyte.gz"),
            "{repo:?}"
        );
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
            c.resolve_with(DataFile::TrainImages, Some(&env)).unwrap(),
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
            c.resolve_with(DataFile::TrainImages, None).unwrap(),
            Some(in_env)
        );
        assert!(matches!(
            c.resolve_with(DataFile::TestImages, None),
            Err(DataError::MissingFile { .. })
        ));
        // custom: labels optional
        let c = DataConfig {
            name: DatasetName::Custom,
            data_dir: Some(dd),
            ..DataConfig::default()
        };
        assert_eq!(c.resolve_with(DataFile::TrainLabels, None).unwrap(), None);
    }
}
