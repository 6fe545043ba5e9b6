//! The training loop: seeded, checkpointed every epoch, resumable, guarded against NaN.

use std::path::Path;
use std::time::Instant;

use ae_data::noise::Noise;
use ae_data::rng::{AeRng, RngState, stream};
use ae_data::{Batcher, Split};
use ae_models::{Autoencoder, build, init::seeded_init};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::adam::{Adam, AdamConfig};
use crate::checkpoint::{
    self, CONFIG_FILE, CheckpointData, MODEL_FILE, OPTIMIZER_FILE, RngStates, STATE_FILE,
    TrainState,
};
use crate::config::{FORMAT_VERSION, RunConfig};
use crate::device_loop::DeviceLoop;
use crate::eval::{EvalMetrics, check_fits, evaluate};
use crate::fused::fused_train_step;
use crate::lock::RunLock;
use crate::metrics::{EpochMetrics, Metrics};
use crate::progress::{Progress, ProgressMode};
use crate::{Result, TrainError};

/// How to run [`train`] (what is not part of the run's config).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Continue the run in the output folder from its last complete epoch.
    pub resume: bool,
    /// Replace a run already in the output folder.
    pub overwrite: bool,
    /// Where the tensors live.
    pub device: Device,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Stop after this many epochs in this call (the run can be resumed later).
    pub max_epochs_this_call: Option<usize>,
    /// Train with the fused CPU step ([`crate::fused`]: the dense models and the
    /// dense VAE on the CPU) where it computes the model. `false` runs every step
    /// through candle's graph.
    pub fused: bool,
    /// On CUDA, record a training step into a CUDA graph once and replay it
    /// (`crate::device_loop`); `false` launches every op of every step.
    pub cuda_graph: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            resume: false,
            overwrite: false,
            device: Device::Cpu,
            progress: ProgressMode::Auto,
            max_epochs_this_call: None,
            fused: true,
            cuda_graph: true,
        }
    }
}

/// What [`train`] did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Every completed epoch of the run (including ones before a resume).
    pub metrics: Vec<EpochMetrics>,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
    /// Test-set metrics of the final weights.
    pub test: EvalMetrics,
}

/// One training step on a batch, as [`train_on`] takes it: the fused CPU step
/// ([`fused_train_step`]) where it computes the model and `fused` is set, else forward,
/// loss and backward through candle's graph; then one Adam update.
///
/// `input` and `target` are whole samples in the model's input layout, row-major (for
/// denoising, the corrupted and the clean batch; otherwise the same slice twice). The VAE
/// draws its noise from `rng`. Returns the loss; when it is not finite, the parameters are
/// left as they were.
pub fn train_step(
    model: &dyn Autoencoder,
    adam: &mut Adam,
    input: &[f32],
    target: &[f32],
    fused: bool,
    device: &Device,
    rng: &mut AeRng,
) -> Result<f64> {
    let layout = model.input_layout();
    let n = target.len() / layout.dim().max(1);
    if n == 0 || input.len() != target.len() || target.len() != n * layout.dim() {
        return Err(TrainError::Mismatch(format!(
            "a training batch needs whole samples of {} values as input and target, got {} and {}",
            layout.dim(),
            input.len(),
            target.len()
        )));
    }
    if fused && let Some(step) = fused_train_step(model, input, target, n, rng)? {
        if step.total.is_finite() {
            adam.step_slices(&step.grads)?;
        }
        return Ok(step.total);
    }
    let shape = layout.shape(n);
    let target_t = Tensor::from_slice(target, shape.as_slice(), device)?;
    let input_t = match std::ptr::eq(input, target) {
        true => target_t.clone(),
        false => Tensor::from_slice(input, shape.as_slice(), device)?,
    };
    let out = model.forward(&input_t, Some(rng))?;
    let parts = model.loss(&out, &target_t)?;
    let value = f64::from(parts.total.to_scalar::<f32>()?);
    if value.is_finite() {
        adam.step(&parts.total.backward()?)?;
    }
    Ok(value)
}

/// One training step on a batch already on the model's device (a GPU, or the CPU's portable
/// path, `ae_kernels::portable`): forward, loss and backward through candle's graph, then one
/// Adam update, with nothing read back to the host. [`train_on`] runs the same work through
/// [`DeviceLoop::step`](crate::DeviceLoop::step), which gathers the batch from the set on the
/// device and keeps the step's buffers fixed (so that CUDA can replay it).
///
/// `input` and `target` are `[N, ...]` in the model's input layout (the same tensor twice
/// unless denoising). Returns the loss as a detached scalar tensor on the device. Unlike
/// [`train_step`], the update is applied whatever the loss (checking it would mean a
/// device-to-host copy and a synchronisation per step): [`train_on`] checks the sum of an
/// epoch's losses once, at its end.
pub fn train_step_on_device(
    model: &dyn Autoencoder,
    adam: &mut Adam,
    input: &Tensor,
    target: &Tensor,
    rng: &mut AeRng,
) -> Result<Tensor> {
    let out = model.forward(input, Some(rng))?;
    let parts = model.loss(&out, target)?;
    adam.step(&parts.total.backward()?)?;
    Ok(parts.total.detach())
}

/// Fails with [`TrainError::NonFinite`] (and marks the epoch diverged) unless `loss` is finite.
fn check_finite(loss: f64, epoch: usize, batch: usize, progress: &mut Progress) -> Result<()> {
    if loss.is_finite() {
        return Ok(());
    }
    progress.end_epoch("diverged");
    Err(TrainError::NonFinite {
        epoch: epoch + 1,
        batch,
        loss,
    })
}

/// Trains `cfg` into the run folder `out` (see [`crate::checkpoint`] for its layout).
///
/// With `opts.resume`, the run's own `config.json` is used, with the epoch
/// count of `cfg.train.epochs`, and training continues from the newest complete
/// checkpoint, reaching the same weights as an uninterrupted run (with a
/// changed epoch count, a cosine schedule follows the new count).
pub fn train(cfg: &RunConfig, out: &Path, opts: &TrainOptions) -> Result<TrainReport> {
    let data = if opts.resume && out.join(CONFIG_FILE).is_file() {
        checkpoint::read_json::<RunConfig>(&out.join(CONFIG_FILE))?.data
    } else {
        cfg.data.clone()
    };
    train_on(cfg, data.load()?, out, opts)
}

/// [`train`] on data already loaded (it must be what `cfg.data` describes:
/// `config.json` records `cfg.data` so that the run can be evaluated later).
pub fn train_on(
    cfg: &RunConfig,
    split: Split,
    out: &Path,
    opts: &TrainOptions,
) -> Result<TrainReport> {
    let mut cfg = cfg.clone();
    if opts.max_epochs_this_call == Some(0) {
        return Err(TrainError::InvalidConfig(
            "--max-epochs-this-call must be at least 1 (0 would leave a run with no epoch)".into(),
        ));
    }
    // A table's loss follows its scaling (MSE on standardised values), recorded in config.json.
    cfg.resolve_loss()?;
    // A bad config is refused before anything is written (the lock creates the folder);
    // on --resume the saved config is checked again below.
    cfg.validate()?;
    // One writer per run folder, from before the first read to the last write.
    let _lock = RunLock::acquire(out)?;
    let resume_from = if opts.resume {
        checkpoint::latest_checkpoint(out)?
    } else {
        None
    };
    let mut epochs_changed = false;
    if opts.resume {
        let path = out.join(CONFIG_FILE);
        if path.is_file() {
            let saved: RunConfig = checkpoint::read_json(&path)?;
            let epochs = cfg.train.epochs;
            epochs_changed = saved.train.epochs != epochs;
            cfg = saved;
            cfg.train.epochs = epochs;
            cfg.resolve_loss()?;
        }
    } else if out.join(CONFIG_FILE).exists() && !opts.overwrite {
        return Err(TrainError::RunExists(out.into()));
    }
    cfg.validate()?;
    let device = &opts.device;

    let Split {
        train: train_set,
        test: test_set,
    } = split;
    let varmap = VarMap::new();
    let model = build(
        &cfg.model,
        VarBuilder::from_varmap(&varmap, DType::F32, device),
    )?;
    check_fits(model.as_ref(), &train_set, "the training set")?;
    check_fits(model.as_ref(), &test_set, "the test set")?;

    let t = &cfg.train;
    let seed = t.seed;
    let adam_cfg = AdamConfig {
        lr: t.lr,
        beta1: t.beta1,
        beta2: t.beta2,
        eps: t.eps,
        weight_decay: t.weight_decay,
    };
    let mut adam = Adam::new(checkpoint::named_vars(&varmap), adam_cfg)?;
    let mut shuffle_rng = stream(seed, "shuffle");
    let mut noise_rng = stream(seed, "noise");
    let mut sample_rng = stream(seed, "sample");
    let mut metrics = Metrics::default();
    let mut best_val: Option<f64> = None;
    let mut bad_epochs = 0usize;
    let mut warned_blow_up = false;
    let mut start_epoch = 0usize;

    if let Some(ck) = &resume_from {
        checkpoint::load_weights(&varmap, &ck.join(MODEL_FILE))?;
        let state: TrainState = checkpoint::read_json(&ck.join(STATE_FILE))?;
        metrics = checkpoint::read_json(&ck.join(checkpoint::METRICS_FILE))?;
        checkpoint::check_state(ck, &state, &metrics)?;
        let opt_path = ck.join(OPTIMIZER_FILE);
        let opt_state = checkpoint::read_safetensors(&opt_path, device)?;
        adam.load_state(&opt_state, state.adam_step, &opt_path.display().to_string())?;
        shuffle_rng = state.rng.shuffle.restore();
        noise_rng = state.rng.noise.restore();
        sample_rng = state.rng.sample.restore();
        best_val = state.best_val;
        bad_epochs = state.bad_epochs;
        start_epoch = state.epochs_done;
        tracing::info!("resuming {} after epoch {start_epoch}", out.display());
        if epochs_changed {
            // The run now aims at the new count (a cosine schedule ends there): record it.
            checkpoint::write_json(&out.join(CONFIG_FILE), &cfg)?;
        }
    } else {
        if out.exists() && opts.overwrite {
            for f in [CONFIG_FILE, MODEL_FILE, checkpoint::METRICS_FILE] {
                let p = out.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(crate::error::io_err(&p))?;
                }
            }
            let ck = out.join(checkpoint::CHECKPOINTS_DIR);
            if ck.exists() {
                std::fs::remove_dir_all(&ck).map_err(crate::error::io_err(&ck))?;
            }
        }
        std::fs::create_dir_all(out).map_err(crate::error::io_err(out))?;
        seeded_init(&varmap, &mut stream(seed, "init"))?;
        checkpoint::write_json(&out.join(CONFIG_FILE), &cfg)?;
    }

    let noise = model.noise().filter(|n| !matches!(n, Noise::None)).cloned();
    // Off the CPU kernels (a GPU, or the CPU's portable path) the training set lives on the
    // device: batches are gathered there by index, and the losses summed there and read once
    // per epoch, instead of a host-to-device copy and a device-to-host read per step; on CUDA
    // each step is replayed from a CUDA graph (`device_loop`). Noise is drawn on the host, so
    // denoising models keep the host path.
    let mut resident = match noise {
        None if !ae_kernels::cpu_kernels(device) && u32::try_from(train_set.len()).is_ok() => {
            Some(DeviceLoop::new(
                train_set.to_tensor(model.input_layout().data_layout(), device)?,
                opts.cuda_graph,
            )?)
        }
        _ => None,
    };
    let batcher = Batcher {
        batch_size: t.batch_size,
        shuffle: true,
        drop_last: t.drop_last,
    };
    let n = train_set.len();
    let mut progress = Progress::new(opts.progress);
    let mut clean = Vec::new();
    let mut noisy = Vec::new();
    let stop_at = match opts.max_epochs_this_call {
        Some(k) => (start_epoch + k).min(t.epochs),
        None => t.epochs,
    };
    let already_stopped = metrics.stopped_early;

    for epoch in start_epoch..stop_at {
        if already_stopped {
            break;
        }
        // The rate of the epoch's first step (the step-wise schedules change it per batch).
        let steps_per_epoch = batcher.num_batches(n);
        let step_lr = |bi: usize| {
            t.schedule.lr_at(
                t.lr,
                epoch * steps_per_epoch + bi,
                steps_per_epoch,
                t.epochs,
            )
        };
        let lr = step_lr(0);
        let order = batcher.epoch(n, &mut shuffle_rng);
        progress.start_epoch(epoch + 1, t.epochs, steps_per_epoch);
        let started = Instant::now();
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for (bi, idx) in order.iter().enumerate() {
            adam.set_lr(step_lr(bi));
            if let Some(dl) = &mut resident {
                dl.step(model.as_ref(), &mut adam, idx, &mut sample_rng)?;
                seen += idx.len();
                progress.batch(None, seen as f64 / started.elapsed().as_secs_f64());
                continue;
            }
            train_set.gather(idx, &mut clean)?;
            let input: &[f32] = match &noise {
                Some(nz) => {
                    noisy.clone_from(&clean);
                    nz.apply(&mut noisy, train_set.shape(), &mut noise_rng);
                    &noisy
                }
                None => &clean,
            };
            let value = train_step(
                model.as_ref(),
                &mut adam,
                input,
                &clean,
                opts.fused,
                device,
                &mut sample_rng,
            )?;
            check_finite(value, epoch, bi, &mut progress)?;
            loss_sum += value * idx.len() as f64;
            seen += idx.len();
            progress.batch(
                Some(loss_sum / seen as f64),
                seen as f64 / started.elapsed().as_secs_f64(),
            );
        }
        if let Some(dl) = &mut resident {
            // The one read of the epoch. A non-finite sum stops the run as a non-finite
            // step does on the host path (reported at the epoch's last batch: which step
            // it was is not known without a read per step).
            loss_sum = dl.take_loss_sum()?;
            check_finite(
                loss_sum,
                epoch,
                order.len().saturating_sub(1),
                &mut progress,
            )?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let val = evaluate(model.as_ref(), &test_set, t.eval_batch_size, device, seed)?;
        if !val.loss.is_finite() {
            progress.end_epoch("diverged");
            return Err(TrainError::NonFinite {
                epoch: epoch + 1,
                batch: order.len(),
                loss: val.loss,
            });
        }
        // Against the best before this epoch; said once per call (a dead model stays there).
        let blow_up = crate::metrics::blow_up_warning(best_val, val.loss, epoch + 1, lr)
            .filter(|_| !warned_blow_up);
        let improved = match (best_val, &t.early_stopping) {
            (None, _) => true,
            (Some(b), Some(es)) => val.loss < b - es.min_delta,
            (Some(b), None) => val.loss < b,
        };
        if improved {
            best_val = Some(val.loss);
            bad_epochs = 0;
            metrics.best_epoch = Some(epoch + 1);
        } else {
            bad_epochs += 1;
        }
        let em = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss: val.loss,
            val_recon: val.recon,
            val_kl: val.kl,
            val_sparsity: val.sparsity,
            seconds,
            images_per_sec: seen as f64 / seconds.max(1e-9),
        };
        progress.end_epoch(&format!(
            "epoch {}/{} train_loss {:.4} val_loss {:.4} {:.1}s {:.0} img/s",
            em.epoch, t.epochs, em.train_loss, em.val_loss, em.seconds, em.images_per_sec
        ));
        metrics.epochs.push(em);
        if let Some(w) = blow_up {
            tracing::warn!("{w}");
            warned_blow_up = true;
        }
        if let Some(es) = &t.early_stopping
            && bad_epochs >= es.patience
        {
            metrics.stopped_early = true;
        }
        let state = TrainState {
            format_version: FORMAT_VERSION,
            epochs_done: epoch + 1,
            adam_step: adam.step_count(),
            rng: RngStates {
                shuffle: RngState::of(&shuffle_rng),
                noise: RngState::of(&noise_rng),
                sample: RngState::of(&sample_rng),
            },
            best_val,
            bad_epochs,
        };
        checkpoint::save_checkpoint(
            out,
            &varmap,
            CheckpointData {
                kind: &cfg.model.kind().to_string(),
                optimizer: adam.state_tensors()?,
                state: &state,
                metrics: &metrics,
            },
        )?;
        if metrics.stopped_early {
            tracing::info!(
                "early stopping after epoch {}: no improvement for {bad_epochs} epochs",
                epoch + 1
            );
            break;
        }
    }
    let test = evaluate(model.as_ref(), &test_set, t.eval_batch_size, device, seed)?;
    Ok(TrainReport {
        metrics: metrics.epochs,
        stopped_early: metrics.stopped_early,
        test,
    })
}
