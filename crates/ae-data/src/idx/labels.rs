//! Label files: 1-d integer arrays converted to `u8` and checked against their images.

use super::{IdxArray, IdxData};
use crate::error::{DataError, Result};

/// Converts a 1-d integer label array to `u8` (values must be in 0..=255).
pub fn labels_to_u8(labels: &IdxArray, file: &str) -> Result<Vec<u8>> {
    if labels.dims().len() != 1 || !labels.dtype().is_integer() {
        return Err(DataError::LabelsShape {
            file: file.into(),
            dtype: labels.dtype().to_string(),
            dims: labels.dims().to_vec(),
        });
    }
    fn conv<T: Copy + Into<i64>>(v: &[T], file: &str) -> Result<Vec<u8>> {
        v.iter()
            .enumerate()
            .map(|(index, &x)| {
                let value: i64 = x.into();
                u8::try_from(value).map_err(|_| DataError::LabelValue {
                    file: file.into(),
                    index,
                    value,
                })
            })
            .collect()
    }
    match labels.data() {
        IdxData::U8(v) => Ok(v.clone()),
        IdxData::I8(v) => conv(v, file),
        IdxData::I16(v) => conv(v, file),
        IdxData::I32(v) => conv(v, file),
        IdxData::F32(_) | IdxData::F64(_) => Err(DataError::LabelsShape {
            file: file.into(),
            dtype: labels.dtype().to_string(),
            dims: labels.dims().to_vec(),
        }),
    }
}

/// Checks a label file against its image file and returns the labels as `u8`:
/// labels must be 1-d integers in 0..=255, one per image, and `< num_classes`
/// when given.
pub fn check_labels(
    labels: &IdxArray,
    labels_file: &str,
    images: &IdxArray,
    images_file: &str,
    num_classes: Option<usize>,
) -> Result<Vec<u8>> {
    let values = labels_to_u8(labels, labels_file)?;
    if values.len() != images.len() {
        return Err(DataError::LabelCount {
            labels_file: labels_file.into(),
            labels: values.len(),
            images_file: images_file.into(),
            images: images.len(),
        });
    }
    if let Some(k) = num_classes {
        check_label_range(&values, labels_file, k)?;
    }
    Ok(values)
}

/// Checks that every label is `< num_classes`.
pub fn check_label_range(labels: &[u8], file: &str, num_classes: usize) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            file: file.into(),
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}
