//! Training-side checks: finite gradients for every parameter, gradients against
//! finite differences, a few optimiser steps, the VAE's randomness, real MNIST.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod common;

use ae_models::{
    Activation, Autoencoder, ConvConfig, DenseConfig, ImageShape, ModelConfig, ModelKind,
    SparseConfig, Sparsity, Vae, VaeArch, VaeConfig,
};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

/// forward + loss + backward; every variable gets a finite gradient, and
/// (almost) all of them a non-zero one.
fn check_backward(cfg: &ModelConfig, x: &Tensor) {
    let (varmap, model) = common::build_seeded(cfg, DType::F32, 1);
    let mut rng = ae_data::seeded(2);
    let out = model.forward(x, Some(&mut rng)).unwrap();
    let loss = model.loss(&out, x).unwrap();
    let total = common::scalar(&loss.total);
    assert!(total.is_finite() && total > 0.0, "{cfg:?}: loss {total}");
    let grads = loss.total.backward().unwrap();
    let mut nonzero = 0;
    let vars = varmap.all_vars();
    for var in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{:?}: a variable without gradient", cfg.kind()));
        assert_eq!(g.dims(), var.dims());
        assert!(
            common::all_finite(g),
            "{:?}: non-finite gradient",
            cfg.kind()
        );
        if common::scalar(&g.abs().unwrap().sum_all().unwrap()) > 0.0 {
            nonzero += 1;
        }
    }
    assert_eq!(
        nonzero,
        vars.len(),
        "{:?}: some gradients are all zero",
        cfg.kind()
    );
}

#[test]
fn every_default_model_backpropagates_finite_gradients() {
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, ImageShape::default());
        let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
        let x = common::batch(model.as_ref(), 4, DType::F32, 3);
        check_backward(&cfg, &x);
    }
    let cfg = ModelConfig::Vae(VaeConfig::default().with_arch(VaeArch::conv_default()));
    let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
    check_backward(&cfg, &common::batch(model.as_ref(), 4, DType::F32, 3));
    let cfg = ModelConfig::Sparse(SparseConfig::default().with_penalty(Sparsity::kl_default()));
    let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
    check_backward(&cfg, &common::batch(model.as_ref(), 4, DType::F32, 3));
}

/// Autograd gradients of the loss against central finite differences, for
/// every parameter of a tiny f64 model (smooth activations, so no kinks).
fn check_finite_differences(cfg: &ModelConfig) {
    let (varmap, model) = common::build_seeded(cfg, DType::F64, 4);
    let x = common::batch(model.as_ref(), 3, DType::F64, 6);
    // the VAE draws eps from the rng: use a fresh copy of the same stream each time
    let loss_of = |model: &dyn Autoencoder| {
        let mut rng = ae_data::seeded(8);
        let out = model.forward(&x, Some(&mut rng)).unwrap();
        model.loss(&out, &x).unwrap().total
    };
    let grads = loss_of(model.as_ref()).backward().unwrap();
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let h = 1e-6;
    for (name, var) in vars {
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let shape = var.as_tensor().shape().clone();
        let eval = |i: usize, delta: f64| {
            let mut v = original.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, &shape, &Device::Cpu).unwrap())
                .unwrap();
            common::scalar(&loss_of(model.as_ref()))
        };
        for (i, grad) in g.iter().enumerate() {
            let numeric = (eval(i, h) - eval(i, -h)) / (2.0 * h);
            let tol = 1e-5 * (1.0 + numeric.abs());
            assert!(
                (grad - numeric).abs() <= tol,
                "{:?} {name}[{i}]: autograd {grad} vs finite difference {numeric}",
                cfg.kind(),
            );
        }
        var.set(&Tensor::from_vec(original, &shape, &Device::Cpu).unwrap())
            .unwrap();
    }
}

#[test]
fn gradients_match_finite_differences() {
    let input = ImageShape::new(2, 4, 4);
    let dense = DenseConfig::for_input(input)
        .with_hidden(vec![5])
        .with_latent_dim(3)
        .with_activation(Activation::Tanh)
        .with_code_activation(Activation::Sigmoid);
    check_finite_differences(&ModelConfig::Vanilla(dense.clone()));
    check_finite_differences(&ModelConfig::Sparse(
        SparseConfig::default()
            .with_dense(dense.clone())
            .with_penalty(Sparsity::Kl {
                rho: 0.2,
                beta: 0.5,
            }),
    ));
    check_finite_differences(&ModelConfig::Sparse(
        SparseConfig::default()
            .with_dense(dense)
            .with_penalty(Sparsity::L1 { lambda: 0.3 }),
    ));
    let conv = ConvConfig::for_input(input)
        .with_channels(vec![3, 2])
        .with_kernel(1)
        .with_activation(Activation::Tanh);
    check_finite_differences(&ModelConfig::Conv(conv));
    let conv3 = ConvConfig::for_input(ImageShape::new(1, 6, 6))
        .with_channels(vec![2])
        .with_kernel(3)
        .with_activation(Activation::Elu);
    check_finite_differences(&ModelConfig::Conv(conv3));
    let vae = VaeConfig::for_input(input)
        .with_arch(VaeArch::Dense { hidden: vec![4] })
        .with_latent_dim(2)
        .with_beta(0.7)
        .with_activation(Activation::Tanh);
    check_finite_differences(&ModelConfig::Vae(vae.clone()));
    let vae_conv = vae.with_arch(VaeArch::Conv {
        channels: vec![2],
        kernel: 1,
    });
    check_finite_differences(&ModelConfig::Vae(vae_conv));
}

#[test]
fn adam_steps_reduce_the_loss() {
    let cfg = ModelConfig::default_for(ModelKind::Vanilla, ImageShape::new(1, 12, 12));
    let (varmap, model) = common::build_seeded(&cfg, DType::F32, 1);
    let x = common::batch(model.as_ref(), 16, DType::F32, 2);
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let loss = |m: &dyn Autoencoder| {
        let out = m.forward(&x, None).unwrap();
        m.loss(&out, &x).unwrap().total
    };
    let first = common::scalar(&loss(model.as_ref()));
    for _ in 0..40 {
        opt.backward_step(&loss(model.as_ref())).unwrap();
    }
    let last = common::scalar(&loss(model.as_ref()));
    assert!(last < first - 0.05, "loss {first} -> {last}");
}

#[test]
fn vae_randomness_comes_from_our_rng() {
    let cfg = ModelConfig::default_for(ModelKind::Vae, ImageShape::new(1, 8, 8));
    let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
    let x = common::batch(model.as_ref(), 4, DType::F32, 2);
    let logits = |rng: Option<&mut ae_models::AeRng>| {
        let out = model.forward(&x, rng).unwrap();
        out.logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    // no rng: z = mu, deterministic, equal to decode(encode(x))
    let det = logits(None);
    assert_eq!(det, logits(None));
    let via_mu = model.decode(&model.encode(&x).unwrap()).unwrap();
    assert_eq!(det, via_mu.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let out = model.forward(&x, None).unwrap();
    let mu = out
        .mu
        .as_ref()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        out.code.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        mu
    );
    // with an rng: differs from z = mu, reproducible for the same seed
    let a = logits(Some(&mut ae_data::seeded(5)));
    let b = logits(Some(&mut ae_data::seeded(5)));
    let c = logits(Some(&mut ae_data::seeded(6)));
    assert_eq!(a, b);
    assert_ne!(a, det);
    assert_ne!(a, c);
    // the rng advances: two draws from one stream differ
    let mut rng = ae_data::seeded(5);
    assert_ne!(logits(Some(&mut rng)), logits(Some(&mut rng)));
    // the posterior
    let (mu, logvar) = model.encode_dist(&x).unwrap().unwrap();
    assert_eq!(mu.dims(), &[4, 20]);
    assert_eq!(logvar.dims(), &[4, 20]);
}

#[test]
fn vae_sample_prior() {
    for arch in [VaeArch::default(), VaeArch::conv_default()] {
        let cfg = VaeConfig::default().with_arch(arch).with_latent_dim(3);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let vae = Vae::new(&cfg, vb).unwrap();
        ae_models::init::seeded_init(&varmap, &mut ae_data::seeded(1)).unwrap();
        let expected = vae.input_layout().shape(5);
        let s = vae
            .sample(5, &mut ae_data::seeded(3), &Device::Cpu)
            .unwrap();
        assert_eq!(s.dims(), expected.as_slice());
        let again = vae
            .sample(5, &mut ae_data::seeded(3), &Device::Cpu)
            .unwrap();
        let diff = (&s - &again).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        // through the trait object
        let model: &dyn Autoencoder = &vae;
        let t = model
            .sample_prior(2, &mut ae_data::seeded(3), &Device::Cpu)
            .unwrap()
            .unwrap();
        assert_eq!(t.dims()[0], 2);
        let z = vae
            .draw_normal(1000, &mut ae_data::seeded(4), &Device::Cpu)
            .unwrap();
        let mean = common::scalar(&z.mean_all().unwrap());
        let var = common::scalar(&z.sqr().unwrap().mean_all().unwrap());
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "{mean} {var}");
        assert!(
            vae.sample(0, &mut ae_data::seeded(3), &Device::Cpu)
                .is_err()
        );
    }
    // other models do not sample
    let (_vm, model) = common::build_seeded(&ModelConfig::default(), DType::F32, 1);
    assert!(
        model
            .sample_prior(2, &mut ae_data::seeded(1), &Device::Cpu)
            .unwrap()
            .is_none()
    );
}

#[test]
fn loss_parts_per_model() {
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, ImageShape::new(1, 12, 12));
        let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
        let x = common::batch(model.as_ref(), 3, DType::F32, 2);
        let out = model.forward(&x, None).unwrap();
        let parts = model.loss(&out, &x).unwrap();
        let total = common::scalar(&parts.total);
        let recon = common::scalar(&parts.recon);
        let bce_mean =
            ae_losses::bce_with_logits(&out.logits, &x, ae_losses::Reduction::Mean).unwrap();
        match kind {
            ModelKind::Vanilla | ModelKind::Conv | ModelKind::Denoising => {
                assert_eq!(total, recon);
                assert_eq!(recon, common::scalar(&bce_mean));
                assert!(parts.kl.is_none() && parts.sparsity.is_none());
            }
            ModelKind::Sparse => {
                let s = common::scalar(parts.sparsity.as_ref().unwrap());
                let l1 =
                    ae_losses::l1_activity(&out.code, ae_losses::Reduction::SumPerSample).unwrap();
                assert!((s - 1e-4 * common::scalar(&l1)).abs() < 1e-9);
                assert!((total - (recon + s)).abs() < 1e-6);
            }
            ModelKind::Vae => {
                let kl = common::scalar(parts.kl.as_ref().unwrap());
                assert!((total - (recon + kl)).abs() < 1e-3);
                // per-image sum: 144 pixels times the per-pixel mean
                assert!((recon - 144.0 * common::scalar(&bce_mean)).abs() < 1e-3);
            }
        }
    }
}

#[test]
fn real_mnist_batch_forward_and_backward() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists()
        && !dir.join("train-images-idx3-ubyte").exists()
    {
        eprintln!("skipped: no MNIST in {}", dir.display());
        return;
    }
    let data = ae_data::DataConfig {
        train_limit: Some(32),
        test_limit: Some(32),
        ..ae_data::DataConfig::default()
    };
    let split = data.load().unwrap();
    let set = &split.train;
    assert_eq!(set.shape(), [1, 28, 28]);
    let indices: Vec<usize> = (0..32).collect();
    let input = ImageShape::new(set.channels(), set.height(), set.width());
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, input);
        let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
        let layout = model.input_layout().data_layout();
        let x = set.batch_tensor(&indices, layout, &Device::Cpu).unwrap();
        check_backward(&cfg, &x);
    }
}

/// What `dense_view` says of a model: the layers in order with their activations, which
/// are the model's own variables, and the loss (`None` for convolutional models).
#[test]
fn dense_views_describe_the_layers_and_the_loss() {
    use ae_models::{DenseView, ReconLoss};
    let shape = ImageShape::default();
    let relu = Some(Activation::Relu);
    let sparse = ModelConfig::default_for(ModelKind::Sparse, shape);
    let (varmap, model) = common::build_seeded(&sparse, DType::F32, 1);
    let Some(DenseView::Chain(c)) = model.dense_view() else {
        panic!("the sparse model is a chain")
    };
    let acts: Vec<_> = c.layers.iter().map(|l| l.activation).collect();
    assert_eq!(acts, [relu, relu, relu, relu, relu, None]);
    let widths: Vec<_> = c.layers.iter().map(|l| l.weight.dims().to_vec()).collect();
    assert_eq!(widths[2], [32, 64], "the code layer");
    let p = c.penalty.expect("the L1 penalty");
    assert_eq!((p.layer, p.sparsity), (2, Sparsity::default()));
    assert_eq!(p.reduction, ae_losses::Reduction::SumPerSample);
    assert_eq!(
        (c.recon, c.reduction),
        (ReconLoss::Bce, ae_losses::Reduction::Mean)
    );
    let ids: Vec<_> = varmap
        .all_vars()
        .iter()
        .map(|v| v.as_tensor().id())
        .collect();
    for l in &c.layers {
        assert!(ids.contains(&l.weight.id()) && ids.contains(&l.bias.unwrap().id()));
    }
    let tanh = DenseConfig {
        code_activation: Activation::Tanh,
        ..DenseConfig::default()
    };
    let (_, model) = common::build_seeded(&ModelConfig::Vanilla(tanh), DType::F32, 1);
    let Some(DenseView::Chain(c)) = model.dense_view() else {
        panic!("the vanilla model is a chain")
    };
    assert_eq!(c.layers[2].activation, Some(Activation::Tanh));
    assert!(c.penalty.is_none());
    let vae = ModelConfig::default_for(ModelKind::Vae, shape);
    let (_, model) = common::build_seeded(&vae, DType::F32, 1);
    let Some(DenseView::Vae(v)) = model.dense_view() else {
        panic!("the dense VAE describes itself")
    };
    assert_eq!(v.mu.weight.dims(), [20, 400]);
    assert_eq!((v.mu.activation, v.logvar.activation), (None, None));
    assert_eq!(
        v.encoder.iter().map(|l| l.activation).collect::<Vec<_>>(),
        [relu]
    );
    assert_eq!(
        v.decoder.iter().map(|l| l.activation).collect::<Vec<_>>(),
        [relu, None]
    );
    for kind in [ModelKind::Conv, ModelKind::Denoising] {
        let (_, model) =
            common::build_seeded(&ModelConfig::default_for(kind, shape), DType::F32, 1);
        assert!(model.dense_view().is_none(), "{kind:?}: convolutional");
    }
    let conv_vae = VaeConfig::default().with_arch(VaeArch::conv_default());
    let (_, model) = common::build_seeded(&ModelConfig::Vae(conv_vae), DType::F32, 1);
    assert!(model.dense_view().is_none());
}
