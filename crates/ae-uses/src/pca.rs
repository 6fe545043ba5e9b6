//! Principal component analysis: the covariance matrix (candle's `f64` matmul)
//! and its symmetric eigendecomposition (`nalgebra::SymmetricEigen`).
//!
//! PCA is the linear baseline every autoencoder is compared with. For MNIST
//! (784 dimensions) the 784x784 covariance and its full eigendecomposition
//! take a few seconds and are exact, so no randomised SVD is needed; the
//! components of a fit with `k` components are the first `k` of any larger
//! fit, so one fit serves every size ([`Pca::truncated`]).

use candle_core::{DType, Device, Tensor};
use nalgebra::{DMatrix, SymmetricEigen};

use crate::error::{Result, UsesError};

/// A fitted PCA: the mean, the top `k` principal axes and their variances.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    dim: usize,
    mean: Vec<f64>,
    /// `k x dim`, row-major, unit rows, orthogonal.
    components: Vec<f64>,
    /// The variance along each kept axis (eigenvalues of the covariance with
    /// the `1/n` normalisation), descending.
    variances: Vec<f64>,
    /// Every eigenvalue, descending (the variance the full basis explains).
    all_variances: Vec<f64>,
}

/// Rows per chunk when forming the covariance, and when transforming (so the `f64`
/// temporaries stay at a few tens of MB whatever the number of rows).
const CHUNK: usize = 4096;

impl Pca {
    /// Fits `k` components to `x`, `n` rows of `dim` values (row-major).
    ///
    /// The covariance is `Xcᵀ Xc / n` (`Xc` the centred data); its eigenvectors
    /// are signed so that the entry of largest magnitude is positive, so the
    /// same data always give the same components.
    pub fn fit(x: &[f32], dim: usize, k: usize) -> Result<Pca> {
        if dim == 0 || !x.len().is_multiple_of(dim) {
            return Err(UsesError::Mismatch(format!(
                "PCA: {} values are not rows of {dim}",
                x.len()
            )));
        }
        let n = x.len() / dim;
        if n < 2 {
            return Err(UsesError::Invalid(format!(
                "PCA needs at least 2 rows, got {n}"
            )));
        }
        if k == 0 || k > dim {
            return Err(UsesError::Invalid(format!(
                "PCA of {dim}-dimensional data: components must be in 1..={dim}, got {k}"
            )));
        }
        let mut mean = vec![0.0f64; dim];
        for row in x.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        for m in &mut mean {
            *m /= n as f64;
        }
        let device = Device::Cpu;
        let mut cov = Tensor::zeros((dim, dim), DType::F64, &device)?;
        let mut buf = Vec::with_capacity(CHUNK * dim);
        for rows in x.chunks(CHUNK * dim) {
            buf.clear();
            for row in rows.chunks_exact(dim) {
                buf.extend(row.iter().zip(&mean).map(|(&v, m)| f64::from(v) - m));
            }
            let c = Tensor::from_slice(&buf, (rows.len() / dim, dim), &device)?;
            cov = (cov + c.t()?.contiguous()?.matmul(&c)?)?;
        }
        let cov = (cov / n as f64)?.flatten_all()?.to_vec1::<f64>()?;
        let eig = SymmetricEigen::new(DMatrix::from_row_slice(dim, dim, &cov));
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let all_variances: Vec<f64> = order.iter().map(|&i| eig.eigenvalues[i].max(0.0)).collect();
        let mut components = Vec::with_capacity(k * dim);
        for &i in &order[..k] {
            let col = eig.eigenvectors.column(i);
            let big = col
                .iter()
                .copied()
                .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
            let sign = if big < 0.0 { -1.0 } else { 1.0 };
            components.extend(col.iter().map(|v| v * sign));
        }
        Ok(Pca {
            dim,
            mean,
            components,
            variances: all_variances[..k].to_vec(),
            all_variances,
        })
    }

    /// Number of kept components.
    pub fn n_components(&self) -> usize {
        self.variances.len()
    }

    /// Dimension of the data.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The mean of the training data.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The kept axes, `k x dim` row-major.
    pub fn components(&self) -> &[f64] {
        &self.components
    }

    /// Variance along each kept axis (`1/n` normalisation), descending.
    pub fn explained_variance(&self) -> &[f64] {
        &self.variances
    }

    /// Every eigenvalue of the training covariance, descending.
    pub fn all_variances(&self) -> &[f64] {
        &self.all_variances
    }

    /// The same fit keeping only the first `k` components (`k <= n_components`).
    pub fn truncated(&self, k: usize) -> Result<Pca> {
        if k == 0 || k > self.n_components() {
            return Err(UsesError::Invalid(format!(
                "a PCA fitted with {} components cannot keep {k}",
                self.n_components()
            )));
        }
        Ok(Pca {
            dim: self.dim,
            mean: self.mean.clone(),
            components: self.components[..k * self.dim].to_vec(),
            variances: self.variances[..k].to_vec(),
            all_variances: self.all_variances.clone(),
        })
    }

    fn rows(&self, len: usize, width: usize, what: &str) -> Result<usize> {
        if !len.is_multiple_of(width) {
            return Err(UsesError::Mismatch(format!(
                "PCA {what}: {len} values are not rows of {width}"
            )));
        }
        Ok(len / width)
    }

    fn tensors(&self) -> Result<(Tensor, Tensor)> {
        let d = Device::Cpu;
        let mean = Tensor::from_slice(&self.mean, (1, self.dim), &d)?;
        let comp = Tensor::from_slice(&self.components, (self.n_components(), self.dim), &d)?;
        Ok((mean, comp))
    }

    /// The codes of `x` (`n x dim`): `(x - mean) · componentsᵀ`, `n x k`.
    ///
    /// Computed `CHUNK` (4096) rows at a time: all 60,000 MNIST images at once would
    /// need 750 MB of `f64` temporaries.
    pub fn transform(&self, x: &[f32]) -> Result<Vec<f32>> {
        let n = self.rows(x.len(), self.dim, "input")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (mean, comp) = self.tensors()?;
        let comp_t = comp.t()?.contiguous()?;
        let mut out = Vec::with_capacity(n * self.n_components());
        for rows in x.chunks(CHUNK * self.dim) {
            let m = rows.len() / self.dim;
            let x = Tensor::from_slice(rows, (m, self.dim), &Device::Cpu)?.to_dtype(DType::F64)?;
            let z = x.broadcast_sub(&mean)?.matmul(&comp_t)?;
            out.extend(z.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Images back from codes (`n x k`): `codes · components + mean`, `n x dim`
    /// (not clipped), `CHUNK` (4096) rows at a time.
    pub fn inverse_transform(&self, codes: &[f32]) -> Result<Vec<f32>> {
        let k = self.n_components();
        let n = self.rows(codes.len(), k, "codes")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (mean, comp) = self.tensors()?;
        let mut out = Vec::with_capacity(n * self.dim);
        for rows in codes.chunks(CHUNK * k) {
            let m = rows.len() / k;
            let z = Tensor::from_slice(rows, (m, k), &Device::Cpu)?.to_dtype(DType::F64)?;
            let x = z.matmul(&comp)?.broadcast_add(&mean)?;
            out.extend(x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// `inverse_transform(transform(x))`.
    pub fn reconstruct(&self, x: &[f32]) -> Result<Vec<f32>> {
        self.inverse_transform(&self.transform(x)?)
    }
}
