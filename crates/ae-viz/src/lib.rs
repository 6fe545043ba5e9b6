//! `ae-viz`: pictures of what autoencoders learned, written as PNG files.
//!
//! This crate owns every picture the toolkit writes:
//!
//! - [`ImageGrid`]: many small images as one grid (originals above
//!   reconstructions, noisy / denoised / clean rows, sample grids), for images
//!   of any size and 1 (grey) or 3 (RGB) channels.
//! - Charts drawn with `plotters` ([`chart`]): loss curves, latent-space
//!   scatter plots, histograms. Text is drawn with an embedded subset of
//!   DejaVu Sans (see `fonts/LICENSE.txt`), so no system font is needed.
//! - A small deterministic PCA ([`pca::pca2`]) for the latent scatter plot of
//!   codes wider than two dimensions.
//! - Figures of a trained model ([`plots`]): [`plot_run`] writes every picture
//!   that applies to a run, plus a `plots.json` manifest ([`PlotManifest`])
//!   that the HTML run report reads.
//!
//! Pictures are deterministic: the same checkpoint, images and seed give the
//! same bytes, and every file is written atomically (temporary file in the
//! same folder, then rename), so a crash never leaves a half-written PNG behind.
//!
//! ```
//! use ae_viz::ImageGrid;
//! // Two rows of three 2x2 grey images.
//! let pixels: Vec<f32> = (0..6 * 4).map(|i| i as f32 / 23.0).collect();
//! let grid = ImageGrid::new(1, 2, 2).scale(2).padding(1);
//! let img = grid.render(&pixels, 2, 3)?;
//! assert_eq!((img.width, img.height), (3 * 2 * 2 + 4 * 1, 2 * 2 * 2 + 3 * 1));
//! # Ok::<(), ae_viz::VizError>(())
//! ```
#![warn(missing_docs)]

pub mod chart;
mod font;
mod grid;
pub mod pca;
pub mod plots;

pub use grid::{ImageGrid, Rgb8Image, read_png, write_image_png, write_png};
pub use plots::{
    DenoiseStats, MANIFEST_FILE, Picture, PictureInfo, PlotManifest, PlotOptions, plot_run,
    test_images, vanilla_peer,
};

use std::path::PathBuf;

/// Errors of `ae-viz`: they name the file and the shapes involved.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// The pixel buffer does not hold `rows * cols` images of the grid's shape.
    #[error(
        "image grid of {rows}x{cols} images of {channels}x{height}x{width} needs {expected} values, got {got}"
    )]
    PixelCount {
        /// Grid rows.
        rows: usize,
        /// Grid columns.
        cols: usize,
        /// Channels per image.
        channels: usize,
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// Values needed.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A shape that cannot be drawn (zero size, unsupported channel count, too large).
    #[error("cannot draw {0}")]
    Shape(String),
    /// Data that cannot be plotted (empty, not finite, mismatched lengths).
    #[error("cannot plot {0}")]
    Data(String),
    /// Drawing a chart failed.
    #[error("drawing the chart '{chart}' failed: {message}")]
    Chart {
        /// Which chart.
        chart: String,
        /// What the drawing library said.
        message: String,
    },
    /// Writing the PNG failed.
    #[error("{path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("{path}: PNG encoding failed: {source}")]
    Png {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: png::EncodingError,
    },
    /// A PNG file could not be decoded.
    #[error("{path}: not a readable PNG: {source}")]
    PngDecode {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        source: png::DecodingError,
    },
    /// A JSON file (the plot manifest) could not be read or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ae_models::ModelError),
    /// Loading a run or evaluating it failed.
    #[error(transparent)]
    Train(#[from] ae_train::TrainError),
    /// Loading images or applying noise failed.
    #[error(transparent)]
    Dataset(#[from] ae_data::DataError),
}

/// Result type of `ae-viz`.
pub type Result<T> = std::result::Result<T, VizError>;
