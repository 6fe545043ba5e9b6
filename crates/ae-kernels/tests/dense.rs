//! `linear`, `linear_relu`, `linear_sigmoid` and `bce_with_logits_sum` against the same maths
//! written with candle's ops: forward values and gradients w.r.t. every input, on random
//! shapes.

use candle_core::{DType, Device, Result, Tensor, Var};
use proptest::prelude::*;

mod common;
use common::rel_err;

type Fn3<'a> = dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor> + 'a;

/// Value of `f(x, w, b)` and the gradients of `sum(f(x, w, b) * r)` w.r.t. x, w and b.
fn value_and_grads(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    r: &Tensor,
    f: &Fn3<'_>,
) -> Result<Vec<Tensor>> {
    let (xv, wv, bv) = (
        Var::from_tensor(x)?,
        Var::from_tensor(w)?,
        Var::from_tensor(b)?,
    );
    let y = f(xv.as_tensor(), wv.as_tensor(), bv.as_tensor())?;
    let g = (&y * r)?.sum_all()?.backward()?;
    let mut out = vec![y.clone()];
    for v in [&xv, &wv, &bv] {
        match g.get(v.as_tensor()) {
            Some(t) => out.push(t.clone()),
            None => candle_core::bail!("missing gradient"),
        }
    }
    Ok(out)
}

/// The activation fused into the layer.
#[derive(Clone, Copy, Debug)]
enum Act {
    Identity,
    Relu,
    Sigmoid,
}

const ACTS: [Act; 3] = [Act::Identity, Act::Relu, Act::Sigmoid];

fn check_linear(n: usize, inp: usize, out: usize, act: Act, dtype: DType) -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (n, inp), &dev)?.to_dtype(dtype)?;
    let w = Tensor::randn(0f32, 1., (out, inp), &dev)?.to_dtype(dtype)?;
    let b = Tensor::randn(0f32, 1., out, &dev)?.to_dtype(dtype)?;
    let r = Tensor::randn(0f32, 1., (n, out), &dev)?.to_dtype(dtype)?;
    let ours: &Fn3<'_> = &|x, w, b| match act {
        Act::Identity => ae_kernels::linear(x, w, Some(b)),
        Act::Relu => ae_kernels::linear_relu(x, w, Some(b)),
        Act::Sigmoid => ae_kernels::linear_sigmoid(x, w, Some(b)),
    };
    let candle: &Fn3<'_> = &|x, w, b| {
        let y = x.matmul(&w.t()?)?.broadcast_add(b)?;
        match act {
            Act::Identity => Ok(y),
            Act::Relu => y.relu(),
            Act::Sigmoid => candle_nn::ops::sigmoid(&y),
        }
    };
    let a = value_and_grads(&x, &w, &b, &r, ours)?;
    let c = value_and_grads(&x, &w, &b, &r, candle)?;
    let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
    for (what, (a, c)) in ["value", "dx", "dw", "db"].iter().zip(a.iter().zip(&c)) {
        let e = rel_err(a, c)?;
        assert!(
            e < tol,
            "{what}: rel err {e} (n {n}, in {inp}, out {out}, {act:?})"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn linear_matches_candle(
        n in 1usize..=40, inp in 1usize..=70, out in 1usize..=33, act in 0usize..3, f64_: bool,
    ) {
        let dtype = if f64_ { DType::F64 } else { DType::F32 };
        if let Err(e) = check_linear(n, inp, out, ACTS[act], dtype) {
            prop_assert!(false, "{e}");
        }
    }

    #[test]
    fn bce_matches_candle(n in 1usize..=5000, scale in 0.001f64..10.0, spread in 0.1f64..30.0) {
        if let Err(e) = check_bce(n, scale, spread) {
            prop_assert!(false, "{e}");
        }
    }
}

#[test]
fn linear_at_the_dense_autoencoder_shapes() -> Result<()> {
    // Large enough for the multi-threaded GEMM path.
    check_linear(256, 784, 128, Act::Relu, DType::F32)?;
    check_linear(256, 128, 784, Act::Identity, DType::F32)?;
    check_linear(1024, 128, 784, Act::Sigmoid, DType::F32)?;
    check_linear(128, 400, 20, Act::Identity, DType::F64)
}

/// The fused sigmoid is the separate [`ae_kernels::sigmoid`] to the bit, forward and
/// backward (what lets a model's reconstruction use it without changing a value).
#[test]
fn linear_sigmoid_is_linear_then_sigmoid_exactly() -> Result<()> {
    let dev = Device::Cpu;
    for (n, inp, out) in [(3, 5, 7), (1024, 128, 784), (33, 64, 300)] {
        let x = Tensor::randn(0f32, 2., (n, inp), &dev)?;
        let w = Tensor::randn(0f32, 1., (out, inp), &dev)?;
        let b = Tensor::randn(0f32, 1., out, &dev)?;
        let r = Tensor::randn(0f32, 1., (n, out), &dev)?;
        let fused = value_and_grads(&x, &w, &b, &r, &|x, w, b| {
            ae_kernels::linear_sigmoid(x, w, Some(b))
        })?;
        let apart = value_and_grads(&x, &w, &b, &r, &|x, w, b| {
            ae_kernels::sigmoid(&ae_kernels::linear(x, w, Some(b))?)
        })?;
        for (what, (f, a)) in ["value", "dx", "dw", "db"]
            .iter()
            .zip(fused.iter().zip(&apart))
        {
            let (f, a) = (
                f.flatten_all()?.to_vec1::<f32>()?,
                a.flatten_all()?.to_vec1::<f32>()?,
            );
            assert!(f == a, "{what} differs at n {n}, in {inp}, out {out}");
        }
    }
    Ok(())
}

#[test]
fn untracked_input_gets_no_gradient_and_other_ranks_fall_back() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (4, 6), &dev)?;
    let w = Var::randn(0f32, 1., (3, 6), &dev)?;
    let y = ae_kernels::linear_relu(&x, w.as_tensor(), None)?;
    let g = y.sum_all()?.backward()?;
    assert!(g.get(&x).is_none());
    assert_eq!(
        g.get(w.as_tensor()).map(|t| t.dims().to_vec()),
        Some(vec![3, 6])
    );

    let x3 = Tensor::randn(0f32, 1., (2, 4, 6), &dev)?;
    let y3 = ae_kernels::linear(&x3, w.as_tensor(), None)?;
    let expect = x3.broadcast_matmul(&w.as_tensor().t()?)?;
    assert!(rel_err(&y3, &expect)? < 1e-5);

    let bad = ae_kernels::linear(
        &Tensor::zeros((2, 5), DType::F32, &dev)?,
        w.as_tensor(),
        None,
    );
    let msg = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("5 features"), "{msg}");
    Ok(())
}

fn check_bce(n: usize, scale: f64, spread: f64) -> Result<()> {
    let dev = Device::Cpu;
    let x = (Tensor::randn(0f32, 1., n, &dev)? * spread)?.to_dtype(DType::F64)?;
    let y = Tensor::rand(0f32, 1., n, &dev)?.to_dtype(DType::F64)?;
    let reference = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let softplus = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
        ((x.relu()? - (x * y)?)? + softplus)?
            .sum_all()?
            .affine(scale, 0.0)
    };
    for dtype in [DType::F64, DType::F32] {
        let (xv, yv) = (
            Var::from_tensor(&x.to_dtype(dtype)?)?,
            Var::from_tensor(&y.to_dtype(dtype)?)?,
        );
        let ours = ae_kernels::bce_with_logits_sum(xv.as_tensor(), yv.as_tensor(), scale)?;
        assert_eq!(ours.dims(), &[] as &[usize]);
        let g = (&ours * 3.0)?.backward()?;
        let (xr, yr) = (Var::from_tensor(&x)?, Var::from_tensor(&y)?);
        let theirs = reference(xr.as_tensor(), yr.as_tensor())?;
        let gr = (&theirs * 3.0)?.backward()?;
        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
        let e = rel_err(&ours, &theirs)?;
        assert!(e < tol, "value rel err {e}");
        for (a, b) in [(&xv, &xr), (&yv, &yr)] {
            let (Some(ga), Some(gb)) = (g.get(a.as_tensor()), gr.get(b.as_tensor())) else {
                candle_core::bail!("missing gradient")
            };
            let e = rel_err(ga, gb)?;
            assert!(e < tol, "gradient rel err {e}");
        }
    }
    Ok(())
}

#[test]
fn bce_is_finite_at_huge_logits_and_rejects_mismatches() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[1e4f32, -1e4, 50.0, -50.0], &dev)?;
    let y = Tensor::new(&[0f32, 1.0, 1.0, 0.0], &dev)?;
    let l = ae_kernels::bce_with_logits_sum(x.as_tensor(), &y, 0.25)?;
    let v = l.to_scalar::<f32>()?;
    assert!((v - 5000.0).abs() < 1.0, "{v}");
    let g = l.backward()?;
    let gx = match g.get(x.as_tensor()) {
        Some(t) => t.to_vec1::<f32>()?,
        None => candle_core::bail!("missing gradient"),
    };
    for (a, b) in gx.iter().zip([0.25f32, -0.25, 0.0, 0.0]) {
        assert!((a - b).abs() < 1e-12, "{gx:?}");
    }
    let short = Tensor::new(&[0f32, 1.0], &dev)?;
    assert!(ae_kernels::bce_with_logits_sum(x.as_tensor(), &short, 1.0).is_err());
    Ok(())
}
