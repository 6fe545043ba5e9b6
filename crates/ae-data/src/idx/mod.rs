//! IDX files (the MNIST container format): reading, validating, encoding and atomic writing.
//!
//! Layout (all integers big-endian): two zero bytes, a type byte
//! (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), a dimension count
//! byte (1..=255), one `u32` per dimension, then the elements in row-major order.
//!
//! * gzip is recognised by its magic bytes `1f 8b` (never by file name) and
//!   decompressed transparently.
//! * Untrusted headers never drive allocations: for raw bytes the payload size is
//!   compared with the bytes actually present before anything is allocated; for
//!   gzip the payload is read incrementally and the buffer only grows as
//!   decompressed data arrives (at most doubling), so a 1 KB file claiming
//!   4 billion images fails fast with [`DataError::PayloadTooShort`].
//! * A dimension of size 0 is allowed (an empty set, e.g. `[0, 28, 28]`); zero
//!   dimensions (`ndims == 0`) is an error.
//! * Trailing bytes after the payload are an error ([`DataError::PayloadTooLong`]).
//!
//! This module holds the types ([`IdxType`], [`IdxData`], [`IdxArray`]); the
//! work is split by concern, every item re-exported here:
//!
//! * `read`: parsing and validating ([`parse_idx`], [`parse_idx_vec`], [`read_idx`]);
//! * `write`: encoding and atomic writing ([`encode_idx`], [`write_idx`], [`IdxU8Writer`]);
//! * `labels`: label files against their images ([`labels_to_u8`], [`check_labels`],
//!   [`check_label_range`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

mod labels;
mod read;
mod write;

pub use labels::{check_label_range, check_labels, labels_to_u8};
pub use read::{parse_idx, parse_idx_vec, read_idx};
pub use write::{IdxU8Writer, encode_idx, write_idx};

/// The element type of an IDX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdxType {
    /// Unsigned byte, code 0x08.
    U8,
    /// Signed byte, code 0x09.
    I8,
    /// Big-endian `i16`, code 0x0B.
    I16,
    /// Big-endian `i32`, code 0x0C.
    I32,
    /// Big-endian `f32`, code 0x0D.
    F32,
    /// Big-endian `f64`, code 0x0E.
    F64,
}

impl IdxType {
    /// Every type, in code order.
    pub const ALL: [IdxType; 6] = [
        IdxType::U8,
        IdxType::I8,
        IdxType::I16,
        IdxType::I32,
        IdxType::F32,
        IdxType::F64,
    ];

    /// The type byte of the IDX header.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The type of a header type byte, if it is a known one.
    pub fn from_code(code: u8) -> Option<IdxType> {
        IdxType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// Short name: `u8`, `i8`, `i16`, `i32`, `f32`, `f64`.
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }

    /// Whether this is an integer type.
    pub fn is_integer(self) -> bool {
        !matches!(self, IdxType::F32 | IdxType::F64)
    }
}

impl fmt::Display for IdxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of an IDX file, one `Vec` per element type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// 0x08.
    U8(Vec<u8>),
    /// 0x09.
    I8(Vec<i8>),
    /// 0x0B.
    I16(Vec<i16>),
    /// 0x0C.
    I32(Vec<i32>),
    /// 0x0D.
    F32(Vec<f32>),
    /// 0x0E.
    F64(Vec<f64>),
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        match self {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// Element `i` as `f64` (exact for every type), `None` when out of range.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match self {
            IdxData::U8(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::I8(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::I16(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::I32(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::F32(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::F64(v) => v.get(i).copied(),
        }
    }
}

/// An IDX array: dimensions plus row-major elements (`product(dims) == data.len()`).
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

impl IdxArray {
    /// Checks that there are 1..=255 dims, each fitting in a `u32`, and that their
    /// product equals the number of elements.
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<IdxArray> {
        if dims.is_empty() {
            return Err(DataError::InvalidArray(
                "an IDX array needs at least one dimension".into(),
            ));
        }
        if dims.len() > 255 {
            return Err(DataError::InvalidArray(format!(
                "{} dimensions, IDX allows at most 255",
                dims.len()
            )));
        }
        if let Some(d) = dims.iter().find(|&&d| u32::try_from(d).is_err()) {
            return Err(DataError::InvalidArray(format!(
                "dimension {d} in {dims:?} does not fit in the u32 of an IDX header"
            )));
        }
        let product = if dims.contains(&0) {
            Some(0)
        } else {
            dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
        };
        if product != Some(data.len()) {
            return Err(DataError::InvalidArray(format!(
                "dims {dims:?} need {} elements but the data holds {}",
                product.map_or_else(|| "more than usize::MAX".to_string(), |p| p.to_string()),
                data.len()
            )));
        }
        Ok(IdxArray { dims, data })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The dimensions after the first (the shape of one item).
    pub fn item_dims(&self) -> &[usize] {
        self.dims.get(1..).unwrap_or(&[])
    }

    /// The elements.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        self.data.dtype()
    }

    /// Number of items: the first dimension.
    pub fn len(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of elements (product of the dims).
    pub fn num_elements(&self) -> usize {
        self.data.len()
    }

    /// The elements, consuming the array.
    pub fn into_data(self) -> IdxData {
        self.data
    }

    /// Dimensions and elements, consuming the array.
    pub fn into_parts(self) -> (Vec<usize>, IdxData) {
        (self.dims, self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `u8` array of `dims` holding 0, 1, 2, ... (wrapping); the submodules' tests use it too.
    pub(super) fn u8_array(dims: Vec<usize>) -> IdxArray {
        let n = dims.iter().product::<usize>();
        IdxArray::new(dims, IdxData::U8((0..n).map(|i| i as u8).collect())).unwrap()
    }

    #[test]
    fn codes_roundtrip() {
        for t in IdxType::ALL {
            assert_eq!(IdxType::from_code(t.code()), Some(t));
        }
        assert_eq!(IdxType::from_code(0x0A), None);
    }

    #[test]
    fn new_checks_shape() {
        assert!(IdxArray::new(vec![2, 3], IdxData::U8(vec![0; 5])).is_err());
        assert!(IdxArray::new(vec![], IdxData::U8(vec![])).is_err());
        assert!(IdxArray::new(vec![1; 256], IdxData::U8(vec![0])).is_err());
        assert!(IdxArray::new(vec![0, 3], IdxData::U8(vec![])).is_ok());
        let a = u8_array(vec![4, 2, 3]);
        assert_eq!(a.len(), 4);
        assert_eq!(a.item_dims(), &[2, 3]);
    }
}
