//! A chain of fully connected layers over plain slices (`ae_kernels::chain`) against the
//! same layers written with candle's ops and differentiated by candle's autograd: every
//! layer's output, every parameter's gradient and the input's gradient, on random shapes.

use ae_kernels::chain::{self, Forward, Grad, Layer};
use candle_core::{DType, Device, Result, Tensor, Var};
use proptest::prelude::*;

mod common;
use ae_kernels::test_utils::values;
use common::rel_err;

/// Layers `sizes[i] -> sizes[i+1]`, ReLU after all but the last; biases only where `bias`.
fn vars(sizes: &[usize], bias: bool, seed: u64) -> Result<Vec<(Var, Option<Var>)>> {
    let dev = Device::Cpu;
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let scale = 1.5 / (w[0] as f32).sqrt();
            let wv = values(w[0] * w[1], seed + 2 * i as u64, -scale, scale);
            let bv = values(w[1], seed + 2 * i as u64 + 1, -0.2, 0.3);
            let b = match bias {
                true => Some(Var::from_tensor(&Tensor::from_vec(bv, w[1], &dev)?)?),
                false => None,
            };
            Ok((
                Var::from_tensor(&Tensor::from_vec(wv, (w[1], w[0]), &dev)?)?,
                b,
            ))
        })
        .collect()
}

/// The chain and candle agree on `n` rows through `sizes`, with a penalty gradient `k·h`
/// added to layer `pen`'s output through `extra`.
fn check(sizes: &[usize], n: usize, bias: bool, pen: usize) -> Result<()> {
    let dev = Device::Cpu;
    let vs = vars(sizes, bias, 7)?;
    let last = vs.len() - 1;
    let layers: Vec<Layer> = vs
        .iter()
        .enumerate()
        .map(|(i, (w, b))| Layer::new(w.as_tensor(), b.as_ref().map(Var::as_tensor), i != last))
        .collect::<Result<_>>()?;
    let refs: Vec<&Layer> = layers.iter().collect();
    let out_dim = chain::check_chain(&refs, sizes[0], "the")?;
    assert_eq!(Some(&out_dim), sizes.last());
    assert!(chain::check_chain(&refs, sizes[0] + 1, "the").is_err());
    let xv = values(n * sizes[0], 1, -1.0, 1.0);
    // The loss Σ c ⊙ out + ½k Σ h_pen², so ∂/∂out = c and the penalty adds k·h_pen.
    let cv = values(n * out_dim, 2, -1.0, 1.0);
    let k = 0.3f32;
    let (acts, gx, grads) = chain::with_bound(&refs, |bound| {
        let acts = chain::forward(bound, &xv, n);
        let mut grads: Vec<Grad> = Vec::new();
        let fwd = Forward {
            x: &xv,
            acts: &acts,
            n,
        };
        let gx = chain::backward(bound, fwd, cv.clone(), true, &mut grads, |i, gy| {
            if i == pen {
                for (g, h) in gy.iter_mut().zip(&acts[i]) {
                    *g += k * h;
                }
            }
        });
        Ok::<_, candle_core::Error>((acts, gx, grads))
    })?;

    let x = Var::from_tensor(&Tensor::from_slice(&xv, (n, sizes[0]), &dev)?)?;
    let mut outs: Vec<Tensor> = Vec::new();
    for (i, (w, b)) in vs.iter().enumerate() {
        let h = outs.last().unwrap_or(x.as_tensor());
        let mut y = h.matmul(&w.as_tensor().t()?)?;
        if let Some(b) = b {
            y = y.broadcast_add(b.as_tensor())?;
        }
        outs.push(if i != last { y.relu()? } else { y });
    }
    for (ours, theirs) in acts.iter().zip(&outs) {
        let ours = Tensor::from_slice(ours, theirs.dims(), &dev)?;
        assert!(rel_err(&ours, theirs)? < 1e-5);
    }
    let c = Tensor::from_slice(&cv, (n, out_dim), &dev)?;
    let loss = ((&outs[last] * &c)?.sum_all()?
        + outs[pen]
            .sqr()?
            .sum_all()?
            .affine(0.5 * f64::from(k), 0.0)?)?;
    let store = loss.backward()?;
    let params = vs.iter().flat_map(|(w, b)| std::iter::once(w).chain(b));
    assert_eq!(
        grads.len(),
        params.clone().count(),
        "one gradient per parameter"
    );
    for v in params {
        let t = v.as_tensor();
        let (_, g) = grads
            .iter()
            .find(|(p, _)| p.id() == t.id())
            .expect("a gradient");
        let ours = Tensor::from_slice(g, t.dims(), &dev)?;
        let e = rel_err(&ours, store.get(t).expect("candle's gradient"))?;
        assert!(e < 2e-4, "gradient of {:?}: relative error {e}", t.dims());
    }
    let gx = Tensor::from_slice(&gx.expect("the input's gradient"), (n, sizes[0]), &dev)?;
    let e = rel_err(
        &gx,
        store.get(x.as_tensor()).expect("candle's input gradient"),
    )?;
    assert!(e < 2e-4, "input gradient: relative error {e}");
    Ok(())
}

#[test]
fn chain_matches_candle_on_the_seed_model_shape() -> Result<()> {
    check(&[784, 128, 64, 32, 64, 128, 784], 20, true, 2)
}

#[test]
fn layers_refuse_other_dtypes_and_bad_biases() -> Result<()> {
    let dev = Device::Cpu;
    let w64 = Tensor::zeros((3, 6), DType::F64, &dev)?;
    assert!(Layer::new(&w64, None, true).is_err(), "f64 weight");
    let w = Tensor::zeros((3, 6), DType::F32, &dev)?;
    let b = Tensor::zeros(4, DType::F32, &dev)?;
    assert!(
        Layer::new(&w, Some(&b), true).is_err(),
        "bias of the wrong size"
    );
    assert_eq!(Layer::new(&w, None, false)?.dims(), (3, 6));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn chain_gradients_match_candle_on_random_shapes(
        dim in 1usize..40,
        hidden in 1usize..20,
        code in 1usize..8,
        n in 1usize..12,
        bias in any::<bool>(),
        pen in 0usize..3,
    ) {
        check(&[dim, hidden, code, dim], n, bias, pen).unwrap();
    }
}
