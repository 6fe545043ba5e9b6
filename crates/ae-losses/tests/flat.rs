//! The plain-slice forms of the losses (`*_flat`) against their tensor forms: the same
//! value, and the gradient that candle's autograd takes of the tensor form (BCE, MSE, the
//! L1 penalty, and the VAE loss with either decoder).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use ae_kernels::test_utils::{self, values};
use ae_losses::{
    ReconLoss, Reduction, bce_with_logits, bce_with_logits_flat, gaussian_kl, gaussian_kl_flat,
    l1_activity, l1_activity_flat, l1_activity_flat_grad, mse, mse_flat, reparameterise,
    reparameterise_flat, vae_latent_grad, vae_loss, vae_loss_flat, vae_loss_flat_with,
    vae_loss_with,
};
use candle_core::{Device, Tensor, Var};

fn var(v: &[f32], dims: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_slice(v, dims, &Device::Cpu).unwrap()).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    f64::from(t.to_scalar::<f32>().unwrap())
}

/// Max |a - b| over max(1e-3, max |b|).
fn rel_err(a: &[f32], b: &Tensor) -> f32 {
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

#[test]
fn bce_flat_is_the_tensor_bce_and_its_gradient() {
    let dims = [5, 7];
    let xv = values(35, 1, -6.0, 6.0);
    let yv = values(35, 2, 0.0, 1.0);
    for r in [Reduction::Mean, Reduction::SumPerSample, Reduction::Sum] {
        let (value, grad) = bce_with_logits_flat(&xv, &yv, &dims, r).unwrap();
        let x = var(&xv, &dims);
        let y = Tensor::from_slice(&yv, &dims[..], &Device::Cpu).unwrap();
        let t = bce_with_logits(x.as_tensor(), &y, r).unwrap();
        assert!(close(value, scalar(&t)), "{r:?}: {value} vs {}", scalar(&t));
        let g = t.backward().unwrap();
        assert!(
            rel_err(&grad, g.get(x.as_tensor()).unwrap()) < 1e-5,
            "{r:?}"
        );
    }
    assert!(bce_with_logits_flat(&xv[..34], &yv, &dims, Reduction::Mean).is_err());
    assert!(bce_with_logits_flat(&xv, &yv, &[5, 8], Reduction::Mean).is_err());
}

#[test]
fn l1_flat_is_the_tensor_l1_and_its_gradient() {
    let dims = [6, 4];
    let mut hv = values(24, 3, -1.0, 1.0);
    hv[5] = 0.0;
    let lambda = 0.3;
    for r in [Reduction::Mean, Reduction::SumPerSample] {
        let value = l1_activity_flat(&hv, &dims, r, lambda).unwrap();
        let mut grad = vec![0.5f32; 24];
        l1_activity_flat_grad(&hv, &dims, r, lambda, &mut grad).unwrap();
        let h = var(&hv, &dims);
        let t = l1_activity(h.as_tensor(), r)
            .unwrap()
            .affine(lambda, 0.0)
            .unwrap();
        assert!(close(value, scalar(&t)), "{r:?}");
        let g = t.backward().unwrap();
        let g = (g.get(h.as_tensor()).unwrap() + 0.5).unwrap();
        let mut theirs: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        // The flat form takes 0 as the subgradient at h = 0, whatever candle's |x| takes.
        theirs[5] = 0.5;
        let theirs = Tensor::from_vec(theirs, 24, &Device::Cpu).unwrap();
        assert!(rel_err(&grad, &theirs) < 1e-6, "{r:?}");
        assert_eq!(grad[5], 0.5, "no gradient at h = 0");
    }
}

#[test]
fn the_vae_flat_loss_is_vae_loss_through_reparameterise() {
    check_vae_flat(ReconLoss::Bce);
}

#[test]
fn the_gaussian_vae_flat_loss_is_vae_loss_with_mse() {
    check_vae_flat(ReconLoss::Mse);
}

/// `vae_loss_flat_with(recon, ...)` (and `vae_loss_flat` for BCE) against
/// `vae_loss_with(recon, ...)` and candle's gradient through `reparameterise`.
fn check_vae_flat(recon: ReconLoss) {
    let (n, d, k) = (4, 9, 3);
    let (od, ld) = ([n, d], [n, k]);
    let xv = values(n * d, 4, -3.0, 3.0);
    // Gaussian targets may be any real numbers (standardised table columns).
    let yv = match recon {
        ReconLoss::Bce => values(n * d, 5, 0.0, 1.0),
        ReconLoss::Mse => values(n * d, 5, -2.0, 2.0),
    };
    let mv = values(n * k, 6, -1.0, 1.0);
    let lv = values(n * k, 7, -1.5, 1.0);
    let ev = values(n * k, 8, -2.0, 2.0);
    let beta = 0.7;
    // Tensor form: the logits are a linear function of z, so the gradient reaches mu and
    // logvar through z as in a model: logits = x + z·A, A a fixed [k, d] matrix.
    let av = values(k * d, 9, -1.0, 1.0);
    let (mu, logvar) = (var(&mv, &ld), var(&lv, &ld));
    let dev = Device::Cpu;
    let eps = Tensor::from_slice(&ev, &ld[..], &dev).unwrap();
    let a = Tensor::from_slice(&av, (k, d), &dev).unwrap();
    let z = reparameterise(mu.as_tensor(), logvar.as_tensor(), &eps).unwrap();
    let x = Tensor::from_slice(&xv, &od[..], &dev).unwrap();
    let logits = (&x + z.matmul(&a).unwrap()).unwrap();
    let y = Tensor::from_slice(&yv, &od[..], &dev).unwrap();
    let t = vae_loss_with(recon, &logits, &y, mu.as_tensor(), logvar.as_tensor(), beta).unwrap();
    if recon == ReconLoss::Bce {
        let plain = vae_loss(&logits, &y, mu.as_tensor(), logvar.as_tensor(), beta).unwrap();
        assert_eq!(scalar(&plain.total), scalar(&t.total));
    }
    let g = t.total.backward().unwrap();

    let (sd, zf) = reparameterise_flat(&mv, &lv, &ev).unwrap();
    let zt: Vec<f32> = z.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(zf, zt, "the same sample, bit for bit");
    let lf: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let ours = vae_loss_flat_with(recon, &lf, &yv, &od, (&mv, &lv, &sd), &ld, beta).unwrap();
    if recon == ReconLoss::Bce {
        let plain = vae_loss_flat(&lf, &yv, &od, (&mv, &lv, &sd), &ld, beta).unwrap();
        assert_eq!(
            (plain.total, &plain.grad_logits),
            (ours.total, &ours.grad_logits)
        );
    }
    assert!(
        close(ours.recon, scalar(&t.recon)),
        "{recon}: {} vs {}",
        ours.recon,
        scalar(&t.recon)
    );
    assert!(close(ours.kl, scalar(&t.kl)));
    assert!(close(ours.total, scalar(&t.total)));
    let kl = gaussian_kl(mu.as_tensor(), logvar.as_tensor(), Reduction::Mean).unwrap();
    let klf = gaussian_kl_flat(&mv, &lv, &sd, &ld, Reduction::Mean).unwrap();
    assert!(close(klf, scalar(&kl)));
    // ∂/∂z = ∂/∂logits · Aᵀ
    let gl = Tensor::from_slice(&ours.grad_logits, &od[..], &dev).unwrap();
    let gz: Vec<f32> = gl
        .matmul(&a.t().unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (g_mu, g_lv) = vae_latent_grad(&gz, (&mv, &sd, &ev), &ld, beta).unwrap();
    assert!(rel_err(&g_mu, g.get(mu.as_tensor()).unwrap()) < 1e-5);
    assert!(rel_err(&g_lv, g.get(logvar.as_tensor()).unwrap()) < 1e-5);
    assert!(vae_latent_grad(&gz, (&mv, &sd, &ev), &ld, -1.0).is_err());
    let bad_batch = [n + 1, d];
    assert!(vae_loss_flat_with(recon, &lf, &yv, &bad_batch, (&mv, &lv, &sd), &ld, beta).is_err());
}

#[test]
fn mse_flat_is_the_tensor_mse_and_its_gradient() {
    // A table-shaped batch: 7 rows of 30 standardised features.
    let dims = [7, 30];
    let pv = values(210, 11, -3.0, 3.0);
    let yv = values(210, 12, -2.0, 2.0);
    for r in [Reduction::Mean, Reduction::SumPerSample, Reduction::Sum] {
        let (value, grad) = mse_flat(&pv, &yv, &dims, r).unwrap();
        let p = var(&pv, &dims);
        let y = Tensor::from_slice(&yv, &dims[..], &Device::Cpu).unwrap();
        let t = mse(p.as_tensor(), &y, r).unwrap();
        assert!(close(value, scalar(&t)), "{r:?}: {value} vs {}", scalar(&t));
        let g = t.backward().unwrap();
        let g = g.get(p.as_tensor()).unwrap();
        let ours = Tensor::from_slice(&grad, &dims[..], &Device::Cpu).unwrap();
        let e = test_utils::rel_err(&ours, g).unwrap();
        assert!(e < 1e-6, "{r:?}: gradient's relative error {e}");
    }
    assert!(mse_flat(&pv[..209], &yv, &dims, Reduction::Mean).is_err());
    assert!(mse_flat(&pv, &yv, &[7, 31], Reduction::Mean).is_err());
    assert!(mse_flat(&[], &[], &[0, 30], Reduction::Mean).is_err());
}

#[test]
fn mse_flat_of_known_values() {
    // Squared errors per row: 1 + 4 + 0 = 5 and 0 + 9 + 4 = 13; 18 in all.
    let p = [1f32, 2.0, 0.0, 0.0, 0.0, -1.0];
    let y = [0f32, 0.0, 0.0, 0.0, 3.0, 1.0];
    let dims = [2, 3];
    for (r, want, g) in [
        (Reduction::Sum, 18.0, 2.0),
        (Reduction::SumPerSample, 9.0, 1.0),
        (Reduction::Mean, 3.0, 2.0 / 6.0),
    ] {
        let (v, grad) = mse_flat(&p, &y, &dims, r).unwrap();
        assert!((v - want).abs() < 1e-12, "{r:?}: {v}");
        let want_grad: Vec<f32> = p.iter().zip(&y).map(|(a, b)| g * (a - b)).collect();
        assert_eq!(grad, want_grad, "{r:?}");
    }
    // The Gaussian VAE's reconstruction term is half the SSE per sample: 4.5, and the KL
    // is 0 at the prior (mu = 0, logvar = 0, sd = 1).
    let (z, one) = ([0f32; 4], [1f32; 4]);
    let l =
        vae_loss_flat_with(ReconLoss::Mse, &p, &y, &dims, (&z, &z, &one), &[2, 2], 1.0).unwrap();
    assert_eq!((l.recon, l.kl, l.total), (4.5, 0.0, 4.5));
    let half: Vec<f32> = p.iter().zip(&y).map(|(a, b)| 0.5 * (a - b)).collect();
    assert_eq!(l.grad_logits, half);
}
