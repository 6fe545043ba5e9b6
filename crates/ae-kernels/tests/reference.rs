//! The fast kernels against candle's reference `conv2d` / `conv_transpose2d`: forward values and
//! gradients (w.r.t. input, weight and bias) on random small shapes and on the MNIST conv-AE
//! shapes.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder, VarMap};
use proptest::prelude::*;

mod common;
use common::rel_err;

fn uniform(shape: &[usize], dev: &Device) -> Result<Tensor> {
    Tensor::rand(-1f32, 1f32, shape, dev)
}

/// Output, and gradients w.r.t. x, w, b of `sum(f(x, w, b) * r)`.
fn value_and_grads(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    r_shape_from: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    seed_r: &Tensor,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let (xv, wv, bv) = (
        Var::from_tensor(x)?,
        Var::from_tensor(w)?,
        Var::from_tensor(b)?,
    );
    let y = r_shape_from(xv.as_tensor(), wv.as_tensor(), bv.as_tensor())?;
    let r = seed_r.narrow(0, 0, y.elem_count())?.reshape(y.shape())?;
    let loss = (&y * &r)?.sum_all()?;
    let grads = loss.backward()?;
    let get = |v: &Var| -> Result<Tensor> {
        match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => candle_core::bail!("missing gradient"),
        }
    };
    Ok((y, get(&xv)?, get(&wv)?, get(&bv)?))
}

fn assert_close(name: &str, ours: &Tensor, theirs: &Tensor, tol: f64) -> Result<()> {
    let e = rel_err(ours, theirs)?;
    assert!(e < tol, "{name}: relative error {e} >= {tol}");
    Ok(())
}

#[derive(Debug, Clone)]
struct ConvCase {
    n: usize,
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    stride: usize,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..=4,
        1usize..=4,
        1usize..=4,
        1usize..=12,
        1usize..=12,
        1usize..=5,
        1usize..=5,
        0usize..=2,
        1usize..=3,
    )
        .prop_map(|(n, c, o, h, w, kh, kw, pad, stride)| ConvCase {
            n,
            c,
            o,
            h,
            w,
            kh,
            kw,
            pad,
            stride,
        })
        .prop_filter("kernel must fit the padded input", |k| {
            k.kh <= k.h + 2 * k.pad && k.kw <= k.w + 2 * k.pad
        })
}

fn check_conv(k: &ConvCase) -> Result<()> {
    let dev = Device::Cpu;
    let x = uniform(&[k.n, k.c, k.h, k.w], &dev)?;
    let w = uniform(&[k.o, k.c, k.kh, k.kw], &dev)?;
    let b = uniform(&[k.o], &dev)?;
    let r = uniform(&[k.n * k.o * (k.h + 4) * (k.w + 4)], &dev)?;
    let (p, s) = (k.pad, k.stride);

    // Forward (no autograd involved).
    let ours = ae_kernels::conv2d(&x, &w, Some(&b), p, s)?;
    let theirs = x
        .conv2d(&w, p, s, 1, 1)?
        .broadcast_add(&b.reshape((1, k.o, 1, 1))?)?;
    assert_close("conv2d forward", &ours, &theirs, 1e-4)?;
    let ours_nb = ae_kernels::conv2d(&x, &w, None, p, s)?;
    assert_close(
        "conv2d forward (no bias)",
        &ours_nb,
        &x.conv2d(&w, p, s, 1, 1)?,
        1e-4,
    )?;

    let (y1, gx1, gw1, gb1) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| ae_kernels::conv2d(x, w, Some(b), p, s),
        &r,
    )?;
    // The conv is linear in x and in w: the gradients are the adjoints, checked against
    // candle's forward op for every shape.
    let r_y = r.narrow(0, 0, y1.elem_count())?.reshape(y1.shape())?;
    let v = uniform(x.dims(), &dev)?;
    let u = uniform(w.dims(), &dev)?;
    let want_x = (v.conv2d(&w, p, s, 1, 1)? * &r_y)?.sum_all()?;
    let want_w = (x.conv2d(&u, p, s, 1, 1)? * &r_y)?.sum_all()?;
    assert_close("conv2d <dx, v>", &(&gx1 * &v)?.sum_all()?, &want_x, 1e-4)?;
    assert_close("conv2d <dw, u>", &(&gw1 * &u)?.sum_all()?, &want_w, 1e-4)?;
    assert_close("conv2d db", &gb1, &r_y.sum((0, 2, 3))?, 1e-4)?;

    // candle 0.11's conv2d backward sizes the input gradient from the height alone
    // (`output_padding` from dim 2 is reused for the width) and with unsigned arithmetic that
    // underflows when (ho - 1) * stride + kh < 2 * padding: compare with its gradients only
    // where it can produce them.
    let (ho, wo) = (ours.dim(2)?, ours.dim(3)?);
    let (full_h, full_w) = ((ho - 1) * s + k.kh, (wo - 1) * s + k.kw);
    if full_h < 2 * p || full_w < 2 * p || k.h + 2 * p - full_h != k.w + 2 * p - full_w {
        return Ok(());
    }
    let (y2, gx2, gw2, gb2) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| {
            x.conv2d(w, p, s, 1, 1)?
                .broadcast_add(&b.reshape((b.dim(0)?, 1, 1))?)
        },
        &r,
    )?;
    // Fused ReLU: same as relu(conv) (checked where the gradient pre-activation is nonzero,
    // i.e. almost surely everywhere with random inputs).
    let (y3, gx3, gw3, gb3) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| ae_kernels::conv2d_relu(x, w, Some(b), p, s),
        &r,
    )?;
    let (y4, gx4, gw4, gb4) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| ae_kernels::relu(&ae_kernels::conv2d(x, w, Some(b), p, s)?),
        &r,
    )?;
    assert_close("conv2d_relu y", &y3, &y4, 1e-6)?;
    assert_close("conv2d_relu y vs candle", &y3, &y2.relu()?, 1e-4)?;
    assert_close("conv2d_relu dx", &gx3, &gx4, 1e-5)?;
    assert_close("conv2d_relu dw", &gw3, &gw4, 1e-5)?;
    assert_close("conv2d_relu db", &gb3, &gb4, 1e-5)?;

    assert_close("conv2d y", &y1, &y2, 1e-4)?;
    assert_close("conv2d dx", &gx1, &gx2, 1e-4)?;
    assert_close("conv2d dw", &gw1, &gw2, 1e-4)?;
    assert_close("conv2d db", &gb1, &gb2, 1e-4)?;
    Ok(())
}

#[derive(Debug, Clone)]
struct ConvTCase {
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    out_pad: usize,
    stride: usize,
}

fn conv_t_case() -> impl Strategy<Value = ConvTCase> {
    (
        (1usize..=4, 1usize..=4, 1usize..=4),
        (1usize..=12, 1usize..=12),
        (1usize..=5, 1usize..=5),
        0usize..=2,
        1usize..=3,
        0usize..3,
    )
        .prop_map(
            |((n, c_in, c_out), (h, w), (kh, kw), pad, stride, op)| ConvTCase {
                n,
                c_in,
                c_out,
                h,
                w,
                kh,
                kw,
                pad,
                out_pad: op % stride,
                stride,
            },
        )
        .prop_filter("output must be non-empty", |k| {
            (k.h - 1) * k.stride + k.kh + k.out_pad > 2 * k.pad
                && (k.w - 1) * k.stride + k.kw + k.out_pad > 2 * k.pad
        })
}

fn check_conv_t(k: &ConvTCase) -> Result<()> {
    let dev = Device::Cpu;
    let x = uniform(&[k.n, k.c_in, k.h, k.w], &dev)?;
    let w = uniform(&[k.c_in, k.c_out, k.kh, k.kw], &dev)?;
    let b = uniform(&[k.c_out], &dev)?;
    let (p, op, s) = (k.pad, k.out_pad, k.stride);
    let ho = (k.h - 1) * s + k.kh + op - 2 * p;
    let wo = (k.w - 1) * s + k.kw + op - 2 * p;
    let r = uniform(&[k.n * k.c_out * ho * wo], &dev)?;

    let ours = ae_kernels::conv_transpose2d(&x, &w, Some(&b), p, op, s)?;
    let theirs = x
        .conv_transpose2d(&w, p, op, s, 1)?
        .broadcast_add(&b.reshape((1, k.c_out, 1, 1))?)?;
    assert_eq!(ours.dims(), &[k.n, k.c_out, ho, wo]);
    assert_close("conv_transpose2d forward", &ours, &theirs, 1e-4)?;

    let (y1, gx1, gw1, gb1) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| ae_kernels::conv_transpose2d(x, w, Some(b), p, op, s),
        &r,
    )?;
    let (y2, gx2, gw2, gb2) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| {
            x.conv_transpose2d(w, p, op, s, 1)?
                .broadcast_add(&b.reshape((b.dim(0)?, 1, 1))?)
        },
        &r,
    )?;
    let r_y = r.narrow(0, 0, y1.elem_count())?.reshape(y1.shape())?;
    let v = uniform(x.dims(), &dev)?;
    let u = uniform(w.dims(), &dev)?;
    let want_x = (v.conv_transpose2d(&w, p, op, s, 1)? * &r_y)?.sum_all()?;
    let want_w = (x.conv_transpose2d(&u, p, op, s, 1)? * &r_y)?.sum_all()?;
    assert_close(
        "conv_transpose2d <dx, v>",
        &(&gx1 * &v)?.sum_all()?,
        &want_x,
        1e-4,
    )?;
    assert_close(
        "conv_transpose2d <dw, u>",
        &(&gw1 * &u)?.sum_all()?,
        &want_w,
        1e-4,
    )?;
    let (y3, gx3, gw3, gb3) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| ae_kernels::conv_transpose2d_relu(x, w, Some(b), p, op, s),
        &r,
    )?;
    let (y4, gx4, gw4, gb4) = value_and_grads(
        &x,
        &w,
        &b,
        |x, w, b| ae_kernels::relu(&ae_kernels::conv_transpose2d(x, w, Some(b), p, op, s)?),
        &r,
    )?;
    assert_close("conv_transpose2d_relu y", &y3, &y4, 1e-6)?;
    assert_close("conv_transpose2d_relu y vs candle", &y3, &y2.relu()?, 1e-4)?;
    assert_close("conv_transpose2d_relu dx", &gx3, &gx4, 1e-5)?;
    assert_close("conv_transpose2d_relu dw", &gw3, &gw4, 1e-5)?;
    assert_close("conv_transpose2d_relu db", &gb3, &gb4, 1e-5)?;
    assert_close("conv_transpose2d y", &y1, &y2, 1e-4)?;
    assert_close("conv_transpose2d dx", &gx1, &gx2, 1e-4)?;
    assert_close("conv_transpose2d dw", &gw1, &gw2, 1e-4)?;
    assert_close("conv_transpose2d db", &gb1, &gb2, 1e-4)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn conv2d_matches_candle(k in conv_case()) {
        if let Err(e) = check_conv(&k) {
            prop_assert!(false, "{k:?}: {e}");
        }
    }

    #[test]
    fn conv_transpose2d_matches_candle(k in conv_t_case()) {
        if let Err(e) = check_conv_t(&k) {
            prop_assert!(false, "{k:?}: {e}");
        }
    }
}

#[test]
fn conv2d_f64_and_strided_inputs() -> Result<()> {
    let dev = Device::Cpu;
    // A transposed (non-contiguous) input and f64.
    let x = Tensor::rand(-1f64, 1., (2, 3, 9, 6), &dev)?.transpose(2, 3)?;
    let w = Tensor::rand(-1f64, 1., (4, 3, 3, 2), &dev)?;
    let ours = ae_kernels::conv2d(&x, &w, None, 1, 2)?;
    let theirs = x.contiguous()?.conv2d(&w, 1, 2, 1, 1)?;
    assert_close("f64 strided conv2d", &ours, &theirs, 1e-10)?;
    let xt = Tensor::rand(-1f64, 1., (2, 3, 3, 5), &dev)?;
    let ours = ae_kernels::conv_transpose2d(&xt, &w.transpose(0, 1)?, None, 1, 1, 2)?;
    let theirs = xt.conv_transpose2d(&w.transpose(0, 1)?.contiguous()?, 1, 1, 2, 1)?;
    assert_close("f64 conv_transpose2d", &ours, &theirs, 1e-10)?;
    Ok(())
}

#[test]
fn fallbacks_and_errors() -> Result<()> {
    let dev = Device::Cpu;
    // f16 goes through candle's own op.
    let x = Tensor::rand(-1f32, 1., (1, 2, 5, 5), &dev)?;
    let w = Tensor::rand(-1f32, 1., (3, 2, 3, 3), &dev)?;
    let ours = ae_kernels::conv2d(
        &x.to_dtype(DType::F16)?,
        &w.to_dtype(DType::F16)?,
        None,
        1,
        1,
    )?;
    assert_eq!(ours.dtype(), DType::F16);
    assert_close("f16 conv2d", &ours, &x.conv2d(&w, 1, 1, 1, 1)?, 1e-2)?;
    // Channel mismatch, bias mismatch, kernel too large, zero stride.
    assert!(ae_kernels::conv2d(&x, &w.narrow(1, 0, 1)?, None, 0, 1).is_err());
    assert!(ae_kernels::conv2d(&x, &w, Some(&Tensor::zeros(2, DType::F32, &dev)?), 0, 1).is_err());
    assert!(
        ae_kernels::conv2d(
            &x,
            &Tensor::zeros((3, 2, 6, 6), DType::F32, &dev)?,
            None,
            0,
            1
        )
        .is_err()
    );
    assert!(ae_kernels::conv2d(&x, &w, None, 0, 0).is_err());
    assert!(ae_kernels::conv_transpose2d(&x, &w.transpose(0, 1)?, None, 0, 0, 0).is_err());
    Ok(())
}

/// The MNIST convolutional autoencoder, with either candle's stock conv layers or ours.
struct ConvAe {
    c1: Box<dyn Module>,
    c2: Box<dyn Module>,
    t1: Box<dyn Module>,
    t2: Box<dyn Module>,
    c3: Box<dyn Module>,
}

impl ConvAe {
    fn new(vb: VarBuilder<'_>, fast: bool) -> Result<Self> {
        let cc = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let tc = ConvTranspose2dConfig {
            padding: 1,
            output_padding: 1,
            stride: 2,
            dilation: 1,
        };
        let conv = |i, o, name: &str| -> Result<Box<dyn Module>> {
            let c = candle_nn::conv2d(i, o, 3, cc, vb.pp(name))?;
            Ok(if fast {
                Box::new(ae_kernels::Conv2d::from(c))
            } else {
                Box::new(c)
            })
        };
        let convt = |i, o, name: &str| -> Result<Box<dyn Module>> {
            let c = candle_nn::conv_transpose2d(i, o, 3, tc, vb.pp(name))?;
            Ok(if fast {
                Box::new(ae_kernels::ConvTranspose2d::from(c))
            } else {
                Box::new(c)
            })
        };
        Ok(Self {
            c1: conv(1, 32, "c1")?,
            c2: conv(32, 32, "c2")?,
            t1: convt(32, 32, "t1")?,
            t2: convt(32, 32, "t2")?,
            c3: conv(32, 1, "c3")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.c1.forward(x)?.relu()?.max_pool2d(2)?;
        let h = self.c2.forward(&h)?.relu()?.max_pool2d(2)?;
        let h = self.t1.forward(&h)?.relu()?;
        let h = self.t2.forward(&h)?.relu()?;
        self.c3.forward(&h)
    }
}

#[test]
fn mnist_conv_ae_step_matches_candle() -> Result<()> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let stock = ConvAe::new(vb.clone(), false)?;
    // Same variables (the VarBuilder hands back the existing ones).
    let fast = ConvAe::new(vb, true)?;
    let x = Tensor::rand(0f32, 1., (8, 1, 28, 28), &dev)?;

    let run = |m: &ConvAe| -> Result<(Tensor, candle_core::backprop::GradStore)> {
        let logits = m.forward(&x)?;
        let loss = candle_nn::loss::binary_cross_entropy_with_logit(&logits, &x)?;
        let grads = loss.backward()?;
        Ok((logits, grads))
    };
    let (y_fast, g_fast) = run(&fast)?;
    let (y_stock, g_stock) = run(&stock)?;
    assert_eq!(y_fast.dims(), &[8, 1, 28, 28]);
    assert_close("conv-AE logits", &y_fast, &y_stock, 1e-4)?;
    for var in vm.all_vars() {
        let (Some(a), Some(b)) = (g_fast.get(&var), g_stock.get(&var)) else {
            candle_core::bail!("missing gradient for a {:?} variable", var.dims())
        };
        assert_close(&format!("conv-AE grad {:?}", var.dims()), a, b, 1e-3)?;
    }
    Ok(())
}

#[test]
fn gradients_when_only_some_inputs_are_tracked() -> Result<()> {
    let dev = Device::Cpu;
    let x = uniform(&[3, 4, 9, 9], &dev)?;
    let w = uniform(&[5, 4, 3, 3], &dev)?;
    let wt = uniform(&[4, 2, 3, 3], &dev)?;
    let b = uniform(&[5], &dev)?;
    // Only the input is a variable (frozen weights): its gradient still matches candle's.
    let xv = Var::from_tensor(&x)?;
    let run = |fast: bool| -> Result<Tensor> {
        let (y, z) = if fast {
            let y = ae_kernels::conv2d(xv.as_tensor(), &w, Some(&b), 1, 2)?;
            (
                y.clone(),
                ae_kernels::conv_transpose2d(&y.narrow(1, 0, 4)?, &wt, None, 1, 1, 2)?,
            )
        } else {
            let y = xv
                .as_tensor()
                .conv2d(&w, 1, 2, 1, 1)?
                .broadcast_add(&b.reshape((1, 5, 1, 1))?)?;
            (
                y.clone(),
                y.narrow(1, 0, 4)?
                    .contiguous()?
                    .conv_transpose2d(&wt, 1, 1, 2, 1)?,
            )
        };
        let loss = (y.sqr()?.sum_all()? + z.sqr()?.sum_all()?)?;
        match loss.backward()?.get(xv.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => candle_core::bail!("missing gradient"),
        }
    };
    assert_close("input-only gradient", &run(true)?, &run(false)?, 1e-4)?;
    // Only the weight is a variable.
    let wv = Var::from_tensor(&w)?;
    let gw = |fast: bool| -> Result<Tensor> {
        let y = if fast {
            ae_kernels::conv2d(&x, wv.as_tensor(), None, 0, 1)?
        } else {
            x.conv2d(wv.as_tensor(), 0, 1, 1, 1)?
        };
        match y.sqr()?.sum_all()?.backward()?.get(wv.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => candle_core::bail!("missing gradient"),
        }
    };
    assert_close("weight-only gradient", &gw(true)?, &gw(false)?, 1e-4)?;
    Ok(())
}

#[test]
fn mnist_conv_ae_fused_relu_and_pool_match_unfused() -> Result<()> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let cc = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let tc = ConvTranspose2dConfig {
        padding: 1,
        output_padding: 1,
        stride: 2,
        dilation: 1,
    };
    let c1 = ae_kernels::nn::conv2d(1, 32, 3, cc, vb.pp("c1"))?;
    let c2 = ae_kernels::nn::conv2d(32, 32, 3, cc, vb.pp("c2"))?;
    let t1 = ae_kernels::nn::conv_transpose2d(32, 32, 3, tc, vb.pp("t1"))?;
    let t2 = ae_kernels::nn::conv_transpose2d(32, 32, 3, tc, vb.pp("t2"))?;
    let c3 = ae_kernels::nn::conv2d(32, 1, 3, cc, vb.pp("c3"))?;
    let x = Tensor::rand(0f32, 1., (8, 1, 28, 28), &dev)?;
    let pool = |t: Tensor| ae_kernels::max_pool2d(&t, 2);
    let fused = {
        let h = pool(c1.forward_relu(&x)?)?;
        let h = pool(c2.forward_relu(&h)?)?;
        let h = t2.forward_relu(&t1.forward_relu(&h)?)?;
        c3.forward(&h)?
    };
    let relu = ae_kernels::relu;
    let unfused = {
        let h = pool(relu(&c1.forward(&x)?)?)?;
        let h = pool(relu(&c2.forward(&h)?)?)?;
        let h = relu(&t2.forward(&relu(&t1.forward(&h)?)?)?)?;
        c3.forward(&h)?
    };
    let Some(b1) = c1.bias() else {
        candle_core::bail!("conv2d layer without bias")
    };
    let stock = x
        .conv2d(c1.weight(), 1, 1, 1, 1)?
        .broadcast_add(&b1.reshape((1, 32, 1, 1))?)?
        .relu()?
        .max_pool2d(2)?;
    assert_close("fused vs unfused logits", &fused, &unfused, 1e-6)?;
    assert_close(
        "first block vs candle",
        &pool(c1.forward_relu(&x)?)?,
        &stock,
        1e-5,
    )?;
    let loss = |y: &Tensor| candle_nn::loss::binary_cross_entropy_with_logit(y, &x);
    let (g1, g2) = (loss(&fused)?.backward()?, loss(&unfused)?.backward()?);
    for var in vm.all_vars() {
        let (Some(a), Some(b)) = (g1.get(&var), g2.get(&var)) else {
            candle_core::bail!("missing gradient for a {:?} variable", var.dims())
        };
        assert_close(&format!("fused grad {:?}", var.dims()), a, b, 1e-5)?;
    }
    Ok(())
}
