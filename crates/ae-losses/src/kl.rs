//! Closed-form KL divergence of a diagonal Gaussian to the standard normal.

use candle_core::Tensor;

use crate::{Reduction, Result, check_len, same_shape};

/// KL(N(μ, e^{logvar}) ‖ N(0, I)) in closed form,
/// `-½ (1 + logvar - μ² - e^{logvar})` per element, reduced with `reduction`.
///
/// `mu` and `logvar` have the same shape, usually `[N, latent]`; the result
/// is a scalar tensor. [`Reduction::SumPerSample`] (sum over the latent
/// dimensions, mean over the batch) is the KL term of PyTorch's VAE example.
/// Each term is zero exactly at `μ = 0, logvar = 0` and positive elsewhere
/// (up to float rounding, ~1e-7 per element, for |logvar| below ~1e-3).
pub fn gaussian_kl(mu: &Tensor, logvar: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("gaussian_kl: mu vs logvar", mu, logvar)?;
    reduction.apply(&kl_terms(mu, logvar)?)
}

/// Per-element KL terms `½ (μ² + e^{logvar} - 1 - logvar)`, same shape as `mu`.
fn kl_terms(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let var_term = ((logvar.exp()? - 1.0)? - logvar)?;
    Ok((mu.sqr()? + var_term)?.affine(0.5, 0.0)?)
}

/// [`gaussian_kl`] over plain slices `mu` and `logvar` holding tensors of shape `dims`
/// row-major, with `sd = exp(½ logvar)` at hand (as [`crate::reparameterise_flat`] gives
/// it): `Σ ½ (μ² + sd² - 1 - logvar)`, summed in `f64` and reduced with `reduction`.
pub fn gaussian_kl_flat(
    mu: &[f32],
    logvar: &[f32],
    sd: &[f32],
    dims: &[usize],
    reduction: Reduction,
) -> Result<f64> {
    check_len("gaussian_kl_flat: mu vs shape", mu, dims)?;
    check_len("gaussian_kl_flat: logvar vs shape", logvar, dims)?;
    check_len("gaussian_kl_flat: sd vs shape", sd, dims)?;
    let sum: f64 = mu
        .iter()
        .zip(logvar)
        .zip(sd)
        .map(|((&m, &l), &s)| 0.5 * f64::from(m * m + s * s - 1.0 - l))
        .sum();
    Ok(sum * reduction.scale(dims)?)
}
