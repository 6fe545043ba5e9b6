//! Small exact statistics: ROC-AUC and PR-AUC (average precision) with ties,
//! quantiles, MSE / BCE, PSNR and SSIM.
//!
//! These are written here rather than taken from a crate: each is a few lines
//! with a closed form (the Mann-Whitney U statistic for the ROC-AUC, a sum over
//! distinct thresholds for the average precision), and the crates that offer
//! them pull in whole statistics or image-processing stacks. Their definitions
//! follow scikit-learn's (`roc_auc_score`, `average_precision_score`) and
//! Wang et al. 2004 (SSIM), so the numbers compare with the Python baselines.

use crate::error::{Result, UsesError};

fn check_scores(scores: &[f64], labels: &[bool], what: &str) -> Result<(usize, usize)> {
    if scores.len() != labels.len() {
        return Err(UsesError::Mismatch(format!(
            "{what}: {} scores for {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(UsesError::Invalid(format!(
            "{what}: score #{i} is {}, scores must be finite",
            scores[i]
        )));
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(UsesError::Invalid(format!(
            "{what} needs both classes: {pos} positive (anomalous) and {neg} negative (normal) items"
        )));
    }
    Ok((pos, neg))
}

/// Indices of `scores` sorted by score, ascending (stable, NaN-free input).
fn order(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    idx
}

/// Area under the ROC curve of `scores` (higher = more likely positive) for
/// `labels` (`true` = positive, e.g. an anomaly).
///
/// Computed exactly as the Mann-Whitney U statistic with average ranks for
/// ties: the probability that a random positive scores above a random
/// negative, ties counting one half (scikit-learn's `roc_auc_score`).
/// An error when a class is empty, the lengths differ or a score is not finite.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let (pos, neg) = check_scores(scores, labels, "ROC-AUC")?;
    let idx = order(scores);
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        rank_sum += avg * idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Area under the precision-recall curve as the average precision,
/// `Σ_n (R_n - R_{n-1}) P_n` over the distinct score thresholds taken from the
/// highest down (scikit-learn's `average_precision_score`; tied scores form
/// one threshold). Equals the positive rate when every score is tied.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let (pos, _) = check_scores(scores, labels, "PR-AUC")?;
    let mut idx = order(scores);
    idx.reverse();
    let (mut tp, mut seen) = (0usize, 0usize);
    let mut prev_recall = 0.0f64;
    let mut ap = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        tp += idx[i..=j].iter().filter(|&&k| labels[k]).count();
        seen += j - i + 1;
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / seen as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    Ok(ap)
}

/// The `q`-quantile (`q` in [0, 1]) of `values`, interpolating linearly between
/// order statistics (numpy's default `percentile` method).
pub fn quantile(values: &[f64], q: f64) -> Result<f64> {
    if values.is_empty() {
        return Err(UsesError::Invalid("quantile of no values".into()));
    }
    if !(0.0..=1.0).contains(&q) {
        return Err(UsesError::Invalid(format!(
            "quantile must be in [0, 1], got {q}"
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(UsesError::Invalid(format!(
            "value #{i} is {}, values must be finite",
            values[i]
        )));
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Ok(v[lo] + (v[hi] - v[lo]) * frac)
}

/// MSE and PSNR of pixel buffers: defined once, in `ae-train` (its evaluation reports them).
pub use ae_train::{mse, psnr, psnr_of_mse};

/// Mean binary cross-entropy per value of a reconstruction `rec` (clipped to
/// `[1e-7, 1 - 1e-7]`, as the scikit-learn PCA baseline does) against `target`.
pub fn bce_clipped(rec: &[f32], target: &[f32]) -> f64 {
    let n = rec.len().min(target.len()).max(1);
    rec.iter()
        .zip(target)
        .map(|(&r, &t)| {
            let r = f64::from(r).clamp(1e-7, 1.0 - 1e-7);
            let t = f64::from(t);
            -(t * r.ln() + (1.0 - t) * (1.0 - r).ln())
        })
        .sum::<f64>()
        / n as f64
}

/// The Gaussian window of SSIM for an image of `h x w`: 11 taps, σ = 1.5
/// (Wang et al. 2004), shrunk to the largest odd size that fits a smaller image
/// (σ scaled with it).
fn ssim_window(h: usize, w: usize) -> Vec<f64> {
    let mut size = 11.min(h).min(w);
    if size % 2 == 0 {
        size -= 1;
    }
    let size = size.max(1);
    let sigma = 1.5 * size as f64 / 11.0;
    let half = (size / 2) as f64;
    let g: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// Separable 'valid' filtering of an `h x w` plane with the window `g`.
fn filter_valid(x: &[f64], h: usize, w: usize, g: &[f64], tmp: &mut Vec<f64>, out: &mut Vec<f64>) {
    let k = g.len();
    let (oh, ow) = (h + 1 - k, w + 1 - k);
    tmp.clear();
    tmp.resize(h * ow, 0.0);
    for r in 0..h {
        let row = &x[r * w..(r + 1) * w];
        for c in 0..ow {
            tmp[r * ow + c] = g.iter().zip(&row[c..c + k]).map(|(a, b)| a * b).sum();
        }
    }
    out.clear();
    out.resize(oh * ow, 0.0);
    for r in 0..oh {
        for c in 0..ow {
            out[r * ow + c] = g
                .iter()
                .enumerate()
                .map(|(i, a)| a * tmp[(r + i) * ow + c])
                .sum();
        }
    }
}

/// Structural similarity of two images `[C, H, W]` (values in [0, 1], data
/// range 1): the mean of the SSIM map over the 'valid' region of an 11x11
/// Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03 (Wang et al. 2004;
/// scikit-image's `structural_similarity(..., gaussian_weights=True,
/// use_sample_covariance=False)` up to the border handling), averaged over channels.
pub fn ssim(a: &[f32], b: &[f32], channels: usize, h: usize, w: usize) -> Result<f64> {
    let plane = h * w;
    if plane == 0 || a.len() != channels * plane || b.len() != a.len() {
        return Err(UsesError::Mismatch(format!(
            "SSIM of images of {channels}x{h}x{w} needs {} values each, got {} and {}",
            channels * plane,
            a.len(),
            b.len()
        )));
    }
    let g = ssim_window(h, w);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut tmp = Vec::new();
    let mut maps: [Vec<f64>; 5] = Default::default();
    let mut total = 0.0;
    for ch in 0..channels {
        let x: Vec<f64> = a[ch * plane..(ch + 1) * plane]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let y: Vec<f64> = b[ch * plane..(ch + 1) * plane]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
        let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
        let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
        for (m, src) in maps.iter_mut().zip([&x, &y, &xx, &yy, &xy]) {
            filter_valid(src, h, w, &g, &mut tmp, m);
        }
        let [mx, my, sxx, syy, sxy] = &maps;
        let n = mx.len();
        let mut s = 0.0;
        for i in 0..n {
            let (ux, uy) = (mx[i], my[i]);
            let vx = sxx[i] - ux * ux;
            let vy = syy[i] - uy * uy;
            let cxy = sxy[i] - ux * uy;
            s += ((2.0 * ux * uy + c1) * (2.0 * cxy + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
        }
        total += s / n as f64;
    }
    Ok(total / channels as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.0).ok(), Some(1.0));
        assert_eq!(quantile(&v, 1.0).ok(), Some(4.0));
        assert_eq!(quantile(&v, 0.5).ok(), Some(2.5));
        assert!(quantile(&v, 1.5).is_err());
        assert!(quantile(&[], 0.5).is_err());
    }

    #[test]
    fn ssim_window_sums_to_one() {
        let g = ssim_window(28, 28);
        assert_eq!(g.len(), 11);
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(ssim_window(4, 9).len(), 3);
    }
}
