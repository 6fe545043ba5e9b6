//! The error type of `ae-data`: one variant per problem, each message names the file involved.

use std::path::PathBuf;

/// Result alias used throughout `ae-data`.
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong while reading, writing, checking, converting or
/// downloading data. Messages name the file (or in-memory array) and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// An I/O operation on a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// An input path is a directory, device, FIFO or socket, not a regular file.
    #[error("{}: is {kind}, not a regular file: give a file", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },

    /// An input file is larger than anything of its kind can be.
    #[error("{}: {len} bytes, more than {what} can hold ({cap} bytes at most)", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The most this kind of file may hold.
        cap: u64,
        /// What the file should be.
        what: String,
    },

    /// The first two bytes of an IDX file are not zero.
    #[error("{file}: not an IDX file: the first two bytes are {found:02x?}, expected [00, 00]")]
    BadMagic {
        /// File name.
        file: String,
        /// The two bytes found.
        found: [u8; 2],
    },

    /// The file ends inside the IDX header.
    #[error("{file}: truncated IDX header: {len} bytes, the header needs {need}")]
    TruncatedHeader {
        /// File name.
        file: String,
        /// Bytes available.
        len: usize,
        /// Bytes the header needs.
        need: usize,
    },

    /// The IDX type byte is not one of 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E.
    #[error(
        "{file}: unknown IDX type code 0x{code:02X} (known: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64)"
    )]
    UnknownType {
        /// File name.
        file: String,
        /// The type byte found.
        code: u8,
    },

    /// The header declares zero dimensions.
    #[error("{file}: the IDX header declares 0 dimensions (at least 1 is needed)")]
    ZeroDims {
        /// File name.
        file: String,
    },

    /// The product of the dimensions (times the element size) does not fit in memory sizes.
    #[error(
        "{file}: the header's dims {dims:?} overflow: the element count times {elem_size} bytes does not fit in 64 bits / usize"
    )]
    DimsOverflow {
        /// File name.
        file: String,
        /// Dimensions from the header.
        dims: Vec<u64>,
        /// Bytes per element.
        elem_size: usize,
    },

    /// The payload holds fewer bytes than the dimensions need.
    #[error("{file}: payload is {actual} bytes but the header's dims {dims:?} need {expected}")]
    PayloadTooShort {
        /// File name.
        file: String,
        /// Payload bytes present.
        actual: u64,
        /// Payload bytes the header needs.
        expected: u64,
        /// Dimensions from the header.
        dims: Vec<usize>,
    },

    /// The payload holds more bytes than the dimensions need.
    #[error(
        "{file}: {extra} trailing bytes: the header's dims {dims:?} need a payload of {expected} bytes"
    )]
    PayloadTooLong {
        /// File name.
        file: String,
        /// Bytes after the expected payload.
        extra: u64,
        /// Payload bytes the header needs.
        expected: u64,
        /// Dimensions from the header.
        dims: Vec<usize>,
    },

    /// The gzip stream is corrupt or truncated.
    #[error("{file}: corrupt or truncated gzip stream: {source}")]
    Gzip {
        /// File name.
        file: String,
        /// The decompressor's error.
        source: std::io::Error,
    },

    /// An in-memory array is inconsistent (dims vs. data length, dims count, ...).
    #[error("invalid array: {0}")]
    InvalidArray(String),

    /// A label file is not a 1-d integer array.
    #[error("{file}: labels must be a 1-d integer array, found {dtype} with dims {dims:?}")]
    LabelsShape {
        /// Label file name.
        file: String,
        /// Its element type.
        dtype: String,
        /// Its dimensions.
        dims: Vec<usize>,
    },

    /// A label value does not fit in `u8` (negative or > 255).
    #[error("{file}: label #{index} is {value}, labels must be in 0..=255")]
    LabelValue {
        /// Label file name.
        file: String,
        /// Index of the bad label.
        index: usize,
        /// Its value.
        value: i64,
    },

    /// The label count differs from the image count.
    #[error("{labels_file} has {labels} labels but {images_file} has {images} images")]
    LabelCount {
        /// Label file name.
        labels_file: String,
        /// Number of labels.
        labels: usize,
        /// Image file name.
        images_file: String,
        /// Number of images.
        images: usize,
    },

    /// A label is `>= num_classes`.
    #[error("{file}: label #{index} is {label}, out of range for {num_classes} classes")]
    LabelOutOfRange {
        /// Label file name.
        file: String,
        /// Index of the bad label.
        index: usize,
        /// Its value.
        label: u8,
        /// Number of classes expected.
        num_classes: usize,
    },

    /// An image file has a shape that cannot be read as images.
    #[error(
        "{file}: cannot read dims {dims:?} as images: expected [N, D], [N, H, W] or [N, C, H, W] with non-zero image size"
    )]
    ImageShape {
        /// File name.
        file: String,
        /// Its dimensions.
        dims: Vec<usize>,
    },

    /// A floating-point file holds NaN or an infinity.
    #[error("{file}: element #{index} is {value}, expected a finite number")]
    NonFinite {
        /// File name.
        file: String,
        /// Index of the element.
        index: usize,
        /// Its value.
        value: f64,
    },

    /// The test images do not have the training images' shape.
    #[error("{test_file} has images of shape [C, H, W] = {test:?} but {train_file} has {train:?}")]
    ShapeMismatch {
        /// Training image file.
        train_file: String,
        /// Training [C, H, W].
        train: [usize; 3],
        /// Test image file.
        test_file: String,
        /// Test [C, H, W].
        test: [usize; 3],
    },

    /// An image index is out of range.
    #[error("image index {index} is out of range for a set of {len} images")]
    IndexOutOfRange {
        /// The bad index.
        index: usize,
        /// Number of images.
        len: usize,
    },

    /// An operation needs labels but the set has none.
    #[error("this image set has no labels")]
    NoLabels,

    /// `from_parts` was given inconsistent parts.
    #[error("invalid image set: {0}")]
    InvalidImageSet(String),

    /// No file was found for one of the data set's files.
    #[error("no {what} file for data set {dataset}; tried: {}", list_paths(tried))]
    MissingFile {
        /// Which file ("train images", ...).
        what: String,
        /// Data set name.
        dataset: String,
        /// Paths that were tried, in order.
        tried: Vec<PathBuf>,
    },

    /// No folder of a data set was found: no `data_dir`, no `$AE_DATA_DIR`, and
    /// no `data/<name>/` in or above the working directory.
    #[error(
        "data set {dataset} not found: no --data-dir was given, AE_DATA_DIR is not set, and no \
         data/{dataset}/ holding its training images is in {} or a folder above it (looked in {}); \
         pass --data-dir DIR (the folder holding the files), set AE_DATA_DIR=DIR (DIR holding \
         {dataset}/), run from a folder with data/{dataset}/ in or above it, or download it with \
         `ae data fetch {dataset}`",
        start.display(),
        list_paths(tried)
    )]
    DataDirNotFound {
        /// Data set name.
        dataset: String,
        /// The folder the search started from (the working directory).
        start: PathBuf,
        /// The folders looked at, nearest first.
        tried: Vec<PathBuf>,
    },

    /// A `DataConfig` is invalid.
    #[error("invalid data config: {0}")]
    InvalidConfig(String),

    /// An unknown data set name.
    #[error("unknown data set {0:?} (known: mnist, fashion-mnist, custom)")]
    UnknownDataset(String),

    /// A noise specification is invalid.
    #[error("invalid noise: {0}")]
    InvalidNoise(String),

    /// The batch size is zero.
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,

    /// An HTTP request failed.
    #[error("downloading {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The HTTP client's error.
        source: Box<ureq::Error>,
    },

    /// Reading a download's body failed (connection closed early, timeout, ...).
    #[error("downloading {url}: the transfer failed after {received} bytes: {source}")]
    Download {
        /// The URL.
        url: String,
        /// Bytes received before the failure.
        received: u64,
        /// The error.
        source: std::io::Error,
    },

    /// A download exceeds the size cap.
    #[error("downloading {url}: the file is larger than the {limit}-byte limit")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap in bytes.
        limit: u64,
    },

    /// A downloaded file decompresses to more than the allowed size.
    #[error("{file}: the decompressed content is larger than the {limit}-byte limit")]
    ContentTooLarge {
        /// File name.
        file: String,
        /// The cap in bytes.
        limit: u64,
    },

    /// A downloaded file does not have the expected checksum.
    #[error("{file}: {algorithm} checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// File name.
        file: String,
        /// "md5" or "sha256 (decompressed content)".
        algorithm: String,
        /// Expected hex digest.
        expected: String,
        /// Actual hex digest.
        actual: String,
    },

    /// A fetch specification is invalid.
    #[error("invalid fetch spec: {0}")]
    InvalidFetchSpec(String),

    /// `--data PATH` is not something `ae` can read (missing, not a regular
    /// file or folder, or an unknown extension).
    #[error("{}: {problem}", path.display())]
    Source {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A folder of images is unusable as a whole (empty, mixed class folders
    /// and loose images, ...).
    #[error("{}: {problem}", folder.display())]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// An image file could not be decoded (or is over the size limits).
    #[error("{}: cannot decode the image: {problem}", file.display())]
    Decode {
        /// The image file.
        file: PathBuf,
        /// The decoder's message.
        problem: String,
    },

    /// Two images of a folder differ in size and no `--image-size` was given.
    #[error(
        "{} is {}x{} but {} is {}x{} (HxW): give --image-size HxW to resize every image",
        first.display(), first_size.0, first_size.1, second.display(), second_size.0, second_size.1
    )]
    MixedSizes {
        /// One image.
        first: PathBuf,
        /// Its size (height, width).
        first_size: (u32, u32),
        /// An image of another size.
        second: PathBuf,
        /// Its size (height, width).
        second_size: (u32, u32),
    },

    /// An `.npy` / `.npz` array cannot be used (dtype, shape, order, values, missing member).
    #[error("{file}: {problem}")]
    Npy {
        /// The file (and `:member` for an `.npz`).
        file: String,
        /// What is wrong.
        problem: String,
    },

    /// A table (CSV or Parquet) is malformed at a row and column.
    #[error("{}: row {row}, column {column:?}: {problem}", file.display())]
    Cell {
        /// The table file.
        file: PathBuf,
        /// The data row, 1-based (the header is not counted).
        row: u64,
        /// The column name (or `#index` where there is no name).
        column: String,
        /// What is wrong.
        problem: String,
    },

    /// A table is malformed as a whole (header, columns, types).
    #[error("{}: {problem}", file.display())]
    Table {
        /// The table file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// The test data (or data given to a trained run) does not match the training data.
    #[error("{other} does not match {reference}: {problem}")]
    Mismatch {
        /// What the data is compared with (the training data or the run).
        reference: String,
        /// The data that differs.
        other: String,
        /// How they differ.
        problem: String,
    },

    /// A candle operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(nothing)".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
