//! Per-column scaling of tables, fitted on the training split and stored in the
//! run's `config.json`, so that every later command (and `ae anomaly score` on
//! new rows) scales with the training statistics.
//!
//! The models of this workspace end in a sigmoid and are trained with binary
//! cross-entropy, whose targets must lie in [0, 1]; so each feature is mapped
//! by `(v - min) / (max - min)` with the training split's min and max (the
//! training rows land in [0, 1]; new rows may fall outside, which only raises
//! their reconstruction error). A column that is constant on the training split
//! carries no information and cannot be scaled: it is an error naming the
//! column (drop it from the table).

use serde::{Deserialize, Serialize};

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::source::RawTable;

/// The training split's min and max of every feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaler {
    /// The feature columns, in order.
    pub columns: Vec<String>,
    /// Each column's minimum on the training split.
    pub min: Vec<f64>,
    /// Each column's maximum on the training split.
    pub max: Vec<f64>,
}

impl Scaler {
    /// Fits on `values` (rows of `columns.len()` values) of `file`.
    pub fn fit(values: &[f32], columns: &[String], file: &str) -> Result<Scaler> {
        let d = columns.len();
        if d == 0 || values.is_empty() {
            return Err(DataError::InvalidConfig(format!(
                "{file}: no rows or no feature columns to fit the scaler on"
            )));
        }
        let (mut min, mut max) = (vec![f64::INFINITY; d], vec![f64::NEG_INFINITY; d]);
        for row in values.chunks_exact(d) {
            for (j, &v) in row.iter().enumerate() {
                min[j] = min[j].min(f64::from(v));
                max[j] = max[j].max(f64::from(v));
            }
        }
        if let Some(j) = (0..d).find(|&j| max[j] <= min[j]) {
            return Err(DataError::InvalidConfig(format!(
                "{file}: column {:?} is constant ({}) on the training split: it carries no \
                 information and cannot be scaled; drop it from the table",
                columns[j], min[j]
            )));
        }
        Ok(Scaler {
            columns: columns.to_vec(),
            min,
            max,
        })
    }

    /// Scales `values` in place (rows of `columns.len()` values).
    pub fn apply(&self, values: &mut [f32]) {
        let d = self.columns.len();
        for row in values.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((f64::from(*v) - self.min[j]) / (self.max[j] - self.min[j])) as f32;
            }
        }
    }

    /// The inverse of [`Scaler::apply`], in place.
    pub fn invert(&self, values: &mut [f32]) {
        let d = self.columns.len();
        for row in values.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (f64::from(*v) * (self.max[j] - self.min[j]) + self.min[j]) as f32;
            }
        }
    }

    /// Checks the stored statistics (from a `config.json`) against each other.
    pub fn validate(&self) -> Result<()> {
        let d = self.columns.len();
        if d == 0 || self.min.len() != d || self.max.len() != d {
            return Err(DataError::InvalidConfig(format!(
                "scaler: {d} columns but {} minima and {} maxima",
                self.min.len(),
                self.max.len()
            )));
        }
        match (0..d).find(|&j| {
            !(self.min[j].is_finite() && self.max[j].is_finite() && self.max[j] > self.min[j])
        }) {
            Some(j) => Err(DataError::InvalidConfig(format!(
                "scaler: column {:?} has min {} and max {}",
                self.columns[j], self.min[j], self.max[j]
            ))),
            None => Ok(()),
        }
    }

    /// The table scaled, as a set of `1 x 1 x D` items.
    pub fn apply_set(&self, mut t: RawTable) -> Result<ImageSet> {
        self.apply(&mut t.values);
        ImageSet::from_table(t.values, t.labels, t.columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn fit_apply_invert() {
        let x = vec![0.0, 10.0, 2.0, 20.0, 4.0, 30.0];
        let s = Scaler::fit(&x, &cols(2), "t.csv").unwrap();
        assert_eq!(
            (s.min.clone(), s.max.clone()),
            (vec![0.0, 10.0], vec![4.0, 30.0])
        );
        let mut y = x.clone();
        s.apply(&mut y);
        assert_eq!(y, vec![0.0, 0.0, 0.5, 0.5, 1.0, 1.0]);
        // new rows may fall outside [0, 1]
        let mut z = vec![8.0, 0.0];
        s.apply(&mut z);
        assert_eq!(z, vec![2.0, -0.5]);
        s.invert(&mut y);
        assert_eq!(y, x);
        s.validate().unwrap();
    }

    #[test]
    fn constant_column_is_named() {
        let e = Scaler::fit(&[1.0, 5.0, 2.0, 5.0], &cols(2), "t.csv").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("\"c1\"") && m.contains("constant") && m.contains("t.csv"),
            "{m}"
        );
        let bad = Scaler {
            columns: cols(1),
            min: vec![1.0],
            max: vec![1.0],
        };
        assert!(bad.validate().is_err());
    }
}
