//! What `--data PATH` is (a folder of images, `.npy`, `.npz`, `.csv`, `.parquet` or
//! IDX), the options that say how to read it, and loading it as a train/test [`Split`].
//!
//! The kind is chosen by what the path is: a directory is a folder of images
//! ([`crate::folder`]); a file by its extension (`.npy`, `.npz`, `.csv`,
//! `.parquet`/`.pq`; anything else is read as IDX, gzipped or not). The file
//! must be a regular file (not a FIFO or a device).
//!
//! Without a test file, a seeded fraction of the data is held out
//! ([`crate::split`]); the config records the seed and fraction, so every later
//! command holds out the same rows. Tables are scaled by a [`Scaler`] fitted on
//! the training split ([`crate::scaler`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dataset::{DataConfig, ImageSet, Split};
use crate::error::{DataError, Result};
use crate::folder::Listing;
use crate::scaler::Scaler;
use crate::split::{DEFAULT_TEST_FRACTION, holdout};

/// The kinds of data `--data` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A folder of images (class subfolders or flat).
    Folder,
    /// A NumPy `.npy` array.
    Npy,
    /// A NumPy `.npz` archive.
    Npz,
    /// A CSV table with a header row.
    Csv,
    /// A Parquet table.
    Parquet,
    /// An IDX file (gzipped or not).
    Idx,
}

impl SourceKind {
    /// The kind of `path`: a directory is a folder, a regular file goes by its
    /// extension. A missing path or something that is neither is an error.
    pub fn of(path: &Path) -> Result<SourceKind> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::Source {
            path: path.into(),
            problem: format!("cannot read it: {e}"),
        })?;
        if meta.is_dir() {
            return Ok(SourceKind::Folder);
        }
        if !meta.is_file() {
            return Err(DataError::Source {
                path: path.into(),
                problem: "not a regular file or a folder (a FIFO, socket or device?)".into(),
            });
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "npy" => SourceKind::Npy,
            "npz" => SourceKind::Npz,
            "csv" => SourceKind::Csv,
            "parquet" | "pq" => SourceKind::Parquet,
            _ => SourceKind::Idx,
        })
    }

    /// Whether this kind can only hold a table (CSV, Parquet).
    pub fn is_table(self) -> bool {
        matches!(self, SourceKind::Csv | SourceKind::Parquet)
    }
}

/// `--image-size HxW`: every image of a folder is resized to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
}

/// The largest side `--image-size` accepts.
pub const MAX_SIDE: u32 = 4096;

impl FromStr for ImageSize {
    type Err = DataError;

    /// `HxW` (e.g. `64x64`), each side in 1..=4096.
    fn from_str(s: &str) -> Result<ImageSize> {
        let bad = || {
            DataError::InvalidConfig(format!(
                "image size {s:?}: expected HxW, e.g. 64x64, each side in 1..={MAX_SIDE}"
            ))
        };
        let (h, w) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let side = |v: &str| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|&v| (1..=MAX_SIDE).contains(&v))
        };
        Ok(ImageSize {
            height: side(h).ok_or_else(bad)?,
            width: side(w).ok_or_else(bad)?,
        })
    }
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.height, self.width)
    }
}

/// How an image is fitted to `--image-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crop {
    /// Resize the whole image (the aspect ratio may change).
    #[default]
    None,
    /// Cut the largest centred region of the target's aspect ratio, then resize.
    Center,
}

/// The colour of images read from a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Color {
    /// Gray when every image is gray, else RGB.
    #[default]
    Auto,
    /// 3 channels.
    Rgb,
    /// 1 channel (luma).
    Gray,
}

/// How float arrays are brought to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Values must already be in [0, 1] (outside is an error).
    #[default]
    None,
    /// `(v - min) / (max - min)` over the whole array.
    Minmax,
}

macro_rules! parse_enum {
    ($t:ty, $what:literal, $($name:literal => $v:expr),+) => {
        impl FromStr for $t {
            type Err = DataError;
            fn from_str(s: &str) -> Result<$t> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok($v),)+
                    _ => Err(DataError::InvalidConfig(format!(
                        concat!($what, " {:?}: expected one of ", $($name, " "),+), s
                    ))),
                }
            }
        }
    };
}
parse_enum!(Crop, "crop", "none" => Crop::None, "center" => Crop::Center);
parse_enum!(Color, "color", "auto" => Color::Auto, "rgb" => Color::Rgb, "gray" => Color::Gray);
parse_enum!(Normalize, "normalize", "none" => Normalize::None, "minmax" => Normalize::Minmax);

/// How to read `--data` (and `--test-data`); recorded in `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceOptions {
    /// Folders: resize every image to this (Triangle filter, i.e. bilinear).
    pub image_size: Option<ImageSize>,
    /// Folders: how images are fitted to `image_size`.
    pub crop: Crop,
    /// Folders: the colour of the images (after loading, the resolved `rgb` or `gray`).
    pub color: Color,
    /// `.npy`/`.npz`: 4-d arrays are `[N, C, H, W]` rather than numpy's `[N, H, W, C]`.
    pub channels_first: bool,
    /// `.npy`/`.npz`: how float values are brought to [0, 1].
    pub normalize: Normalize,
    /// `.npz`: the member holding the data (default: the only one, or `x`).
    pub array: Option<String>,
    /// `.npz`: the member holding integer labels.
    pub label_array: Option<String>,
    /// Tables: the column holding the labels (the others are features).
    pub label_column: Option<String>,
    /// Folders: skip (with a warning) the images the decoder rejects.
    pub skip_bad_images: bool,
}

/// A table before scaling: `rows x columns` finite values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTable {
    /// The values, row-major.
    pub values: Vec<f32>,
    /// The feature column names.
    pub columns: Vec<String>,
    /// One label per row (from the label column or array), if any.
    pub labels: Option<Vec<u8>>,
}

impl RawTable {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    fn subset(&self, idx: &[usize]) -> RawTable {
        let d = self.columns.len();
        let mut values = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            values.extend_from_slice(&self.values[i * d..(i + 1) * d]);
        }
        RawTable {
            values,
            columns: self.columns.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
        }
    }
}

/// What a file or folder holds, read as far as the split needs.
enum Opened {
    /// A folder: listed, decoded per split.
    Folder(Listing),
    /// Images read whole.
    Images(ImageSet),
    /// A table read whole (not scaled).
    Table(RawTable),
}

/// A split's data before tables are scaled.
enum Part {
    Images(ImageSet),
    Table(RawTable),
}

impl Opened {
    fn open(path: &Path, opts: &SourceOptions) -> Result<Opened> {
        Ok(match SourceKind::of(path)? {
            SourceKind::Folder => Opened::Folder(crate::folder::list(path)?),
            SourceKind::Npy | SourceKind::Npz => match crate::npy::read(path, opts)? {
                crate::npy::NpyData::Images(s) => Opened::Images(s),
                crate::npy::NpyData::Table(t) => Opened::Table(t),
            },
            SourceKind::Csv => Opened::Table(crate::table::read_csv(path, opts)?),
            SourceKind::Parquet => Opened::Table(crate::table::read_parquet(path, opts)?),
            SourceKind::Idx => {
                let arr = crate::idx::read_idx(path)?;
                let name = path.display().to_string();
                Opened::Images(ImageSet::from_idx_owned(arr, &name, None, None)?)
            }
        })
    }

    /// The items at `train` and at `test`; a folder decodes both in one pass,
    /// so that its sizes and colour are checked across both splits.
    fn select_pair(
        &self,
        train: &[usize],
        test: &[usize],
        opts: &SourceOptions,
    ) -> Result<(Part, Part)> {
        let Opened::Folder(l) = self else {
            return Ok((
                self.select(Some(train), opts)?,
                self.select(Some(test), opts)?,
            ));
        };
        let mut all: Vec<usize> = train.iter().chain(test).copied().collect();
        all.sort_unstable();
        all.dedup();
        let (set, kept) = crate::folder::decode_kept(l, Some(&all), opts)?;
        let pick = |want: &[usize]| -> Result<ImageSet> {
            let pos: Vec<usize> = kept
                .iter()
                .enumerate()
                .filter(|(_, i)| want.binary_search(i).is_ok())
                .map(|(p, _)| p)
                .collect();
            set.subset(&pos)
        };
        Ok((Part::Images(pick(train)?), Part::Images(pick(test)?)))
    }

    fn len(&self) -> usize {
        match self {
            Opened::Folder(l) => l.len(),
            Opened::Images(s) => s.len(),
            Opened::Table(t) => t.rows(),
        }
    }

    /// The items at `idx` (`None`: all), decoding folder images with `color`.
    fn select(&self, idx: Option<&[usize]>, opts: &SourceOptions) -> Result<Part> {
        Ok(match (self, idx) {
            (Opened::Folder(l), _) => Part::Images(crate::folder::decode(l, idx, opts)?),
            (Opened::Images(s), Some(i)) => Part::Images(s.subset(i)?),
            (Opened::Images(s), None) => Part::Images(s.clone()),
            (Opened::Table(t), Some(i)) => Part::Table(t.subset(i)),
            (Opened::Table(t), None) => Part::Table(t.clone()),
        })
    }
}

fn first(n: usize, limit: Option<usize>) -> Vec<usize> {
    (0..n.min(limit.unwrap_or(usize::MAX))).collect()
}

/// The colour a folder's images were decoded to, recorded so that later loads
/// (of one split only) decode the same way.
fn resolved_color(set: &ImageSet, opts: &SourceOptions) -> Color {
    match (opts.color, set.channels()) {
        (Color::Auto, 1) => Color::Gray,
        (Color::Auto, _) => Color::Rgb,
        (c, _) => c,
    }
}

fn check_same_images(
    train: &ImageSet,
    train_file: &Path,
    test: &ImageSet,
    test_file: &Path,
) -> Result<()> {
    if train.shape() != test.shape() {
        return Err(DataError::ShapeMismatch {
            train_file: train_file.display().to_string(),
            train: train.shape(),
            test_file: test_file.display().to_string(),
            test: test.shape(),
        });
    }
    Ok(())
}

/// Columns of `other` against the reference columns `columns` (of `reference`).
pub(crate) fn check_columns(
    reference: &str,
    columns: &[String],
    other: &str,
    got: &[String],
) -> Result<()> {
    if columns != got {
        let missing: Vec<&String> = columns.iter().filter(|c| !got.contains(c)).collect();
        let extra: Vec<&String> = got.iter().filter(|c| !columns.contains(c)).collect();
        return Err(DataError::Mismatch {
            reference: reference.into(),
            other: other.into(),
            problem: if missing.is_empty() && extra.is_empty() {
                format!(
                    "the feature columns are in another order: expected {columns:?}, found {got:?}"
                )
            } else {
                format!("feature columns missing: {missing:?}; unexpected: {extra:?}")
            },
        });
    }
    Ok(())
}

/// Loads `cfg.data` (and `cfg.test_data`) as a split. With `fit`, a table's
/// scaler is fitted on the training split when the config has none, and the
/// scaler and a folder's resolved colour are recorded in `cfg`.
pub(crate) fn load_split(cfg: &mut DataConfig, fit: bool) -> Result<Split> {
    let path = cfg
        .data
        .clone()
        .ok_or_else(|| DataError::InvalidConfig("no data path".into()))?;
    let opened = Opened::open(&path, &cfg.source)?;
    let n = opened.len();
    let (train_part, test_part, test_path) = match &cfg.test_data {
        Some(test_path) => {
            let test = Opened::open(test_path, &cfg.source)?;
            let tr = opened.select(Some(&first(n, cfg.train_limit)), &cfg.source)?;
            let mut opts = cfg.source.clone();
            if let Part::Images(s) = &tr {
                opts.color = resolved_color(s, &cfg.source);
            }
            let te = test.select(Some(&first(test.len(), cfg.test_limit)), &opts)?;
            (tr, te, test_path.clone())
        }
        None => {
            let fraction = cfg.test_fraction.unwrap_or(DEFAULT_TEST_FRACTION);
            let (mut tr, mut te) = holdout(n, fraction, cfg.split_seed, &path)?;
            tr.truncate(cfg.train_limit.unwrap_or(usize::MAX));
            te.truncate(cfg.test_limit.unwrap_or(usize::MAX));
            let (trp, tep) = opened.select_pair(&tr, &te, &cfg.source)?;
            (trp, tep, path.clone())
        }
    };
    match (train_part, test_part) {
        (Part::Images(train), Part::Images(test)) => {
            if cfg.scaler.is_some() {
                return Err(table_run_given_images(&path));
            }
            check_same_images(&train, &path, &test, &test_path)?;
            if fit {
                cfg.source.color = resolved_color(&train, &cfg.source);
            }
            Ok(Split { train, test })
        }
        (Part::Table(train), Part::Table(test)) => {
            let name = path.display().to_string();
            check_columns(
                &name,
                &train.columns,
                &test_path.display().to_string(),
                &test.columns,
            )?;
            let scaler = match &cfg.scaler {
                Some(s) => {
                    check_columns("the training data", s.columns(), &name, &train.columns)?;
                    s.clone()
                }
                None => Scaler::fit(&train.values, &train.columns, &name)?,
            };
            let train_set = scaler.apply_set(train)?;
            let test_set = scaler.apply_set(test)?;
            if fit && cfg.scaler.is_none() {
                cfg.scaler = Some(scaler);
            }
            Ok(Split {
                train: train_set,
                test: test_set,
            })
        }
        (Part::Images(_), Part::Table(_)) => Err(DataError::Mismatch {
            reference: path.display().to_string(),
            other: test_path.display().to_string(),
            problem: "the training data are images but the test data is a table".into(),
        }),
        (Part::Table(_), Part::Images(_)) => Err(DataError::Mismatch {
            reference: path.display().to_string(),
            other: test_path.display().to_string(),
            problem: "the training data is a table but the test data are images".into(),
        }),
    }
}

fn table_run_given_images(path: &Path) -> DataError {
    DataError::Mismatch {
        reference: "a run trained on a table".into(),
        other: path.display().to_string(),
        problem: "images given to a model of table rows".into(),
    }
}

/// The whole of `path`, read the way `cfg` reads its data: the same options,
/// the run's scaler for a table (its columns must match), an error for a table
/// given to a run of images or the reverse.
pub(crate) fn load_file(cfg: &DataConfig, path: &Path) -> Result<ImageSet> {
    let opened = Opened::open(path, &cfg.source)?;
    match (opened.select(None, &cfg.source)?, &cfg.scaler) {
        (Part::Images(_), Some(_)) => Err(table_run_given_images(path)),
        (Part::Images(s), None) => Ok(s),
        (Part::Table(t), Some(scaler)) => {
            check_columns(
                "the training data",
                scaler.columns(),
                &path.display().to_string(),
                &t.columns,
            )?;
            scaler.apply_set(t)
        }
        (Part::Table(_), None) => Err(DataError::Mismatch {
            reference: "a run trained on images".into(),
            other: path.display().to_string(),
            problem: "a table given to a model of images".into(),
        }),
    }
}
