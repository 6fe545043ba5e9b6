//! The fused training steps (`ae_kernels::step`) against the same models written with
//! candle's ops and differentiated by candle's autograd: loss values and every parameter's
//! gradient, on random shapes.

use ae_kernels::step::{Layer, MlpSpec, Recon, StepOutput, VaeSpec, mlp_step, vae_step};
use candle_core::{DType, Device, Result, Tensor, Var, backprop::GradStore};
use proptest::prelude::*;

mod common;
use common::rel_err;

/// Deterministic values in `[lo, hi)` (a small LCG, so failures reproduce).
fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

struct Net {
    vars: Vec<(Var, Var)>,
    relu: Vec<bool>,
}

impl Net {
    /// Layers `sizes[i] -> sizes[i+1]`, ReLU after all but the last when `relu_last` is false.
    fn new(sizes: &[usize], relu_last: bool, seed: u64) -> Result<Self> {
        let dev = Device::Cpu;
        let mut vars = Vec::new();
        let mut relu = Vec::new();
        for (i, w) in sizes.windows(2).enumerate() {
            let scale = 1.5 / (w[0] as f32).sqrt();
            let wv = values(w[0] * w[1], seed + 2 * i as u64, -scale, scale);
            let bv = values(w[1], seed + 2 * i as u64 + 1, -0.2, 0.3);
            vars.push((
                Var::from_tensor(&Tensor::from_vec(wv, (w[1], w[0]), &dev)?)?,
                Var::from_tensor(&Tensor::from_vec(bv, w[1], &dev)?)?,
            ));
            relu.push(relu_last || i + 2 < sizes.len());
        }
        Ok(Self { vars, relu })
    }

    fn layers(&self) -> Result<Vec<Layer>> {
        self.vars
            .iter()
            .zip(&self.relu)
            .map(|((w, b), &r)| Layer::new(w.as_tensor(), Some(b.as_tensor()), r))
            .collect()
    }

    /// Candle's forward pass; every layer's output.
    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs: Vec<Tensor> = Vec::new();
        for ((w, b), &r) in self.vars.iter().zip(&self.relu) {
            let h = outs.last().unwrap_or(x);
            let y = h
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            outs.push(if r { y.relu()? } else { y });
        }
        Ok(outs)
    }
}

/// The stable BCE from logits, summed, written with candle's ops.
fn bce_sum(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((logits.relu()? - (logits * y)?)? + softplus)?.sum_all()
}

/// Compares every gradient of `ours` with candle's `grads`.
fn check_grads(ours: &StepOutput, grads: &GradStore, vars: &[&Var], tol: f64) -> Result<()> {
    assert_eq!(ours.grads.len(), vars.len(), "one gradient per parameter");
    for v in vars {
        let t = v.as_tensor();
        let Some((_, g)) = ours.grads.iter().find(|(p, _)| p.id() == t.id()) else {
            panic!("no gradient for a parameter {:?}", t.dims());
        };
        let g = Tensor::from_slice(g, t.dims(), t.device())?;
        let Some(c) = grads.get(t) else {
            panic!("candle has no gradient for {:?}", t.dims())
        };
        let e = rel_err(&g, c)?;
        assert!(e < tol, "gradient of {:?}: relative error {e}", t.dims());
    }
    Ok(())
}

fn check_mlp(sizes: &[usize], n: usize, recon: Recon, l1: Option<(usize, f64)>) -> Result<()> {
    let dev = Device::Cpu;
    let dim = sizes[0];
    let net = Net::new(sizes, false, 7)?;
    let xv = values(n * dim, 1, 0.0, 1.0);
    let yv = values(n * dim, 2, 0.0, 1.0);
    let spec = MlpSpec {
        layers: net.layers()?,
        recon,
        l1,
    };
    let ours = mlp_step(&spec, &xv, &yv, n)?;

    let x = Tensor::from_slice(&xv, (n, dim), &dev)?;
    let y = Tensor::from_slice(&yv, (n, dim), &dev)?;
    let outs = net.forward(&x)?;
    let logits = outs.last().unwrap_or(&x);
    let scale = match recon {
        Recon::Mean => 1.0 / (n * dim) as f64,
        Recon::SumPerSample => 1.0 / n as f64,
    };
    let mut total = bce_sum(logits, &y)?.affine(scale, 0.0)?;
    let recon_value = total.to_scalar::<f32>()? as f64;
    if let Some((c, lambda)) = l1 {
        let pen = outs[c].abs()?.sum_all()?.affine(lambda / n as f64, 0.0)?;
        let pv = pen.to_scalar::<f32>()? as f64;
        let ov = ours.sparsity.unwrap_or(f64::NAN);
        assert!((ov - pv).abs() <= 1e-5 * pv.abs().max(1.0), "{ov} vs {pv}");
        total = (total + pen)?;
    } else {
        assert!(ours.sparsity.is_none());
    }
    let tv = total.to_scalar::<f32>()? as f64;
    assert!((ours.recon - recon_value).abs() <= 1e-5 * recon_value.abs().max(1.0));
    assert!(
        (ours.total - tv).abs() <= 1e-5 * tv.abs().max(1.0),
        "{} vs {tv}",
        ours.total
    );
    let grads = total.backward()?;
    let vars: Vec<&Var> = net.vars.iter().flat_map(|(w, b)| [w, b]).collect();
    check_grads(&ours, &grads, &vars, 2e-4)
}

fn check_vae(dim: usize, hidden: usize, latent: usize, n: usize, beta: f64) -> Result<()> {
    let dev = Device::Cpu;
    let enc = Net::new(&[dim, hidden], true, 11)?;
    let mu = Net::new(&[hidden, latent], false, 21)?;
    let lv = Net::new(&[hidden, latent], false, 31)?;
    let dec = Net::new(&[latent, hidden, dim], false, 41)?;
    let xv = values(n * dim, 3, 0.0, 1.0);
    let yv = values(n * dim, 4, 0.0, 1.0);
    let ev = values(n * latent, 5, -2.0, 2.0);
    let head = |net: &Net| -> Result<Layer> {
        let (w, b) = &net.vars[0];
        Layer::new(w.as_tensor(), Some(b.as_tensor()), false)
    };
    let spec = VaeSpec {
        encoder: enc.layers()?,
        mu: head(&mu)?,
        logvar: head(&lv)?,
        decoder: dec.layers()?,
        beta,
    };
    let ours = vae_step(&spec, &xv, &yv, &ev, n)?;

    let x = Tensor::from_slice(&xv, (n, dim), &dev)?;
    let y = Tensor::from_slice(&yv, (n, dim), &dev)?;
    let eps = Tensor::from_slice(&ev, (n, latent), &dev)?;
    let h = enc.forward(&x)?.remove(0);
    let m = mu.forward(&h)?.remove(0);
    let l = lv.forward(&h)?.remove(0);
    let z = (&m + (l.affine(0.5, 0.0)?.exp()? * &eps)?)?;
    let logits = dec.forward(&z)?.remove(1);
    let recon = bce_sum(&logits, &y)?.affine(1.0 / n as f64, 0.0)?;
    let kl = ((m.sqr()? + l.exp()?)? - 1.0)?
        .sub(&l)?
        .sum_all()?
        .affine(0.5 / n as f64, 0.0)?;
    let total = (&recon + kl.affine(beta, 0.0)?)?;
    let (rv, kv, tv) = (
        recon.to_scalar::<f32>()? as f64,
        kl.to_scalar::<f32>()? as f64,
        total.to_scalar::<f32>()? as f64,
    );
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
    assert!(close(ours.recon, rv), "recon {} vs {rv}", ours.recon);
    assert!(
        close(ours.kl.unwrap_or(f64::NAN), kv),
        "kl {:?} vs {kv}",
        ours.kl
    );
    assert!(close(ours.total, tv), "total {} vs {tv}", ours.total);
    let grads = total.backward()?;
    let vars: Vec<&Var> = [&enc, &mu, &lv, &dec]
        .iter()
        .flat_map(|net| net.vars.iter().flat_map(|(w, b)| [w, b]))
        .collect();
    check_grads(&ours, &grads, &vars, 2e-4)
}

#[test]
fn mlp_matches_candle_on_the_seed_model_shape() -> Result<()> {
    check_mlp(&[784, 128, 64, 32, 64, 128, 784], 20, Recon::Mean, None)
}

#[test]
fn mlp_l1_penalty_and_per_sample_sum_match_candle() -> Result<()> {
    check_mlp(&[30, 12, 5, 12, 30], 9, Recon::SumPerSample, Some((1, 0.3)))?;
    check_mlp(&[30, 12, 5, 12, 30], 9, Recon::Mean, Some((1, 0.05)))
}

#[test]
fn vae_matches_candle() -> Result<()> {
    check_vae(60, 24, 5, 13, 1.0)?;
    check_vae(60, 24, 5, 13, 0.25)
}

#[test]
fn bad_inputs_are_errors_not_panics() -> Result<()> {
    let net = Net::new(&[6, 3, 6], false, 1)?;
    let spec = MlpSpec {
        layers: net.layers()?,
        recon: Recon::Mean,
        l1: None,
    };
    let (x, y) = (values(12, 1, 0.0, 1.0), values(12, 2, 0.0, 1.0));
    assert!(mlp_step(&spec, &x, &y, 2).is_ok());
    assert!(mlp_step(&spec, &x, &y, 3).is_err(), "wrong batch size");
    assert!(mlp_step(&spec, &x[..6], &y, 2).is_err(), "short input");
    let bad_l1 = MlpSpec {
        l1: Some((5, 1.0)),
        ..spec.clone()
    };
    assert!(
        mlp_step(&bad_l1, &x, &y, 2).is_err(),
        "L1 on a missing layer"
    );
    let broken = MlpSpec {
        layers: vec![spec.layers[0].clone()],
        ..spec.clone()
    };
    assert!(mlp_step(&broken, &x, &y, 2).is_err(), "does not map back");
    let dev = Device::Cpu;
    let w64 = Tensor::zeros((3, 6), DType::F64, &dev)?;
    assert!(Layer::new(&w64, None, true).is_err(), "f64 weight");
    let w = Tensor::zeros((3, 6), DType::F32, &dev)?;
    let b = Tensor::zeros(4, DType::F32, &dev)?;
    assert!(
        Layer::new(&w, Some(&b), true).is_err(),
        "bias of the wrong size"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn mlp_gradients_match_candle_on_random_shapes(
        dim in 1usize..40,
        hidden in 1usize..20,
        code in 1usize..8,
        n in 1usize..12,
        sum in any::<bool>(),
    ) {
        let recon = if sum { Recon::SumPerSample } else { Recon::Mean };
        check_mlp(&[dim, hidden, code, hidden, dim], n, recon, None).unwrap();
    }

    #[test]
    fn vae_gradients_match_candle_on_random_shapes(
        dim in 1usize..40,
        hidden in 1usize..20,
        latent in 1usize..6,
        n in 1usize..12,
    ) {
        check_vae(dim, hidden, latent, n, 1.0).unwrap();
    }
}
