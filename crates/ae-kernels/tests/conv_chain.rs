//! The image-at-a-time conv chain step (`ae_kernels::conv_chain`) against the same layers
//! written with the crate's candle ops (conv + ReLU, max pool, transposed conv, BCE) and
//! differentiated by candle's autograd: the logits of the forward pass alone, the loss and
//! every parameter's gradient, on conv
//! autoencoders of several shapes (channels, kernel sizes, depths, ReLU or not, batch sizes
//! that leave some rayon tasks short).

use ae_kernels::conv_chain::{self, Stage, StageKind};
use candle_core::{Device, Result, Tensor, Var};

mod common;
use ae_kernels::test_utils::{on_threads, values};
use common::rel_err;

/// One parameterised stage of the reference: its kind, weight, bias, ReLU and (linear
/// stages) output shape.
struct Layer {
    kind: StageKind,
    params: Option<(Var, Var)>,
    relu: bool,
    shape: [usize; 3],
}

/// A conv autoencoder on `[c, h, w]` inputs: per entry of `channels` a conv (ReLU when
/// `relu`) and a pool, then per entry in reverse a stride-2 transposed conv (ReLU when
/// `relu`), then a conv back to `c` channels (no ReLU).
fn autoencoder(c: usize, channels: &[usize], k: usize, relu: bool) -> Result<Vec<Layer>> {
    let dev = Device::Cpu;
    let mut seed = 10;
    // A weight of shape `[a, b, k, k]`, uniform in ±1.5/sqrt(fan_in·k²).
    let mut param = |(a, b): (usize, usize), fan_in: usize| -> Result<Var> {
        seed += 2;
        let s = 1.5 / ((fan_in * k * k) as f32).sqrt();
        let w = values(a * b * k * k, seed, -s, s);
        Var::from_tensor(&Tensor::from_vec(w, (a, b, k, k), &dev)?)
    };
    let mut layers = Vec::new();
    let mut bias_seed = 100;
    let mut bias = |n: usize| -> Result<Var> {
        bias_seed += 1;
        Var::from_tensor(&Tensor::from_vec(values(n, bias_seed, -0.2, 0.3), n, &dev)?)
    };
    let mut c_in = c;
    for &c_out in channels {
        let w = param((c_out, c_in), c_in)?;
        layers.push(Layer {
            kind: StageKind::Conv,
            params: Some((w, bias(c_out)?)),
            relu,
            shape: [0; 3],
        });
        layers.push(Layer {
            kind: StageKind::Pool2,
            params: None,
            relu: false,
            shape: [0; 3],
        });
        c_in = c_out;
    }
    for &c_out in channels.iter().rev() {
        let w = param((c_in, c_out), c_in)?;
        layers.push(Layer {
            kind: StageKind::ConvT,
            params: Some((w, bias(c_out)?)),
            relu,
            shape: [0; 3],
        });
        c_in = c_out;
    }
    let w = param((c, c_in), c_in)?;
    layers.push(Layer {
        kind: StageKind::Conv,
        params: Some((w, bias(c)?)),
        relu: false,
        shape: [0; 3],
    });
    Ok(layers)
}

/// [`autoencoder`] with a dense code of `k` units after the encoder (linear), mapped back to
/// the encoder's output shape `map` (with a ReLU when `relu`), as the conv model's
/// `dense_code`.
fn coded(
    c: usize,
    channels: &[usize],
    k: usize,
    map: [usize; 3],
    relu: bool,
) -> Result<Vec<Layer>> {
    let dev = Device::Cpu;
    let mut layers = autoencoder(c, channels, 3, relu)?;
    let feat: usize = map.iter().product();
    let linear =
        |out: usize, inp: usize, seed: u64, relu: bool, shape: [usize; 3]| -> Result<Layer> {
            let s = 1.5 / (inp as f32).sqrt();
            let w = Tensor::from_vec(values(out * inp, seed, -s, s), (out, inp), &dev)?;
            let b = Tensor::from_vec(values(out, seed + 1, -0.2, 0.3), out, &dev)?;
            Ok(Layer {
                kind: StageKind::Linear,
                params: Some((Var::from_tensor(&w)?, Var::from_tensor(&b)?)),
                relu,
                shape,
            })
        };
    let at = 2 * channels.len();
    layers.insert(at, linear(k, feat, 40, false, [k, 1, 1])?);
    layers.insert(at + 1, linear(feat, k, 42, relu, map)?);
    Ok(layers)
}

/// The reference: the layers as candle ops, BCE mean, differentiated by candle; the loss
/// sum, the gradients and the logits.
fn reference(layers: &[Layer], x: &Tensor, t: &Tensor) -> Result<(f64, Vec<Tensor>, Tensor)> {
    let mut h = x.clone();
    for l in layers {
        let k = |w: &Var| w.as_tensor().dim(2).unwrap_or(1);
        h = match (&l.params, l.kind) {
            (None, _) => ae_kernels::max_pool2d(&h, 2)?,
            (Some((w, b)), StageKind::Linear) => {
                let f = if l.relu {
                    ae_kernels::linear_relu
                } else {
                    ae_kernels::linear
                };
                let [c, hh, ww] = l.shape;
                f(&h.flatten_from(1)?, w.as_tensor(), Some(b.as_tensor()))?.reshape((
                    h.dim(0)?,
                    c,
                    hh,
                    ww,
                ))?
            }
            (Some((w, b)), StageKind::Conv) => {
                let f = if l.relu {
                    ae_kernels::conv2d_relu
                } else {
                    ae_kernels::conv2d
                };
                f(&h, w.as_tensor(), Some(b.as_tensor()), k(w) / 2, 1)?
            }
            (Some((w, b)), _) => {
                let f = if l.relu {
                    ae_kernels::conv_transpose2d_relu
                } else {
                    ae_kernels::conv_transpose2d
                };
                f(&h, w.as_tensor(), Some(b.as_tensor()), k(w) / 2, 1, 2)?
            }
        };
    }
    let scale = 1.0 / x.elem_count() as f64;
    let loss = ae_kernels::bce_with_logits_sum(&h, t, scale)?;
    let grads = loss.backward()?;
    let mut out = Vec::new();
    for l in layers {
        if let Some((w, b)) = &l.params {
            for v in [w, b] {
                out.push(grads.get(v.as_tensor()).cloned().unwrap_or(v.zeros_like()?));
            }
        }
    }
    Ok((f64::from(loss.to_scalar::<f32>()?) / scale, out, h))
}

fn stages(layers: &[Layer]) -> Result<Vec<Stage>> {
    layers
        .iter()
        .map(|l| match (&l.params, l.kind) {
            (None, _) => Ok(Stage::pool2()),
            (Some((w, b)), StageKind::Linear) => {
                Stage::linear(w.as_tensor(), b.as_tensor(), l.relu, l.shape)
            }
            (Some((w, b)), StageKind::Conv) => Stage::conv(w.as_tensor(), b.as_tensor(), l.relu),
            (Some((w, b)), _) => Stage::conv_t(w.as_tensor(), b.as_tensor(), l.relu),
        })
        .collect()
}

fn check(n: usize, shape: [usize; 3], channels: &[usize], k: usize, relu: bool) -> Result<()> {
    let layers = autoencoder(shape[0], channels, k, relu)?;
    let what = format!("n {n}, shape {shape:?}, channels {channels:?}, k {k}, relu {relu}");
    check_layers(&layers, n, shape, &what)
}

fn check_layers(layers: &[Layer], n: usize, shape: [usize; 3], what: &str) -> Result<()> {
    let dev = Device::Cpu;
    let [c, h, w] = shape;
    let len = c * h * w;
    let xv = values(n * len, 3, 0.0, 1.0);
    let tv: Vec<f32> = values(n * len, 4, 0.0, 1.0)
        .into_iter()
        .map(|v| if v > 0.7 { 1.0 } else { v * 0.5 })
        .collect();
    let x = Tensor::from_vec(xv.clone(), (n, c, h, w), &dev)?;
    let t = Tensor::from_vec(tv.clone(), (n, c, h, w), &dev)?;
    let (want_loss, want, logits) = reference(layers, &x, &t)?;
    let st = stages(layers)?;
    // The forward pass alone: the logits, and the first stage's output.
    let got = conv_chain::forward(&st, shape, &xv, n, st.len())?;
    let got = Tensor::from_vec(got, logits.dims(), &dev)?;
    let err = rel_err(&got, &logits)?;
    assert!(err < 1e-5, "{what}: logits relative error {err}");
    let first = conv_chain::forward(&st, shape, &xv, n, 1)?;
    assert_eq!(first.len() % n, 0, "{what}");
    assert!(conv_chain::forward(&st, shape, &xv, n, st.len() + 1).is_err());
    assert!(conv_chain::forward(&st, shape, &xv, n, 0).is_err());
    assert!(conv_chain::forward(&st, shape, &xv[1..], n, 1).is_err());
    assert_eq!(conv_chain::output_shape(&st, shape)?, shape);
    let scale = 1.0 / (n * len) as f32;
    let (loss, grads) = conv_chain::bce_step(&st, shape, &xv, &tv, n, scale)?;
    assert!(
        (loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
        "{what}: loss {loss} vs {want_loss}"
    );
    assert_eq!(grads.len(), want.len(), "{what}");
    for (i, ((param, got), want)) in grads.iter().zip(&want).enumerate() {
        assert_eq!(param.dims(), want.dims(), "{what}: gradient {i}");
        let got = Tensor::from_slice(got, want.dims(), &dev)?;
        let err = rel_err(&got, want)?;
        assert!(err < 2e-4, "{what}: gradient {i} relative error {err}");
    }
    Ok(())
}

#[test]
fn the_default_shape_matches_candles_graph() -> Result<()> {
    // MNIST's model at a smaller size and batch: 1 channel, two stages of 4 and 3 channels.
    check(5, [1, 12, 12], &[4, 3], 3, true)
}

#[test]
fn other_shapes_match_candles_graph() -> Result<()> {
    check(3, [3, 8, 8], &[5], 3, true)?;
    check(7, [2, 8, 12], &[3, 4], 5, true)?;
    check(2, [1, 16, 8], &[2, 2, 2], 3, false)?;
    check(1, [1, 4, 4], &[6], 1, true)?;
    // Enough images and channels for several tasks per thread and the wide layouts.
    check(33, [1, 16, 16], &[16, 8], 3, true)
}

#[test]
fn a_dense_code_matches_candles_graph() -> Result<()> {
    // Two stages of 4 and 3 channels on 12x12: a 3x3x3 map, coded in 5 units.
    for relu in [true, false] {
        let layers = coded(1, &[4, 3], 5, [3, 3, 3], relu)?;
        check_layers(&layers, 6, [1, 12, 12], &format!("dense code, relu {relu}"))?;
    }
    Ok(())
}

/// The step's loss and gradients have the same bits on any thread count: the images'
/// gradients are summed over a tree fixed by the batch size (`plan::run_tasks`), with few
/// images (gemm's own threads inside each leaf) and many (several leaves per thread).
#[test]
fn the_step_gives_the_same_bits_on_any_thread_count() -> Result<()> {
    let shape = [1, 16, 16];
    let len = 256;
    let nets = [
        ("conv", autoencoder(1, &[16, 8], 3, true)?),
        ("dense code", coded(1, &[4, 3], 5, [3, 4, 4], true)?),
    ];
    for (name, layers) in &nets {
        let st = stages(layers)?;
        for n in [3, 40, 130] {
            let x = values(n * len, 7, 0.0, 1.0);
            let t = values(n * len, 8, 0.0, 1.0);
            let step = |threads: usize| {
                on_threads(threads, || {
                    let (loss, grads) = conv_chain::bce_step(&st, shape, &x, &t, n, 0.01)?;
                    Ok::<_, candle_core::Error>((loss, grads.into_iter().map(|g| g.1).collect()))
                })
                .map_err(candle_core::Error::wrap)?
            };
            let one: (f64, Vec<Vec<f32>>) = step(1)?;
            for threads in [2, 5, 16] {
                let got = step(threads)?;
                assert!(got.0 == one.0, "{name}, n {n}, {threads} threads: loss");
                for (i, (a, b)) in got.1.iter().zip(&one.1).enumerate() {
                    assert!(a == b, "{name}, n {n}, {threads} threads: gradient {i}");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn bad_chains_and_batches_are_refused() -> Result<()> {
    let layers = autoencoder(1, &[2], 3, true)?;
    let st = stages(&layers)?;
    let x = vec![0.5f32; 2 * 64];
    // A batch whose length does not match.
    assert!(conv_chain::bce_step(&st, [1, 8, 8], &x[..100], &x[..100], 2, 1.0).is_err());
    // Input channels the first stage does not take.
    assert!(conv_chain::bce_step(&st, [2, 8, 4], &x, &x, 2, 1.0).is_err());
    // A chain that does not map the input back to its shape.
    assert!(conv_chain::bce_step(&st[..2], [1, 8, 8], &x, &x, 2, 1.0).is_err());
    assert!(conv_chain::bce_step(&[], [1, 8, 8], &x, &x, 2, 1.0).is_err());
    // An even kernel.
    let dev = Device::Cpu;
    let w = Tensor::zeros((2, 1, 2, 2), candle_core::DType::F32, &dev)?;
    let b = Tensor::zeros(2, candle_core::DType::F32, &dev)?;
    assert!(Stage::conv(&w, &b, true).is_err());
    // A linear stage whose outputs cannot be read as the shape given.
    let w = Tensor::zeros((6, 4), candle_core::DType::F32, &dev)?;
    let b = Tensor::zeros(6, candle_core::DType::F32, &dev)?;
    assert!(Stage::linear(&w, &b, true, [2, 2, 2]).is_err());
    assert!(Stage::linear(&w, &b, true, [6, 1, 1]).is_ok());
    Ok(())
}
