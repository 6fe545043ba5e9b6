//! A short summary of an IDX file (type, dims, count, value range, label histogram) for `ae inspect`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::idx::{IdxArray, IdxData, IdxType, read_idx};

/// Histograms with more distinct values than this are dropped.
pub const MAX_HISTOGRAM_VALUES: usize = 256;

/// What [`inspect`] found in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxSummary {
    /// The file.
    pub path: PathBuf,
    /// Element type.
    pub dtype: IdxType,
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Number of items (the first dimension).
    pub count: usize,
    /// Smallest value (`None` when empty; NaNs are skipped).
    pub min: Option<f64>,
    /// Largest value (`None` when empty; NaNs are skipped).
    pub max: Option<f64>,
    /// `(value, count)` in increasing value order, for 1-d integer files (labels)
    /// with at most [`MAX_HISTOGRAM_VALUES`] distinct values.
    pub histogram: Option<Vec<(i64, usize)>>,
}

/// Reads and summarises an IDX file (raw or gzip).
pub fn inspect(path: &Path) -> Result<IdxSummary> {
    let arr = read_idx(path)?;
    Ok(summarize(path, &arr))
}

/// Summarises an array already in memory; `path` is only reported.
pub fn summarize(path: &Path, arr: &IdxArray) -> IdxSummary {
    let (min, max) = range(arr.data());
    let histogram = if arr.dims().len() == 1 {
        histogram(arr.data())
    } else {
        None
    };
    IdxSummary {
        path: path.to_path_buf(),
        dtype: arr.dtype(),
        dims: arr.dims().to_vec(),
        count: arr.len(),
        min,
        max,
        histogram,
    }
}

fn range(data: &IdxData) -> (Option<f64>, Option<f64>) {
    fn mm<T: Copy + Into<f64>>(v: &[T]) -> (Option<f64>, Option<f64>) {
        let mut it = v.iter().map(|&x| x.into()).filter(|x: &f64| !x.is_nan());
        let first = it.next();
        match first {
            None => (None, None),
            Some(f) => {
                let (lo, hi) = it.fold((f, f), |(lo, hi), x| (lo.min(x), hi.max(x)));
                (Some(lo), Some(hi))
            }
        }
    }
    match data {
        IdxData::U8(v) => mm(v),
        IdxData::I8(v) => mm(v),
        IdxData::I16(v) => mm(v),
        IdxData::I32(v) => mm(v),
        IdxData::F32(v) => mm(v),
        IdxData::F64(v) => mm(v),
    }
}

fn histogram(data: &IdxData) -> Option<Vec<(i64, usize)>> {
    fn count<T: Copy + Into<i64>>(v: &[T]) -> Option<Vec<(i64, usize)>> {
        let mut map: BTreeMap<i64, usize> = BTreeMap::new();
        for &x in v {
            *map.entry(x.into()).or_insert(0) += 1;
            if map.len() > MAX_HISTOGRAM_VALUES {
                return None;
            }
        }
        Some(map.into_iter().collect())
    }
    match data {
        IdxData::U8(v) => count(v),
        IdxData::I8(v) => count(v),
        IdxData::I16(v) => count(v),
        IdxData::I32(v) => count(v),
        IdxData::F32(_) | IdxData::F64(_) => None,
    }
}

impl fmt::Display for IdxSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, dims {:?}, {} items",
            self.path.display(),
            self.dtype,
            self.dims,
            self.count
        )?;
        if let Some(item) = self.dims.get(1..).filter(|d| !d.is_empty()) {
            let item: Vec<String> = item.iter().map(ToString::to_string).collect();
            write!(f, " of {}", item.join("x"))?;
        }
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => write!(f, ", values {lo}..{hi}")?,
            _ => write!(f, ", no values")?,
        }
        if let Some(h) = &self.histogram {
            write!(f, ", {} classes:", h.len())?;
            for (value, n) in h {
                write!(f, " {value}:{n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_a_histogram() {
        let arr = IdxArray::new(vec![5], IdxData::U8(vec![1, 0, 1, 2, 1])).unwrap();
        let s = summarize(Path::new("l.idx"), &arr);
        assert_eq!(s.histogram, Some(vec![(0, 1), (1, 3), (2, 1)]));
        assert_eq!(
            s.to_string(),
            "l.idx: u8, dims [5], 5 items, values 0..2, 3 classes: 0:1 1:3 2:1"
        );
    }

    #[test]
    fn images_have_a_range() {
        let arr = IdxArray::new(vec![2, 1, 3], IdxData::I16(vec![-5, 0, 1, 2, 3, 300])).unwrap();
        let s = summarize(Path::new("x"), &arr);
        assert_eq!(s.histogram, None);
        assert_eq!(
            s.to_string(),
            "x: i16, dims [2, 1, 3], 2 items of 1x3, values -5..300"
        );
        let empty = IdxArray::new(vec![0, 3], IdxData::F32(vec![])).unwrap();
        assert_eq!(summarize(Path::new("e"), &empty).min, None);
    }

    #[test]
    fn many_distinct_values_drop_the_histogram() {
        let arr = IdxArray::new(vec![1000], IdxData::I32((0..1000).collect())).unwrap();
        assert_eq!(summarize(Path::new("x"), &arr).histogram, None);
    }
}
