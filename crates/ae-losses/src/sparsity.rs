//! Sparsity penalties on the code of an autoencoder.

use candle_core::Tensor;

use crate::{LossError, Reduction, Result};

/// L1 activity penalty `|code|`, reduced with `reduction`.
///
/// Keras's `activity_regularizer=regularizers.l1(λ)` adds
/// `λ · l1_activity(code, Reduction::SumPerSample)`: the sum over the code
/// units, averaged over the batch. `code` is `[N, ...]`; the result is a
/// scalar tensor (without the λ factor).
pub fn l1_activity(code: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduction.apply(&code.abs()?)
}

/// `weight ·` [`l1_activity`] over a plain slice `code` holding a tensor of shape `dims`
/// row-major (for a training step computed outside candle's graph): `weight · Σ|h| / d`,
/// `d` the reduction's [`divisor`](Reduction::divisor), summed in `f64`.
pub fn l1_activity_flat(
    code: &[f32],
    dims: &[usize],
    reduction: Reduction,
    weight: f64,
) -> Result<f64> {
    crate::check_len("l1_activity_flat: code vs shape", code, dims)?;
    let l1: f64 = code.iter().map(|v| f64::from(v.abs())).sum();
    Ok(weight * l1 / reduction.divisor(dims)?)
}

/// Adds the gradient of [`l1_activity_flat`] w.r.t. `code` to `grad`:
/// `(weight / d) · sign(h)`, and nothing where `h = 0`.
pub fn l1_activity_flat_grad(
    code: &[f32],
    dims: &[usize],
    reduction: Reduction,
    weight: f64,
    grad: &mut [f32],
) -> Result<()> {
    crate::check_len("l1_activity_flat_grad: code vs shape", code, dims)?;
    crate::check_len("l1_activity_flat_grad: gradient vs shape", grad, dims)?;
    let k = (weight / reduction.divisor(dims)?) as f32;
    for (g, &h) in grad.iter_mut().zip(code) {
        if h != 0.0 {
            *g += k * h.signum();
        }
    }
    Ok(())
}

/// KL sparsity penalty of Ng's sparse autoencoder notes:
/// `Σ_j ρ ln(ρ/ρ̂_j) + (1-ρ) ln((1-ρ)/(1-ρ̂_j))`, where `ρ̂_j` is the mean
/// activation of code unit `j` over the batch.
///
/// `code_activation` is `[N, K]` (or `[N, ...]`, flattened to `[N, K]`) of
/// activations in `(0, 1)` (a sigmoid code); `ρ̂` is clamped to
/// `[1e-6, 1 - 1e-6]` so the logarithms stay finite. `rho` must be in
/// `(0, 1)`. The result is a scalar tensor: summed over the units, not
/// divided by anything (ρ̂ is already a batch mean), and not weighted by β.
pub fn kl_sparsity(code_activation: &Tensor, rho: f64) -> Result<Tensor> {
    if !(rho > 0.0 && rho < 1.0) {
        return Err(LossError::InvalidArgument(format!(
            "kl_sparsity: target activation rho = {rho} must be in (0, 1)"
        )));
    }
    if code_activation.rank() == 0 || code_activation.elem_count() == 0 {
        return Err(LossError::InvalidArgument(format!(
            "kl_sparsity: need a non-empty [N, K] batch of code activations, got shape {:?}",
            code_activation.dims()
        )));
    }
    let flat = if code_activation.rank() == 1 {
        code_activation.unsqueeze(1)?
    } else {
        code_activation.flatten_from(1)?
    };
    let eps = 1e-6;
    let rho_hat = flat.mean(0)?.clamp(eps, 1.0 - eps)?;
    let one_minus_hat = rho_hat.affine(-1.0, 1.0)?;
    // ρ ln ρ + (1-ρ) ln(1-ρ) - ρ ln ρ̂ - (1-ρ) ln(1-ρ̂)
    let constant = rho * rho.ln() + (1.0 - rho) * (1.0 - rho).ln();
    let terms =
        (rho_hat.log()?.affine(-rho, constant)? - one_minus_hat.log()?.affine(1.0 - rho, 0.0)?)?;
    Ok(terms.sum_all()?)
}
