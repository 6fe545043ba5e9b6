//! The VAE loss: reconstruction + β·KL, with a Bernoulli (BCE) or a Gaussian
//! (squared error) decoder; the reparameterised sample it is taken at; and the plain-slice
//! forms of both, for a training step computed outside candle's graph.

use candle_core::Tensor;

use crate::{
    LossError, ReconLoss, Reduction, Result, bce_with_logits_flat, check_len, gaussian_kl,
    gaussian_kl_flat, mse, mse_flat,
};

/// How both terms of the VAE loss are reduced: summed per sample, averaged over the batch.
const REDUCTION: Reduction = Reduction::SumPerSample;

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
    check_beta(beta)?;
    if logits.dims().first() != mu.dims().first() {
        return Err(LossError::ShapeMismatch {
            what: "vae_loss: batch size of logits vs mu",
            left: logits.dims().to_vec(),
            right: mu.dims().to_vec(),
        });
    }
    let recon = match recon {
        ReconLoss::Bce => recon.loss(logits, target, REDUCTION)?,
        ReconLoss::Mse => mse(logits, target, REDUCTION)?.affine(0.5, 0.0)?,
    };
    let kl = gaussian_kl(mu, logvar, REDUCTION)?;
    let total = (&recon + kl.affine(beta, 0.0)?)?;
    Ok(VaeLoss { total, recon, kl })
}

fn check_beta(beta: f64) -> Result<()> {
    if !(beta.is_finite() && beta >= 0.0) {
        return Err(LossError::InvalidArgument(format!(
            "vae_loss: beta = {beta} must be finite and >= 0"
        )));
    }
    Ok(())
}

/// The reparameterised sample `z = μ + exp(½ logvar)·ε` (`mu`, `logvar` and the standard
/// normal `eps` of the same shape, `[N, latent]`): what a VAE decodes in training, and
/// what [`vae_loss`] is differentiated through.
pub fn reparameterise(mu: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    same_shape_all(mu, logvar, eps)?;
    Ok((mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?)
}

fn same_shape_all(mu: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<()> {
    crate::same_shape("reparameterise: mu vs logvar", mu, logvar)?;
    crate::same_shape("reparameterise: mu vs eps", mu, eps)
}

/// [`reparameterise`] over plain slices of the same length: `(sd, z)`, with
/// `sd = exp(½ logvar)` and `z = μ + sd·ε`.
pub fn reparameterise_flat(
    mu: &[f32],
    logvar: &[f32],
    eps: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len("reparameterise_flat: logvar vs mu", logvar, &[mu.len()])?;
    check_len("reparameterise_flat: eps vs mu", eps, &[mu.len()])?;
    let sd: Vec<f32> = logvar.iter().map(|&v| (0.5 * v).exp()).collect();
    let z: Vec<f32> = mu
        .iter()
        .zip(&sd)
        .zip(eps)
        .map(|((&m, &s), &e)| m + s * e)
        .collect();
    Ok((sd, z))
}

/// The [`vae_loss_with`] of plain slices, as [`vae_loss_flat_with`] computes it.
#[derive(Debug, Clone)]
pub struct VaeLossFlat {
    /// `recon + β·kl`.
    pub total: f64,
    /// The reconstruction term, summed per sample, averaged over the batch: the BCE from
    /// logits, or `½·Σ(out - target)²`.
    pub recon: f64,
    /// The KL to the prior, summed per sample, averaged over the batch (not β-weighted).
    pub kl: f64,
    /// `∂total/∂out` (the logits for BCE), the output's shape.
    pub grad_logits: Vec<f32>,
}

/// [`vae_loss`] (the Bernoulli decoder) over plain slices: [`vae_loss_flat_with`] with
/// [`ReconLoss::Bce`].
pub fn vae_loss_flat(
    logits: &[f32],
    target: &[f32],
    out_dims: &[usize],
    latent: (&[f32], &[f32], &[f32]),
    latent_dims: &[usize],
    beta: f64,
) -> Result<VaeLossFlat> {
    vae_loss_flat_with(
        ReconLoss::Bce,
        logits,
        target,
        out_dims,
        latent,
        latent_dims,
        beta,
    )
}

/// [`vae_loss_with`] over plain slices, for a training step computed outside candle's
/// graph: `out` (the decoder's last layer: logits for BCE, the Gaussian mean for MSE) and
/// `target` hold `[N, D]` (`out_dims`), `mu`, `logvar` and `sd = exp(½ logvar)` hold
/// `[N, latent]` (`latent_dims`), row-major. The reconstruction term is
/// [`bce_with_logits_flat`] or half of [`mse_flat`], summed per sample and averaged over
/// the batch, as in [`vae_loss_with`]. The gradient w.r.t. `mu` and `logvar` is
/// [`vae_latent_grad`]'s.
pub fn vae_loss_flat_with(
    recon: ReconLoss,
    out: &[f32],
    target: &[f32],
    out_dims: &[usize],
    (mu, logvar, sd): (&[f32], &[f32], &[f32]),
    latent_dims: &[usize],
    beta: f64,
) -> Result<VaeLossFlat> {
    check_beta(beta)?;
    if out_dims.first() != latent_dims.first() {
        return Err(LossError::ShapeMismatch {
            what: "vae_loss_flat: batch size of logits vs mu",
            left: out_dims.to_vec(),
            right: latent_dims.to_vec(),
        });
    }
    let (recon, grad_logits) = match recon {
        ReconLoss::Bce => bce_with_logits_flat(out, target, out_dims, REDUCTION)?,
        ReconLoss::Mse => {
            let (sse, mut grad) = mse_flat(out, target, out_dims, REDUCTION)?;
            grad.iter_mut().for_each(|g| *g *= 0.5);
            (0.5 * sse, grad)
        }
    };
    let kl = gaussian_kl_flat(mu, logvar, sd, latent_dims, REDUCTION)?;
    Ok(VaeLossFlat {
        total: recon + beta * kl,
        recon,
        kl,
        grad_logits,
    })
}

/// The gradients of the VAE loss w.r.t. `mu` and `logvar` (`[N, latent]`, `dims`), given
/// `gz`, its gradient w.r.t. the sample `z` of [`reparameterise_flat`] (`sd` and `eps` as
/// used there): `∂/∂μ = gz + β·μ/N`, and through `z = μ + exp(½ logvar)·ε`,
/// `∂/∂logvar = ½ (gz·sd·ε + β·(sd² - 1)/N)`. Returns `(∂/∂mu, ∂/∂logvar)`.
pub fn vae_latent_grad(
    gz: &[f32],
    (mu, sd, eps): (&[f32], &[f32], &[f32]),
    dims: &[usize],
    beta: f64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_beta(beta)?;
    for (what, v) in [
        ("vae_latent_grad: gz vs shape", gz),
        ("vae_latent_grad: mu vs shape", mu),
        ("vae_latent_grad: sd vs shape", sd),
        ("vae_latent_grad: eps vs shape", eps),
    ] {
        check_len(what, v, dims)?;
    }
    let kb = (beta * REDUCTION.scale(dims)?) as f32;
    let g_mu: Vec<f32> = gz.iter().zip(mu).map(|(&g, &m)| g + kb * m).collect();
    let g_lv: Vec<f32> = gz
        .iter()
        .zip(sd)
        .zip(eps)
        .map(|((&g, &s), &e)| 0.5 * (g * s * e + kb * (s * s - 1.0)))
        .collect();
    Ok((g_mu, g_lv))
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
