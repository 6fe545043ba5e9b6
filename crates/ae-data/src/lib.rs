//! ae-data: IDX files, image data sets in [0, 1], noise, seeded batching, downloads and the workspace RNG.
//!
//! This crate owns everything that happens before a tensor reaches a model:
//!
//! * [`rng`]: [`AeRng`] (ChaCha8), the only source of randomness in the
//!   workspace, with independent named streams and a saveable [`RngState`].
//! * [`idx`]: reading (raw or gzip, detected by magic bytes), validating,
//!   encoding and atomically writing IDX files of every element type.
//! * [`dataset`]: [`ImageSet`] (N images in [0, 1], `[N, C, H, W]`, held as bytes
//!   where they came as bytes and converted per batch, optional `u8` labels),
//!   batch tensors in [`Layout::Flat`] or [`Layout::Image`], and [`DataConfig`],
//!   which finds and loads MNIST, Fashion-MNIST or custom IDX files.
//! * [`noise`]: [`Noise`] corruption for denoising autoencoders.
//! * [`batch`]: [`Batcher`] / [`Epoch`], one seeded permutation per epoch.
//! * [`fetch`](mod@fetch): checksum-verified, size-capped, atomic downloads.
//! * [`inspect`](mod@inspect): [`IdxSummary`] of a file.
//! * [`input`]: inputs are regular files, opened once, read with a size cap.
//! * [`source`]: `--data PATH`, users' own data: a [`folder`] of images, NumPy
//!   arrays ([`npy`]), tables ([`table`]: CSV, Parquet) with their [`scaler`], and
//!   the seeded hold-out of a test fraction ([`split`]). docs/data.md has the details.
//!
//! ```
//! use ae_data::{IdxArray, IdxData, ImageSet, Layout, encode_idx, parse_idx};
//! use candle_core::Device;
//!
//! // Two 2x3 u8 images, encoded to IDX bytes and parsed back.
//! let images = IdxArray::new(vec![2, 2, 3], IdxData::U8((0..12).map(|v| v * 20).collect()))?;
//! let bytes = encode_idx(&images);
//! assert_eq!(&bytes[..4], &[0, 0, 0x08, 3]);
//! let back = parse_idx(&bytes, "in-memory")?;
//! assert_eq!(back, images);
//!
//! // As an image set in [0, 1] and a [B, C*H*W] batch tensor.
//! let set = ImageSet::from_idx(&back, "in-memory", None, None)?;
//! assert_eq!((set.len(), set.channels(), set.height(), set.width()), (2, 1, 2, 3));
//! let batch = set.batch_tensor(&[1, 0], Layout::Flat, &Device::Cpu)?;
//! assert_eq!(batch.dims(), &[2, 6]);
//! # Ok::<(), ae_data::DataError>(())
//! ```
//!
//! Loading MNIST (from a configured directory, `$AE_DATA_DIR/mnist/`, or the
//! first `data/mnist/` in or above the working directory, such as the repository's):
//!
//! ```no_run
//! let split = ae_data::DataConfig::default().load()?;
//! assert_eq!((split.train.len(), split.test.len()), (60_000, 10_000));
//! # Ok::<(), ae_data::DataError>(())
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod batch;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod fixtures;
pub mod folder;
pub mod idx;
pub mod input;
pub mod inspect;
pub mod noise;
pub mod npy;
pub mod rng;
pub mod scaler;
pub mod source;
pub mod split;
pub mod table;

pub use batch::{Batcher, Epoch};
pub use dataset::{DataConfig, DataFile, DatasetName, ImageSet, Layout, Split};
pub use error::{DataError, Result};
pub use fetch::{Checksum, FetchFile, FetchReport, FetchSpec, fetch, fetch_with};
pub use idx::{
    IdxArray, IdxData, IdxType, IdxU8Writer, check_labels, encode_idx, parse_idx, read_idx,
    write_idx,
};
pub use inspect::{IdxSummary, inspect};
pub use noise::Noise;
pub use rng::{AeRng, RngState, seeded, stream};
pub use scaler::Scaler;
pub use source::{Color, Crop, ImageSize, Normalize, SourceKind, SourceOptions};
