//! IDX image arrays to an image set's shape and values: `[C, H, W]` from the file's dims, and every element type scaled to [0, 1].
//!
//! * `u8`: `v / 255`; `i8`: `(v + 128) / 255` (both kept as bytes, see `pixels`).
//! * `i16`, `i32`: `(v - min) / (max - min)` with min and max over the whole file
//!   (all values equal → 0).
//! * `f32`, `f64`: kept as they are when every value is in [0, 1], else min-max
//!   scaled as above. NaN or ±∞ is an error naming the file and element.

use super::pixels::Store;
use crate::error::{DataError, Result};
use crate::idx::IdxData;

/// `[C, H, W]` of an image file's dims: `[N, D]` is `[1, 1, D]`, `[N, H, W]` is
/// `[1, H, W]`, `[N, C, H, W]` as it is; other ranks, or images of zero pixels,
/// are an error naming `file`.
pub(crate) fn image_shape(dims: &[usize], file: &str) -> Result<[usize; 3]> {
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

/// Converts IDX elements to [0, 1] (see the module docs): `u8` kept as bytes
/// (read as `v / 255`), `i8` shifted to the bytes `v + 128`, the others to `f32`.
pub(crate) fn into_unit(data: IdxData, file: &str) -> Result<Store> {
    Ok(match data {
        IdxData::U8(v) => Store::U8(v),
        // `(v + 128) / 255`: `f32::from(v) + 128.0` is the exact integer `v + 128`,
        // so the byte's `unit` is the same `f32` as before bytes were kept.
        IdxData::I8(v) => Store::U8(v.into_iter().map(|x| x.cast_unsigned() ^ 0x80).collect()),
        IdxData::I16(v) => Store::F32(min_max_scale(&v)),
        IdxData::I32(v) => Store::F32(min_max_scale(&v)),
        IdxData::F32(v) => {
            check_finite(&v, file)?;
            if v.iter().all(|x| (0.0..=1.0).contains(x)) {
                Store::F32(v)
            } else {
                Store::F32(min_max_scale(&v))
            }
        }
        IdxData::F64(v) => {
            check_finite(&v, file)?;
            if v.iter().all(|x| (0.0..=1.0).contains(x)) {
                Store::F32(v.iter().map(|&x| x as f32).collect())
            } else {
                Store::F32(min_max_scale(&v))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::dataset::ImageSet;
    use crate::error::DataError;
    use crate::idx::{IdxArray, IdxData};

    fn arr(dims: Vec<usize>, data: IdxData) -> IdxArray {
        IdxArray::new(dims, data).unwrap()
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
        assert_eq!(*s.pixels(), [0.0, 0.2, 1.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 2], IdxData::I8(vec![-128, 127])),
            "i",
            None,
            None,
        )
        .unwrap();
        assert_eq!(*s.pixels(), [0.0, 1.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 3], IdxData::I32(vec![-10, 0, 10])),
            "i32",
            None,
            None,
        )
        .unwrap();
        assert_eq!(*s.pixels(), [0.0, 0.5, 1.0]);
        let s = ImageSet::from_idx(&arr(vec![1, 2], IdxData::I16(vec![7, 7])), "c", None, None)
            .unwrap();
        assert_eq!(*s.pixels(), [0.0, 0.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 2], IdxData::F32(vec![0.25, 1.0])),
            "f",
            None,
            None,
        )
        .unwrap();
        assert_eq!(*s.pixels(), [0.25, 1.0]);
        let s = ImageSet::from_idx(
            &arr(vec![1, 3], IdxData::F64(vec![-1.0, 0.0, 3.0])),
            "g",
            None,
            None,
        )
        .unwrap();
        assert_eq!(*s.pixels(), [0.0, 0.25, 1.0]);
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
    fn bytes_are_kept_and_read_as_before() {
        // Every u8 and i8 value reads as the f32 the loaders computed before bytes
        // were kept: `v / 255` and `(v + 128) / 255`.
        let u: Vec<u8> = (0..=255).collect();
        let s = ImageSet::from_idx(&arr(vec![1, 256], IdxData::U8(u.clone())), "u", None, None)
            .unwrap();
        assert_eq!(s.stored_bytes(), 256);
        let want: Vec<f32> = u.iter().map(|&x| f32::from(x) / 255.0).collect();
        assert_eq!(s.pixels().as_ref(), want.as_slice());
        let i: Vec<i8> = (-128..=127).collect();
        let s = ImageSet::from_idx(&arr(vec![2, 128], IdxData::I8(i.clone())), "i", None, None)
            .unwrap();
        assert_eq!(s.pixels_u8(), Some(u.as_slice()));
        let want: Vec<f32> = i.iter().map(|&x| (f32::from(x) + 128.0) / 255.0).collect();
        assert_eq!(s.pixels().as_ref(), want.as_slice());
        // Floats stay f32.
        let s = ImageSet::from_idx(
            &arr(vec![1, 2], IdxData::F32(vec![0.5, 1.0])),
            "f",
            None,
            None,
        )
        .unwrap();
        assert_eq!((s.pixels_u8(), s.stored_bytes()), (None, 8));
    }
}
