//! Property tests of the losses: signs, zeros, stability, reductions and gradients.
#![allow(clippy::unwrap_used)] // helpers of a test file

use ae_losses::{
    LossError, Reduction, bce_with_logits, gaussian_kl, kl_sparsity, l1_activity, mse,
    mse_from_logits, vae_loss,
};
use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;

const CPU: Device = Device::Cpu;

fn t64(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &CPU).unwrap()
}

fn t32(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &CPU).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// A batch shape `[n, d]` and `2 * n * d` values from `range`.
fn batch(
    range: std::ops::RangeInclusive<f64>,
) -> impl Strategy<Value = (usize, usize, Vec<f64>, Vec<f64>)> {
    (1usize..5, 1usize..7).prop_flat_map(move |(n, d)| {
        (
            Just(n),
            Just(d),
            prop::collection::vec(range.clone(), n * d),
            prop::collection::vec(range.clone(), n * d),
        )
    })
}

/// Checks the autograd gradient of `f` at `x` against central finite differences (f64).
fn check_grad(f: impl Fn(&Tensor) -> Tensor, x: &[f64], shape: &[usize]) {
    let var = Var::from_tensor(&t64(x, shape)).unwrap();
    let loss = f(var.as_tensor());
    let grads = loss.backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .expect("a gradient for the input")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let h = 1e-6;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        let mut xm = x.to_vec();
        xp[i] += h;
        xm[i] -= h;
        let fp = scalar(&f(&t64(&xp, shape)));
        let fm = scalar(&f(&t64(&xm, shape)));
        let numeric = (fp - fm) / (2.0 * h);
        let tol = 1e-5 * (1.0 + numeric.abs());
        assert!(
            (g[i] - numeric).abs() <= tol,
            "gradient {i}: autograd {} vs finite difference {numeric}",
            g[i]
        );
    }
}

fn naive_bce(x: f64, y: f64) -> f64 {
    let p = 1.0 / (1.0 + (-x).exp());
    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn losses_are_non_negative((n, d, a, b) in batch(-6.0..=6.0)) {
        let shape = [n, d];
        let x = t64(&a, &shape);
        let y = t64(&b.iter().map(|v| (v + 6.0) / 12.0).collect::<Vec<_>>(), &shape);
        for r in [Reduction::Mean, Reduction::SumPerSample, Reduction::Sum] {
            prop_assert!(scalar(&mse(&x, &y, r).unwrap()) >= 0.0);
            prop_assert!(scalar(&mse_from_logits(&x, &y, r).unwrap()) >= 0.0);
            prop_assert!(scalar(&bce_with_logits(&x, &y, r).unwrap()) >= 0.0);
            prop_assert!(scalar(&l1_activity(&x, r).unwrap()) >= 0.0);
            let logvar = t64(&b, &shape);
            prop_assert!(scalar(&gaussian_kl(&x, &logvar, r).unwrap()) >= -1e-12);
        }
        let act = t64(&b.iter().map(|v| 0.01 + 0.98 * (v + 6.0) / 12.0).collect::<Vec<_>>(), &shape);
        prop_assert!(scalar(&kl_sparsity(&act, 0.05).unwrap()) >= -1e-12);
    }

    #[test]
    fn zero_at_perfect_reconstruction((n, d, a, b) in batch(-1.0..=1.0)) {
        let shape = [n, d];
        let x = t64(&a, &shape);
        prop_assert_eq!(scalar(&mse(&x, &x, Reduction::Mean).unwrap()), 0.0);
        // binary targets, logits saturated towards them
        let y: Vec<f32> = b.iter().map(|v| if *v > 0.0 { 1.0 } else { 0.0 }).collect();
        for big in [30.0f32, 1e4] {
            let logits: Vec<f32> = y.iter().map(|t| (2.0 * t - 1.0) * big).collect();
            let loss = bce_with_logits(&t32(&logits, &shape), &t32(&y, &shape), Reduction::Sum).unwrap();
            prop_assert!(scalar(&loss) < 1e-10);
            let loss = mse_from_logits(&t32(&logits, &shape), &t32(&y, &shape), Reduction::Sum).unwrap();
            prop_assert!(scalar(&loss) < 1e-10);
        }
    }

    #[test]
    fn kl_is_positive_away_from_the_prior((n, d, a, b) in batch(-3.0..=3.0)) {
        let shape = [n, d];
        // shift away from 0 so every element is clearly off the prior
        let mu: Vec<f64> = a.iter().map(|v| if *v >= 0.0 { v + 0.01 } else { v - 0.01 }).collect();
        let kl = gaussian_kl(&t64(&mu, &shape), &t64(&b, &shape), Reduction::Sum).unwrap();
        prop_assert!(scalar(&kl) > 0.0);
        let logvar: Vec<f64> = b.iter().map(|v| if *v >= 0.0 { v + 0.01 } else { v - 0.01 }).collect();
        let zeros = vec![0.0; n * d];
        let kl = gaussian_kl(&t64(&zeros, &shape), &t64(&logvar, &shape), Reduction::Sum).unwrap();
        prop_assert!(scalar(&kl) > 0.0);
    }

    #[test]
    fn bce_from_logits_matches_naive_bce((n, d, a, b) in batch(-10.0..=10.0)) {
        let shape = [n, d];
        let y: Vec<f64> = b.iter().map(|v| (v + 10.0) / 20.0).collect();
        let expected: f64 = a.iter().zip(&y).map(|(x, y)| naive_bce(*x, *y)).sum::<f64>() / (n * d) as f64;
        let got = scalar(&bce_with_logits(&t64(&a, &shape), &t64(&y, &shape), Reduction::Mean).unwrap());
        prop_assert!((got - expected).abs() <= 1e-9 * (1.0 + expected.abs()), "{got} vs {expected}");
        // and in f32
        let a32: Vec<f32> = a.iter().map(|v| *v as f32).collect();
        let y32: Vec<f32> = y.iter().map(|v| *v as f32).collect();
        let got = scalar(&bce_with_logits(&t32(&a32, &shape), &t32(&y32, &shape), Reduction::Mean).unwrap());
        prop_assert!((got - expected).abs() <= 1e-4 * (1.0 + expected.abs()), "{got} vs {expected}");
    }

    #[test]
    fn reductions_relate((n, d, a, b) in batch(-4.0..=4.0)) {
        let shape = [n, d];
        let x = t64(&a, &shape);
        let y = t64(&b, &shape);
        let numel = (n * d) as f64;
        type LossFn = fn(&Tensor, &Tensor, Reduction) -> ae_losses::Result<Tensor>;
        let fns: [LossFn; 4] = [mse, mse_from_logits, bce_with_logits, gaussian_kl];
        for f in fns {
            let mean = scalar(&f(&x, &y, Reduction::Mean).unwrap());
            let per = scalar(&f(&x, &y, Reduction::SumPerSample).unwrap());
            let sum = scalar(&f(&x, &y, Reduction::Sum).unwrap());
            prop_assert!((sum - mean * numel).abs() <= 1e-9 * (1.0 + sum.abs()));
            prop_assert!((sum - per * n as f64).abs() <= 1e-9 * (1.0 + sum.abs()));
        }
    }

    #[test]
    fn gradients_match_finite_differences((n, d, a, b) in batch(-3.0..=3.0)) {
        let shape = [n, d];
        let y01: Vec<f64> = b.iter().map(|v| (v + 3.0) / 6.0).collect();
        let y = t64(&y01, &shape);
        for r in [Reduction::Mean, Reduction::SumPerSample, Reduction::Sum] {
            check_grad(|x| mse(x, &y, r).unwrap(), &a, &shape);
            check_grad(|x| mse_from_logits(x, &y, r).unwrap(), &a, &shape);
            check_grad(|x| bce_with_logits(x, &y, r).unwrap(), &a, &shape);
            let other = t64(&b, &shape);
            check_grad(|mu| gaussian_kl(mu, &other, r).unwrap(), &a, &shape);
            check_grad(|lv| gaussian_kl(&other, lv, r).unwrap(), &a, &shape);
            // |x| is not differentiable at 0: keep away from it
            let away: Vec<f64> = a.iter().map(|v| if *v >= 0.0 { v + 0.01 } else { v - 0.01 }).collect();
            check_grad(|x| l1_activity(x, r).unwrap(), &away, &shape);
        }
        let act: Vec<f64> = a.iter().map(|v| 0.05 + 0.9 * (v + 3.0) / 6.0).collect();
        check_grad(|x| kl_sparsity(x, 0.1).unwrap(), &act, &shape);
        let logvar = t64(&b, &shape);
        let mu = t64(&a, &shape);
        check_grad(|x| vae_loss(x, &y, &mu, &logvar, 0.7).unwrap().total, &a, &shape);
        check_grad(|m| vae_loss(&y, &y, m, &logvar, 0.7).unwrap().total, &a, &shape);
        check_grad(|lv| vae_loss(&y, &y, &mu, lv, 0.7).unwrap().total, &a, &shape);
    }
}

#[test]
fn huge_logits_give_finite_values_and_gradients() {
    let logits = [1e4f32, -1e4, 1e4, -1e4, 0.0, 3.0];
    let target = [1f32, 0.0, 0.0, 1.0, 0.5, 0.3];
    let y = t32(&target, &[2, 3]);
    type LossFn = fn(&Tensor, &Tensor, Reduction) -> ae_losses::Result<Tensor>;
    let fns: [LossFn; 2] = [bce_with_logits, mse_from_logits];
    for f in fns {
        let var = Var::from_tensor(&t32(&logits, &[2, 3])).unwrap();
        let loss = f(var.as_tensor(), &y, Reduction::Mean).unwrap();
        let value = loss.to_scalar::<f32>().unwrap();
        assert!(value.is_finite(), "loss {value}");
        let grads = loss.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "gradient {g:?}");
    }
    // BCE at the wrong saturated answer: value ~ |x| per element, gradient ±1/numel
    let var = Var::from_tensor(&t32(&logits, &[2, 3])).unwrap();
    let loss = bce_with_logits(var.as_tensor(), &y, Reduction::Sum).unwrap();
    let value = loss.to_scalar::<f32>().unwrap();
    assert!((value - 2e4).abs() < 10.0, "{value}");
    let g = loss.backward().unwrap();
    let g = g.get(var.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(g[0][0], 0.0);
    assert_eq!(g[0][1], 0.0);
    assert_eq!(g[0][2], 1.0);
    assert_eq!(g[1][0], -1.0);
    // the VAE loss with huge logits and a wide posterior
    let logits = Var::from_tensor(&t32(&logits, &[2, 3])).unwrap();
    let mu = Var::from_tensor(&t32(&[0.5, -0.5, 0.0, 1.0], &[2, 2])).unwrap();
    let logvar = Var::from_tensor(&t32(&[-3.0, 3.0, 0.0, 0.1], &[2, 2])).unwrap();
    let loss = vae_loss(
        logits.as_tensor(),
        &y,
        mu.as_tensor(),
        logvar.as_tensor(),
        1.0,
    )
    .unwrap();
    assert!(loss.total.to_scalar::<f32>().unwrap().is_finite());
    let grads = loss.total.backward().unwrap();
    for v in [&logits, &mu, &logvar] {
        let g = grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
    }
}

#[test]
fn kl_is_exactly_zero_at_the_prior() {
    let zeros = Tensor::zeros((3, 4), DType::F32, &CPU).unwrap();
    for r in [Reduction::Mean, Reduction::SumPerSample, Reduction::Sum] {
        assert_eq!(
            gaussian_kl(&zeros, &zeros, r)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }
}

#[test]
fn kl_sparsity_matches_the_formula() {
    // two units, batch of 2: rho_hat = [0.2, 0.5]
    let act = t64(&[0.1, 0.4, 0.3, 0.6], &[2, 2]);
    let rho: f64 = 0.05;
    let kl = |h: f64| rho * (rho / h).ln() + (1.0 - rho) * ((1.0 - rho) / (1.0 - h)).ln();
    let expected = kl(0.2) + kl(0.5);
    let got = scalar(&kl_sparsity(&act, rho).unwrap());
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    // zero when every unit has the target mean activation
    let act = t64(&[rho; 6], &[3, 2]);
    assert!(scalar(&kl_sparsity(&act, rho).unwrap()).abs() < 1e-12);
    // saturated activations stay finite thanks to the clamp
    let act = t64(&[0.0, 1.0, 0.0, 1.0], &[2, 2]);
    assert!(scalar(&kl_sparsity(&act, rho).unwrap()).is_finite());
}

#[test]
fn vae_loss_is_recon_plus_beta_kl() {
    let logits = t64(&[0.3, -1.0, 2.0, 0.0, 1.5, -0.2], &[2, 3]);
    let target = t64(&[1.0, 0.0, 0.7, 0.2, 1.0, 0.0], &[2, 3]);
    let mu = t64(&[0.5, -0.5, 0.0, 1.0], &[2, 2]);
    let logvar = t64(&[-0.3, 0.3, 0.0, 0.1], &[2, 2]);
    let l = vae_loss(&logits, &target, &mu, &logvar, 2.5).unwrap();
    let recon = scalar(&bce_with_logits(&logits, &target, Reduction::SumPerSample).unwrap());
    let kl = scalar(&gaussian_kl(&mu, &logvar, Reduction::SumPerSample).unwrap());
    assert!((scalar(&l.recon) - recon).abs() < 1e-12);
    assert!((scalar(&l.kl) - kl).abs() < 1e-12);
    assert!((scalar(&l.total) - (recon + 2.5 * kl)).abs() < 1e-12);
}

#[test]
fn shape_mismatch_is_an_error_not_a_panic() {
    let a = Tensor::zeros((2, 3), DType::F32, &CPU).unwrap();
    let b = Tensor::zeros((2, 4), DType::F32, &CPU).unwrap();
    for err in [
        mse(&a, &b, Reduction::Mean).unwrap_err(),
        mse_from_logits(&a, &b, Reduction::Mean).unwrap_err(),
        bce_with_logits(&a, &b, Reduction::Mean).unwrap_err(),
        gaussian_kl(&a, &b, Reduction::Mean).unwrap_err(),
    ] {
        match err {
            LossError::ShapeMismatch { left, right, .. } => {
                assert_eq!(left, vec![2, 3]);
                assert_eq!(right, vec![2, 4]);
            }
            other => panic!("unexpected error {other}"),
        }
    }
    let mu = Tensor::zeros((3, 2), DType::F32, &CPU).unwrap();
    let err = vae_loss(&a, &a, &mu, &mu, 1.0).unwrap_err();
    assert!(matches!(err, LossError::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("[2, 3]"), "{err}");
}

#[test]
fn bad_arguments_are_errors() {
    let a = Tensor::zeros((2, 3), DType::F32, &CPU).unwrap();
    for beta in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            vae_loss(&a, &a, &a, &a, beta),
            Err(LossError::InvalidArgument(_))
        ));
    }
    for rho in [0.0, 1.0, -0.1, f64::NAN] {
        assert!(matches!(
            kl_sparsity(&a, rho),
            Err(LossError::InvalidArgument(_))
        ));
    }
    let empty = Tensor::zeros((0, 3), DType::F32, &CPU).unwrap();
    assert!(matches!(
        mse(&empty, &empty, Reduction::Mean),
        Err(LossError::InvalidArgument(_))
    ));
    let s = Tensor::new(1f32, &CPU).unwrap();
    assert!(matches!(
        l1_activity(&s, Reduction::SumPerSample),
        Err(LossError::InvalidArgument(_))
    ));
    assert_eq!(scalar(&l1_activity(&s, Reduction::Mean).unwrap()), 1.0);
}

#[test]
fn reduction_serde_and_default() {
    assert_eq!(Reduction::default(), Reduction::Mean);
    for r in [Reduction::Mean, Reduction::SumPerSample, Reduction::Sum] {
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{r}\""));
        assert_eq!(serde_json::from_str::<Reduction>(&json).unwrap(), r);
    }
}
