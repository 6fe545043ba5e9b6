//! The conv models' batched encoding, reconstruction, evaluation and anomaly scores go
//! through the conv chain (`ae_train::fused::conv`, image at a time): the same codes,
//! reconstructions, test metrics and scores as the model's own candle forward pass, with and
//! without a dense code, on batches that leave the last one short.
#![allow(clippy::unwrap_used)]

use ae_data::ImageSet;
use ae_kernels::test_utils::{rel_err, values};
use ae_models::{Autoencoder, ConvConfig, ImageShape, ModelConfig};
use ae_uses::anomaly::{ScoreKind, anomaly_scores};
use ae_uses::batches::{encode_set, reconstruct_set};
use candle_core::{Device, Tensor};

fn model(dense_code: Option<usize>) -> Box<dyn Autoencoder> {
    let cfg = ModelConfig::Conv(
        ConvConfig::for_input(ImageShape::new(1, 12, 12))
            .with_channels(vec![4, 3])
            .with_dense_code(dense_code),
    );
    let (model, _vars) =
        ae_models::init::seeded_model(&cfg, &Device::Cpu, &mut ae_data::rng::seeded(4)).unwrap();
    model
}

#[test]
fn conv_codes_reconstructions_and_metrics_match_the_models_forward_pass() {
    let n = 37;
    let pixels = values(n * 144, 9, 0.0, 1.0);
    let set = ImageSet::from_parts(pixels.clone(), None, 1, 12, 12).unwrap();
    let x = Tensor::from_vec(pixels, (n, 1, 12, 12), &Device::Cpu).unwrap();
    for code in [None, Some(5)] {
        let model = model(code);
        assert!(model.conv_view().is_some());
        let ours = encode_set(model.as_ref(), &set, 16, &Device::Cpu).unwrap();
        let want = model.encode(&x).unwrap().flatten_from(1).unwrap();
        let ours = Tensor::from_vec(ours, want.dims(), &Device::Cpu).unwrap();
        assert!(rel_err(&ours, &want).unwrap() < 1e-5, "codes, {code:?}");
        let ours = reconstruct_set(model.as_ref(), &set, 16, &Device::Cpu).unwrap();
        let want = model.reconstruct(&x).unwrap().flatten_from(1).unwrap();
        let ours = Tensor::from_vec(ours, want.dims(), &Device::Cpu).unwrap();
        assert!(
            rel_err(&ours, &want).unwrap() < 1e-5,
            "reconstructions, {code:?}"
        );
        // The evaluation's BCE and loss against the graph's logits.
        let m = ae_train::evaluate(model.as_ref(), &set, 16, &Device::Cpu, 0).unwrap();
        let logits = model.forward(&x, None).unwrap().logits;
        let sum = ae_kernels::bce_with_logits_sum(&logits, &x, 1.0).unwrap();
        let bce = f64::from(sum.to_scalar::<f32>().unwrap()) / (n * 144) as f64;
        assert!(
            (m.bce - bce).abs() <= 1e-5 * bce,
            "{code:?}: {} vs {bce}",
            m.bce
        );
        assert!(
            (m.loss - bce).abs() <= 1e-5 * bce,
            "{code:?}: loss {}",
            m.loss
        );
        // Per-image anomaly scores against the same measures of the graph's outputs.
        let rec = model.reconstruct(&x).unwrap().flatten_from(1).unwrap();
        let rec = rec.to_vec2::<f32>().unwrap();
        let logits = logits.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        let pix = x.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        for kind in [ScoreKind::Mse, ScoreKind::Bce] {
            let ours = anomaly_scores(model.as_ref(), &set, kind, 16, &Device::Cpu).unwrap();
            assert_eq!(ours.len(), n);
            for (i, score) in ours.iter().enumerate() {
                let want = (0..144)
                    .map(|j| {
                        let (t, l) = (f64::from(pix[i][j]), f64::from(logits[i][j]));
                        match kind {
                            ScoreKind::Mse => (f64::from(rec[i][j]) - t).powi(2),
                            _ => l.max(0.0) - l * t + (-l.abs()).exp().ln_1p(),
                        }
                    })
                    .sum::<f64>()
                    / 144.0;
                assert!(
                    (score - want).abs() <= 1e-4 * want.abs().max(1e-6),
                    "{code:?} {kind:?} image {i}: {score} vs {want}"
                );
            }
        }
    }
}
