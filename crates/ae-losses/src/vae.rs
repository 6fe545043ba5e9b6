//! The VAE loss: reconstruction + β·KL, with a Bernoulli (BCE) or a Gaussian
//! (squared error) decoder.

use candle_core::Tensor;

use crate::{LossError, ReconLoss, Reduction, Result, gaussian_kl, mse};

/// The parts of the VAE loss, all scalar tensors.
#[derive(Debug, Clone)]
pub struct VaeLoss {
    /// `recon + β·kl`, the value to minimise.
    pub total: Tensor,
    /// The reconstruction term, summed per image, averaged over the batch:
    /// binary cross-entropy from logits, or `½·Σ(out - target)²` (see [`vae_loss_with`]).
    pub recon: Tensor,
    /// KL(q(z|x) ‖ N(0, I)), summed per image, averaged over the batch (not β-weighted).
    pub kl: Tensor,
}

/// The VAE loss of PyTorch's VAE example, β-weighted:
/// `BCE(σ(logits), target) + β · KL(N(μ, e^{logvar}) ‖ N(0, I))`, both
/// terms summed per image and averaged over the batch
/// ([`Reduction::SumPerSample`]).
///
/// `logits` and `target` are `[N, ...]` with the same shape (target in
/// `[0, 1]`); `mu` and `logvar` are `[N, latent]` with the same batch size
/// `N`. `beta` must be finite and `>= 0` (`beta = 1` is the plain VAE).
pub fn vae_loss(
    logits: &Tensor,
    target: &Tensor,
    mu: &Tensor,
    logvar: &Tensor,
    beta: f64,
) -> Result<VaeLoss> {
    vae_loss_with(ReconLoss::Bce, logits, target, mu, logvar, beta)
}

/// [`vae_loss`] with the decoder's likelihood chosen by `recon`:
///
/// - [`ReconLoss::Bce`]: a Bernoulli decoder, `BCE(σ(out), target)` summed per
///   sample (exactly [`vae_loss`]);
/// - [`ReconLoss::Mse`]: a Gaussian decoder of unit variance with mean `out`
///   (identity output), whose negative log-likelihood is
///   `½·Σ_d (out_d - target_d)² + (D/2)·ln 2π`: the reconstruction term is
///   **`½·SSE`**, half the sum of squared errors per sample, averaged over the
///   batch (the constant is left out).
///
/// Either way `total = recon + β·KL`, the negative ELBO per sample (up to the
/// constant for the Gaussian decoder). Shapes as in [`vae_loss`].
pub fn vae_loss_with(
    recon: ReconLoss,
    logits: &Tensor,
    target: &Tensor,
    mu: &Tensor,
    logvar: &Tensor,
    beta: f64,
) -> Result<VaeLoss> {
    if !(beta.is_finite() && beta >= 0.0) {
        return Err(LossError::InvalidArgument(format!(
            "vae_loss: beta = {beta} must be finite and >= 0"
        )));
    }
    if logits.dims().first() != mu.dims().first() {
        return Err(LossError::ShapeMismatch {
            what: "vae_loss: batch size of logits vs mu",
            left: logits.dims().to_vec(),
            right: mu.dims().to_vec(),
        });
    }
    let recon = match recon {
        ReconLoss::Bce => recon.loss(logits, target, Reduction::SumPerSample)?,
        ReconLoss::Mse => mse(logits, target, Reduction::SumPerSample)?.affine(0.5, 0.0)?,
    };
    let kl = gaussian_kl(mu, logvar, Reduction::SumPerSample)?;
    let total = (&recon + kl.affine(beta, 0.0)?)?;
    Ok(VaeLoss { total, recon, kl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn gaussian_decoder_is_half_the_sse_per_sample() {
        let d = &Device::Cpu;
        let out = Tensor::new(&[[1f64, 2.0, 0.0], [0.0, 0.0, -1.0]], d).unwrap();
        let y = Tensor::new(&[[0f64, 0.0, 0.0], [0.0, 3.0, 1.0]], d).unwrap();
        let z = Tensor::zeros((2, 2), candle_core::DType::F64, d).unwrap();
        let l = vae_loss_with(ReconLoss::Mse, &out, &y, &z, &z, 1.0).unwrap();
        // SSE per sample: 5 and 13; half of their mean is 4.5; KL at the prior is 0.
        let r = l.recon.to_scalar::<f64>().unwrap();
        assert!((r - 4.5).abs() < 1e-12, "{r}");
        assert!((l.total.to_scalar::<f64>().unwrap() - 4.5).abs() < 1e-12);
        let bce = vae_loss_with(ReconLoss::Bce, &out, &y, &z, &z, 1.0).unwrap();
        let plain = vae_loss(&out, &y, &z, &z, 1.0).unwrap();
        assert_eq!(
            bce.total.to_scalar::<f64>().unwrap(),
            plain.total.to_scalar::<f64>().unwrap()
        );
    }
}
