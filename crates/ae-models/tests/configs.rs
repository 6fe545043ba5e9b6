//! Configs: defaults, validation errors, serde round trips, kinds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod common;

use ae_models::{
    Activation, ConvConfig, DenoisingConfig, DenseConfig, ImageShape, ModelConfig, ModelError,
    ModelKind, Noise, SparseConfig, Sparsity, VaeArch, VaeConfig, build,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn mnist() -> ImageShape {
    ImageShape::default()
}

fn expect_invalid(cfg: &ModelConfig, needle: &str) {
    let err = cfg.validate().unwrap_err();
    match &err {
        ModelError::InvalidConfig(msg) => {
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}")
        }
        other => panic!("expected InvalidConfig, got {other}"),
    }
    // build validates first: an error, never a panic deep in candle
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    assert!(matches!(build(cfg, vb), Err(ModelError::InvalidConfig(_))));
    assert!(varmap.all_vars().is_empty(), "nothing is created");
}

#[test]
fn every_default_validates() {
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, mnist());
        cfg.validate().unwrap();
        assert_eq!(cfg.kind(), kind);
        assert_eq!(cfg.input(), mnist());
    }
    assert_eq!(
        ModelConfig::default(),
        ModelConfig::Vanilla(DenseConfig::default())
    );
    let d = DenseConfig::default();
    assert_eq!((d.hidden.clone(), d.latent_dim), (vec![128, 64], 32));
    assert_eq!(d.code_activation, Activation::Relu);
    let den = DenoisingConfig::default();
    assert_eq!(*den.base, ModelConfig::Conv(ConvConfig::default()));
    assert_eq!(den.noise, Noise::Gaussian { std: 0.4 });
    let v = VaeConfig::default();
    assert_eq!((v.latent_dim, v.beta), (20, 1.0));
    assert_eq!(v.arch, VaeArch::Dense { hidden: vec![400] });
    assert_eq!(
        SparseConfig::default().penalty,
        Sparsity::L1 { lambda: 1e-4 }
    );
}

#[test]
fn latent_dims_of_the_defaults() {
    let dims: Vec<usize> = ModelKind::ALL
        .iter()
        .map(|k| ModelConfig::default_for(*k, mnist()).latent_dim())
        .collect();
    assert_eq!(dims, vec![32, 32, 32 * 7 * 7, 32 * 7 * 7, 20]);
    // the conv latent dim sets the last channel count
    let conv = ModelConfig::default_for(ModelKind::Conv, mnist())
        .with_latent_dim(16 * 49)
        .unwrap();
    assert_eq!(conv.latent_dim(), 16 * 49);
    let err = ModelConfig::default_for(ModelKind::Conv, mnist())
        .with_latent_dim(50)
        .unwrap_err();
    assert!(err.to_string().contains("multiple of 49"), "{err}");
    let den = ModelConfig::Denoising(
        DenoisingConfig::default().with_base(ModelConfig::Vanilla(DenseConfig::default())),
    );
    assert_eq!(den.with_latent_dim(2).unwrap().latent_dim(), 2);
    assert!(ModelConfig::default().with_latent_dim(0).is_err());
}

#[test]
fn bad_dense_configs() {
    let d = DenseConfig::default();
    expect_invalid(
        &ModelConfig::Vanilla(d.clone().with_latent_dim(0)),
        "latent_dim",
    );
    expect_invalid(
        &ModelConfig::Vanilla(d.clone().with_hidden(vec![128, 0])),
        "zero size",
    );
    expect_invalid(
        &ModelConfig::Vanilla(d.clone().with_input(ImageShape::new(0, 28, 28))),
        "0x28x28",
    );
    // an empty hidden list is allowed for the dense model (a single-layer autoencoder)
    ModelConfig::Vanilla(d.with_hidden(vec![]))
        .validate()
        .unwrap();
}

#[test]
fn bad_sparse_configs() {
    let s = SparseConfig::default();
    for lambda in [-1.0, f64::NAN, f64::INFINITY] {
        let cfg = s.clone().with_penalty(Sparsity::L1 { lambda });
        expect_invalid(&ModelConfig::Sparse(cfg), "lambda");
    }
    for rho in [0.0, 1.0, f64::NAN] {
        let cfg = s.clone().with_penalty(Sparsity::Kl { rho, beta: 3.0 });
        expect_invalid(&ModelConfig::Sparse(cfg), "rho");
    }
    let cfg = s.clone().with_penalty(Sparsity::Kl {
        rho: 0.05,
        beta: -3.0,
    });
    expect_invalid(&ModelConfig::Sparse(cfg), "beta");
    // KL needs a sigmoid code; with_penalty sets it, a hand-made config may not
    let mut cfg = s.clone().with_penalty(Sparsity::kl_default());
    assert_eq!(cfg.dense.code_activation, Activation::Sigmoid);
    ModelConfig::Sparse(cfg.clone()).validate().unwrap();
    cfg.dense.code_activation = Activation::Relu;
    expect_invalid(&ModelConfig::Sparse(cfg), "sigmoid");
    let cfg = s.with_dense(DenseConfig::default().with_latent_dim(0));
    expect_invalid(&ModelConfig::Sparse(cfg), "latent_dim");
}

#[test]
fn bad_conv_configs() {
    let c = ConvConfig::default();
    expect_invalid(&ModelConfig::Conv(c.clone().with_kernel(4)), "odd");
    expect_invalid(&ModelConfig::Conv(c.clone().with_kernel(0)), "odd");
    expect_invalid(&ModelConfig::Conv(c.clone().with_channels(vec![])), "empty");
    expect_invalid(
        &ModelConfig::Conv(c.clone().with_channels(vec![32, 0])),
        "zero size",
    );
    expect_invalid(
        &ModelConfig::Conv(c.clone().with_input(ImageShape::new(0, 28, 28))),
        "zero size",
    );
    let cfg = c
        .clone()
        .with_input(ImageShape::new(1, 16, 16))
        .with_kernel(5);
    expect_invalid(
        &ModelConfig::Conv(cfg),
        "kernel 5x5 is larger than the 4x4 feature map after 2 poolings of a 16x16 image",
    );
    let cfg = c.clone().with_input(ImageShape::new(1, 30, 28));
    expect_invalid(
        &ModelConfig::Conv(cfg),
        "a 30x28 image cannot be max-pooled 2 times: height and width must be divisible by 2^2 = 4",
    );
    // a kernel larger than the image itself
    let cfg = c
        .with_input(ImageShape::new(3, 2, 2))
        .with_channels(vec![4]);
    expect_invalid(
        &ModelConfig::Conv(cfg),
        "kernel 3x3 is larger than the 1x1 feature map after 1 pooling of a 2x2 image",
    );
}

#[test]
fn bad_vae_configs() {
    let v = VaeConfig::default();
    for beta in [-0.5, f64::NAN, f64::INFINITY] {
        expect_invalid(&ModelConfig::Vae(v.clone().with_beta(beta)), "beta");
    }
    expect_invalid(
        &ModelConfig::Vae(v.clone().with_latent_dim(0)),
        "latent_dim",
    );
    let cfg = v.clone().with_arch(VaeArch::Dense { hidden: vec![] });
    expect_invalid(&ModelConfig::Vae(cfg), "must not be empty");
    let cfg = v.clone().with_arch(VaeArch::Conv {
        channels: vec![32, 64],
        kernel: 9,
    });
    expect_invalid(&ModelConfig::Vae(cfg), "kernel 9x9 is larger than the 7x7");
    let cfg = v
        .with_arch(VaeArch::conv_default())
        .with_input(ImageShape::new(1, 10, 10));
    expect_invalid(&ModelConfig::Vae(cfg), "divisible");
}

#[test]
fn bad_denoising_configs() {
    let d = DenoisingConfig::default();
    expect_invalid(
        &ModelConfig::Denoising(d.clone().with_noise(Noise::Gaussian { std: -1.0 })),
        "noise",
    );
    expect_invalid(
        &ModelConfig::Denoising(d.clone().with_noise(Noise::Mask { fraction: 2.0 })),
        "noise",
    );
    let nested = ModelConfig::Denoising(d.clone());
    expect_invalid(
        &ModelConfig::Denoising(d.clone().with_base(nested)),
        "itself",
    );
    let bad_base = ModelConfig::Conv(ConvConfig::default().with_kernel(2));
    expect_invalid(
        &ModelConfig::Denoising(d.clone().with_base(bad_base)),
        "odd",
    );
    // every other base is allowed
    for kind in [
        ModelKind::Vanilla,
        ModelKind::Sparse,
        ModelKind::Conv,
        ModelKind::Vae,
    ] {
        let cfg = d.clone().with_base(ModelConfig::default_for(kind, mnist()));
        ModelConfig::Denoising(cfg).validate().unwrap();
    }
}

#[test]
fn wrong_input_shapes_are_errors() {
    let cpu = Device::Cpu;
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, ImageShape::new(1, 12, 12));
        let (_vm, model) = common::build_seeded(&cfg, DType::F32, 1);
        let good = model.input_layout().shape(2);
        let mut wrong_channels = good.clone();
        wrong_channels[1] *= 3;
        let mut bad_shapes = vec![wrong_channels, vec![2, 7, 7], vec![64], good[1..].to_vec()];
        let mut empty = good.clone();
        empty[0] = 0;
        bad_shapes.push(empty);
        for shape in bad_shapes {
            let x = Tensor::zeros(shape.clone(), DType::F32, &cpu).unwrap();
            for err in [
                model.encode(&x).unwrap_err(),
                model.forward(&x, None).unwrap_err(),
                model.reconstruct(&x).unwrap_err(),
            ] {
                match err {
                    ModelError::InputShape { got, .. } => assert_eq!(got, shape),
                    other => panic!("{kind}: expected InputShape, got {other}"),
                }
            }
        }
        // a code of the wrong size
        let z = Tensor::zeros((2, model.latent_dim() + 1), DType::F32, &cpu).unwrap();
        assert!(matches!(
            model.decode(&z),
            Err(ModelError::InputShape { .. })
        ));
        // a target of the wrong shape
        let x = Tensor::zeros(good.clone(), DType::F32, &cpu).unwrap();
        let out = model.forward(&x, None).unwrap();
        let t = Tensor::zeros((3, 64), DType::F32, &cpu).unwrap();
        assert!(model.loss(&out, &t).is_err());
    }
}

#[test]
fn input_shape_error_message_names_the_shapes() {
    let (_vm, model) = common::build_seeded(&ModelConfig::default(), DType::F32, 1);
    let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
    let msg = model.encode(&x).unwrap_err().to_string();
    assert_eq!(
        msg,
        "input has shape [2, 1, 28, 28], expected [N >= 1, 784]"
    );
}

#[test]
fn serde_round_trips() {
    let mut configs: Vec<ModelConfig> = ModelKind::ALL
        .iter()
        .map(|k| ModelConfig::default_for(*k, mnist()))
        .collect();
    configs.push(ModelConfig::Vae(
        VaeConfig::default().with_arch(VaeArch::conv_default()),
    ));
    configs.push(ModelConfig::Sparse(
        SparseConfig::default().with_penalty(Sparsity::kl_default()),
    ));
    configs.push(ModelConfig::Denoising(
        DenoisingConfig::default()
            .with_base(ModelConfig::Vae(VaeConfig::default()))
            .with_noise(Noise::SaltPepper { prob: 0.1 }),
    ));
    for cfg in configs {
        let json = serde_json::to_string_pretty(&cfg).unwrap();
        let back: ModelConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg, "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["kind"], cfg.kind().to_string());
    }
}

#[test]
fn json_shape_and_partial_configs() {
    // through a string: the f32 noise std prints as 0.4
    let text =
        serde_json::to_string(&ModelConfig::default_for(ModelKind::Denoising, mnist())).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "kind": "denoising",
            "base": {
                "kind": "conv",
                "input": {"channels": 1, "height": 28, "width": 28},
                "channels": [32, 32],
                "kernel": 3,
                "activation": "relu"
            },
            "noise": {"type": "gaussian", "std": 0.4}
        })
    );
    // missing fields take their defaults
    let cfg: ModelConfig = serde_json::from_str(r#"{"kind": "conv", "kernel": 5}"#).unwrap();
    assert_eq!(cfg, ModelConfig::Conv(ConvConfig::default().with_kernel(5)));
    let cfg: ModelConfig = serde_json::from_str(
        r#"{"kind": "vae", "arch": {"type": "conv", "channels": [8], "kernel": 3}}"#,
    )
    .unwrap();
    assert_eq!(
        cfg,
        ModelConfig::Vae(VaeConfig::default().with_arch(VaeArch::Conv {
            channels: vec![8],
            kernel: 3
        }))
    );
    let cfg: ModelConfig = serde_json::from_str(
        r#"{"kind": "sparse", "penalty": {"type": "kl", "rho": 0.1, "beta": 2.0}}"#,
    )
    .unwrap();
    assert!(matches!(
        cfg,
        ModelConfig::Sparse(SparseConfig {
            penalty: Sparsity::Kl { .. },
            ..
        })
    ));
    // typos are rejected
    assert!(serde_json::from_str::<ModelConfig>(r#"{"kind": "conv", "kernal": 5}"#).is_err());
    assert!(serde_json::from_str::<ModelConfig>(r#"{"kind": "mlp"}"#).is_err());
}

#[test]
fn model_kind_names() {
    for kind in ModelKind::ALL {
        let s = kind.to_string();
        assert_eq!(s.parse::<ModelKind>().unwrap(), kind);
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{s}\""));
    }
    assert_eq!("Dense".parse::<ModelKind>().unwrap(), ModelKind::Vanilla);
    assert_eq!(" VAE ".parse::<ModelKind>().unwrap(), ModelKind::Vae);
    assert!(matches!(
        "gan".parse::<ModelKind>(),
        Err(ModelError::InvalidConfig(_))
    ));
    for act in [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Elu,
        Activation::LeakyRelu,
    ] {
        let json = serde_json::to_string(&act).unwrap();
        assert_eq!(serde_json::from_str::<Activation>(&json).unwrap(), act);
    }
    assert_eq!(
        serde_json::to_string(&Activation::LeakyRelu).unwrap(),
        "\"leaky-relu\""
    );
}

#[test]
fn with_input_follows_the_data() {
    let shape = ImageShape::new(3, 32, 32);
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, mnist()).with_input(shape);
        assert_eq!(cfg.input(), shape);
        assert_eq!(cfg, ModelConfig::default_for(kind, shape));
    }
}
