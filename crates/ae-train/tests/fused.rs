//! The fused CPU step (`ae_train::fused`) against candle's graph: for each model kind and
//! each reconstruction loss (BCE, MSE; images and a table-shaped input), the loss and every
//! gradient of `fused_train_step` against forward + `Autoencoder::loss` + candle's backward
//! on the same batch and the same draws of the RNG, and which models it computes; that
//! `train_step` trains an MSE model through it, to the weights candle's graph gives; for the
//! steps themselves (`mlp_step`, `vae_step`), the same on random shapes against the models
//! written with candle's ops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use ae_kernels::chain::Layer;
use ae_kernels::test_utils::{on_threads, rel_err, values};
use ae_losses::{ReconLoss, Reduction};
use ae_models::{
    Activation, Autoencoder, ConvConfig, DenoisingConfig, DenseConfig, ImageShape, ModelConfig,
    ModelKind, Noise, SparseConfig, Sparsity, VaeArch, VaeConfig, build, init,
};
use ae_train::fused::{
    L1Penalty, MlpSpec, StepOutput, VaeSpec, fused_train_step, mlp_step, vae_step,
};
use ae_train::{Adam, AdamConfig, train_step};
use candle_core::{DType, Device, Result as CResult, Tensor, Var, backprop::GradStore};
use candle_nn::{VarBuilder, VarMap};
use proptest::prelude::*;

fn build_seeded(cfg: &ModelConfig, dtype: DType) -> (VarMap, Box<dyn Autoencoder>) {
    let varmap = VarMap::new();
    let model = build(cfg, VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu)).unwrap();
    init::seeded_init(&varmap, &mut ae_data::seeded(1)).unwrap();
    (varmap, model)
}

fn scalar(t: &Tensor) -> f64 {
    f64::from(t.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1e-3)
}

/// `fused_train_step` on a batch of 6 against forward + loss + candle's backward on the
/// same batch and the same draws: every part of the loss and every variable's gradient.
/// Returns whether there was a fused step.
fn check_fused(cfg: &ModelConfig, dtype: DType) -> bool {
    let (varmap, model) = build_seeded(cfg, dtype);
    let shape = model.input_layout().shape(6);
    let xv = values(shape.iter().product(), 3, 0.0, 1.0);
    let x = Tensor::from_slice(&xv, shape.as_slice(), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let mut rng = ae_data::seeded(2);
    let Some(fused) = fused_train_step(model.as_ref(), &xv, &xv, 6, &mut rng).unwrap() else {
        // Nothing drawn: the graph path draws the VAE's noise from the same stream.
        use rand::Rng;
        assert_eq!(rng.random::<u64>(), ae_data::seeded(2).random::<u64>());
        return false;
    };
    let out = model.forward(&x, Some(&mut ae_data::seeded(2))).unwrap();
    let loss = model.loss(&out, &x).unwrap();
    let total = scalar(&loss.total);
    assert!(
        close(fused.total, total),
        "{cfg:?}: {} vs {total}",
        fused.total
    );
    assert!(close(fused.recon, scalar(&loss.recon)), "{cfg:?}: recon");
    let part = |t: &Option<Tensor>| t.as_ref().map(scalar);
    for (ours, theirs, what) in [
        (fused.kl, part(&loss.kl), "kl"),
        (fused.sparsity, part(&loss.sparsity), "sparsity"),
    ] {
        match (ours, theirs) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!(close(a, b), "{cfg:?}: {what} {a} vs {b}"),
            _ => panic!("{cfg:?}: {what} {ours:?} vs {theirs:?}"),
        }
    }
    let grads = loss.total.backward().unwrap();
    let vars = varmap.all_vars();
    assert_eq!(
        fused.grads.len(),
        vars.len(),
        "{cfg:?}: one gradient per variable"
    );
    for var in &vars {
        let (_, ours) = fused
            .grads
            .iter()
            .find(|(t, _)| t.id() == var.as_tensor().id())
            .unwrap_or_else(|| panic!("{cfg:?}: no fused gradient for {:?}", var.dims()));
        let ours = Tensor::from_slice(ours, var.dims(), &Device::Cpu).unwrap();
        let e = rel_err(&ours, grads.get(var.as_tensor()).unwrap()).unwrap();
        assert!(
            e < 1e-4,
            "{cfg:?}: gradient of {:?}: relative error {e}",
            var.dims()
        );
    }
    true
}

/// A table of `d` columns, as `ae train --data x.csv` shapes one.
fn table(d: usize) -> ImageShape {
    ImageShape::new(1, 1, d)
}

/// Vanilla, sparse (L1), dense denoising and the VAE (β = 1 and 0.25) for `input`, trained
/// with `loss`.
fn dense_kinds(input: ImageShape, loss: ReconLoss) -> Vec<ModelConfig> {
    let dense = DenseConfig::for_input(input).with_loss(loss);
    let vae = VaeConfig::for_input(input).with_loss(loss);
    vec![
        ModelConfig::Vanilla(dense.clone()),
        ModelConfig::Sparse(SparseConfig::for_input(input).with_dense(dense.clone())),
        ModelConfig::Denoising(DenoisingConfig {
            base: Box::new(ModelConfig::Vanilla(dense)),
            noise: Noise::Gaussian { std: 0.3 },
        }),
        ModelConfig::Vae(vae.clone()),
        ModelConfig::Vae(vae.with_beta(0.25)),
    ]
}

#[test]
fn each_dense_kind_has_the_fused_step_of_its_own_loss() {
    let shape = ImageShape::default();
    for kind in [ModelKind::Vanilla, ModelKind::Sparse, ModelKind::Vae] {
        let cfg = ModelConfig::default_for(kind, shape);
        assert!(check_fused(&cfg, DType::F32), "{cfg:?}");
    }
    for cfg in dense_kinds(shape, ReconLoss::Bce) {
        assert!(check_fused(&cfg, DType::F32), "{cfg:?}");
    }
}

#[test]
fn mse_models_have_the_fused_step_of_their_loss() {
    // MSE on images (`--loss mse`) and on a table of 30 columns (every `--data x.csv` run):
    // the linear output is the prediction; the VAE's Gaussian decoder is ½·SSE per sample.
    for input in [ImageShape::default(), table(30)] {
        for cfg in dense_kinds(input, ReconLoss::Mse) {
            assert!(check_fused(&cfg, DType::F32), "{cfg:?}");
        }
    }
}

/// The variables of `varmap`, sorted by name, as the trainer hands them to Adam.
#[test]
fn the_conv_models_have_the_fused_step() {
    // `ae_kernels::conv_chain` through the model's `conv_view`: the default conv model and
    // a denoising model over it on MNIST's shape, both with a dense code, and an RGB model
    // of three stages with a 5x5 kernel.
    let shape = ImageShape::default();
    assert!(check_fused(
        &ModelConfig::default_for(ModelKind::Conv, shape),
        DType::F32
    ));
    let denoising = ModelConfig::default_for(ModelKind::Denoising, shape);
    assert!(
        matches!(&denoising, ModelConfig::Denoising(d) if matches!(*d.base, ModelConfig::Conv(_)))
    );
    assert!(check_fused(&denoising, DType::F32));
    // With a dense code (the features run of `cargo xtask train-all`: a denoising model
    // over it, trained to undo shifts).
    let coded = ConvConfig::for_input(shape).with_dense_code(Some(16));
    assert!(check_fused(&ModelConfig::Conv(coded.clone()), DType::F32));
    let shifts = ModelConfig::Denoising(DenoisingConfig {
        base: Box::new(ModelConfig::Conv(coded)),
        noise: Noise::Shift { pixels: 2 },
    });
    assert!(check_fused(&shifts, DType::F32));
    let rgb = ConvConfig::for_input(ImageShape::new(3, 40, 48))
        .with_channels(vec![8, 6, 4])
        .with_kernel(5);
    assert!(check_fused(&ModelConfig::Conv(rgb), DType::F32));
}

#[test]
fn train_step_trains_the_conv_model_through_the_fused_step_like_the_graph() {
    // As for the MSE models below: `fused = true` takes the conv chain (its loss is summed in
    // f64, not an f32 value), `fused = false` candle's graph; same losses and weights.
    let cfg = ModelConfig::Conv(
        ConvConfig::for_input(ImageShape::new(1, 12, 12)).with_channels(vec![4, 3]),
    );
    trains_like_the_graph(&cfg, 4);
}

/// `steps` steps of `train_step` on `cfg` through the fused step and through candle's graph:
/// the fused path was taken (its loss, summed in `f64`, is not an `f32` value; the graph's
/// is), and both give the same losses and, within 1e-5, the same weights (Adam moves a weight
/// by at most ~lr = 1e-3 a step, so a wrong gradient shows).
fn trains_like_the_graph(cfg: &ModelConfig, steps: usize) {
    let is_f32 = |l: f64| f64::from(l as f32) == l;
    let (fl, fw) = train_steps(cfg, true, steps, 16);
    let (gl, gw) = train_steps(cfg, false, steps, 16);
    assert!(gl.iter().all(|&l| is_f32(l)), "{cfg:?}: {gl:?}");
    assert!(
        fl.iter().all(|&l| !is_f32(l)),
        "{cfg:?}: the fused step was not taken: {fl:?}"
    );
    for (a, b) in fl.iter().zip(&gl) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{cfg:?}: loss {a} vs {b}");
    }
    for ((name, a), (_, b)) in fw.iter().zip(&gw) {
        let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(d <= 1e-5, "{cfg:?}: {name} differs by {d}");
    }
}

fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap();
    let mut vars: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// `steps` steps of `train_step` on `cfg` from the seeded weights on batches of 16 rows,
/// through the fused step or candle's graph: the losses and the final weights by name.
fn train_steps(
    cfg: &ModelConfig,
    fused: bool,
    steps: usize,
    rows: usize,
) -> (Vec<f64>, Vec<(String, Vec<f32>)>) {
    let (varmap, model) = build_seeded(cfg, DType::F32);
    let mut adam = Adam::new(named_vars(&varmap), AdamConfig::default()).unwrap();
    let dim = model.input_layout().dim();
    let mut rng = ae_data::seeded(5);
    let losses = (0..steps as u64)
        .map(|i| {
            // standardised-table-like values, a fresh batch each step
            let x = values(rows * dim, 100 + i, -2.0, 2.0);
            let dev = Device::Cpu;
            train_step(model.as_ref(), &mut adam, &x, &x, fused, &dev, &mut rng).unwrap()
        })
        .collect();
    let weights = named_vars(&varmap)
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    (losses, weights)
}

#[test]
fn train_step_trains_mse_models_through_the_fused_step_like_the_graph() {
    // `train_step(.., fused = true, ..)` takes `fused_train_step` whenever it returns a step
    // (checked above for these models); `fused = false` forces candle's autograd (what
    // `ae train --no-fused-step` sets). Which path ran shows in the loss it returns: the
    // graph's is an `f32` scalar widened to `f64`, the fused step's is summed in `f64`
    // (`mse_flat`) and is not an `f32` value. The weights need not differ: on these small
    // shapes both paths can run the same GEMMs in the same order.
    for cfg in [
        ModelConfig::Vanilla(DenseConfig::for_input(table(30)).with_loss(ReconLoss::Mse)),
        ModelConfig::Vae(VaeConfig::for_input(table(30)).with_loss(ReconLoss::Mse)),
    ] {
        trains_like_the_graph(&cfg, 5);
    }
}

/// The fused steps of the MNIST-sized models give the same bits on any number of threads:
/// the dense GEMMs are cut into blocks whose sums gemm orders as the whole product's
/// (`ae_kernels`' `par_gemm::grid`), the conv chain sums its images' gradients over a tree
/// fixed by the batch size, and every other reduction adds in a fixed order. (At 16
/// threads, 16 x 32 blocks of the first layer once split its 784-long sums differently, and
/// the conv chain's tasks were cut by the thread count.) The conv VAE, trained through
/// candle's graph with the conv kernels as custom ops, too.
#[test]
fn the_fused_steps_give_the_same_bits_on_any_thread_count() {
    let shape = ImageShape::default();
    let conv_vae = ModelConfig::Vae(VaeConfig::default().with_arch(VaeArch::conv_default()));
    let models = [ModelKind::Vanilla, ModelKind::Vae, ModelKind::Conv]
        .map(|kind| (format!("{kind:?}"), ModelConfig::default_for(kind, shape)));
    for (kind, cfg) in models.into_iter().chain([("conv VAE".into(), conv_vae)]) {
        // 16 rows, and 2 and 3 (products small enough for gemm's matrix-vector and
        // dot-product paths, which `par_gemm` may not cut).
        for rows in [16, 2, 3] {
            let at = |t: usize| on_threads(t, || train_steps(&cfg, true, 3, rows)).unwrap();
            let one = at(1);
            for threads in [2, 5, 16] {
                let (losses, weights) = at(threads);
                let what = format!("{kind}, {rows} rows, {threads} threads");
                assert_eq!(losses, one.0, "{what}: losses");
                for ((name, a), (_, b)) in weights.iter().zip(&one.1) {
                    assert!(a == b, "{what}: {name} differs");
                }
            }
        }
    }
}

#[test]
fn the_others_take_candles_graph() {
    let shape = ImageShape::default();
    let none = |cfg: ModelConfig| assert!(!check_fused(&cfg, DType::F32), "{cfg:?}");
    // the conv VAE, the conv model with another activation
    none(ModelConfig::Conv(
        ConvConfig::for_input(shape).with_activation(Activation::Tanh),
    ));
    none(ModelConfig::Vae(
        VaeConfig::default().with_arch(VaeArch::conv_default()),
    ));
    // KL sparsity, other activations (with either loss)
    none(ModelConfig::Sparse(
        SparseConfig::default().with_penalty(Sparsity::kl_default()),
    ));
    none(ModelConfig::Vanilla(DenseConfig {
        activation: Activation::Tanh,
        ..DenseConfig::default()
    }));
    none(ModelConfig::Vanilla(DenseConfig {
        code_activation: Activation::Sigmoid,
        ..DenseConfig::default()
    }));
    none(ModelConfig::Vae(VaeConfig {
        activation: Activation::Gelu,
        ..VaeConfig::default()
    }));
    none(ModelConfig::Sparse(
        SparseConfig::default()
            .with_dense(DenseConfig::default().with_loss(ReconLoss::Mse))
            .with_penalty(Sparsity::kl_default()),
    ));
    none(ModelConfig::Vanilla(
        DenseConfig::default()
            .with_loss(ReconLoss::Mse)
            .with_input(table(30))
            .with_activation(Activation::Tanh),
    ));
    // other dtypes, and the portable path (what a GPU computes)
    let vanilla = ModelConfig::default_for(ModelKind::Vanilla, shape);
    assert!(!check_fused(&vanilla, DType::F64));
    ae_kernels::with_portable(true, || assert!(!check_fused(&vanilla, DType::F32)));
}

struct Net {
    vars: Vec<(Var, Var)>,
    relu: Vec<bool>,
}

impl Net {
    /// Layers `sizes[i] -> sizes[i+1]`, ReLU after all but the last when `relu_last` is false.
    fn new(sizes: &[usize], relu_last: bool, seed: u64) -> CResult<Self> {
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

    fn layers(&self) -> CResult<Vec<Layer>> {
        self.vars
            .iter()
            .zip(&self.relu)
            .map(|((w, b), &r)| Layer::new(w.as_tensor(), Some(b.as_tensor()), r))
            .collect()
    }

    /// Candle's forward pass; every layer's output.
    fn forward(&self, x: &Tensor) -> CResult<Vec<Tensor>> {
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
fn bce_sum(logits: &Tensor, y: &Tensor) -> CResult<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((logits.relu()? - (logits * y)?)? + softplus)?.sum_all()
}

/// Compares every gradient of `ours` with candle's `grads`.
fn check_grads(ours: &StepOutput, grads: &GradStore, vars: &[&Var], tol: f64) -> CResult<()> {
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

/// The reconstruction loss `loss` of the output `out`, summed, written with candle's ops:
/// the stable BCE from logits, or the squared error of the output itself.
fn recon_sum(loss: ReconLoss, out: &Tensor, y: &Tensor) -> CResult<Tensor> {
    match loss {
        ReconLoss::Bce => bce_sum(out, y),
        ReconLoss::Mse => (out - y)?.sqr()?.sum_all(),
    }
}

/// Targets for `loss`: in [0, 1] for BCE, any reals (a standardised table) for MSE.
fn targets(loss: ReconLoss, count: usize, seed: u64) -> Vec<f32> {
    match loss {
        ReconLoss::Bce => values(count, seed, 0.0, 1.0),
        ReconLoss::Mse => values(count, seed, -2.0, 2.0),
    }
}

fn check_mlp(
    sizes: &[usize],
    n: usize,
    (loss, recon): (ReconLoss, Reduction),
    l1: Option<(usize, f64)>,
) -> CResult<()> {
    let dev = Device::Cpu;
    let dim = sizes[0];
    let net = Net::new(sizes, false, 7)?;
    let xv = values(n * dim, 1, 0.0, 1.0);
    let yv = targets(loss, n * dim, 2);
    let spec = MlpSpec {
        layers: net.layers()?,
        loss,
        recon,
        l1: l1.map(|(layer, lambda)| L1Penalty {
            layer,
            lambda,
            reduction: Reduction::SumPerSample,
        }),
    };
    let ours = mlp_step(&spec, &xv, &yv, n).map_err(candle_core::Error::wrap)?;

    let x = Tensor::from_slice(&xv, (n, dim), &dev)?;
    let y = Tensor::from_slice(&yv, (n, dim), &dev)?;
    let outs = net.forward(&x)?;
    let logits = outs.last().unwrap_or(&x);
    // Written out here, not `Reduction::scale`: a changed reduction must fail.
    let scale = match recon {
        Reduction::Mean => 1.0 / (n * dim) as f64,
        Reduction::SumPerSample => 1.0 / n as f64,
        Reduction::Sum => 1.0,
    };
    let mut total = recon_sum(loss, logits, &y)?.affine(scale, 0.0)?;
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
    assert!(
        (ours.recon - recon_value).abs() <= 1e-5 * recon_value.abs().max(1.0),
        "{loss} {recon:?}: {} vs {recon_value}",
        ours.recon
    );
    assert!(
        (ours.total - tv).abs() <= 1e-5 * tv.abs().max(1.0),
        "{} vs {tv}",
        ours.total
    );
    let grads = total.backward()?;
    let vars: Vec<&Var> = net.vars.iter().flat_map(|(w, b)| [w, b]).collect();
    check_grads(&ours, &grads, &vars, 2e-4)
}

fn check_vae(
    (dim, hidden, latent): (usize, usize, usize),
    n: usize,
    loss: ReconLoss,
    beta: f64,
) -> CResult<()> {
    let dev = Device::Cpu;
    let enc = Net::new(&[dim, hidden], true, 11)?;
    let mu = Net::new(&[hidden, latent], false, 21)?;
    let lv = Net::new(&[hidden, latent], false, 31)?;
    let dec = Net::new(&[latent, hidden, dim], false, 41)?;
    let xv = values(n * dim, 3, 0.0, 1.0);
    let yv = targets(loss, n * dim, 4);
    let ev = values(n * latent, 5, -2.0, 2.0);
    let head = |net: &Net| -> CResult<Layer> {
        let (w, b) = &net.vars[0];
        Layer::new(w.as_tensor(), Some(b.as_tensor()), false)
    };
    let spec = VaeSpec {
        encoder: enc.layers()?,
        mu: head(&mu)?,
        logvar: head(&lv)?,
        decoder: dec.layers()?,
        loss,
        beta,
    };
    let ours = vae_step(&spec, &xv, &yv, &ev, n).map_err(candle_core::Error::wrap)?;

    let x = Tensor::from_slice(&xv, (n, dim), &dev)?;
    let y = Tensor::from_slice(&yv, (n, dim), &dev)?;
    let eps = Tensor::from_slice(&ev, (n, latent), &dev)?;
    let h = enc.forward(&x)?.remove(0);
    let m = mu.forward(&h)?.remove(0);
    let l = lv.forward(&h)?.remove(0);
    let z = (&m + (l.affine(0.5, 0.0)?.exp()? * &eps)?)?;
    let logits = dec.forward(&z)?.remove(1);
    // Bernoulli: the BCE summed per sample; Gaussian: half the SSE per sample.
    let half = match loss {
        ReconLoss::Bce => 1.0,
        ReconLoss::Mse => 0.5,
    };
    let recon = recon_sum(loss, &logits, &y)?.affine(half / n as f64, 0.0)?;
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
    assert!(
        close(ours.recon, rv),
        "{loss}: recon {} vs {rv}",
        ours.recon
    );
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

const LOSSES: [ReconLoss; 2] = [ReconLoss::Bce, ReconLoss::Mse];

#[test]
fn mlp_matches_candle_on_the_seed_model_shape() -> CResult<()> {
    for loss in LOSSES {
        let sizes = [784, 128, 64, 32, 64, 128, 784];
        check_mlp(&sizes, 20, (loss, Reduction::Mean), None)?;
    }
    Ok(())
}

#[test]
fn mlp_l1_penalty_and_per_sample_sum_match_candle() -> CResult<()> {
    // 30 features: a table's width.
    let sizes = [30, 12, 5, 12, 30];
    for loss in LOSSES {
        check_mlp(&sizes, 9, (loss, Reduction::SumPerSample), Some((1, 0.3)))?;
        check_mlp(&sizes, 9, (loss, Reduction::Mean), Some((1, 0.05)))?;
        check_mlp(&sizes, 9, (loss, Reduction::Sum), None)?;
    }
    Ok(())
}

#[test]
fn vae_matches_candle() -> CResult<()> {
    for loss in LOSSES {
        check_vae((60, 24, 5), 13, loss, 1.0)?;
        check_vae((60, 24, 5), 13, loss, 0.25)?;
        check_vae((30, 16, 4), 11, loss, 1.0)?;
    }
    Ok(())
}

#[test]
fn bad_inputs_are_errors_not_panics() -> CResult<()> {
    let net = Net::new(&[6, 3, 6], false, 1)?;
    let spec = MlpSpec {
        layers: net.layers()?,
        loss: ReconLoss::Bce,
        recon: Reduction::Mean,
        l1: None,
    };
    let (x, y) = (values(12, 1, 0.0, 1.0), values(12, 2, 0.0, 1.0));
    assert!(mlp_step(&spec, &x, &y, 2).is_ok());
    assert!(mlp_step(&spec, &x, &y, 3).is_err(), "wrong batch size");
    assert!(mlp_step(&spec, &x[..6], &y, 2).is_err(), "short input");
    let bad_l1 = MlpSpec {
        l1: Some(L1Penalty {
            layer: 5,
            lambda: 1.0,
            reduction: Reduction::SumPerSample,
        }),
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
        mse in any::<bool>(),
    ) {
        let recon = if sum { Reduction::SumPerSample } else { Reduction::Mean };
        let loss = if mse { ReconLoss::Mse } else { ReconLoss::Bce };
        check_mlp(&[dim, hidden, code, hidden, dim], n, (loss, recon), None).unwrap();
    }

    #[test]
    fn vae_gradients_match_candle_on_random_shapes(
        dim in 1usize..40,
        hidden in 1usize..20,
        latent in 1usize..6,
        n in 1usize..12,
        mse in any::<bool>(),
    ) {
        let loss = if mse { ReconLoss::Mse } else { ReconLoss::Bce };
        check_vae((dim, hidden, latent), n, loss, 1.0).unwrap();
    }
}
