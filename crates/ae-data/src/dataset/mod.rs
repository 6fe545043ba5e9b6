//! Image sets in [0, 1] built from IDX files, batch tensors, and the `DataConfig` that finds and loads a data set.
//!
//! * `image_set`: [`ImageSet`] and the [`Layout`] of its batch tensors.
//! * `pixels`: how a set holds its values (bytes where they came as bytes).
//! * `scale`: IDX dims to `[C, H, W]` and every element type to [0, 1].
//! * `registry`: the known data sets ([`DatasetName`]) and their files ([`DataFile`]).
//! * `locate`: where a data set's default folder is.
//! * `config`: [`DataConfig`] and its [`Split`].
//!
//! # Shapes
//! Image files may be 2-d `[N, D]` (read as C=1, H=1, W=D), 3-d `[N, H, W]` (C=1)
//! or 4-d `[N, C, H, W]` (**channel-first**). Other ranks, or images of zero
//! pixels, are an error. N = 0 (an empty set) is allowed.
//!
//! # Scaling to [0, 1]
//! * `u8`: `v / 255`; `i8`: `(v + 128) / 255`.
//! * `i16`, `i32`: `(v - min) / (max - min)` with min and max over the whole file
//!   (all values equal → 0).
//! * `f32`, `f64`: kept as they are when every value is in [0, 1], else min-max
//!   scaled as above. NaN or ±∞ is an error naming the file and element.
//!
//! # Finding the files
//! For each of the four files (train/test images/labels), in order:
//! 1. the explicit path in the config (`train_images`, ...), used as given;
//! 2. else `data_dir` (the directory holding the files themselves);
//! 3. else `$AE_DATA_DIR/<name>/` (e.g. `$AE_DATA_DIR/mnist/`; files placed
//!    directly in `$AE_DATA_DIR` are *not* looked at);
//! 4. else the first `data/<name>/` holding the training images in the working
//!    directory or a folder above it (so anywhere in the repository finds the
//!    `data/mnist/` it ships); nothing found is an error saying what was tried
//!    and how to point at the data (see `locate`). Nothing is baked into the binary.
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

mod config;
mod image_set;
mod locate;
mod pixels;
mod registry;
mod scale;

pub use config::{DataConfig, Split, load_labels};
pub use image_set::{ImageSet, Layout};
pub use locate::{DATA_DIR_ENV, DATA_FOLDER, DataSearch};
pub use pixels::unit;
pub use registry::{DataFile, DatasetName};
