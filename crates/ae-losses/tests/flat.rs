//! The plain-slice forms of the losses (`*_flat`) against their tensor forms: the same
//! value, and the gradient that candle's autograd takes of the tensor form.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use ae_kernels::test_utils::values;
use ae_losses::{
    Reduction, bce_with_logits, bce_with_logits_flat, gaussian_kl, gaussian_kl_flat, l1_activity,
    l1_activity_flat, l1_activity_flat_grad, reparameterise, reparameterise_flat, vae_latent_grad,
    vae_loss, vae_loss_flat,
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
    let (n, d, k) = (4, 9, 3);
    let (od, ld) = ([n, d], [n, k]);
    let xv = values(n * d, 4, -3.0, 3.0);
    let yv = values(n * d, 5, 0.0, 1.0);
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
    let t = vae_loss(&logits, &y, mu.as_tensor(), logvar.as_tensor(), beta).unwrap();
    let g = t.total.backward().unwrap();

    let (sd, zf) = reparameterise_flat(&mv, &lv, &ev).unwrap();
    let zt: Vec<f32> = z.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(zf, zt, "the same sample, bit for bit");
    let lf: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let ours = vae_loss_flat(&lf, &yv, &od, (&mv, &lv, &sd), &ld, beta).unwrap();
    assert!(close(ours.recon, scalar(&t.recon)));
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
    assert!(vae_loss_flat(&lf, &yv, &[n + 1, d], (&mv, &lv, &sd), &ld, beta).is_err());
}
