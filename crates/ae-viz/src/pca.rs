//! A small, deterministic two-component PCA for the latent scatter plot.
//!
//! Subspace (block power) iteration on the covariance of the centred data,
//! without forming the covariance (each step costs two passes over the data),
//! from fixed start vectors, followed by a Rayleigh–Ritz rotation within the
//! converged two-dimensional subspace. The same data always gives the same
//! components, with a fixed sign: the largest entry of each is positive.

use crate::{Result, VizError};

/// Iterations at most.
const MAX_ITERS: usize = 300;
/// Stop once no component moves by more than this (1 − |cos|).
const TOL: f64 = 1e-10;

/// The first two principal components of a data set and its projection on them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca2 {
    /// Mean of each column.
    pub mean: Vec<f64>,
    /// The two unit-length principal directions (`cols` values each), by
    /// decreasing variance. The second is all zeros for one-column data.
    pub components: [Vec<f64>; 2],
    /// The variance of the data along each component.
    pub variance: [f64; 2],
    /// The total variance of the data (sum over columns).
    pub total_variance: f64,
    /// Each row's coordinates on the two components (centred).
    pub points: Vec<[f64; 2]>,
}

impl Pca2 {
    /// The fraction of the total variance the two components explain (1 for constant data).
    pub fn explained(&self) -> f64 {
        if self.total_variance > 0.0 {
            ((self.variance[0] + self.variance[1]) / self.total_variance).min(1.0)
        } else {
            1.0
        }
    }
}

/// A fixed, well-spread start vector (not orthogonal to any plausible direction).
fn start_vector(d: usize, k: usize) -> Vec<f64> {
    (0..d)
        .map(|j| {
            let t = (j as f64 + 1.0) * 0.618_033_988_749_895 + k as f64 * 0.414_213_562_373_095;
            t.fract() - 0.5 + if k == 0 { 1.0 } else { 0.0 }
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalise(v: &mut [f64]) -> f64 {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

/// Makes `v` orthogonal to `against` and unit length; when nothing is left of
/// it, falls back to the basis vector most orthogonal to `against`.
fn orthonormalise(v: &mut [f64], against: Option<&[f64]>, scale: f64) {
    for _ in 0..2 {
        if let Some(a) = against {
            let p = dot(v, a);
            v.iter_mut().zip(a).for_each(|(x, y)| *x -= p * y);
        }
    }
    if normalise(v) <= 1e-12 * scale.max(1e-300) {
        let j = match against {
            Some(a) => (0..a.len())
                .min_by(|&i, &k| a[i].abs().total_cmp(&a[k].abs()))
                .unwrap_or(0),
            None => 0,
        };
        v.iter_mut().for_each(|x| *x = 0.0);
        v[j] = 1.0;
        if let Some(a) = against {
            let p = dot(v, a);
            v.iter_mut().zip(a).for_each(|(x, y)| *x -= p * y);
        }
        normalise(v);
    }
}

/// `C·v1` and `C·v2` for the covariance `C` of the centred rows `xc`.
fn cov_times(xc: &[f64], d: usize, denom: f64, v: &[Vec<f64>; 2]) -> [Vec<f64>; 2] {
    let (mut w0, mut w1) = (vec![0.0; d], vec![0.0; d]);
    for row in xc.chunks_exact(d) {
        let u0 = dot(row, &v[0]);
        let u1 = dot(row, &v[1]);
        for ((r, a), b) in row.iter().zip(w0.iter_mut()).zip(w1.iter_mut()) {
            *a += u0 * r;
            *b += u1 * r;
        }
    }
    w0.iter_mut().chain(w1.iter_mut()).for_each(|x| *x /= denom);
    [w0, w1]
}

/// The first two principal components of `rows x cols` values (row-major).
pub fn pca2(data: &[f32], rows: usize, cols: usize) -> Result<Pca2> {
    if rows == 0 || cols == 0 || data.len() != rows * cols {
        return Err(VizError::Data(format!(
            "a PCA of {rows} rows of {cols} values from {} values",
            data.len()
        )));
    }
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(VizError::Data(format!(
            "a PCA of data whose value #{i} is {}",
            data[i]
        )));
    }
    let d = cols;
    let mut mean = vec![0.0f64; d];
    for row in data.chunks_exact(d) {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let xc: Vec<f64> = data
        .chunks_exact(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(&x, m)| x as f64 - m))
        .collect();
    let denom = (rows.max(2) - 1) as f64;
    let total_variance = xc.iter().map(|x| x * x).sum::<f64>() / denom;
    let mut v = if d == 1 {
        [vec![1.0], vec![0.0]]
    } else {
        let mut v0 = start_vector(d, 0);
        let mut v1 = start_vector(d, 1);
        orthonormalise(&mut v0, None, 1.0);
        orthonormalise(&mut v1, Some(&v0), 1.0);
        let mut v = [v0, v1];
        for _ in 0..MAX_ITERS {
            let [mut w0, mut w1] = cov_times(&xc, d, denom, &v);
            orthonormalise(&mut w0, None, total_variance);
            orthonormalise(&mut w1, Some(&w0), total_variance);
            let moved = (1.0 - dot(&w0, &v[0]).abs()).max(1.0 - dot(&w1, &v[1]).abs());
            v = [w0, w1];
            if moved < TOL {
                break;
            }
        }
        // Rayleigh–Ritz: the best two directions within the subspace.
        let cv = cov_times(&xc, d, denom, &v);
        let (a, b, c) = (dot(&v[0], &cv[0]), dot(&v[0], &cv[1]), dot(&v[1], &cv[1]));
        let theta = 0.5 * (2.0 * b).atan2(a - c);
        let (s, co) = theta.sin_cos();
        let r0: Vec<f64> = v[0]
            .iter()
            .zip(&v[1])
            .map(|(x, y)| co * x + s * y)
            .collect();
        let r1: Vec<f64> = v[0]
            .iter()
            .zip(&v[1])
            .map(|(x, y)| -s * x + co * y)
            .collect();
        [r0, r1]
    };
    // Fixed signs: the largest entry (first among equals) is positive.
    for c in &mut v {
        let big = c
            .iter()
            .copied()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 {
            c.iter_mut().for_each(|x| *x = -*x);
        }
    }
    let mut points: Vec<[f64; 2]> = xc
        .chunks_exact(d)
        .map(|row| [dot(row, &v[0]), dot(row, &v[1])])
        .collect();
    let var =
        |points: &[[f64; 2]], k: usize| points.iter().map(|p| p[k] * p[k]).sum::<f64>() / denom;
    let mut variance = [var(&points, 0), var(&points, 1)];
    if variance[1] > variance[0] {
        v.swap(0, 1);
        variance.swap(0, 1);
        points.iter_mut().for_each(|p| p.swap(0, 1));
    }
    Ok(Pca2 {
        mean,
        components: v,
        variance,
        total_variance,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on a tilted ellipse in 3-D: variances 9 and 1 along known axes, none along the third.
    fn ellipse(n: usize) -> (Vec<f32>, [f64; 3], [f64; 3]) {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let a = [s, s, 0.0];
        let b = [0.0, 0.0, 1.0];
        let mut data = Vec::new();
        for i in 0..n {
            let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            let (x, y) = (3.0 * t.cos() * 2f64.sqrt(), t.sin() * 2f64.sqrt());
            for k in 0..3 {
                data.push((x * a[k] + y * b[k] + 5.0) as f32);
            }
        }
        (data, a, b)
    }

    #[test]
    fn finds_the_axes_of_an_ellipse() {
        let (data, a, b) = ellipse(400);
        let p = pca2(&data, 400, 3).unwrap();
        assert!(
            (dot(&p.components[0], &a).abs() - 1.0).abs() < 1e-6,
            "{p:?}"
        );
        assert!(
            (dot(&p.components[1], &b).abs() - 1.0).abs() < 1e-6,
            "{p:?}"
        );
        assert!(
            (p.variance[0] - 9.0 * 400.0 / 399.0).abs() < 1e-3,
            "{:?}",
            p.variance
        );
        assert!(
            (p.variance[1] - 400.0 / 399.0).abs() < 1e-3,
            "{:?}",
            p.variance
        );
        assert!((p.explained() - 1.0).abs() < 1e-6);
        assert!(p.mean.iter().all(|m| (m - 5.0).abs() < 1e-4));
        // Signs are fixed: the largest entry of each component is positive.
        for c in &p.components {
            let big = c
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            assert!(big > 0.0);
        }
    }

    #[test]
    fn is_deterministic_and_handles_degenerate_data() {
        let (data, _, _) = ellipse(100);
        assert_eq!(pca2(&data, 100, 3).unwrap(), pca2(&data, 100, 3).unwrap());
        // Constant data: zero variance, points at the origin, unit components.
        let p = pca2(&[0.5; 40], 10, 4).unwrap();
        assert!(p.points.iter().all(|q| q == &[0.0, 0.0]));
        assert!(p.components.iter().all(|c| (dot(c, c) - 1.0).abs() < 1e-9));
        assert_eq!(p.explained(), 1.0);
        // One column, one row.
        let p = pca2(&[1.0, 2.0, 3.0], 3, 1).unwrap();
        assert_eq!(p.points, vec![[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]);
        assert_eq!(pca2(&[1.0, 2.0], 1, 2).unwrap().points, vec![[0.0, 0.0]]);
        // Errors, not panics.
        assert!(pca2(&[1.0; 5], 2, 3).is_err());
        assert!(pca2(&[], 0, 3).is_err());
        assert!(pca2(&[f32::NAN, 1.0], 1, 2).is_err());
    }

    #[test]
    fn wide_data_converges_to_the_dominant_directions() {
        // 50 rows in 300 dimensions: two planted directions plus small noise.
        let (n, d) = (50, 300);
        let mut data = vec![0f32; n * d];
        for i in 0..n {
            let t = i as f32 / n as f32;
            for j in 0..d {
                let noise = (((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5) * 0.01;
                let dir1 = if j % 2 == 0 { 1.0 } else { 0.0 };
                let dir2 = if j < 10 { 1.0 } else { 0.0 };
                data[i * d + j] = 4.0 * (t - 0.5) * dir1 + (t * 7.0).sin() * dir2 + noise;
            }
        }
        let p = pca2(&data, n, d).unwrap();
        assert!(p.explained() > 0.95, "{}", p.explained());
        assert!(p.variance[0] >= p.variance[1]);
        assert!(dot(&p.components[0], &p.components[1]).abs() < 1e-9);
    }
}
