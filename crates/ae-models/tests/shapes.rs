//! Property tests: every model's encode/decode/forward/loss shapes, for random
//! batch sizes, image sizes, channel counts and architectures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod common;

use ae_models::{
    Activation, ConvConfig, DenoisingConfig, DenseConfig, ImageShape, InputLayout, ModelConfig,
    ModelError, ModelKind, Noise, SparseConfig, Sparsity, VaeArch, VaeConfig,
};
use candle_core::{DType, Device};
use proptest::prelude::*;

/// Runs every method of the model built from `cfg` on a batch of `n` and checks the shapes.
fn check_shapes(cfg: &ModelConfig, n: usize) {
    let (_vm, model) = common::build_seeded(cfg, DType::F32, 3);
    let input = cfg.input();
    let layout = model.input_layout();
    let x = common::batch(model.as_ref(), n, DType::F32, 5);
    let x_shape = x.dims().to_vec();
    match layout {
        InputLayout::Flat { dim } => {
            assert_eq!(dim, input.dim());
            assert_eq!(x_shape, vec![n, dim]);
        }
        InputLayout::Image {
            channels,
            height,
            width,
        } => {
            assert_eq!(
                (channels, height, width),
                (input.channels, input.height, input.width)
            );
            assert_eq!(x_shape, vec![n, channels, height, width]);
        }
    }
    assert_eq!(model.kind(), cfg.kind());
    assert_eq!(model.latent_dim(), cfg.latent_dim());
    assert_eq!(
        model.code_shape().iter().product::<usize>(),
        model.latent_dim()
    );
    let mut code_shape = vec![n];
    code_shape.extend(model.code_shape());

    let z = model.encode(&x).unwrap();
    assert_eq!(z.dims(), code_shape.as_slice());
    let logits = model.decode(&z).unwrap();
    assert_eq!(logits.dims(), x_shape.as_slice());
    // a flattened code decodes too
    let flat = z.reshape((n, model.latent_dim())).unwrap();
    assert_eq!(model.decode(&flat).unwrap().dims(), x_shape.as_slice());

    let mut rng = ae_data::seeded(11);
    for rng in [None, Some(&mut rng)] {
        let out = model.forward(&x, rng).unwrap();
        assert_eq!(out.logits.dims(), x_shape.as_slice());
        assert_eq!(out.code.dims(), code_shape.as_slice());
        let is_vae = matches!(cfg, ModelConfig::Vae(_))
            || matches!(cfg, ModelConfig::Denoising(d) if d.base.kind() == ModelKind::Vae);
        assert_eq!(out.mu.is_some(), is_vae);
        assert_eq!(out.logvar.is_some(), is_vae);
        if let (Some(mu), Some(lv)) = (&out.mu, &out.logvar) {
            assert_eq!(mu.dims(), &[n, model.latent_dim()]);
            assert_eq!(lv.dims(), &[n, model.latent_dim()]);
        }
        let loss = model.loss(&out, &x).unwrap();
        assert_eq!(loss.total.rank(), 0);
        assert_eq!(loss.recon.rank(), 0);
        assert!(common::scalar(&loss.total).is_finite());
        assert!(common::scalar(&loss.recon) >= 0.0);
        assert_eq!(loss.kl.is_some(), is_vae);
    }

    let rec = model.reconstruct(&x).unwrap();
    assert_eq!(rec.dims(), x_shape.as_slice());
    let values = rec.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    // The reconstruction (its output activation fused into the last layer where a model
    // can) is output(decode(encode(x))) to the bit.
    let apart = model.output(&model.decode(&z).unwrap()).unwrap();
    assert_eq!(
        values,
        apart.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );

    // A training pass split into the host's draw and the device's work is the same pass.
    let whole = model.forward(&x, Some(&mut ae_data::seeded(7))).unwrap();
    let eps = model
        .draw_noise(n, &mut ae_data::seeded(7), &Device::Cpu)
        .unwrap();
    assert_eq!(eps.is_some(), model.encode_dist(&x).unwrap().is_some());
    let split = model.forward_with_noise(&x, eps.as_ref()).unwrap();
    for (a, b) in [(&whole.logits, &split.logits), (&whole.code, &split.code)] {
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
    }

    match model
        .sample_prior(n, &mut ae_data::seeded(1), &Device::Cpu)
        .unwrap()
    {
        Some(s) => assert_eq!(s.dims(), x_shape.as_slice()),
        None => assert!(model.encode_dist(&x).unwrap().is_none()),
    }
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
        Just(Activation::Gelu),
        Just(Activation::Elu),
        Just(Activation::LeakyRelu),
    ]
}

fn dense_config() -> impl Strategy<Value = DenseConfig> {
    (
        1usize..=3,
        1usize..=10,
        1usize..=10,
        prop::collection::vec(1usize..=24, 0..=3),
        1usize..=8,
        activation(),
        activation(),
    )
        .prop_map(|(c, h, w, hidden, latent, act, code_act)| DenseConfig {
            input: ImageShape::new(c, h, w),
            hidden,
            latent_dim: latent,
            activation: act,
            code_activation: code_act,
            loss: None,
        })
}

/// Conv stacks on 4..=16 images (multiples of 4), depth 1 or 2, kernel 1, 3 or 5.
fn conv_parts() -> impl Strategy<Value = (ImageShape, Vec<usize>, usize)> {
    (
        1usize..=3,
        1usize..=4,
        1usize..=4,
        prop::collection::vec(1usize..=6, 1..=2),
        prop_oneof![Just(1usize), Just(3), Just(5)],
    )
        .prop_map(|(c, h4, w4, channels, kernel)| {
            (ImageShape::new(c, 4 * h4, 4 * w4), channels, kernel)
        })
}

/// Whether a conv stack is valid, computed independently of the crate.
fn conv_ok(input: &ImageShape, channels: &[usize], kernel: usize) -> bool {
    let f = 1 << channels.len();
    input.height.is_multiple_of(f)
        && input.width.is_multiple_of(f)
        && kernel <= input.height / f
        && kernel <= input.width / f
}

fn check_or_invalid(cfg: &ModelConfig, expected_ok: bool, n: usize) {
    match cfg.validate() {
        Ok(()) => {
            assert!(expected_ok, "{cfg:?} should be invalid");
            check_shapes(cfg, n);
        }
        Err(ModelError::InvalidConfig(msg)) => {
            assert!(!expected_ok, "{cfg:?} rejected: {msg}");
            assert!(msg.contains("kernel") || msg.contains("divisible"), "{msg}");
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn vanilla_shapes(cfg in dense_config(), n in 1usize..8) {
        check_shapes(&ModelConfig::Vanilla(cfg), n);
    }

    #[test]
    fn sparse_shapes(cfg in dense_config(), n in 1usize..8, kl in any::<bool>()) {
        let penalty = if kl { Sparsity::kl_default() } else { Sparsity::default() };
        let cfg = SparseConfig::default().with_dense(cfg).with_penalty(penalty);
        check_shapes(&ModelConfig::Sparse(cfg), n);
    }

    #[test]
    fn conv_shapes((input, channels, kernel) in conv_parts(), act in activation(), n in 1usize..5) {
        let ok = conv_ok(&input, &channels, kernel);
        let cfg = ConvConfig { input, channels, kernel, activation: act, dense_code: None };
        check_or_invalid(&ModelConfig::Conv(cfg), ok, n);
    }

    #[test]
    fn vae_dense_shapes(base in dense_config(), latent in 1usize..6, beta in 0.0f64..4.0, n in 1usize..8) {
        let hidden = if base.hidden.is_empty() { vec![7] } else { base.hidden };
        let cfg = VaeConfig::for_input(base.input)
            .with_arch(VaeArch::Dense { hidden })
            .with_latent_dim(latent)
            .with_beta(beta)
            .with_activation(base.activation);
        check_shapes(&ModelConfig::Vae(cfg), n);
    }

    #[test]
    fn vae_conv_shapes((input, channels, kernel) in conv_parts(), latent in 1usize..6, n in 1usize..5) {
        let ok = conv_ok(&input, &channels, kernel);
        let cfg = VaeConfig::for_input(input)
            .with_arch(VaeArch::Conv { channels, kernel })
            .with_latent_dim(latent);
        check_or_invalid(&ModelConfig::Vae(cfg), ok, n);
    }

    #[test]
    fn denoising_shapes(
        base in prop_oneof![
            dense_config().prop_map(ModelConfig::Vanilla),
            dense_config().prop_map(|d| ModelConfig::Sparse(SparseConfig::default().with_dense(d))),
            conv_parts().prop_filter("valid conv", |(i, c, k)| conv_ok(i, c, *k)).prop_map(
                |(input, channels, kernel)| ModelConfig::Conv(ConvConfig { input, channels, kernel, activation: Activation::Relu, dense_code: None })
            ),
            dense_config().prop_map(|d| ModelConfig::Vae(VaeConfig::for_input(d.input).with_latent_dim(d.latent_dim))),
        ],
        n in 1usize..5,
    ) {
        let cfg = DenoisingConfig::default().with_base(base).with_noise(Noise::Mask { fraction: 0.3 });
        check_shapes(&ModelConfig::Denoising(cfg.clone()), n);
        let (_vm, model) = common::build_seeded(&ModelConfig::Denoising(cfg), DType::F32, 3);
        prop_assert_eq!(model.noise(), Some(&Noise::Mask { fraction: 0.3 }));
        prop_assert_eq!(model.kind(), ModelKind::Denoising);
    }
}

#[test]
fn default_models_on_mnist_shapes() {
    for kind in ModelKind::ALL {
        check_shapes(&ModelConfig::default_for(kind, ImageShape::default()), 2);
    }
    check_shapes(
        &ModelConfig::Vae(VaeConfig::default().with_arch(VaeArch::conv_default())),
        2,
    );
}
