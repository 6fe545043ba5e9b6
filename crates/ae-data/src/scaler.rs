//! Per-column scaling of tables, fitted on the training split and stored in the
//! run's `config.json`, so that every later command (and `ae anomaly score` on
//! new rows) scales with the training statistics.
//!
//! Tables are **standardised** ([`Scaler::Standardise`], what [`Scaler::fit`]
//! gives): each feature becomes `(v - mean) / std` with the training split's
//! mean and population standard deviation (divided by N, as scikit-learn's
//! `StandardScaler`), so the training columns have mean 0 and std 1. The values
//! are not bounded, so a model of a table has a linear output and is trained
//! with MSE (see `ae_losses::ReconLoss`), not with BCE, whose targets must lie
//! in [0, 1].
//!
//! Runs made before standardisation stored a min-max scaler, `(v - min) /
//! (max - min)` ([`Scaler::MinMax`], for models trained with BCE): its JSON
//! (`{"columns", "min", "max"}`, without `kind`) still loads as a min-max
//! scaler and is applied as before. New configs carry `"kind": "standardise"`
//! or `"kind": "min-max"`; any other mix of fields is an error, never a guess.
//!
//! A column that is constant on the training split carries no information and
//! cannot be scaled: it is an error naming the column (drop it from the table).

use serde::{Deserialize, Serialize};

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::source::RawTable;

/// The training split's statistics of every feature column, and how they scale it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScalerRepr", into = "ScalerRepr")]
pub enum Scaler {
    /// `(v - mean) / std`: mean 0 and std 1 on the training split.
    Standardise {
        /// The feature columns, in order.
        columns: Vec<String>,
        /// Each column's mean on the training split.
        mean: Vec<f64>,
        /// Each column's population standard deviation on the training split.
        std: Vec<f64>,
    },
    /// `(v - min) / (max - min)`: the training split in [0, 1] (runs made
    /// before standardisation; kept so that they load and score as trained).
    MinMax {
        /// The feature columns, in order.
        columns: Vec<String>,
        /// Each column's minimum on the training split.
        min: Vec<f64>,
        /// Each column's maximum on the training split.
        max: Vec<f64>,
    },
}

/// The JSON form of a [`Scaler`]: `kind` is absent in configs written before
/// standardisation (which were all min-max).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScalerRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mean: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    std: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<Vec<f64>>,
}

impl TryFrom<ScalerRepr> for Scaler {
    type Error = String;

    fn try_from(r: ScalerRepr) -> std::result::Result<Self, String> {
        let kind = r
            .kind
            .as_deref()
            .unwrap_or("min-max (no kind: an older run)");
        match (r.kind.as_deref(), r.mean, r.std, r.min, r.max) {
            (Some("standardise"), Some(mean), Some(std), None, None) => Ok(Scaler::Standardise {
                columns: r.columns,
                mean,
                std,
            }),
            (Some("min-max") | None, None, None, Some(min), Some(max)) => Ok(Scaler::MinMax {
                columns: r.columns,
                min,
                max,
            }),
            (Some(k), ..) if k != "standardise" && k != "min-max" => Err(format!(
                "scaler kind {k:?} is unknown (expected standardise or min-max)"
            )),
            _ => Err(format!(
                "scaler of kind {kind}: expected the fields columns, mean and std (standardise) \
                 or columns, min and max (min-max), and no others"
            )),
        }
    }
}

impl From<Scaler> for ScalerRepr {
    fn from(s: Scaler) -> Self {
        match s {
            Scaler::Standardise { columns, mean, std } => ScalerRepr {
                kind: Some("standardise".into()),
                columns,
                mean: Some(mean),
                std: Some(std),
                min: None,
                max: None,
            },
            Scaler::MinMax { columns, min, max } => ScalerRepr {
                kind: Some("min-max".into()),
                columns,
                mean: None,
                std: None,
                min: Some(min),
                max: Some(max),
            },
        }
    }
}

/// Each column's (min, max) of `values` (rows of `columns.len()` values), or
/// an error naming an empty input or a constant column of `file`.
fn column_ranges(values: &[f32], columns: &[String], file: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let d = columns.len();
    if d == 0 || values.len() < d {
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
    Ok((min, max))
}

impl Scaler {
    /// Fits the standardising scaler on `values` (rows of `columns.len()`
    /// values) of `file`: each column's mean and population std (in `f64`).
    /// A constant column is an error naming it.
    pub fn fit(values: &[f32], columns: &[String], file: &str) -> Result<Scaler> {
        column_ranges(values, columns, file)?;
        let d = columns.len();
        let n = (values.len() / d) as f64;
        let mut mean = vec![0.0f64; d];
        for row in values.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; d];
        for row in values.chunks_exact(d) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let std: Vec<f64> = var.iter().map(|s| (s / n).sqrt()).collect();
        if let Some(j) = (0..d).find(|&j| !(std[j] > 0.0 && std[j].is_finite())) {
            return Err(DataError::InvalidConfig(format!(
                "{file}: column {:?} has standard deviation {} on the training split: it \
                 cannot be standardised; drop it from the table",
                columns[j], std[j]
            )));
        }
        Ok(Scaler::Standardise {
            columns: columns.to_vec(),
            mean,
            std,
        })
    }

    /// Fits the min-max scaler of older runs (training split into [0, 1]).
    pub fn fit_min_max(values: &[f32], columns: &[String], file: &str) -> Result<Scaler> {
        let (min, max) = column_ranges(values, columns, file)?;
        Ok(Scaler::MinMax {
            columns: columns.to_vec(),
            min,
            max,
        })
    }

    /// The feature columns, in order.
    pub fn columns(&self) -> &[String] {
        match self {
            Scaler::Standardise { columns, .. } | Scaler::MinMax { columns, .. } => columns,
        }
    }

    /// Whether the scaled values are standardised (unbounded: a model needs a
    /// linear output and MSE) rather than min-max scaled into [0, 1].
    pub fn is_standardise(&self) -> bool {
        matches!(self, Scaler::Standardise { .. })
    }

    /// `standardise` or `min-max`, as in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Scaler::Standardise { .. } => "standardise",
            Scaler::MinMax { .. } => "min-max",
        }
    }

    /// Column `j`'s `(shift, scale)`: scaled = (v - shift) / scale.
    fn shift_scale(&self, j: usize) -> (f64, f64) {
        match self {
            Scaler::Standardise { mean, std, .. } => (mean[j], std[j]),
            Scaler::MinMax { min, max, .. } => (min[j], max[j] - min[j]),
        }
    }

    /// Scales `values` in place (rows of `columns().len()` values).
    pub fn apply(&self, values: &mut [f32]) {
        let d = self.columns().len();
        let ss: Vec<(f64, f64)> = (0..d).map(|j| self.shift_scale(j)).collect();
        for row in values.chunks_exact_mut(d) {
            for (v, &(shift, scale)) in row.iter_mut().zip(&ss) {
                *v = ((f64::from(*v) - shift) / scale) as f32;
            }
        }
    }

    /// The inverse of [`Scaler::apply`], in place.
    pub fn invert(&self, values: &mut [f32]) {
        let d = self.columns().len();
        let ss: Vec<(f64, f64)> = (0..d).map(|j| self.shift_scale(j)).collect();
        for row in values.chunks_exact_mut(d) {
            for (v, &(shift, scale)) in row.iter_mut().zip(&ss) {
                *v = (f64::from(*v) * scale + shift) as f32;
            }
        }
    }

    /// Checks the stored statistics (from a `config.json`) against each other.
    pub fn validate(&self) -> Result<()> {
        let d = self.columns().len();
        let (names, a, b) = match self {
            Scaler::Standardise { mean, std, .. } => (("means", "stds"), mean, std),
            Scaler::MinMax { min, max, .. } => (("minima", "maxima"), min, max),
        };
        if d == 0 || a.len() != d || b.len() != d {
            return Err(DataError::InvalidConfig(format!(
                "{} scaler: {d} columns but {} {} and {} {}",
                self.kind(),
                a.len(),
                names.0,
                b.len(),
                names.1
            )));
        }
        let bad = (0..d).find(|&j| {
            let (shift, scale) = self.shift_scale(j);
            !(shift.is_finite() && scale.is_finite() && scale > 0.0)
        });
        match bad {
            Some(j) => Err(DataError::InvalidConfig(format!(
                "{} scaler: column {:?} has {} {} and {} {}",
                self.kind(),
                self.columns()[j],
                &names.0[..names.0.len() - 1],
                a[j],
                &names.1[..names.1.len() - 1],
                b[j]
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
    fn standardise_fit_apply_invert() {
        let x = vec![0.0, 10.0, 2.0, 20.0, 4.0, 60.0, 6.0, 30.0];
        let s = Scaler::fit(&x, &cols(2), "t.csv").unwrap();
        let Scaler::Standardise { mean, std, .. } = &s else {
            panic!("{s:?}")
        };
        assert_eq!(mean, &vec![3.0, 30.0]);
        assert!((std[0] - 5f64.sqrt()).abs() < 1e-12, "{std:?}");
        assert!((std[1] - 350f64.sqrt()).abs() < 1e-12, "{std:?}");
        let mut y = x.clone();
        s.apply(&mut y);
        // every training column has mean 0 and (population) std 1
        for j in 0..2 {
            let c: Vec<f64> = y.iter().skip(j).step_by(2).map(|&v| f64::from(v)).collect();
            let m = c.iter().sum::<f64>() / 4.0;
            let sd = (c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 4.0).sqrt();
            assert!(
                m.abs() < 1e-6 && (sd - 1.0).abs() < 1e-6,
                "column {j}: {m} {sd}"
            );
        }
        s.invert(&mut y);
        for (a, b) in y.iter().zip(&x) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {x:?}");
        }
        s.validate().unwrap();
        assert!(s.is_standardise());
    }

    #[test]
    fn min_max_fit_apply_invert() {
        let x = vec![0.0, 10.0, 2.0, 20.0, 4.0, 30.0];
        let s = Scaler::fit_min_max(&x, &cols(2), "t.csv").unwrap();
        assert_eq!(
            s,
            Scaler::MinMax {
                columns: cols(2),
                min: vec![0.0, 10.0],
                max: vec![4.0, 30.0]
            }
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
        for fit in [Scaler::fit, Scaler::fit_min_max] {
            let m = fit(&[1.0, 5.0, 2.0, 5.0], &cols(2), "t.csv")
                .unwrap_err()
                .to_string();
            assert!(
                m.contains("\"c1\"") && m.contains("constant") && m.contains("t.csv"),
                "{m}"
            );
        }
        // a column of 0.1s: its mean is not exactly 0.1, but it is still constant
        let e = Scaler::fit(&[0.1, 1.0, 0.1, 2.0, 0.1, 3.0], &cols(2), "t.csv").unwrap_err();
        assert!(e.to_string().contains("\"c0\""), "{e}");
        let bad = Scaler::MinMax {
            columns: cols(1),
            min: vec![1.0],
            max: vec![1.0],
        };
        assert!(bad.validate().is_err());
        let bad = Scaler::Standardise {
            columns: cols(2),
            mean: vec![0.0, 1.0],
            std: vec![1.0, 0.0],
        };
        let m = bad.validate().unwrap_err().to_string();
        assert!(m.contains("\"c1\"") && m.contains("std 0"), "{m}");
    }

    #[test]
    fn json_of_both_kinds_and_of_old_configs() {
        let s = Scaler::fit(&[1.0, 2.0, 3.0, 5.0], &cols(2), "t.csv").unwrap();
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["kind"], "standardise");
        assert!(j.get("min").is_none());
        assert_eq!(serde_json::from_value::<Scaler>(j).unwrap(), s);
        let mm = Scaler::fit_min_max(&[1.0, 2.0, 3.0, 5.0], &cols(2), "t.csv").unwrap();
        let j = serde_json::to_value(&mm).unwrap();
        assert_eq!(j["kind"], "min-max");
        assert_eq!(serde_json::from_value::<Scaler>(j).unwrap(), mm);
        // the config.json of a run made before standardisation: min-max, no kind
        let old = r#"{"columns": ["c0", "c1"], "min": [1.0, 2.0], "max": [3.0, 5.0]}"#;
        assert_eq!(serde_json::from_str::<Scaler>(old).unwrap(), mm);
        // mixed or unknown fields are errors, not guesses
        for bad in [
            r#"{"columns": ["c0"], "mean": [1.0], "std": [2.0]}"#,
            r#"{"kind": "standardise", "columns": ["c0"], "min": [1.0], "max": [2.0]}"#,
            r#"{"kind": "robust", "columns": ["c0"], "mean": [1.0], "std": [2.0]}"#,
            r#"{"columns": ["c0"], "min": [1.0], "max": [2.0], "scale": 3}"#,
        ] {
            let e = serde_json::from_str::<Scaler>(bad).unwrap_err().to_string();
            assert!(
                e.contains("scaler") || e.contains("unknown field"),
                "{bad}: {e}"
            );
        }
    }
}
