//! PCA against closed forms on synthetic data.

#![allow(clippy::unwrap_used)]

use ae_data::rng::seeded;
use ae_uses::Pca;
use ae_uses::stats::mse;
use rand::Rng;
use rand_distr::StandardNormal;

/// `n` points in `d` dimensions: a 3-d subspace with variances 9, 4, 1 plus
/// isotropic noise of variance `noise²`.
fn synthetic(n: usize, d: usize, noise: f32) -> Vec<f32> {
    let mut rng = seeded(7);
    let mut basis = vec![0.0f32; 3 * d];
    // Three orthonormal axes: coordinates 0, 1, 2 rotated into the first six.
    let s = std::f32::consts::FRAC_1_SQRT_2;
    basis[0] = s;
    basis[1] = s;
    basis[d + 2] = s;
    basis[d + 3] = -s;
    basis[2 * d + 4] = s;
    basis[2 * d + 5] = s;
    let scales = [3.0f32, 2.0, 1.0];
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f32> = scales
            .iter()
            .map(|s| s * rng.sample::<f32, _>(StandardNormal))
            .collect();
        for j in 0..d {
            let mut v = 0.5;
            for (a, zi) in z.iter().enumerate() {
                v += zi * basis[a * d + j];
            }
            v += noise * rng.sample::<f32, _>(StandardNormal);
            x.push(v);
        }
    }
    x
}

#[test]
fn error_decreases_and_matches_the_discarded_variance() {
    let (n, d) = (4000, 10);
    let x = synthetic(n, d, 0.1);
    let pca = Pca::fit(&x, d, d).unwrap();
    let var = pca.all_variances();
    // The three big variances come out (sample estimates of 9, 4, 1).
    assert!((var[0] - 9.0).abs() < 0.8, "{var:?}");
    assert!((var[1] - 4.0).abs() < 0.4, "{var:?}");
    assert!((var[2] - 1.0).abs() < 0.15, "{var:?}");
    let mut prev = f64::INFINITY;
    for k in 1..=d {
        let rec = pca.truncated(k).unwrap().reconstruct(&x).unwrap();
        let err = mse(&rec, &x);
        assert!(err < prev, "k={k}: {err} >= {prev}");
        prev = err;
        // Closed form: the training MSE per value is the discarded variance over d.
        let expected: f64 = var[k..].iter().sum::<f64>() / d as f64;
        assert!(
            (err - expected).abs() < 1e-4 * (1.0 + expected),
            "k={k}: {err} vs {expected}"
        );
    }
    assert!(prev < 1e-8, "all components reconstruct exactly: {prev}");
}

#[test]
fn exact_low_rank_data_is_reconstructed_and_axes_are_orthonormal() {
    let (n, d) = (500, 8);
    let x = synthetic(n, d, 0.0);
    let pca = Pca::fit(&x, d, 3).unwrap();
    let rec = pca.reconstruct(&x).unwrap();
    assert!(mse(&rec, &x) < 1e-9);
    let c = pca.components();
    for a in 0..3 {
        for b in 0..3 {
            let dot: f64 = (0..d).map(|j| c[a * d + j] * c[b * d + j]).sum();
            let want = if a == b { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-9, "{a}.{b} = {dot}");
        }
    }
    let codes = pca.transform(&x).unwrap();
    assert_eq!(codes.len(), n * 3);
    // Codes are centred.
    let m0: f32 = codes.chunks_exact(3).map(|r| r[0]).sum::<f32>() / n as f32;
    assert!(m0.abs() < 1e-3, "{m0}");
}

#[test]
fn bad_sizes_are_errors() {
    let x = synthetic(10, 8, 0.1);
    assert!(Pca::fit(&x, 8, 0).is_err());
    assert!(Pca::fit(&x, 8, 9).is_err());
    assert!(Pca::fit(&x, 3, 2).is_err(), "80 values are not rows of 3");
    assert!(Pca::fit(&x[..8], 8, 1).is_err(), "one row");
    let pca = Pca::fit(&x, 8, 2).unwrap();
    assert!(pca.truncated(3).is_err());
    assert!(pca.transform(&[0.0; 5]).is_err());
}

#[test]
fn transforms_of_many_rows_match_row_by_row() {
    // More rows than one chunk (4096), so the chunked path is crossed twice.
    let (n, d) = (9001usize, 6usize);
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0) * if i % 3 == 0 { 2.0 } else { 1.0 })
        .collect();
    let pca = Pca::fit(&x, d, 3).unwrap();
    let z = pca.transform(&x).unwrap();
    let rec = pca.inverse_transform(&z).unwrap();
    assert_eq!((z.len(), rec.len()), (n * 3, n * d));
    for i in [0, 4095, 4096, 8191, 8192, n - 1] {
        let zi = pca.transform(&x[i * d..(i + 1) * d]).unwrap();
        assert_eq!(zi, z[i * 3..(i + 1) * 3], "code of row {i}");
        let ri = pca.inverse_transform(&zi).unwrap();
        assert_eq!(ri, rec[i * d..(i + 1) * d], "reconstruction of row {i}");
    }
}
