//! ROC-AUC, average precision, quantiles, PSNR and SSIM against hand-computed values.

#![allow(clippy::unwrap_used)]

use ae_uses::stats::{average_precision, bce_clipped, psnr, quantile, roc_auc, ssim};

#[test]
fn auc_of_separable_reversed_and_tied_scores() {
    let labels = [false, false, false, true, true];
    assert_eq!(roc_auc(&[0.1, 0.2, 0.3, 0.8, 0.9], &labels).unwrap(), 1.0);
    assert_eq!(roc_auc(&[0.9, 0.8, 0.7, 0.1, 0.2], &labels).unwrap(), 0.0);
    assert_eq!(roc_auc(&[0.5; 5], &labels).unwrap(), 0.5);
    assert_eq!(
        average_precision(&[0.1, 0.2, 0.3, 0.8, 0.9], &labels).unwrap(),
        1.0
    );
    // All tied: one threshold, precision = the positive rate.
    assert!((average_precision(&[0.5; 5], &labels).unwrap() - 0.4).abs() < 1e-12);
}

#[test]
fn auc_with_ties_counts_half() {
    // Positives {0.5, 0.9}, negatives {0.1, 0.5}: pairs (0.5>0.1)=1, (0.5=0.5)=0.5,
    // (0.9>0.1)=1, (0.9>0.5)=1 -> 3.5 / 4.
    let auc = roc_auc(&[0.1, 0.5, 0.5, 0.9], &[false, false, true, true]).unwrap();
    assert!((auc - 0.875).abs() < 1e-12, "{auc}");
}

#[test]
fn average_precision_matches_scikit_learn() {
    // sklearn.metrics.average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.8333...
    let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
    // and roc_auc_score of the same = 0.75
    let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    assert!((auc - 0.75).abs() < 1e-12, "{auc}");
}

#[test]
fn auc_rejects_one_class_and_bad_input() {
    assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_err());
    assert!(average_precision(&[0.1, 0.2], &[false, false]).is_err());
    assert!(roc_auc(&[0.1], &[true, false]).is_err());
    assert!(roc_auc(&[f64::NAN, 0.2], &[true, false]).is_err());
}

#[test]
fn quantiles_interpolate_like_numpy() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    // numpy.percentile(range(1, 101), 95) = 95.05
    assert!((quantile(&v, 0.95).unwrap() - 95.05).abs() < 1e-9);
    assert_eq!(quantile(&v, 0.0).unwrap(), 1.0);
}

#[test]
fn psnr_ssim_and_bce_behave() {
    let a: Vec<f32> = (0..28 * 28)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    assert!(psnr(&a, &a).is_infinite());
    let b: Vec<f32> = a.iter().map(|v| (v + 0.1).min(1.0)).collect();
    let p = psnr(&a, &b);
    assert!(p > 19.0 && p < 21.0, "{p}");
    assert!((ssim(&a, &a, 1, 28, 28).unwrap() - 1.0).abs() < 1e-12);
    let s = ssim(&a, &b, 1, 28, 28).unwrap();
    assert!(s < 1.0 && s > 0.5, "{s}");
    let noise: Vec<f32> = (0..28 * 28)
        .map(|i| ((i * 7919) % 97) as f32 / 96.0)
        .collect();
    assert!(ssim(&a, &noise, 1, 28, 28).unwrap() < s);
    assert!(ssim(&a, &b, 1, 28, 27).is_err());
    // A perfect binary reconstruction has BCE ~ 1e-7.
    assert!(bce_clipped(&[0.0, 1.0], &[0.0, 1.0]) < 1e-6);
    assert!((bce_clipped(&[0.5], &[1.0]) - std::f64::consts::LN_2).abs() < 1e-6);
}
