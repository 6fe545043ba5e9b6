//! Where the fused dense training step's time goes, layer by layer, at the pool's thread
//! count: `RAYON_NUM_THREADS=N cargo run --release -p ae-benches --example fused_profile --
//! vanilla 100` (models `vanilla`, `sparse`, `vae`; then repetitions).
//!
//! The production CPU step of the dense models is `ae_train::fused::fused_train_step`
//! followed by `Adam::step_slices`; `step_profile` times the autograd path instead. Here each
//! layer's forward pass and backward pass run alone through `ae_kernels::chain` (the same
//! GEMM grids and element-wise passes the fused step calls, on inputs of the step's
//! shapes), then the loss, Adam over every parameter and the whole step. Run at 2 threads
//! and at all of a many-core machine's, the layers that do not speed up are the ones whose
//! parallel regions are too small for the threads (issue 17; docs/performance.md). The
//! median of the repetitions is printed, in milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ae_kernels::chain::{self, Bound, Forward, Layer};
use ae_losses::{
    ReconLoss, bce_with_logits_flat, mse_flat, reparameterise_flat, vae_loss_flat_with,
};
use ae_models::{ImageShape, ModelConfig, ModelKind, build, init::seeded_init};
use ae_train::fused::{FusedSpec, fused_spec, fused_train_step};
use ae_train::{Adam, AdamConfig, checkpoint::named_vars};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

/// The median time of `reps` calls of `f`, in milliseconds, after two unmeasured calls.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// One printed row: what, forward ms, backward ms.
struct Row {
    what: String,
    fwd: f64,
    bwd: f64,
}

/// Times every layer of the chain `bound` (named `name`) on the `n` rows `x`, alone: its
/// forward pass and its backward pass (from a gradient of its output's shape; the first
/// layer's input gradient only when `input_grad`, as in the step). Returns the rows and the
/// chain's output.
fn profile_chain(
    name: &str,
    (bound, layers): (&[Bound<'_>], &[&Layer]),
    x: &[f32],
    n: usize,
    input_grad: bool,
    reps: usize,
) -> (Vec<Row>, Vec<f32>) {
    let mut rows = Vec::new();
    let mut input = x.to_vec();
    for (i, (b, l)) in bound.iter().zip(layers).enumerate() {
        let one = std::slice::from_ref(b);
        let fwd = median_ms(reps, || {
            std::hint::black_box(chain::forward(one, &input, n));
        });
        let acts = chain::forward(one, &input, n);
        let gy: Vec<f32> = acts[0].iter().map(|v| v * 1e-3 + 1e-4).collect();
        let bwd = median_ms(reps, || {
            let mut grads = Vec::new();
            let f = Forward {
                x: &input,
                acts: &acts,
                n,
            };
            let need_gx = i > 0 || input_grad;
            let gx = chain::backward(one, f, gy.clone(), need_gx, &mut grads, |_, _| {});
            std::hint::black_box((gx, grads));
        });
        let (out, inp) = l.dims();
        rows.push(Row {
            what: format!("{name} {i}: {inp} -> {out}"),
            fwd,
            bwd,
        });
        input = acts.into_iter().next().unwrap_or_default();
    }
    (rows, input)
}

fn main() {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    ae_kernels::tune_glibc_malloc();
    if let Err(e) = ae_kernels::tuning::GemmTuning::from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("vanilla");
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let model_kind: ModelKind =
        serde_json::from_value(serde_json::json!(kind)).expect("model: vanilla, sparse or vae");
    let cfg = ModelConfig::default_for(model_kind, ImageShape::default());
    let n = if kind == "vae" { 128 } else { 256 };
    let varmap = VarMap::new();
    let dev = Device::Cpu;
    let model = build(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
    seeded_init(&varmap, &mut ae_data::rng::seeded(0)).unwrap();
    let mut adam = Adam::new(named_vars(&varmap), AdamConfig::default()).unwrap();
    let mut rng = ae_data::rng::seeded(1);
    let dim = model.input_layout().dim();
    let x: Vec<f32> = (0..n * dim)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let view = model.dense_view().expect("a dense model");
    let spec = fused_spec(&view)
        .unwrap()
        .expect("a model with a fused step");

    let mut rows = Vec::new();
    let mut loss_ms = None;
    match &spec {
        FusedSpec::Mlp(s) => {
            let layers: Vec<&Layer> = s.layers.iter().collect();
            chain::with_bound::<_, candle_core::Error>(&layers, |bound| {
                let (r, out) = profile_chain("layer", (bound, &layers), &x, n, false, reps);
                rows = r;
                let dims = [n, dim];
                loss_ms = Some(median_ms(reps, || {
                    let l = match s.loss {
                        ReconLoss::Bce => bce_with_logits_flat(&out, &x, &dims, s.recon),
                        ReconLoss::Mse => mse_flat(&out, &x, &dims, s.recon),
                    };
                    std::hint::black_box(l.unwrap());
                }));
                Ok(())
            })
            .unwrap();
        }
        FusedSpec::Vae(s) => {
            let mut all: Vec<&Layer> = s.encoder.iter().collect();
            all.push(&s.mu);
            all.push(&s.logvar);
            all.extend(s.decoder.iter());
            let (ne, nd) = (s.encoder.len(), s.decoder.len());
            chain::with_bound::<_, candle_core::Error>(&all, |bound| {
                let part = |r: std::ops::Range<usize>| (&bound[r.clone()], &all[r]);
                let (r, h) = profile_chain("encoder", part(0..ne), &x, n, false, reps);
                rows.extend(r);
                let (r, mu) = profile_chain("mu", part(ne..ne + 1), &h, n, true, reps);
                rows.extend(r);
                let (r, lv) = profile_chain("logvar", part(ne + 1..ne + 2), &h, n, true, reps);
                rows.extend(r);
                // The decoder from the posterior mean (the step's `z` has the same shape).
                let (r, out) =
                    profile_chain("decoder", part(ne + 2..ne + 2 + nd), &mu, n, true, reps);
                rows.extend(r);
                let eps = vec![0.5f32; mu.len()];
                let latent = [n, mu.len() / n];
                loss_ms = Some(median_ms(reps, || {
                    let (sd, _z) = reparameterise_flat(&mu, &lv, &eps).unwrap();
                    let l = vae_loss_flat_with(
                        s.loss,
                        &out,
                        &x,
                        &[n, dim],
                        (&mu, &lv, &sd),
                        &latent,
                        s.beta,
                    );
                    std::hint::black_box(l.unwrap());
                }));
                Ok(())
            })
            .unwrap();
        }
    }
    // The whole step first: it trains on the batch, as an epoch does. Then Adam alone, with
    // the last step's gradients (repeating one step's update pushes the weights far from
    // anything trained, so nothing is timed after it).
    let step_ms = median_ms(reps, || {
        let out = fused_train_step(model.as_ref(), &x, &x, n, &mut rng)
            .unwrap()
            .expect("the fused step");
        adam.step_slices(&out.grads).unwrap();
    });
    let grads = fused_train_step(model.as_ref(), &x, &x, n, &mut rng)
        .unwrap()
        .expect("the fused step")
        .grads;
    let adam_ms = median_ms(reps, || adam.step_slices(&grads).unwrap());

    let tune = ae_kernels::tuning::gemm_tuning();
    println!(
        "{kind}, batch {n}, rayon threads {}, GEMM thresholds {} / {} multiply-adds \
         (AE_GEMM_PAR_MIN_FLOPS / AE_GEMM_BLOCK_MIN_FLOPS), median of {reps} (ms)\n",
        rayon::current_num_threads(),
        tune.par_min_flops,
        tune.block_min_flops
    );
    println!("| part | forward | backward |\n|---|---:|---:|");
    let mut sum = 0.0;
    for r in &rows {
        println!("| {} | {:.3} | {:.3} |", r.what, r.fwd, r.bwd);
        sum += r.fwd + r.bwd;
    }
    if let Some(l) = loss_ms {
        println!("| the loss and its gradient (the VAE: with the sampling) | {l:.3} | |");
        sum += l;
    }
    println!("| Adam, every parameter | | {adam_ms:.3} |");
    sum += adam_ms;
    println!("| sum of the parts | {sum:.3} | |");
    println!("| the whole fused step + Adam | {step_ms:.3} | |");
}
