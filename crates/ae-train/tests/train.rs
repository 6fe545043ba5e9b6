//! Integration tests of the training loop on a slice of the embedded MNIST:
//! resume, NaN guard, early stopping, schedules, config checks.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ae_data::DataConfig;
use ae_models::{DenoisingConfig, DenseConfig, ImageShape, ModelConfig, ModelKind, Noise};
use ae_train::checkpoint::{CONFIG_FILE, read_json, write_json};
use ae_train::{
    EarlyStopping, LrSchedule, ProgressMode, RunConfig, TrainError, TrainOptions, load_run, train,
};

fn small(kind: ModelKind) -> RunConfig {
    let data = DataConfig {
        train_limit: Some(256),
        test_limit: Some(64),
        ..DataConfig::default()
    };
    let mut cfg = RunConfig::for_kind(kind, data, ImageShape::default());
    cfg.train.epochs = 3;
    cfg.train.batch_size = 64;
    cfg
}

fn quiet() -> TrainOptions {
    TrainOptions {
        progress: ProgressMode::Off,
        ..TrainOptions::default()
    }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted_for_the_vae() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small(ModelKind::Vae);
    let full = tmp.path().join("full");
    let a = train(&cfg, &full, &quiet()).unwrap();
    let parts = tmp.path().join("parts");
    let first = TrainOptions {
        max_epochs_this_call: Some(2),
        ..quiet()
    };
    let b1 = train(&cfg, &parts, &first).unwrap();
    assert_eq!(b1.metrics.len(), 2);
    assert!(weights(&full) != weights(&parts));
    let b = train(
        &cfg,
        &parts,
        &TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(b.metrics.len(), 3);
    assert!(weights(&full) == weights(&parts), "resumed weights differ");
    assert_eq!(a.test, b.test);
    // Per-epoch losses match too (times differ, so compare the losses only).
    for (x, y) in a.metrics.iter().zip(&b.metrics) {
        assert_eq!((x.train_loss, x.val_loss), (y.train_loss, y.val_loss));
    }
}

#[test]
fn loss_goes_down_and_the_run_loads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let r = train(&small(ModelKind::Vanilla), &dir, &quiet()).unwrap();
    assert!(r.metrics[2].train_loss < r.metrics[0].train_loss);
    assert!(r.metrics[2].val_loss < r.metrics[0].val_loss);
    let run = load_run(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(run.metrics.epochs.len(), 3);
    assert_eq!(run.config, {
        let mut c = small(ModelKind::Vanilla);
        c.train.epochs = 3;
        c
    });
    // Only the newest checkpoint folder is kept.
    let ck: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(ck.len(), 2, "{ck:?}"); // LATEST + epoch-0003
}

#[test]
fn divergence_stops_with_an_error_and_keeps_the_last_good_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nan");
    let cfg = small(ModelKind::Vanilla);
    train(
        &cfg,
        &dir,
        &TrainOptions {
            max_epochs_this_call: Some(1),
            ..quiet()
        },
    )
    .unwrap();
    let good = weights(&dir);
    // Make the rest of the run diverge: an absurd learning rate.
    let mut saved: RunConfig = read_json(&dir.join(CONFIG_FILE)).unwrap();
    saved.train.lr = 1e30;
    write_json(&dir.join(CONFIG_FILE), &saved).unwrap();
    let err = train(
        &cfg,
        &dir,
        &TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { epoch: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("last complete epoch"), "{err}");
    assert!(weights(&dir) == good);
    let latest = std::fs::read_to_string(dir.join("checkpoints/LATEST")).unwrap();
    assert_eq!(latest.trim(), "epoch-0001");
    load_run(&dir, &candle_core::Device::Cpu).unwrap();
}

#[test]
fn early_stopping_ends_the_run_when_validation_stalls() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small(ModelKind::Vanilla);
    cfg.train.epochs = 20;
    // A learning rate this small makes no visible progress: min_delta can't be met.
    cfg.train.lr = 1e-9;
    cfg.train.early_stopping = Some(EarlyStopping {
        patience: 2,
        min_delta: 1e-3,
    });
    let r = train(&cfg, &tmp.path().join("es"), &quiet()).unwrap();
    assert!(r.stopped_early);
    assert_eq!(
        r.metrics.len(),
        3,
        "best at 1, then 2 epochs without improvement"
    );
}

#[test]
fn schedules_set_each_epochs_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small(ModelKind::Vanilla);
    cfg.train.epochs = 3;
    cfg.train.lr = 1e-3;
    cfg.train.schedule = LrSchedule::Step {
        every: 1,
        gamma: 0.5,
    };
    let r = train(&cfg, &tmp.path().join("s"), &quiet()).unwrap();
    let lrs: Vec<f64> = r.metrics.iter().map(|m| m.lr).collect();
    assert_eq!(lrs, vec![1e-3, 5e-4, 2.5e-4]);
    let cos = LrSchedule::Cosine { min_lr: 0.0 };
    assert_eq!(cos.lr(1.0, 0, 3), 1.0);
    assert!((cos.lr(1.0, 1, 3) - 0.5).abs() < 1e-12);
    assert!(cos.lr(1.0, 2, 3).abs() < 1e-12);
    assert_eq!(
        LrSchedule::Exponential { gamma: 0.1 }.lr(1.0, 2, 5),
        0.1f64.powi(2)
    );

    // A step-wise schedule: 256 images in batches of 64 are 4 steps per epoch; each
    // epoch records the rate of its first step, and config.json keeps the schedule.
    cfg.train.schedule = LrSchedule::one_cycle();
    let dir = tmp.path().join("onecycle");
    let r = train(&cfg, &dir, &quiet()).unwrap();
    let lrs: Vec<f64> = r.metrics.iter().map(|m| m.lr).collect();
    let want: Vec<f64> = [0, 4, 8]
        .iter()
        .map(|&step| LrSchedule::one_cycle().lr_at(1e-3, step, 4, 3))
        .collect();
    assert_eq!(lrs, want);
    assert!((lrs[0] - 1e-3 / 25.0).abs() < 1e-15, "{lrs:?}");
    assert!(lrs[1] > lrs[0] && lrs[2] < lrs[1], "{lrs:?}");
    let saved: RunConfig = read_json(&dir.join(CONFIG_FILE)).unwrap();
    assert_eq!(saved.train.schedule, LrSchedule::one_cycle());
}

#[test]
fn bad_configs_are_rejected_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    for (what, edit) in [
        (
            "epochs",
            Box::new(|c: &mut RunConfig| c.train.epochs = 0) as Box<dyn Fn(&mut RunConfig)>,
        ),
        (
            "batch",
            Box::new(|c: &mut RunConfig| c.train.batch_size = 0),
        ),
        (
            "learning rate",
            Box::new(|c: &mut RunConfig| c.train.lr = f64::NAN),
        ),
        ("beta1", Box::new(|c: &mut RunConfig| c.train.beta1 = 1.0)),
        (
            "step schedule",
            Box::new(|c: &mut RunConfig| {
                c.train.schedule = LrSchedule::Step {
                    every: 0,
                    gamma: 0.5,
                }
            }),
        ),
        (
            "format version",
            Box::new(|c: &mut RunConfig| c.format_version = 99),
        ),
    ] {
        let mut cfg = small(ModelKind::Vanilla);
        edit(&mut cfg);
        let err = train(&cfg, &tmp.path().join("bad"), &quiet())
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{what}: {err}");
        assert!(
            !tmp.path().join("bad").exists(),
            "nothing is written for a bad config"
        );
    }
}

#[test]
fn a_model_sized_for_other_images_is_a_clear_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = DataConfig {
        train_limit: Some(64),
        test_limit: Some(16),
        ..DataConfig::default()
    };
    let cfg = RunConfig::for_kind(
        ModelKind::Conv,
        data,
        ImageShape {
            channels: 1,
            height: 32,
            width: 32,
        },
    );
    let err = train(&cfg, &tmp.path().join("m"), &quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("1x28x28"), "{err}");
}

#[test]
fn training_into_an_existing_run_needs_resume_or_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let mut cfg = small(ModelKind::Vanilla);
    cfg.train.epochs = 1;
    train(&cfg, &dir, &quiet()).unwrap();
    let err = train(&cfg, &dir, &quiet()).unwrap_err();
    assert!(matches!(err, TrainError::RunExists(_)), "{err}");
    train(
        &cfg,
        &dir,
        &TrainOptions {
            overwrite: true,
            ..quiet()
        },
    )
    .unwrap();
}

#[test]
fn the_fused_cpu_step_trains_like_candles_graph() {
    // The dense models, the dense VAE and the conv model train through the fused step
    // (`ae_train::fused`); `fused: false` runs the same steps through candle's autograd. The
    // two differ only in the order of floating-point additions, so after three epochs the
    // losses agree closely (and a wrong gradient anywhere would make them drift apart).
    let tmp = tempfile::tempdir().unwrap();
    for kind in [
        ModelKind::Vanilla,
        ModelKind::Sparse,
        ModelKind::Denoising,
        ModelKind::Vae,
        ModelKind::Conv,
    ] {
        let mut cfg = small(kind);
        if kind == ModelKind::Denoising {
            // The default base is the conv model, tested as `Conv`: here the dense one.
            cfg.model = ModelConfig::Denoising(DenoisingConfig {
                base: Box::new(ModelConfig::Vanilla(DenseConfig::default())),
                noise: Noise::Gaussian { std: 0.3 },
            });
        }
        let fused = train(&cfg, &tmp.path().join(format!("{kind}-f")), &quiet()).unwrap();
        let graph_opts = TrainOptions {
            fused: false,
            ..quiet()
        };
        let graph = train(&cfg, &tmp.path().join(format!("{kind}-g")), &graph_opts).unwrap();
        for (a, b) in fused.metrics.iter().zip(&graph.metrics) {
            for (x, y) in [(a.train_loss, b.train_loss), (a.val_loss, b.val_loss)] {
                assert!(
                    (x - y).abs() <= 2e-3 * y.abs(),
                    "{kind} epoch {}: fused {x} vs graph {y}",
                    a.epoch
                );
            }
        }
        assert!(fused.metrics[2].train_loss < fused.metrics[0].train_loss);
    }
}

#[test]
fn a_train_step_rejects_partial_samples_and_mismatched_batches() {
    let cfg = ae_models::ModelConfig::default_for(ModelKind::Vanilla, ImageShape::default());
    let (model, varmap) = ae_models::init::seeded_model(
        &cfg,
        &candle_core::Device::Cpu,
        &mut ae_data::rng::seeded(0),
    )
    .unwrap();
    let mut adam = ae_train::Adam::new(
        ae_train::checkpoint::named_vars(&varmap),
        ae_train::AdamConfig::default(),
    )
    .unwrap();
    let dev = candle_core::Device::Cpu;
    let mut rng = ae_data::rng::seeded(1);
    let x = vec![0.5f32; 2 * 784];
    let step = |adam: &mut ae_train::Adam, input: &[f32], target: &[f32], rng: &mut _| {
        ae_train::train_step(model.as_ref(), adam, input, target, true, &dev, rng)
    };
    let loss = step(&mut adam, &x, &x, &mut rng).unwrap();
    assert!(loss.is_finite() && loss > 0.0);
    assert_eq!(adam.step_count(), 1);
    assert!(step(&mut adam, &x[..784 + 5], &x[..784 + 5], &mut rng).is_err());
    assert!(step(&mut adam, &x[..784], &x, &mut rng).is_err());
    assert!(step(&mut adam, &[], &[], &mut rng).is_err());
    assert_eq!(adam.step_count(), 1, "no update from a rejected batch");
}
