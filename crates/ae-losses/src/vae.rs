//! The VAE loss: reconstruction + β·KL.

use candle_core::Tensor;

use crate::{LossError, Reduction, Result, bce_with_logits, gaussian_kl};

/// The parts of the VAE loss, all scalar tensors.
#[derive(Debug, Clone)]
pub struct VaeLoss {
    /// `recon + β·kl`, the value to minimise.
    pub total: Tensor,
    /// Binary cross-entropy from logits, summed per image, averaged over the batch.
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
    let recon = bce_with_logits(logits, target, Reduction::SumPerSample)?;
    let kl = gaussian_kl(mu, logvar, Reduction::SumPerSample)?;
    let total = (&recon + kl.affine(beta, 0.0)?)?;
    Ok(VaeLoss { total, recon, kl })
}
