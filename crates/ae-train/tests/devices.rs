//! Training on every backend (`ae_kernels::test_device!`): the CPU kernels, the CPU portable
//! path (candle's stock ops, what a GPU runs), and CUDA / Metal in builds with those features.
//! And the portable path trains the same model as the kernels.

#![allow(clippy::unwrap_used)]

use ae_data::DataConfig;
use ae_kernels::{Backend, test_device};
use ae_models::{
    ConvConfig, DenoisingConfig, DenseConfig, ImageShape, ModelConfig, ModelKind, Noise, VaeArch,
    VaeConfig,
};
use ae_train::checkpoint::named_vars;
use ae_train::{Adam, AdamConfig, ProgressMode, RunConfig, TrainOptions, train, train_step};
use candle_core::Device;

const INPUT: ImageShape = ImageShape::new(1, 12, 12);

/// Every kind of model, small, on 12x12 images.
fn models() -> Vec<ModelConfig> {
    let mut cfgs: Vec<ModelConfig> = ModelKind::ALL
        .iter()
        .map(|&k| ModelConfig::default_for(k, INPUT))
        .collect();
    for cfg in &mut cfgs {
        if let ModelConfig::Conv(c) = cfg {
            c.channels = vec![4, 8];
        }
    }
    cfgs.push(ModelConfig::Vae(VaeConfig::for_input(INPUT).with_arch(
        VaeArch::Conv {
            channels: vec![4, 8],
            kernel: 3,
        },
    )));
    cfgs.push(ModelConfig::Denoising(DenoisingConfig {
        base: Box::new(ModelConfig::Vanilla(DenseConfig::for_input(INPUT))),
        noise: Noise::Gaussian { std: 0.2 },
    }));
    cfgs
}

/// A fixed batch of `n` 12x12 images in [0, 1] with a black border.
fn batch(n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n * 144];
    for (i, px) in v.iter_mut().enumerate() {
        let (img, y, x) = (i / 144, (i % 144) / 12, i % 12);
        if (2..10).contains(&y) && (2..10).contains(&x) {
            *px = (((y * 7 + x * 3 + img * 5) % 11) as f32 / 10.0).min(1.0);
        }
    }
    v
}

/// Twenty Adam steps of every model on one batch: the loss is finite, falls, and the
/// parameters live on `device`.
fn every_model_trains(device: &Device) {
    let x = batch(8);
    for cfg in models() {
        let (model, varmap) =
            ae_models::init::seeded_model(&cfg, device, &mut ae_data::rng::seeded(0)).unwrap();
        assert!(
            varmap
                .all_vars()
                .iter()
                .all(|v| v.device().same_device(device))
        );
        let adam_cfg = AdamConfig {
            lr: 3e-3,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(named_vars(&varmap), adam_cfg).unwrap();
        let mut rng = ae_data::rng::seeded(1);
        let losses: Vec<f64> = (0..20)
            .map(|_| train_step(model.as_ref(), &mut adam, &x, &x, true, device, &mut rng).unwrap())
            .collect();
        assert!(losses.iter().all(|l| l.is_finite()), "{cfg:?}: {losses:?}");
        assert!(
            losses[19] < 0.95 * losses[0],
            "{:?} on {:?}: the loss did not fall: {losses:?}",
            cfg.kind(),
            device.location()
        );
        assert_eq!(adam.step_count(), 20);
    }
}

test_device!(
    every_model_trains,
    every_model_trains_cpu,
    every_model_trains_portable,
    every_model_trains_cuda,
    every_model_trains_metal
);

/// The same run (epochs, checkpoints, evaluation) on the kernels and on the portable path
/// ends at the same losses: the paths differ in the order of floating-point additions only
/// (the conv models' max-pool and ReLU gradients included).
#[test]
fn the_portable_path_trains_the_same_models_as_the_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = DataConfig {
        train_limit: Some(128),
        test_limit: Some(32),
        ..DataConfig::default()
    };
    let conv = ModelConfig::Conv(ConvConfig {
        channels: vec![4, 8],
        ..ConvConfig::default()
    });
    let conv_vae = ModelConfig::Vae(VaeConfig::default().with_arch(VaeArch::Conv {
        channels: vec![4, 8],
        kernel: 3,
    }));
    let dense = ModelConfig::default_for(ModelKind::Vanilla, ImageShape::default());
    for (i, model) in [conv, conv_vae, dense].into_iter().enumerate() {
        let mut cfg = RunConfig::for_kind(model.kind(), data.clone(), ImageShape::default());
        cfg.model = model;
        cfg.train.epochs = 2;
        cfg.train.batch_size = 32;
        let opts = TrainOptions {
            progress: ProgressMode::Off,
            ..TrainOptions::default()
        };
        let run = |b: Backend| {
            let dir = tmp.path().join(format!("{i}-{b:?}"));
            b.run(|_| train(&cfg, &dir, &opts).unwrap()).unwrap()
        };
        let kernels = run(Backend::CpuKernels);
        let portable = run(Backend::CpuPortable);
        for (a, b) in kernels.metrics.iter().zip(&portable.metrics) {
            for (x, y) in [(a.train_loss, b.train_loss), (a.val_loss, b.val_loss)] {
                assert!(
                    (x - y).abs() <= 1e-3 * y.abs(),
                    "{:?} epoch {}: kernels {x} vs portable {y}",
                    cfg.model.kind(),
                    a.epoch
                );
            }
        }
        assert!((kernels.test.loss - portable.test.loss).abs() <= 1e-3 * kernels.test.loss);
    }
}

/// On CUDA, steps replayed from a recorded CUDA graph train as steps launched op by op:
/// the same weights and loss sums, for a dense and a conv model and the VAE (its noise drawn
/// on the host into a buffer), one graph per batch size.
#[cfg(feature = "cuda")]
#[test]
fn cuda_graph_steps_train_as_eager_steps() {
    use ae_train::DeviceLoop;
    use candle_core::Tensor;

    let cuda = Device::new_cuda(0).expect("a build with the cuda feature tests on a CUDA device");
    let n = 40;
    let x = batch(n);
    // Four batches of 8 and one of 4 per epoch: two recorded sizes.
    let order: Vec<Vec<usize>> = (0..5)
        .map(|b| (b * 8..(b * 8 + 8).min(36)).map(|i| (i * 7) % n).collect())
        .collect();
    let cases = [
        (ModelConfig::default_for(ModelKind::Vanilla, INPUT), 2),
        (
            models()
                .into_iter()
                .find(|c| matches!(c, ModelConfig::Conv(_)))
                .unwrap(),
            2,
        ),
        (ModelConfig::default_for(ModelKind::Vae, INPUT), 2),
    ];
    for (cfg, recorded) in cases {
        let run = |graphs: bool| -> (Vec<Vec<f32>>, f64, usize) {
            let (model, varmap) =
                ae_models::init::seeded_model(&cfg, &cuda, &mut ae_data::rng::seeded(0)).unwrap();
            let mut adam = Adam::new(named_vars(&varmap), AdamConfig::default()).unwrap();
            let shape = model.input_layout().shape(n);
            let images = Tensor::from_slice(&x, shape.as_slice(), &cuda).unwrap();
            let mut dl = DeviceLoop::new(images, graphs).unwrap();
            let mut rng = ae_data::rng::seeded(1);
            let mut sum = 0.0;
            for _epoch in 0..3 {
                for idx in &order {
                    dl.step(model.as_ref(), &mut adam, idx, &mut rng).unwrap();
                }
                sum += dl.take_loss_sum().unwrap();
            }
            let weights = named_vars(&varmap)
                .iter()
                .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                .collect();
            (weights, sum, dl.graphs_recorded())
        };
        let (eager, eager_sum, none) = run(false);
        let (graph, graph_sum, used) = run(true);
        let kind = cfg.kind();
        assert_eq!(none, 0);
        assert_eq!(used, recorded, "{kind:?}: batch sizes recorded");
        assert!(
            (eager_sum - graph_sum).abs() <= 1e-5 * eager_sum.abs(),
            "{kind:?}: loss sums {eager_sum} vs {graph_sum}"
        );
        for (a, b) in eager.iter().zip(&graph) {
            for (p, q) in a.iter().zip(b) {
                assert!(
                    (p - q).abs() <= 1e-5 * p.abs().max(1e-2),
                    "{kind:?}: {p} vs {q}"
                );
            }
        }
    }
}
