//! Reconstruction losses: mean squared error and binary cross-entropy from logits,
//! and [`ReconLoss`], the choice between them that a model's config records.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Reduction, Result, same_shape};

/// The reconstruction loss of a model, and with it the activation of its output layer.
///
/// - [`Bce`](ReconLoss::Bce) (the default: images): the last layer gives logits,
///   the reconstruction is `σ(logits)` in [0, 1], the loss is [`bce_with_logits`];
///   targets must lie in [0, 1].
/// - [`Mse`](ReconLoss::Mse) (standardised tables): the last layer is linear
///   (identity output), the reconstruction is the output itself, the loss is
///   [`mse`] of the output against the target; targets may be any real numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReconLoss {
    /// Binary cross-entropy from logits; sigmoid output.
    #[default]
    Bce,
    /// Squared error; linear (identity) output.
    Mse,
}

impl ReconLoss {
    /// The reconstruction of the last layer's output `out` (any shape, same
    /// shape back): `σ(out)` for [`Bce`](ReconLoss::Bce), `out` itself for
    /// [`Mse`](ReconLoss::Mse).
    pub fn output(self, out: &Tensor) -> Result<Tensor> {
        Ok(match self {
            ReconLoss::Bce => ae_kernels::sigmoid(out)?,
            ReconLoss::Mse => out.clone(),
        })
    }

    /// The loss of the last layer's output `out` against `target` (same
    /// shape), reduced with `reduction`: [`bce_with_logits`] or [`mse`]
    /// (the output is the prediction). A scalar tensor.
    pub fn loss(self, out: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        match self {
            ReconLoss::Bce => bce_with_logits(out, target, reduction),
            ReconLoss::Mse => mse(out, target, reduction),
        }
    }

    /// `bce` or `mse`, as in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconLoss::Bce => "bce",
            ReconLoss::Mse => "mse",
        }
    }
}

impl std::fmt::Display for ReconLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReconLoss {
    type Err = crate::LossError;

    /// Parses `bce` or `mse` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bce" => Ok(ReconLoss::Bce),
            "mse" => Ok(ReconLoss::Mse),
            other => Err(crate::LossError::InvalidArgument(format!(
                "unknown reconstruction loss {other:?} (expected mse or bce)"
            ))),
        }
    }
}

/// Mean squared error `(pred - target)²`, reduced with `reduction`.
///
/// `pred` and `target` have the same shape (any, `[N, ...]` for
/// `SumPerSample`); the result is a scalar tensor. With
/// [`Reduction::Mean`] this is Keras's `"mse"` (per-pixel mean).
pub fn mse(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("mse: prediction vs target", pred, target)?;
    reduction.apply(&(pred - target)?.sqr()?)
}

/// [`mse`] over plain `f32` slices, for a training step computed outside candle's graph:
/// `pred` and `target` hold a tensor of shape `dims` row-major. Returns the loss, the
/// per-element term `(pred - target)²` reduced with `reduction` (the same
/// [`Reduction::scale`]), and its gradient w.r.t. `pred`, `2(pred - target)` times that
/// scale.
///
/// Each term is computed in `f32` as the tensor form computes it, but summed in `f64`
/// (the tensor form sums its `f32` terms in `f32`, in candle's order): the two values agree
/// to the rounding of an `f32` sum (about `1e-7` relative per term added), this one being
/// the closer to the exact sum of the terms.
pub fn mse_flat(
    pred: &[f32],
    target: &[f32],
    dims: &[usize],
    reduction: Reduction,
) -> Result<(f64, Vec<f32>)> {
    crate::check_len("mse_flat: prediction vs shape", pred, dims)?;
    crate::check_len("mse_flat: target vs shape", target, dims)?;
    let scale = reduction.scale(dims)?;
    let g = (2.0 * scale) as f32;
    let mut sum = 0f64;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(&p, &t)| {
            let d = p - t;
            sum += f64::from(d * d);
            g * d
        })
        .collect();
    Ok((sum * scale, grad))
}

/// Mean squared error of `sigmoid(logits)` against `target`: `(σ(x) - y)²`,
/// reduced with `reduction`.
///
/// For models that output logits (all of ours) and are trained with MSE.
/// `logits` and `target` have the same shape; the result is a scalar tensor.
pub fn mse_from_logits(logits: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("mse_from_logits: logits vs target", logits, target)?;
    let pred = ae_kernels::sigmoid(logits)?;
    reduction.apply(&(pred - target)?.sqr()?)
}

/// Binary cross-entropy of `sigmoid(logits)` against `target` in `[0, 1]`,
/// computed from the logits in the stable form
/// `max(x, 0) - x·y + ln(1 + e^{-|x|})`, reduced with `reduction`.
///
/// Equal to `-(y ln σ(x) + (1-y) ln(1-σ(x)))`, but finite in value and
/// gradient for any finite logit (e^{-|x|} never overflows and the logarithm's
/// argument is in `[1, 2]`). Note that for non-binary targets the minimum is
/// not zero (it is the entropy of `y`).
///
/// `logits` and `target` have the same shape; the result is a scalar tensor.
/// [`Reduction::Mean`] gives Keras's `"binary_crossentropy"` (per-pixel
/// mean); [`Reduction::SumPerSample`] gives the VAE reconstruction term of
/// PyTorch's VAE example (sum per image, mean over the batch).
///
/// On the CPU this is one fused op (`ae_kernels::bce_with_logits_sum`: one pass forward, one
/// backward, summed in `f64`); elsewhere it is built from candle ops.
pub fn bce_with_logits(logits: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("bce_with_logits: logits vs target", logits, target)?;
    let scale = reduction.scale(logits.dims())?;
    Ok(ae_kernels::bce_with_logits_sum(logits, target, scale)?)
}

/// [`bce_with_logits`] over plain `f32` slices, for a training step computed outside
/// candle's graph: `logits` and `target` hold a tensor of shape `dims` row-major. Returns
/// the loss (the same per-element term summed in the same order as the CPU op, reduced
/// with `reduction`) and its gradient w.r.t. the logits, `(σ(x) - y)` times the
/// reduction's scale.
pub fn bce_with_logits_flat(
    logits: &[f32],
    target: &[f32],
    dims: &[usize],
    reduction: Reduction,
) -> Result<(f64, Vec<f32>)> {
    crate::check_len("bce_with_logits_flat: logits vs shape", logits, dims)?;
    crate::check_len("bce_with_logits_flat: target vs shape", target, dims)?;
    let scale = reduction.scale(dims)?;
    let (sum, grad) = ae_kernels::bce_with_logits_slice(logits, target, scale as f32);
    Ok((sum * scale, grad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn recon_loss_picks_its_loss_and_output() {
        let x = Tensor::new(&[[0.5f64, -2.0], [3.0, 1.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[1.5f64, -1.0], [0.0, 1.0]], &Device::Cpu).unwrap();
        let v = |t: Tensor| t.to_scalar::<f64>().unwrap();
        // (1 + 1 + 9 + 0) / 4
        let m = v(ReconLoss::Mse.loss(&x, &y, Reduction::Mean).unwrap());
        assert!((m - 11.0 / 4.0).abs() < 1e-12, "{m}");
        assert_eq!(
            ReconLoss::Mse.output(&x).unwrap().to_vec2::<f64>().unwrap(),
            x.to_vec2::<f64>().unwrap()
        );
        let s = ReconLoss::Bce.output(&x).unwrap().to_vec2::<f64>().unwrap();
        assert!((s[0][0] - 1.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-12);
        assert_eq!("MSE".parse::<ReconLoss>().unwrap(), ReconLoss::Mse);
        assert!("l2".parse::<ReconLoss>().is_err());
        assert_eq!(serde_json::to_string(&ReconLoss::Mse).unwrap(), "\"mse\"");
    }

    #[test]
    fn bce_of_known_values() {
        let x = Tensor::new(&[[0f64, 2.0, -3.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[0.5f64, 1.0, 0.0]], &Device::Cpu).unwrap();
        let expected = [
            std::f64::consts::LN_2,
            (1.0 + (-2f64).exp()).ln(),
            (1.0 + (-3f64).exp()).ln(),
        ]
        .iter()
        .sum::<f64>();
        for (r, e) in [
            (Reduction::Sum, expected),
            (Reduction::SumPerSample, expected),
            (Reduction::Mean, expected / 3.0),
        ] {
            let got = bce_with_logits(&x, &y, r)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!((got - e).abs() < 1e-12, "{r:?}: {got} vs {e}");
        }
    }
}
