//! The shared recipes on toy data (no training): the probe's features and
//! baselines, the detector ensemble, the detector config (images and tables), the PCA anomaly baseline.

#![allow(clippy::unwrap_used)]

use ae_data::{ImageSet, Split};
use ae_models::{ImageShape, ModelConfig, ModelKind};
use ae_uses::anomaly::{default_detector, default_detector_training};
use ae_uses::{
    DetectorConfig, Ensemble, Features, MemberScores, Pca, ProbeOptions, ScoreKind,
    TABLE_CODE_DIVISOR, ThresholdRule, UsesError, table_detector,
};

/// Two classes of 4x4 images: class 0 bright in the top half, class 1 in the
/// bottom half, with a deterministic jitter.
fn halves(n: usize, salt: usize) -> ImageSet {
    let (mut px, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = (i % 2) as u8;
        for p in 0..16usize {
            let jitter = (((i + salt) * 7919 + p * 104_729) % 100) as f32 / 400.0;
            let bright = (p < 8) == (c == 0);
            px.push(if bright { 0.6 + jitter } else { jitter });
        }
        labels.push(c);
    }
    ImageSet::from_parts(px, Some(labels), 1, 4, 4).unwrap()
}

fn toy_split() -> Split {
    Split {
        train: halves(60, 0),
        test: halves(40, 13),
    }
}

#[test]
fn probes_of_pixels_and_pca_codes_beat_chance_on_separable_classes() {
    let split = toy_split();
    let opts = ProbeOptions::default();
    let pixels = Features::pixels(&split);
    assert_eq!(pixels.dim, 16);
    let r = pixels.probe(&split, &opts).unwrap();
    assert!(r.test_accuracy > 0.95, "{r:?}");
    let pca = Pca::fit(&split.train.pixels(), 16, 2).unwrap();
    let codes = Features::pca(&pca, &split).unwrap();
    assert_eq!((codes.dim, codes.train.len()), (2, 120));
    let r = codes.probe(&split, &opts).unwrap();
    assert!(r.test_accuracy > 0.95, "{r:?}");
    // Without labels there is nothing to probe, and the message says whose data it was.
    let unlabelled = Split {
        train: ImageSet::from_parts(split.train.pixels().to_vec(), None, 1, 4, 4).unwrap(),
        test: split.test.clone(),
    };
    let err = ae_uses::split_labels(&unlabelled, "runs/x").unwrap_err();
    assert!(
        err.to_string().contains("the data set of runs/x has none"),
        "{err}"
    );
    // Options out of range are refused before any work.
    let bad = ProbeOptions {
        max_iter: 0,
        ..opts
    };
    assert!(bad.validate().is_err());
    assert!(pixels.probe(&split, &bad).is_err());
    let cfg = ae_uses::ProbeConfig {
        batch_size: 0,
        ..Default::default()
    };
    assert!(cfg.validate().is_err());
    assert!(ae_uses::ProbeConfig::default().validate().is_ok());
}

/// Scores of `n` normal images around `centre` with spread `scale`, then the planted ones.
fn member(centre: f64, scale: f64, n: usize, planted: &[f64]) -> MemberScores {
    let normal = |i: usize| centre + scale * (((i * 37) % 11) as f64 / 10.0 - 0.5);
    let train = (0..n).map(normal).collect();
    let mut scores: Vec<f64> = (0..n).map(|i| normal(i + 3)).collect();
    scores.extend(planted.iter().map(|v| centre + scale * v));
    MemberScores { train, scores }
}

#[test]
fn the_ensemble_flags_a_planted_outlier_whatever_each_members_scale() {
    let rule = ThresholdRule::Contamination { rate: 0.1 };
    let mut ens = Ensemble::new(1);
    // Detectors on scales 1000 apart: the raw mean would be the second's alone.
    ens.push(member(0.01, 0.002, 50, &[3.0]), rule, ScoreKind::Mse)
        .unwrap();
    ens.push(member(10.0, 2.0, 50, &[3.0]), rule, ScoreKind::Bce)
        .unwrap();
    assert_eq!(ens.members().len(), 2);
    let e = ens.finish().unwrap();
    assert_eq!(e.score, ScoreKind::Mse, "the first member's score kind");
    assert_eq!(e.scores.len(), 51);
    let outlier = e.scores[50];
    assert!(outlier > e.threshold, "{outlier} {}", e.threshold);
    assert!(e.scores[..50].iter().all(|&s| s < outlier));
    let flagged = e.scores[..50].iter().filter(|&&s| s > e.threshold).count();
    assert!(flagged <= 10, "{flagged} normal images flagged");
    // Empty, constant and mismatched ensembles are errors.
    assert!(Ensemble::new(1).finish().is_err());
    let constant = MemberScores {
        train: vec![1.0; 5],
        scores: vec![1.0],
    };
    assert!(
        Ensemble::new(1)
            .push(constant, rule, ScoreKind::Mse)
            .is_err()
    );
    ens.push(member(1.0, 1.0, 50, &[]), rule, ScoreKind::Mse)
        .unwrap();
    assert!(matches!(ens.finish(), Err(UsesError::Mismatch(_))));
}

#[test]
fn the_detector_config_is_the_default_detector_with_overrides() {
    let input = ImageShape::default();
    let data = ae_data::DataConfig::default();
    let cfg = DetectorConfig {
        seed: 7,
        ..Default::default()
    }
    .run_config(data.clone(), input)
    .unwrap();
    assert_eq!(cfg.model, default_detector(input));
    assert_eq!(cfg.train, default_detector_training(7));
    let cfg = DetectorConfig {
        latent_dim: Some(4),
        hidden: Some(vec![32]),
        epochs: Some(3),
        batch_size: Some(8),
        lr: Some(0.01),
        ..Default::default()
    }
    .run_config(data.clone(), input)
    .unwrap();
    let ModelConfig::Vanilla(d) = &cfg.model else {
        panic!("{:?}", cfg.model)
    };
    assert_eq!((d.latent_dim, d.hidden.clone()), (4, vec![32]));
    assert_eq!(
        (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr),
        (3, 8, 0.01)
    );
    let vae = DetectorConfig {
        model: Some(ModelKind::Vae),
        latent_dim: Some(5),
        ..Default::default()
    };
    assert_eq!(vae.model(input).unwrap().kind(), ModelKind::Vae);
    let conv = DetectorConfig {
        model: Some(ModelKind::Conv),
        ..Default::default()
    };
    let err = conv.validate().unwrap_err();
    assert!(err.to_string().contains("vanilla, sparse or vae"), "{err}");
    assert!(conv.run_config(data, input).is_err());
}

#[test]
fn pca_scores_put_a_planted_outlier_first() {
    let train = halves(60, 0);
    let mut test = halves(20, 5).pixels().to_vec();
    // A checkerboard: neither half bright.
    test.extend((0..16).map(|p| if (p + p / 4) % 2 == 0 { 1.0 } else { 0.0 }));
    let s = ae_uses::pca_scores(&train.pixels(), &test, 16, 2).unwrap();
    assert_eq!(s.len(), 21);
    assert!(s[..20].iter().all(|&v| v < s[20]), "{s:?}");
}

#[test]
fn a_table_detector_is_sized_by_the_tables_columns() {
    // breast cancer's 30 columns: 30-64-32-8; wine's 13: 13-32-16-4
    let t = table_detector(30);
    assert_eq!((t.hidden, t.latent_dim), (vec![64, 32], 8));
    assert_eq!(table_detector(13).hidden, vec![32, 16]);
    // a narrow table keeps a code of 2; a wide one grows with its columns
    assert_eq!(table_detector(3).latent_dim, 2);
    assert_eq!(table_detector(64).latent_dim, 64 / TABLE_CODE_DIVISOR);

    // 400 rows of 30 columns: that model, trained as the image detector
    let columns: Vec<String> = (0..30).map(|j| format!("c{j}")).collect();
    let values: Vec<f32> = (0..400 * 30).map(|i| (i % 7) as f32).collect();
    let table = ImageSet::from_table(values, None, columns).unwrap();
    let data = ae_data::DataConfig::default();
    let cfg = DetectorConfig {
        seed: 3,
        ..Default::default()
    }
    .run_config_for(data.clone(), &table)
    .unwrap();
    let ModelConfig::Vanilla(d) = &cfg.model else {
        panic!("{:?}", cfg.model)
    };
    assert_eq!((d.hidden.clone(), d.latent_dim), (vec![64, 32], 8));
    assert_eq!(cfg.train, default_detector_training(3));
    // flags still win; images keep their defaults
    let cfg = DetectorConfig {
        hidden: Some(vec![16]),
        epochs: Some(5),
        ..Default::default()
    }
    .run_config_for(data.clone(), &table)
    .unwrap();
    let ModelConfig::Vanilla(d) = &cfg.model else {
        panic!("{:?}", cfg.model)
    };
    assert_eq!(
        (d.hidden.clone(), d.latent_dim, cfg.train.epochs),
        (vec![16], 8, 5)
    );
    let images = halves(20, 0);
    let cfg = DetectorConfig::default()
        .run_config_for(data, &images)
        .unwrap();
    assert_eq!(cfg.model, default_detector(ImageShape::new(1, 4, 4)));
    assert_eq!(cfg.train, default_detector_training(0));
}
