//! `ae-viz`: pictures of what autoencoders learned, written as PNG files.
//!
//! This crate owns every picture the toolkit writes. Today that is the image
//! grid ([`ImageGrid`]): originals above reconstructions (the classic `2 x n`
//! figure), noisy / denoised / clean rows, and sample grids. Loss curves,
//! latent-space scatter plots and the HTML run report build on it.
//!
//! Pictures are deterministic: the same pixels give the same bytes, and every
//! file is written atomically (temporary file in the same folder, then
//! rename), so a crash never leaves a half-written PNG behind.
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

mod grid;

pub use grid::{ImageGrid, Rgb8Image, write_png};

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
}

/// Result type of `ae-viz`.
pub type Result<T> = std::result::Result<T, VizError>;
