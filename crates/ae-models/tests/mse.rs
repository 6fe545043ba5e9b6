//! Models with a linear output trained with MSE (`loss: "mse"`, for
//! standardised tables): shapes, the identity output, the loss against a hand
//! computation, the VAE's Gaussian decoder (½·SSE per sample), a description
//! (`dense_view`) that names the MSE loss,
//! and the JSON of old configs (no `loss`: BCE).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ae_models::{
    DenoisingConfig, DenseConfig, DenseView, ImageShape, ModelConfig, ModelKind, Noise, ReconLoss,
    SparseConfig, VaeConfig,
};
use candle_core::{DType, Device, Tensor};

fn table(d: usize) -> ImageShape {
    ImageShape::new(1, 1, d)
}

fn set(varmap: &candle_nn::VarMap, name: &str, values: &[f32], shape: &[usize]) {
    let data = varmap.data().lock().unwrap();
    let var = data.get(name).unwrap_or_else(|| panic!("no {name}"));
    var.set(&Tensor::from_slice(values, shape, &Device::Cpu).unwrap())
        .unwrap();
}

#[test]
fn dense_mse_has_a_linear_output_and_the_hand_computed_loss() {
    let cfg = ModelConfig::Vanilla(
        DenseConfig::for_input(table(2))
            .with_hidden(vec![])
            .with_latent_dim(1)
            .with_loss(ReconLoss::Mse),
    );
    let (varmap, model) = common::build_seeded(&cfg, DType::F32, 1);
    assert_eq!(model.recon_loss(), ReconLoss::Mse);
    set(&varmap, "encoder.0.weight", &[0.5, 0.25], &[1, 2]);
    set(&varmap, "encoder.0.bias", &[0.1], &[1]);
    set(&varmap, "decoder.0.weight", &[2.0, -1.0], &[2, 1]);
    set(&varmap, "decoder.0.bias", &[0.0, 1.0], &[2]);
    let x = Tensor::new(&[[1f32, 2.0], [3.0, -1.0]], &Device::Cpu).unwrap();
    let out = model.forward(&x, None).unwrap();
    // codes relu(0.5 + 0.5 + 0.1) = 1.1 and relu(1.5 - 0.25 + 0.1) = 1.35
    assert_eq!(out.code.dims(), &[2, 1]);
    assert_eq!(out.logits.dims(), &[2, 2]);
    let want = [[2.2f32, -0.1], [2.7, -0.35]];
    let rec = model.reconstruct(&x).unwrap().to_vec2::<f32>().unwrap();
    for (r, w) in rec.iter().flatten().zip(want.iter().flatten()) {
        // identity output: negative values and values above 1 stay as they are
        assert!((r - w).abs() < 1e-6, "{rec:?}");
    }
    // squared errors 1.44, 4.41, 0.09, 0.4225: mean 1.590625
    let loss = model.loss(&out, &x).unwrap();
    assert!((common::scalar(&loss.recon) - 1.590625).abs() < 1e-5);
    assert!((common::scalar(&loss.total) - 1.590625).abs() < 1e-5);
    // the same model with BCE: the sigmoid output
    let bce = ModelConfig::Vanilla(
        DenseConfig::for_input(table(2))
            .with_hidden(vec![])
            .with_latent_dim(1),
    );
    let (varmap, model) = common::build_seeded(&bce, DType::F32, 1);
    set(&varmap, "encoder.0.weight", &[0.5, 0.25], &[1, 2]);
    set(&varmap, "encoder.0.bias", &[0.1], &[1]);
    set(&varmap, "decoder.0.weight", &[2.0, -1.0], &[2, 1]);
    set(&varmap, "decoder.0.bias", &[0.0, 1.0], &[2]);
    let rec = model.reconstruct(&x).unwrap().to_vec2::<f32>().unwrap();
    assert!((rec[0][0] - 1.0 / (1.0 + (-2.2f32).exp())).abs() < 1e-6);
}

#[test]
fn sparse_and_denoising_follow_the_dense_loss() {
    let dense = DenseConfig::for_input(table(5))
        .with_hidden(vec![8])
        .with_latent_dim(3)
        .with_loss(ReconLoss::Mse);
    let sparse = ModelConfig::Sparse(SparseConfig::default().with_dense(dense.clone()));
    let denoising = ModelConfig::Denoising(
        DenoisingConfig::default()
            .with_base(ModelConfig::Vanilla(dense))
            .with_noise(Noise::Gaussian { std: 0.1 }),
    );
    let x = Tensor::new(
        &[[1.5f32, -2.0, 0.3, 0.0, 4.0], [-1.0, 0.5, 2.0, -3.0, 0.1]],
        &Device::Cpu,
    )
    .unwrap();
    for cfg in [sparse, denoising] {
        assert_eq!(cfg.recon_loss(), ReconLoss::Mse);
        let (varmap, model) = common::build_seeded(&cfg, DType::F32, 4);
        assert_eq!(model.recon_loss(), ReconLoss::Mse);
        let out = model.forward(&x, None).unwrap();
        let loss = model.loss(&out, &x).unwrap();
        let d = (&out.logits - &x).unwrap().sqr().unwrap();
        let mse = common::scalar(&d.mean_all().unwrap());
        assert!((common::scalar(&loss.recon) - mse).abs() < 1e-6, "{cfg:?}");
        let penalty = loss.sparsity.as_ref().map_or(0.0, common::scalar);
        assert!((common::scalar(&loss.total) - mse - penalty).abs() < 1e-5);
        let grads = loss.total.backward().unwrap();
        for v in varmap.all_vars() {
            let g = grads
                .get(v.as_tensor())
                .expect("every parameter has a gradient");
            assert!(common::all_finite(g), "{cfg:?}");
        }
        // the description names the loss (ae-train's fused step reads it to pick BCE or MSE)
        match model.dense_view() {
            Some(DenseView::Chain(c)) => assert_eq!(c.recon, ReconLoss::Mse, "{cfg:?}"),
            other => panic!("{cfg:?}: a chain, not {other:?}"),
        }
    }
}

#[test]
fn vae_with_mse_is_a_gaussian_decoder_of_half_the_sse() {
    let cfg = ModelConfig::Vae(
        VaeConfig::for_input(table(4))
            .with_latent_dim(2)
            .with_beta(0.5)
            .with_loss(ReconLoss::Mse),
    );
    let (_, model) = common::build_seeded(&cfg, DType::F32, 3);
    let x = Tensor::new(
        &[
            [1.0f32, -2.0, 0.5, 3.0],
            [0.0, 1.0, -1.0, 2.0],
            [2.0, 2.0, 2.0, -2.0],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let out = model.forward(&x, None).unwrap();
    assert_eq!(out.logits.dims(), &[3, 4]);
    let loss = model.loss(&out, &x).unwrap();
    let rec: Vec<Vec<f32>> = out.logits.to_vec2().unwrap();
    let xs: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let half_sse: f64 = rec
        .iter()
        .flatten()
        .zip(xs.iter().flatten())
        .map(|(r, t)| 0.5 * f64::from(r - t).powi(2))
        .sum::<f64>()
        / 3.0;
    assert!((common::scalar(&loss.recon) - half_sse).abs() < 1e-4 * half_sse.max(1.0));
    let kl = common::scalar(loss.kl.as_ref().unwrap());
    assert!((common::scalar(&loss.total) - half_sse - 0.5 * kl).abs() < 1e-4);
    // reconstruct is the decoder's output itself (z = mu)
    let r = model.reconstruct(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(r, rec);
    let Some(DenseView::Vae(v)) = model.dense_view() else {
        panic!("the dense VAE describes itself")
    };
    assert_eq!((v.recon, v.beta), (ReconLoss::Mse, 0.5));
}

#[test]
fn json_of_the_loss_and_of_old_configs() {
    // a config written before the field: BCE, and written back without it
    let old = r#"{"kind": "vanilla", "input": {"channels": 1, "height": 1, "width": 3},
                  "hidden": [4], "latent_dim": 2}"#;
    let cfg: ModelConfig = serde_json::from_str(old).unwrap();
    assert_eq!(cfg.loss(), None);
    assert_eq!(cfg.recon_loss(), ReconLoss::Bce);
    assert!(serde_json::to_value(&cfg).unwrap().get("loss").is_none());
    let old_vae: ModelConfig = serde_json::from_str(r#"{"kind": "vae"}"#).unwrap();
    assert_eq!(old_vae.recon_loss(), ReconLoss::Bce);
    // mse round-trips, in the base of a denoising model too
    for kind in [ModelKind::Vanilla, ModelKind::Sparse, ModelKind::Vae] {
        let mut cfg = ModelConfig::default_for(kind, table(3));
        cfg.set_loss(ReconLoss::Mse).unwrap();
        cfg.validate().unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""loss":"mse""#), "{json}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    }
    let mut den = ModelConfig::Denoising(
        DenoisingConfig::default()
            .with_base(ModelConfig::default_for(ModelKind::Vanilla, table(3))),
    );
    den.set_loss(ReconLoss::Mse).unwrap();
    assert_eq!(den.loss(), Some(ReconLoss::Mse));
    // the conv model has the sigmoid output only
    let mut conv = ModelConfig::default_for(ModelKind::Conv, ImageShape::default());
    let e = conv.set_loss(ReconLoss::Mse).unwrap_err().to_string();
    assert!(e.contains("conv") && e.contains("bce"), "{e}");
    conv.set_loss(ReconLoss::Bce).unwrap();
    // an unknown loss is an error
    assert!(serde_json::from_str::<ModelConfig>(r#"{"kind": "vanilla", "loss": "l1"}"#).is_err());
    assert!(serde_json::from_str::<ModelConfig>(r#"{"kind": "conv", "loss": "mse"}"#).is_err());
}
