//! Per-op timing breakdown of the MNIST conv autoencoder's training step, candle's stock ops
//! versus `ae_kernels`, plus whole-step times and the estimated seconds per 60k-image epoch.
//!
//! `cargo run --release -p ae-kernels --example profile [-- REPS [tune-malloc] [new-only]]`
//! (default 5 repetitions after one warm-up; the minimum is reported, the most robust statistic
//! on a busy machine; batch 128, f32, CPU). With `tune-malloc`, calls
//! `ae_kernels::tune_glibc_malloc()` first; with `new-only`, skips candle's stock ops (the slow
//! half) and times ae-kernels alone, e.g. to compare thread counts
//! (`RAYON_NUM_THREADS=2 ... -- 5 tune-malloc new-only` against 16); with `chain-only`, times
//! only the image-at-a-time step of `ae_kernels::conv_chain` (what `ae train` runs), e.g.
//! under `perf record`.

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};

#[path = "../benches/support/conv_ae.rs"]
mod conv_ae;

const BATCH: usize = 128;
const EPOCH_IMAGES: f64 = 60_000.0;

/// Minimum wall time in ms of `f` over `reps` runs after one warm-up run.
fn time_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

type Op = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

/// (forward ms, backward ms) of `f` on `inputs`; backward = time of `f(..).backward()`
/// (seeded with ones, including candle's gradient bookkeeping) minus the forward time.
fn fwd_bwd(reps: usize, inputs: &[Tensor], f: &Op) -> Result<(f64, f64)> {
    let fwd = time_ms(reps, || f(inputs).map(|_| ()))?;
    let both = time_ms(reps, || f(inputs)?.backward().map(|_| ()))?;
    Ok((fwd, (both - fwd).max(0.0)))
}

/// A random tensor that takes part in autograd.
fn var(shape: &[usize]) -> Result<Tensor> {
    let t = Tensor::rand(-1f32, 1., shape, &Device::Cpu)?;
    Ok(Var::from_tensor(&t)?.as_tensor().clone())
}

/// A random tensor that does not (the data batch).
fn data(shape: &[usize]) -> Result<Tensor> {
    Tensor::rand(0f32, 1., shape, &Device::Cpu)
}

fn bias4(b: &Tensor) -> Result<Tensor> {
    b.reshape((1, b.dim(0)?, 1, 1))
}

fn stock_conv() -> Op {
    Box::new(|t| {
        t[0].conv2d(&t[1], 1, 1, 1, 1)?
            .broadcast_add(&bias4(&t[2])?)
    })
}

fn fast_conv() -> Op {
    Box::new(|t| ae_kernels::conv2d(&t[0], &t[1], Some(&t[2]), 1, 1))
}

fn stock_conv_t() -> Op {
    Box::new(|t| {
        t[0].conv_transpose2d(&t[1], 1, 1, 2, 1)?
            .broadcast_add(&bias4(&t[2])?)
    })
}

fn fast_conv_t() -> Op {
    Box::new(|t| ae_kernels::conv_transpose2d(&t[0], &t[1], Some(&t[2]), 1, 1, 2))
}

fn main() -> Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let flags: Vec<String> = std::env::args().skip(2).collect();
    let tuned = flags.iter().any(|f| f == "tune-malloc") && ae_kernels::tune_glibc_malloc();
    let stock_too = !flags.iter().any(|f| f == "new-only");
    let b = BATCH;
    if flags.iter().any(|f| f == "chain-only") {
        let ([_, _, _, model], x) = conv_ae::setup(b)?;
        let stages = model.stages()?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let ms = time_ms(reps, || model.chain_step(&stages, &xv).map(|_| ()))?;
        println!("ae_kernels::conv_chain step, batch {b}: {ms:.1} ms (min of {reps})");
        return Ok(());
    }
    println!(
        "batch {b}, f32, rayon threads {}, min of {reps} reps, glibc malloc tuned: {tuned}\n",
        rayon::current_num_threads()
    );

    let relu_s: fn() -> Op = || Box::new(|t| t[0].relu());
    let relu_f: fn() -> Op = || Box::new(|t| ae_kernels::relu(&t[0]));
    let pool_s: fn() -> Op = || Box::new(|t| t[0].max_pool2d(2));
    let pool_f: fn() -> Op = || Box::new(|t| ae_kernels::max_pool2d(&t[0], 2));
    let w3 = |o, i| var(&[o, i, 3, 3]);
    // (name, times per step, inputs, stock op, ae-kernels op), in forward order.
    let rows: Vec<(&str, usize, Vec<Tensor>, Op, Op)> = vec![
        (
            "enc1 conv 1→32 @28x28 (+bias)",
            1,
            vec![data(&[b, 1, 28, 28])?, w3(32, 1)?, var(&[32])?],
            stock_conv(),
            fast_conv(),
        ),
        (
            "relu @32x28x28",
            2,
            vec![var(&[b, 32, 28, 28])?],
            relu_s(),
            relu_f(),
        ),
        (
            "max_pool2d(2) @32x28x28",
            1,
            vec![var(&[b, 32, 28, 28])?],
            pool_s(),
            pool_f(),
        ),
        (
            "enc2 conv 32→32 @14x14 (+bias)",
            1,
            vec![var(&[b, 32, 14, 14])?, w3(32, 32)?, var(&[32])?],
            stock_conv(),
            fast_conv(),
        ),
        (
            "relu @32x14x14",
            2,
            vec![var(&[b, 32, 14, 14])?],
            relu_s(),
            relu_f(),
        ),
        (
            "max_pool2d(2) @32x14x14",
            1,
            vec![var(&[b, 32, 14, 14])?],
            pool_s(),
            pool_f(),
        ),
        (
            "dec1 convT 32→32 7→14 (+bias)",
            1,
            vec![var(&[b, 32, 7, 7])?, w3(32, 32)?, var(&[32])?],
            stock_conv_t(),
            fast_conv_t(),
        ),
        (
            "dec2 convT 32→32 14→28 (+bias)",
            1,
            vec![var(&[b, 32, 14, 14])?, w3(32, 32)?, var(&[32])?],
            stock_conv_t(),
            fast_conv_t(),
        ),
        (
            "out conv 32→1 @28x28 (+bias)",
            1,
            vec![var(&[b, 32, 28, 28])?, w3(1, 32)?, var(&[1])?],
            stock_conv(),
            fast_conv(),
        ),
        (
            "fused: enc1 conv+relu (vs stock conv, relu)",
            0,
            vec![data(&[b, 1, 28, 28])?, w3(32, 1)?, var(&[32])?],
            Box::new(|t| {
                t[0].conv2d(&t[1], 1, 1, 1, 1)?
                    .broadcast_add(&bias4(&t[2])?)?
                    .relu()
            }),
            Box::new(|t| ae_kernels::conv2d_relu(&t[0], &t[1], Some(&t[2]), 1, 1)),
        ),
        (
            "fused: dec2 convT+relu (vs stock convT, relu)",
            0,
            vec![var(&[b, 32, 14, 14])?, w3(32, 32)?, var(&[32])?],
            Box::new(|t| {
                t[0].conv_transpose2d(&t[1], 1, 1, 2, 1)?
                    .broadcast_add(&bias4(&t[2])?)?
                    .relu()
            }),
            Box::new(|t| ae_kernels::conv_transpose2d_relu(&t[0], &t[1], Some(&t[2]), 1, 1, 2)),
        ),
        (
            "BCE-with-logits loss",
            1,
            vec![var(&[b, 1, 28, 28])?, data(&[b, 1, 28, 28])?],
            Box::new(|t| candle_nn::loss::binary_cross_entropy_with_logit(&t[0], &t[1])),
            Box::new(|t| candle_nn::loss::binary_cross_entropy_with_logit(&t[0], &t[1])),
        ),
    ];

    println!("| op (batch {b}), ms | ×/step | stock fwd | stock bwd | new fwd | new bwd |");
    println!("|---|---:|---:|---:|---:|---:|");
    let (mut s_tot, mut f_tot) = (0.0, 0.0);
    for (name, times, inputs, stock, fast) in &rows {
        let (sf, sb) = if stock_too {
            fwd_bwd(reps, inputs, stock)?
        } else {
            (f64::NAN, f64::NAN)
        };
        let (ff, fb) = fwd_bwd(reps, inputs, fast)?;
        s_tot += (sf + sb) * *times as f64;
        f_tot += (ff + fb) * *times as f64;
        println!("| {name} | {times} | {sf:.1} | {sb:.1} | {ff:.1} | {fb:.1} |");
    }
    println!(
        "\nsum over the step's ops (rows with ×/step 0 are extra, not counted): stock {s_tot:.0} ms, new {f_tot:.0} ms\n"
    );

    let ([stock, fast_conv, fast_all, fast_fused], x) = conv_ae::setup(b)?;
    let steps = EPOCH_IMAGES / b as f64;
    println!("| full step (fwd + BCE + bwd), batch {b} | ms/step | est. s/epoch (60k) |");
    println!("|---|---:|---:|");
    let mut stock_ms = 0.0;
    let stock_reps = if stock_too { reps.min(3) } else { 0 };
    for (name, model, reps) in [
        ("candle stock", &stock, stock_reps),
        ("ae-kernels convs", &fast_conv, reps),
        ("ae-kernels convs + relu + max_pool2d", &fast_all, reps),
        ("ae-kernels, ReLU fused into the convs", &fast_fused, reps),
    ] {
        if reps == 0 {
            continue;
        }
        let ms = time_ms(reps, || model.step(&x).map(|_| ()))?;
        if stock_ms == 0.0 {
            stock_ms = ms;
        }
        println!(
            "| {name} | {ms:.0} | {:.0} ({:.1}x) |",
            ms * steps / 1e3,
            stock_ms / ms
        );
    }
    // The same step image by image, outside candle's graph (what `ae train` runs).
    let stages = fast_fused.stages()?;
    let xv = x.flatten_all()?.to_vec1::<f32>()?;
    let ms = time_ms(reps, || fast_fused.chain_step(&stages, &xv).map(|_| ()))?;
    println!(
        "| ae_kernels::conv_chain, image at a time | {ms:.0} | {:.0} ({:.1}x) |",
        ms * steps / 1e3,
        stock_ms / ms
    );
    Ok(())
}
