//! Reconstruction losses: mean squared error and binary cross-entropy from logits.

use candle_core::Tensor;

use crate::{Reduction, Result, same_shape};

/// Mean squared error `(pred - target)²`, reduced with `reduction`.
///
/// `pred` and `target` have the same shape (any, `[N, ...]` for
/// `SumPerSample`); the result is a scalar tensor. With
/// [`Reduction::Mean`] this is Keras's `"mse"` (per-pixel mean).
pub fn mse(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("mse: prediction vs target", pred, target)?;
    reduction.apply(&(pred - target)?.sqr()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
