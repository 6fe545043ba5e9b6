//! [`ImageSet`], N images in [0, 1] (or a table's standardised rows) with optional labels, and the [`Layout`] of its batch tensors.
//!
//! Images that came as bytes are held as bytes and converted to `f32` when a
//! batch is built (see `pixels`); the accessors give `f32` whatever the storage.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::pixels::Store;
use super::scale::{image_shape, into_unit};
use crate::error::{DataError, Result};
use crate::idx::{IdxArray, check_labels};

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

/// N images in [0, 1], row-major `[N, C, H, W]`, with optional `u8` labels.
///
/// Images that came as bytes (IDX `u8`/`i8`, `uint8` NumPy arrays, image
/// folders) are held as one byte per value ([`ImageSet::stored_bytes`]) and
/// read as `f32` `v / 255`: [`ImageSet::gather`] and [`ImageSet::batch_tensor`]
/// convert one batch at a time; [`ImageSet::pixels`] converts the whole set.
///
/// A table's rows are held as `1 x 1 x D` images with their column names
/// ([`ImageSet::is_table`]); their values are standardised (any real number,
/// see [`crate::scaler`]), not in [0, 1].
#[derive(Clone, PartialEq)]
pub struct ImageSet {
    images: Store,
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
            .field("bytes", &self.images.bytes())
            .finish()
    }
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
        // The copy of the data that a borrowed array needs, and nothing more.
        Self::from_idx_owned(images.clone(), images_file, labels, num_classes)
    }

    /// [`ImageSet::from_idx`] taking the image array, so that bytes are kept
    /// without a copy.
    pub(crate) fn from_idx_owned(
        images: IdxArray,
        images_file: &str,
        labels: Option<(&IdxArray, &str)>,
        num_classes: Option<usize>,
    ) -> Result<ImageSet> {
        let [channels, height, width] = image_shape(images.dims(), images_file)?;
        let labels = match labels {
            Some((arr, file)) => Some(check_labels(arr, file, &images, images_file, num_classes)?),
            None => None,
        };
        Ok(ImageSet {
            images: into_unit(images.into_data(), images_file)?,
            labels,
            channels,
            height,
            width,
            columns: None,
        })
    }

    /// Builds a set from pixels (`[N, C, H, W]` row-major, every value in [0, 1])
    /// and optional labels (one per image).
    pub fn from_parts(
        images: Vec<f32>,
        labels: Option<Vec<u8>>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<ImageSet> {
        if let Some(i) = images.iter().position(|x| !(0.0..=1.0).contains(x)) {
            return Err(DataError::InvalidImageSet(format!(
                "pixel #{i} is {}, expected a value in [0, 1]",
                images[i]
            )));
        }
        ImageSet::from_store(Store::F32(images), labels, channels, height, width)
    }

    /// Builds a set from bytes `v` standing for `v / 255` (`[N, C, H, W]`
    /// row-major), held as bytes, and optional labels (one per image).
    pub fn from_parts_u8(
        images: Vec<u8>,
        labels: Option<Vec<u8>>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<ImageSet> {
        ImageSet::from_store(Store::U8(images), labels, channels, height, width)
    }

    fn from_store(
        images: Store,
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
            images: Store::F32(values),
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
        self.images.len() == 0
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
    pub fn image(&self, i: usize) -> Option<Cow<'_, [f32]>> {
        self.images_in(i..i.checked_add(1)?)
    }

    /// The pixels of images `range` (`[range.len(), C, H, W]` row-major), `None`
    /// when out of range. Borrowed when the set holds `f32`, converted otherwise.
    pub fn images_in(&self, range: Range<usize>) -> Option<Cow<'_, [f32]>> {
        let d = self.dim();
        self.images
            .slice(range.start.checked_mul(d)?..range.end.checked_mul(d)?)
    }

    /// The pixels of the first `n` images (all of them when `n >= len`).
    pub fn first_pixels(&self, n: usize) -> Cow<'_, [f32]> {
        self.images_in(0..n.min(self.len())).unwrap_or_default()
    }

    /// All pixels, `[N, C, H, W]` row-major: borrowed when the set holds `f32`,
    /// a converted copy of the whole set when it holds bytes (batches are better
    /// built with [`ImageSet::gather`]).
    pub fn pixels(&self) -> Cow<'_, [f32]> {
        self.first_pixels(self.len())
    }

    /// The bytes `v` (standing for `v / 255`) when the set holds bytes.
    pub fn pixels_u8(&self) -> Option<&[u8]> {
        match &self.images {
            Store::U8(v) => Some(v),
            Store::F32(_) => None,
        }
    }

    /// Bytes of memory the values take: one per value when held as bytes, four as `f32`.
    pub fn stored_bytes(&self) -> usize {
        self.images.bytes()
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
        self.check_indices(indices)?;
        let images = self.images.rows(indices, self.dim());
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
        self.images.gather_rows(indices, self.dim(), out);
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
        Ok(Tensor::from_slice(&self.pixels(), shape, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ImageSet {
        // 4 images of 1x1x2, labels 0..4
        let px: Vec<f32> = (0..8).map(|i| i as f32 / 8.0).collect();
        ImageSet::from_parts(px, Some(vec![0, 1, 2, 1]), 1, 1, 2).unwrap()
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
        assert_eq!(s.image(1).unwrap().as_ref(), &[0.25, 0.375]);
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
    fn a_set_of_bytes_reads_as_the_same_set_of_f32() {
        // Every byte value, as 4 images of 1x8x8, with labels.
        let bytes: Vec<u8> = (0..=255).collect();
        let labels = Some(vec![0, 1, 0, 2]);
        let b = ImageSet::from_parts_u8(bytes.clone(), labels.clone(), 1, 8, 8).unwrap();
        let f32s: Vec<f32> = bytes.iter().map(|&v| f32::from(v) / 255.0).collect();
        let f = ImageSet::from_parts(f32s.clone(), labels, 1, 8, 8).unwrap();
        assert_eq!((b.stored_bytes(), f.stored_bytes()), (256, 1024));
        assert_eq!(b.pixels_u8(), Some(bytes.as_slice()));
        assert_eq!(b, f);
        assert_eq!(*b.pixels(), *f32s);
        let idx = [3, 0, 3, 1];
        let (mut gb, mut gf) = (Vec::new(), Vec::new());
        b.gather(&idx, &mut gb).unwrap();
        f.gather(&idx, &mut gf).unwrap();
        assert_eq!(gb, gf);
        let tb: Vec<f32> = b
            .batch_tensor(&idx, Layout::Image, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(tb, gf);
        let sub = b.subset(&idx).unwrap();
        assert_eq!(sub.stored_bytes(), 4 * 64, "a subset stays bytes");
        assert_eq!(sub, f.subset(&idx).unwrap());
        assert_eq!(b.with_class(0).unwrap(), f.with_class(0).unwrap());
        assert_eq!(b.clone().take(3), f.clone().take(3));
        assert_eq!(b.clone().take(3).stored_bytes(), 3 * 64);
        assert_eq!(b.image(2).unwrap(), f.image(2).unwrap());
        assert_eq!(*b.first_pixels(2), f32s[..128]);
        assert_eq!(b.images_in(1..3).unwrap(), f.images_in(1..3).unwrap());
        assert!(b.images_in(3..5).is_none());
        assert!(b.image(usize::MAX).is_none());
        assert!(b.batch_tensor(&[4], Layout::Flat, &Device::Cpu).is_err());
        assert!(ImageSet::from_parts_u8(vec![0; 5], None, 1, 2, 2).is_err());
        assert!(ImageSet::from_parts_u8(vec![0; 4], Some(vec![0, 1]), 1, 2, 2).is_err());
        let t = b
            .to_tensor(Layout::Flat, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(t, f32s);
    }
}
