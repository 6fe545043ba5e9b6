//! `relu` and `max_pool2d` against candle's ops: forward values, and gradients (which follow
//! PyTorch's conventions, see the functions' docs).

use candle_core::{DType, Device, Result, Tensor, Var};
use proptest::prelude::*;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims());
    (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
}

/// Gradient of `sum(f(x) * r)` w.r.t. `x`.
fn grad_of(x: &Tensor, r: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let v = Var::from_tensor(x)?;
    let y = f(v.as_tensor())?;
    let g = (y * r)?.sum_all()?.backward()?;
    match g.get(v.as_tensor()) {
        Some(g) => Ok(g.clone()),
        None => candle_core::bail!("missing gradient"),
    }
}

fn check_pool(n: usize, c: usize, h: usize, w: usize, k: usize) -> Result<()> {
    let dev = Device::Cpu;
    // Continuous random values: no ties inside a window (almost surely).
    let x = Tensor::randn(0f32, 1., (n, c, h, w), &dev)?;
    let ours = ae_kernels::max_pool2d(&x, k)?;
    let theirs = x.max_pool2d(k)?;
    assert_eq!(max_abs_diff(&ours, &theirs)?, 0.0);

    let r = Tensor::randn(0f32, 1., ours.shape(), &dev)?;
    let g_ours = grad_of(&x, &r, |x| ae_kernels::max_pool2d(x, k))?;
    // candle's max-pool gradient is scaled by 1/k² (without ties), and wrong when k does not
    // divide the size (its nearest upsampling misaligns the windows): compare on the part of
    // the input the windows cover, and undo the scaling.
    let (hc, wc) = (h / k * k, w / k * k);
    let x_crop = x.narrow(2, 0, hc)?.narrow(3, 0, wc)?.contiguous()?;
    let g_candle = (grad_of(&x_crop, &r, |x| x.max_pool2d(k))? * (k * k) as f64)?;
    let g_crop = g_ours.narrow(2, 0, hc)?.narrow(3, 0, wc)?;
    let d = max_abs_diff(&g_crop, &g_candle)?;
    assert!(d < 1e-5, "max_pool2d grad diff {d}");
    // Each output gradient lands exactly once.
    let total = (g_ours.sum_all()? - r.sum_all()?)?
        .abs()?
        .to_scalar::<f32>()?;
    assert!(total < 1e-3, "gradient mass not preserved: {total}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn max_pool2d_matches_candle(
        n in 1usize..=3, c in 1usize..=4, h in 1usize..=12, w in 1usize..=12, k in 1usize..=3,
    ) {
        prop_assume!(k <= h && k <= w);
        if let Err(e) = check_pool(n, c, h, w, k) {
            prop_assert!(false, "{e}");
        }
    }
}

#[test]
fn max_pool2d_ties_route_to_first_maximum() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[[[0f32, 0.], [0., 0.]], [[1., 3.], [3., 2.]]]], &dev)?;
    let r = Tensor::new(&[[[[5f32]], [[7.]]]], &dev)?;
    let g = grad_of(&x, &r, |x| ae_kernels::max_pool2d(x, 2))?;
    let want = Tensor::new(&[[[[5f32, 0.], [0., 0.]], [[0., 7.], [0., 0.]]]], &dev)?;
    assert_eq!(max_abs_diff(&g, &want)?, 0.0);
    Ok(())
}

#[test]
fn max_pool2d_mnist_shapes_and_f64() -> Result<()> {
    check_pool(4, 32, 28, 28, 2)?;
    check_pool(4, 32, 14, 14, 2)?;
    let dev = Device::Cpu;
    let x = Tensor::randn(0f64, 1., (2, 3, 7, 9), &dev)?;
    let ours = ae_kernels::max_pool2d(&x.transpose(2, 3)?, 3)?;
    let theirs = x.transpose(2, 3)?.contiguous()?.max_pool2d(3)?;
    assert_eq!(ours.to_dtype(DType::F32)?.dims(), theirs.dims());
    let d = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert_eq!(d, 0.0);
    assert!(ae_kernels::max_pool2d(&x, 8).is_err());
    assert!(ae_kernels::max_pool2d(&x, 0).is_err());
    Ok(())
}

#[test]
fn relu_matches_candle() -> Result<()> {
    let dev = Device::Cpu;
    for shape in [vec![3usize, 5, 7, 2], vec![128, 32, 28, 28], vec![1]] {
        let x = Tensor::randn(0f32, 1., shape.as_slice(), &dev)?;
        assert_eq!(max_abs_diff(&ae_kernels::relu(&x)?, &x.relu()?)?, 0.0);
        let r = Tensor::randn(0f32, 1., shape.as_slice(), &dev)?;
        let g1 = grad_of(&x, &r, ae_kernels::relu)?;
        let g2 = grad_of(&x, &r, |x| x.relu())?;
        assert_eq!(max_abs_diff(&g1, &g2)?, 0.0);
    }
    // At exactly zero the gradient is 0 (PyTorch); candle's relu passes it.
    let x = Tensor::new(&[-1f64, 0., 2.], &dev)?;
    let r = Tensor::new(&[1f64, 1., 1.], &dev)?;
    let g = grad_of(&x, &r, ae_kernels::relu)?;
    assert_eq!(g.to_vec1::<f64>()?, [0., 0., 1.]);
    // Non-contiguous input and a strided gradient.
    let x = Tensor::randn(0f32, 1., (4, 6), &dev)?.t()?;
    assert_eq!(max_abs_diff(&ae_kernels::relu(&x)?, &x.relu()?)?, 0.0);
    Ok(())
}

#[test]
fn sigmoid_matches_candle_values_and_gradients() -> Result<()> {
    let dev = Device::Cpu;
    for shape in [vec![3usize, 5, 7], vec![1024, 784], vec![1]] {
        let x = (Tensor::randn(0f32, 1., shape.as_slice(), &dev)? * 6.0)?;
        let d = max_abs_diff(&ae_kernels::sigmoid(&x)?, &candle_nn::ops::sigmoid(&x)?)?;
        assert!(d < 2e-6, "{shape:?}: values differ by {d}");
        let r = Tensor::randn(0f32, 1., shape.as_slice(), &dev)?;
        let g1 = grad_of(&x, &r, ae_kernels::sigmoid)?;
        let g2 = grad_of(&x, &r, candle_nn::ops::sigmoid)?;
        let d = max_abs_diff(&g1, &g2)?;
        assert!(d < 1e-5, "{shape:?}: gradients differ by {d}");
    }
    // f64, a transposed (non-contiguous) input, and the far tails.
    let x = Tensor::new(&[[-50f64, 0.0], [3.5, 700.0]], &dev)?.t()?;
    let ours = ae_kernels::sigmoid(&x)?.to_vec2::<f64>()?;
    let theirs = candle_nn::ops::sigmoid(&x)?.to_vec2::<f64>()?;
    for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
        assert!((a - b).abs() <= 1e-15 * b.abs().max(1e-300), "{a} vs {b}");
    }
    Ok(())
}
