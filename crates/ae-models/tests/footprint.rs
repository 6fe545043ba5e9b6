//! Model sizes from the config alone: the parameter count equals what `build`
//! creates, and absurd sizes are refused by `validate()` before any allocation.
#![allow(clippy::unwrap_used)]

use ae_models::init::param_count;
use ae_models::{
    ConvConfig, DenoisingConfig, DenseConfig, ImageShape, ModelConfig, ModelKind, VaeArch,
    VaeConfig, build,
};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

fn built_params(cfg: &ModelConfig) -> usize {
    let vm = VarMap::new();
    build(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    param_count(&vm)
}

#[test]
fn footprint_parameters_equal_the_built_model() {
    let rgb = ImageShape::new(3, 32, 24);
    let mut cfgs: Vec<ModelConfig> = Vec::new();
    for input in [ImageShape::default(), rgb] {
        for kind in ModelKind::ALL {
            cfgs.push(ModelConfig::default_for(kind, input));
        }
    }
    cfgs.push(ModelConfig::Vanilla(
        DenseConfig::default()
            .with_hidden(vec![])
            .with_latent_dim(7),
    ));
    cfgs.push(ModelConfig::Conv(
        ConvConfig::for_input(rgb)
            .with_channels(vec![4, 6, 5])
            .with_dense_code(Some(9)),
    ));
    cfgs.push(ModelConfig::Vae(VaeConfig::for_input(rgb).with_arch(
        VaeArch::Conv {
            channels: vec![3, 5],
            kernel: 3,
        },
    )));
    cfgs.push(ModelConfig::Denoising(
        DenoisingConfig::for_input(rgb).with_base(ModelConfig::Vae(VaeConfig::for_input(rgb))),
    ));
    for cfg in &cfgs {
        assert_eq!(
            cfg.footprint().parameters,
            built_params(cfg) as u128,
            "{cfg:?}"
        );
        assert!(cfg.footprint().activations > cfg.input().dim() as u128);
    }
}

#[test]
fn absurd_sizes_are_refused_with_the_estimate_and_the_limit() {
    let huge_hidden = ModelConfig::Vanilla(DenseConfig::default().with_hidden(vec![1_000_000_000]));
    let e = huge_hidden.validate().unwrap_err().to_string();
    assert!(e.contains("larger than any layer"), "{e}");

    // Each size allowed, the total too large: the estimate and the limit are stated.
    let big = ModelConfig::Vanilla(DenseConfig::default().with_hidden(vec![4_000_000]));
    let e = big.validate().unwrap_err().to_string();
    assert!(
        e.contains("GiB") && e.contains("limit") && e.contains("--max-model-bytes"),
        "{e}"
    );

    let latent = ModelConfig::Vae(VaeConfig::default().with_latent_dim(1_000_000_000_000));
    assert!(latent.validate().is_err());
    let channels = ModelConfig::Conv(ConvConfig::default().with_channels(vec![100_000_000]));
    assert!(channels.validate().is_err());
    let input = DenseConfig::default().with_input(ImageShape::new(1, 1 << 40, 1 << 40));
    let e = ModelConfig::Vanilla(input)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("values"), "{e}");

    // hidden [300000, 64] (the case of issue 14): ~470 M parameters, refused by default...
    let wide = ModelConfig::Vanilla(DenseConfig::default().with_hidden(vec![300_000, 64]));
    assert!(wide.validate().is_err());
    assert!(wide.footprint().parameters > 400_000_000);
    // ... and accepted when the limit is raised (a test of the override; nothing is built).
    ae_models::set_max_model_bytes(u64::MAX);
    assert!(wide.validate().is_ok());
    ae_models::set_max_model_bytes(ae_models::DEFAULT_MAX_MODEL_BYTES);
    assert!(wide.validate().is_err());
}
