//! The measured uses of autoencoders (ae-uses): `compare-pca`, `anomaly fit|score|eval`,
//! `compress`, `decompress`, `probe`, `iwae` and `denoise-table`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ae_data::rng::stream;
use ae_data::{DataConfig, ImageSet, Noise, Split, read_idx};
use ae_models::{DenseConfig, ImageShape, ModelConfig, ModelKind, VaeArch};
use ae_train::checkpoint::write_atomic;
use ae_train::{LoadedRun, ProgressMode, RunConfig, TrainOptions, load_run, parse_device};
use ae_uses::anomaly::{default_detector, default_detector_training};
use ae_uses::{AnomalySpec, ScoreKind, ThresholdRule};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::model_opts::DataArgs;

/// Options of every command that uses a trained run.
#[derive(Debug, Clone, Args)]
pub struct UseRunArgs {
    /// The run folder written by `ae train` (or `ae anomaly fit`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of the random draws (noise, VAE samples); commands that draw nothing ignore it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

impl UseRunArgs {
    fn load(&self) -> Result<LoadedRun> {
        let device = parse_device(&self.device)?;
        load_run(&self.checkpoint, &device)
            .with_context(|| format!("loading the run {}", self.checkpoint.display()))
    }
}

/// Which images a command works on: the run's own test (or training) split,
/// or any IDX image file (with its labels where they are needed).
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// IDX file of images to use instead of the run's data set (any image size the model takes).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Data to use instead of the run's test split, read like the run's own --data
    /// (a folder, .npy, .npz, .csv, .parquet; a table is scaled by the run's scaler).
    #[arg(long, conflicts_with_all = ["images", "train_split"])]
    pub data: Option<PathBuf>,
    /// With --data, a table: its label column (default: the run's).
    #[arg(long, requires = "data")]
    pub label_column: Option<String>,
    /// IDX file of the labels of --images.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Use the run's training images instead of its test images.
    #[arg(long, conflicts_with = "images")]
    pub train_split: bool,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Reads an IDX image file (and optional labels) as an image set.
fn read_images(images: &Path, labels: Option<&Path>) -> Result<ImageSet> {
    let arr = read_idx(images)?;
    let name = images.display().to_string();
    let labels = match labels {
        Some(p) => Some((read_idx(p)?, p.display().to_string())),
        None => None,
    };
    Ok(ImageSet::from_idx(
        &arr,
        &name,
        labels.as_ref().map(|(a, n)| (a, n.as_str())),
        None,
    )?)
}

impl ImagesArgs {
    /// The images, and a description for messages.
    fn load(&self, run: &LoadedRun) -> Result<(ImageSet, String)> {
        let limit = self.limit.unwrap_or(usize::MAX);
        if let Some(p) = &self.data {
            let mut cfg = run.config.data.clone();
            if self.label_column.is_some() {
                cfg.source.label_column = self.label_column.clone();
            }
            let set = cfg.load_file(p).with_context(|| {
                format!("reading {} for the run {}", p.display(), run.dir.display())
            })?;
            return Ok((set.take(limit), p.display().to_string()));
        }
        if let Some(p) = &self.images {
            let set = read_images(p, self.labels.as_deref())?;
            return Ok((set.take(limit), p.display().to_string()));
        }
        let mut cfg = run.config.data.clone();
        let (set, what) = if self.train_split {
            cfg.test_limit = Some(1);
            if self.limit.is_some() {
                cfg.train_limit = self.limit;
            }
            (cfg.load()?.train, "training")
        } else {
            cfg.train_limit = Some(1);
            if self.limit.is_some() {
                cfg.test_limit = self.limit;
            }
            (cfg.load()?.test, "test")
        };
        Ok((set, format!("the {what} images of {}", cfg.name)))
    }
}

fn input_of(split: &Split) -> ImageShape {
    let t = &split.train;
    ImageShape::new(t.channels(), t.height(), t.width())
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

// ---------------------------------------------------------------- compare-pca

#[derive(Debug, Args)]
pub struct ComparePcaArgs {
    /// Code sizes to compare (PCA components = autoencoder latent size).
    #[arg(long, value_delimiter = ',', default_value = "2,8,32,64")]
    pub latent_dims: Vec<usize>,
    /// Epochs of each autoencoder.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Hidden sizes of the autoencoders' encoder (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_value = "512,256")]
    pub hidden: Vec<usize>,
    /// Images per training batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Where the autoencoders' runs go (`<dir>/latent-<k>`); finished runs of the same config are reused.
    #[arg(long, default_value = "runs/compare-pca")]
    pub runs_dir: PathBuf,
    /// Retrain even when a finished run is there.
    #[arg(long)]
    pub retrain: bool,
    /// Seed of every run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn compare_pca(a: ComparePcaArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let mut data = a.data.config();
    let split = data.load_fitted()?;
    let opts = ae_uses::CompareOptions {
        dims: a.latent_dims.clone(),
        hidden: a.hidden.clone(),
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        runs_dir: a.runs_dir.clone(),
        retrain: a.retrain,
        ..ae_uses::CompareOptions::default()
    };
    let rows = ae_uses::compare_pca(&data, &split, &opts, &device)?;
    if a.json {
        return print_json(&rows);
    }
    println!("latent  PCA mse   AE mse    PCA bce   AE bce    AE better?");
    for r in &rows {
        let wins = r.ae_mse < r.pca_mse && r.ae_bce < r.pca_bce;
        println!(
            "{:>6}  {:.5}   {:.5}   {:.5}   {:.5}   {}",
            r.latent,
            r.pca_mse,
            r.ae_mse,
            r.pca_bce,
            r.ae_bce,
            if wins { "yes" } else { "no" }
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- anomaly

#[derive(Debug, Subcommand)]
pub enum AnomalyCommand {
    /// Train a detector on the normal images (e.g. one class) and set its threshold.
    Fit(Box<AnomalyFitArgs>),
    /// Score images: reconstruction error per image, and whether it passes the threshold.
    Score(AnomalyScoreArgs),
    /// ROC-AUC and PR-AUC on labelled test images (the normal class against the rest).
    Eval(AnomalyEvalArgs),
}

#[derive(Debug, Args)]
pub struct AnomalyFitArgs {
    /// The class whose training images are normal (all training images when absent).
    #[arg(long)]
    pub normal_class: Option<u8>,
    /// Run folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// The model: vanilla (default: a dense 256-64-16 detector), sparse or vae.
    #[arg(long)]
    pub model: Option<ModelKind>,
    /// Code size.
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Hidden layer sizes, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Epochs (default 60).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per batch (default 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// The score: mse, bce, or elbo (VAE only).
    #[arg(long, default_value = "mse")]
    pub score: ScoreKind,
    /// Expected fraction of anomalies: the threshold is this upper quantile of the training scores.
    #[arg(long, conflicts_with = "percentile")]
    pub contamination: Option<f64>,
    /// The threshold as a percentile of the training scores, in (0, 100).
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub data: DataArgs,
}

fn detector_config(a: &AnomalyFitArgs, data: DataConfig, input: ImageShape) -> Result<RunConfig> {
    let mut model = match a.model {
        None | Some(ModelKind::Vanilla) => default_detector(input),
        Some(ModelKind::Sparse) | Some(ModelKind::Vae) => {
            ModelConfig::default_for(a.model.unwrap_or(ModelKind::Vae), input)
        }
        Some(k) => bail!("--model {k}: an anomaly detector is vanilla, sparse or vae"),
    };
    match &mut model {
        ModelConfig::Vanilla(d) => apply_dense(d, a),
        ModelConfig::Sparse(s) => apply_dense(&mut s.dense, a),
        ModelConfig::Vae(v) => {
            if let Some(k) = a.latent_dim {
                v.latent_dim = k;
            }
            if let (Some(h), VaeArch::Dense { hidden }) = (&a.hidden, &mut v.arch) {
                *hidden = h.clone();
            }
        }
        _ => {}
    }
    let mut cfg = RunConfig::for_kind(model.kind(), data, input);
    cfg.model = model;
    cfg.train = default_detector_training(a.seed);
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(b) = a.batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(lr) = a.lr {
        cfg.train.lr = lr;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn apply_dense(d: &mut DenseConfig, a: &AnomalyFitArgs) {
    if let Some(k) = a.latent_dim {
        d.latent_dim = k;
    }
    if let Some(h) = &a.hidden {
        d.hidden = h.clone();
    }
}

pub fn anomaly(c: AnomalyCommand) -> Result<()> {
    match c {
        AnomalyCommand::Fit(a) => anomaly_fit(*a),
        AnomalyCommand::Score(a) => anomaly_score(a),
        AnomalyCommand::Eval(a) => anomaly_eval(a),
    }
}

fn anomaly_fit(a: AnomalyFitArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let mut data = a.data.config();
    let split = data.load_fitted()?;
    let cfg = detector_config(&a, data, input_of(&split))?;
    let rule = match (a.contamination, a.percentile) {
        (_, Some(p)) => ThresholdRule::Percentile { percentile: p },
        (Some(c), None) => ThresholdRule::Contamination { rate: c },
        (None, None) => ThresholdRule::default(),
    };
    let opts = TrainOptions {
        overwrite: a.overwrite,
        device,
        progress: ProgressMode::Auto,
        ..TrainOptions::default()
    };
    let spec = ae_uses::fit_one_class(&cfg, &split, a.normal_class, a.score, rule, &a.out, &opts)
        .with_context(|| format!("fitting the detector into {}", a.out.display()))?;
    println!(
        "{}: {} model trained on {} normal images{}; score {}, threshold {:.6} ({})",
        a.out.display(),
        cfg.model.kind(),
        spec.train_images,
        spec.normal_class
            .map(|c| format!(" (class {c})"))
            .unwrap_or_default(),
        spec.score,
        spec.threshold,
        spec.rule
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct AnomalyScoreArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// The score (default: the detector's).
    #[arg(long)]
    pub score: Option<ScoreKind>,
    /// Write `index,label,score,anomaly` rows to this CSV file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// The detector's spec, or (for a plain run) a spec-less scoring with no threshold.
fn spec_of(run: &LoadedRun) -> Result<Option<AnomalySpec>> {
    match AnomalySpec::read(&run.dir) {
        Ok(s) => Ok(Some(s)),
        Err(ae_uses::UsesError::File { .. }) if !run.dir.join(ae_uses::ANOMALY_FILE).exists() => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn anomaly_score(a: AnomalyScoreArgs) -> Result<()> {
    let run = a.run.load()?;
    let spec = spec_of(&run)?;
    let (set, what) = a.images.load(&run)?;
    let kind = a
        .score
        .or(spec.as_ref().map(|s| s.score))
        .unwrap_or_default();
    let scores = ae_uses::anomaly_scores(
        run.model.as_ref(),
        &set,
        kind,
        a.run.batch_size,
        &run.device,
    )
    .with_context(|| format!("scoring {what}"))?;
    // A threshold only applies to the score it was set for.
    let threshold = spec
        .as_ref()
        .filter(|s| s.score == kind)
        .map(|s| s.threshold);
    let flagged = threshold.map(|t| scores.iter().filter(|&&s| s > t).count());
    if let Some(out) = &a.out {
        let mut csv = String::from("index,label,score,anomaly\n");
        for (i, s) in scores.iter().enumerate() {
            let label = set.label(i).map(|l| l.to_string()).unwrap_or_default();
            let flag = threshold
                .map(|t| u8::from(*s > t).to_string())
                .unwrap_or_default();
            let _ = writeln!(csv, "{i},{label},{s},{flag}");
        }
        write_atomic(out, csv.as_bytes())?;
    }
    let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    if a.json {
        return print_json(&serde_json::json!({
            "images": scores.len(),
            "score": kind,
            "mean": mean,
            "threshold": threshold,
            "flagged": flagged,
        }));
    }
    println!(
        "scored {} images of {what} by {kind}: mean {mean:.6}{}{}",
        scores.len(),
        match (threshold, flagged) {
            (Some(t), Some(f)) => format!(
                ", {f} above the threshold {t:.6} ({:.1}%)",
                100.0 * f as f64 / scores.len().max(1) as f64
            ),
            _ => ", no threshold (not a detector made by `ae anomaly fit`)".into(),
        },
        a.out
            .as_ref()
            .map(|p| format!("; wrote {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct AnomalyEvalArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// The normal class (default: the detector's).
    #[arg(long)]
    pub normal_class: Option<u8>,
    /// Another detector of the same class (e.g. `ae anomaly fit` with another
    /// --seed), repeatable: every detector's scores are standardised by its
    /// scores of the normal training images and their mean is evaluated (an
    /// ensemble, as `cargo xtask anomaly-benchmark` does with three).
    #[arg(long = "with", value_name = "DIR")]
    pub with: Vec<PathBuf>,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The mean of the standardised scores of `runs` (detectors of class
/// `normal`) on `set`, and the threshold their rule gives on the mean of their
/// standardised training scores.
fn ensemble_scores(
    runs: &[LoadedRun],
    normal: u8,
    set: &ImageSet,
    batch: usize,
) -> Result<(Vec<f64>, f64, ScoreKind)> {
    let (mut members, mut train_members) = (Vec::new(), Vec::new());
    let mut rule_kind = None;
    for run in runs {
        let Some(spec) = spec_of(run)? else {
            bail!(
                "{} is not a detector made by `ae anomaly fit`: an ensemble needs each \
                 detector's threshold rule and score",
                run.dir.display()
            );
        };
        if spec.normal_class != Some(normal) {
            bail!(
                "{} was trained on class {}, not on class {normal}",
                run.dir.display(),
                spec.normal_class
                    .map_or_else(|| "all".to_string(), |c| c.to_string())
            );
        }
        let mut cfg = run.config.data.clone();
        cfg.test_limit = Some(1);
        let train = cfg
            .load()
            .with_context(|| format!("loading the training images of {}", run.dir.display()))?
            .train
            .with_class(normal)?;
        let model = run.model.as_ref();
        let tr = ae_uses::anomaly_scores(model, &train, spec.score, batch, &run.device)?;
        let test = ae_uses::anomaly_scores(model, set, spec.score, batch, &run.device)?;
        members.push(ae_uses::standardize_by(&tr, &test)?);
        train_members.push(ae_uses::standardize_by(&tr, &tr)?);
        rule_kind.get_or_insert((spec.rule, spec.score));
    }
    let Some((rule, kind)) = rule_kind else {
        bail!("an ensemble needs at least one detector");
    };
    let threshold = rule.threshold(&ae_uses::mean_scores(&train_members)?)?;
    Ok((ae_uses::mean_scores(&members)?, threshold, kind))
}

fn anomaly_eval(a: AnomalyEvalArgs) -> Result<()> {
    let run = a.run.load()?;
    let spec = spec_of(&run)?;
    let Some(normal) = a
        .normal_class
        .or(spec.as_ref().and_then(|s| s.normal_class))
    else {
        bail!(
            "{}: no normal class: pass --normal-class (the detector was trained on every class)",
            run.dir.display()
        );
    };
    let (set, what) = a.images.load(&run)?;
    let detectors = 1 + a.with.len();
    let (scores, threshold, kind) = if a.with.is_empty() {
        let kind = spec.as_ref().map(|s| s.score).unwrap_or_default();
        let scores = ae_uses::anomaly_scores(
            run.model.as_ref(),
            &set,
            kind,
            a.run.batch_size,
            &run.device,
        )
        .with_context(|| format!("scoring {what}"))?;
        let threshold = spec.as_ref().map_or(f64::INFINITY, |s| s.threshold);
        (scores, threshold, kind)
    } else {
        let mut runs = vec![run];
        for dir in &a.with {
            let r = load_run(dir, &runs[0].device)
                .with_context(|| format!("loading the run {}", dir.display()))?;
            runs.push(r);
        }
        ensemble_scores(&runs, normal, &set, a.run.batch_size)
            .with_context(|| format!("scoring {what} with {detectors} detectors"))?
    };
    let labels =
        ae_uses::anomaly_labels(&set, normal).with_context(|| format!("labels of {what}"))?;
    let ev = ae_uses::evaluate_scores(&scores, &labels, threshold)
        .with_context(|| format!("evaluating on {what} with normal class {normal}"))?;
    if a.json {
        return print_json(&ev);
    }
    println!(
        "images     {} normal (class {normal}), {} anomalous, of {what}",
        ev.normal, ev.anomalous
    );
    if detectors > 1 {
        println!(
            "score      {kind}, the mean of {detectors} detectors' scores, each standardised by \
             its training scores"
        );
    } else {
        println!("score      {kind}");
    }
    println!("roc-auc    {:.4}", ev.roc_auc);
    println!(
        "pr-auc     {:.4} (average precision, anomalies positive)",
        ev.pr_auc
    );
    if threshold.is_finite() {
        println!(
            "threshold  {:.6}: precision {:.3}, recall {:.3}, false-positive rate {:.3}",
            ev.threshold, ev.precision, ev.recall, ev.false_positive_rate
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- compress

#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// IDX file of images to compress (raw or gzipped).
    pub input: PathBuf,
    /// The .aez file to write.
    pub output: PathBuf,
    /// Bits per code value (8 or 4 usual; 1..=8).
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
}

pub fn compress(a: CompressArgs) -> Result<()> {
    let run = a.run.load()?;
    let set = read_images(&a.input, None)?;
    let bytes = ae_uses::compress(&run, &set, a.bits, a.run.batch_size)
        .with_context(|| format!("compressing {}", a.input.display()))?;
    write_atomic(&a.output, &bytes)?;
    let raw = std::fs::metadata(&a.input).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {}: {} images in {} bytes ({:.1} bytes per image; the input file is {raw} bytes)",
        a.output.display(),
        set.len(),
        bytes.len(),
        bytes.len() as f64 / set.len().max(1) as f64
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct DecompressArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// The .aez file.
    pub input: PathBuf,
    /// The IDX file of 8-bit images to write (gzipped when it ends in .gz).
    pub output: PathBuf,
    /// The original images, to print the PSNR of the decompressed ones.
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// The largest `.aez` file read (it is checked whole, CRC first).
const MAX_AEZ_BYTES: u64 = 1 << 30;

// The sink returns ae-uses' own (large) error type, as decompress_to asks.
#[allow(clippy::result_large_err)]
pub fn decompress(a: DecompressArgs) -> Result<()> {
    let run = a.run.load()?;
    let bytes = ae_data::input::read_capped(&a.input, MAX_AEZ_BYTES, "a .aez file")?;
    // Everything is checked before the output is created: the file's header
    // and model, then the reference images against it.
    let header = ae_uses::parse_aez(&bytes, &a.input)?.header;
    let [c, h, w] = header.shape;
    let n = header.count;
    let reference = match &a.reference {
        Some(r) => {
            let orig = read_images(r, None)?;
            if orig.shape() != header.shape || orig.len() != n {
                bail!(
                    "{}: {} images of {:?}, the .aez holds {n} of {:?}",
                    r.display(),
                    orig.len(),
                    orig.shape(),
                    header.shape
                );
            }
            Some(orig)
        }
        None => None,
    };
    let dims = if c == 1 {
        vec![n, h, w]
    } else {
        vec![n, c, h, w]
    };
    let gz = a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut out = ae_data::IdxU8Writer::create(&a.output, &dims, gz)?;
    let (mut sq, mut at) = (0f64, 0usize);
    ae_uses::decompress_to(&run, &bytes, &a.input, a.run.batch_size, |pixels| {
        let q: Vec<u8> = pixels
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        if let Some(orig) = &reference {
            for (&v, &o) in q.iter().zip(&orig.pixels()[at..]) {
                sq += f64::from(f32::from(v) / 255.0 - o).powi(2);
            }
        }
        at += q.len();
        out.write(&q)?;
        Ok(())
    })?;
    out.finish()?;
    let mut msg = format!("wrote {} ({n} images of {c}x{h}x{w})", a.output.display());
    if let Some(r) = &a.reference {
        let _ = write!(
            msg,
            "; PSNR {:.2} dB against {}",
            ae_uses::stats::psnr_of_mse(sq / at.max(1) as f64),
            r.display()
        );
    }
    println!("{msg}");
    Ok(())
}

// ---------------------------------------------------------------- probe

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Also probe raw pixels and PCA codes of the same size.
    #[arg(long)]
    pub baselines: bool,
    /// Standardise each feature before the regression.
    #[arg(long)]
    pub standardize: bool,
    /// L2 weight (scikit-learn's 1/C).
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// L-BFGS iterations at most.
    #[arg(long, default_value_t = 300)]
    pub max_iter: u64,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn probe(a: ProbeArgs) -> Result<()> {
    let run = a.run.load()?;
    let mut cfg = run.config.data.clone();
    cfg.train_limit = a.train_limit.or(cfg.train_limit);
    cfg.test_limit = a.test_limit.or(cfg.test_limit);
    let split = cfg.load()?;
    let (Some(ytr), Some(yte)) = (split.train.labels(), split.test.labels()) else {
        bail!(
            "a linear probe needs labels: the data set of {} has none",
            run.dir.display()
        );
    };
    let model = run.model.as_ref();
    let k = model.latent_dim();
    let opts = ae_uses::ProbeOptions {
        alpha: a.alpha,
        max_iter: a.max_iter,
        standardize: a.standardize,
    };
    let b = a.run.batch_size;
    let ctr = ae_uses::batches::encode_set(model, &split.train, b, &run.device)?;
    let cte = ae_uses::batches::encode_set(model, &split.test, b, &run.device)?;
    let mut rows = vec![(
        format!("{} codes", run.config.model.kind()),
        ae_uses::linear_probe(&ctr, ytr, &cte, yte, k, &opts)?,
    )];
    if a.baselines {
        let d = split.train.dim();
        rows.push((
            "raw pixels".into(),
            ae_uses::linear_probe(
                split.train.pixels(),
                ytr,
                split.test.pixels(),
                yte,
                d,
                &opts,
            )?,
        ));
        if k <= d {
            let pca = ae_uses::Pca::fit(split.train.pixels(), d, k)?;
            rows.push((
                format!("PCA, {k} components"),
                ae_uses::linear_probe(
                    &pca.transform(split.train.pixels())?,
                    ytr,
                    &pca.transform(split.test.pixels())?,
                    yte,
                    k,
                    &opts,
                )?,
            ));
        }
    }
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, r)| serde_json::json!({"features": n, "result": r}))
            .collect();
        return print_json(&v);
    }
    for (name, r) in &rows {
        println!(
            "{name:<24} {:>4} features: test accuracy {:.2}% (train {:.2}%)",
            r.features,
            100.0 * r.test_accuracy,
            100.0 * r.train_accuracy
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- iwae

#[derive(Debug, Args)]
pub struct IwaeArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// Importance samples per image (comma separated for several estimates).
    #[arg(
        short = 'k',
        long = "samples",
        value_delimiter = ',',
        default_value = "100"
    )]
    pub k: Vec<usize>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn iwae(a: IwaeArgs) -> Result<()> {
    let run = a.run.load()?;
    let (set, what) = a.images.load(&run)?;
    let mut out = Vec::new();
    for &k in &a.k {
        let mut rng = stream(a.run.seed, "iwae");
        let r = ae_uses::iwae(
            run.model.as_ref(),
            &set,
            k,
            a.run.batch_size,
            &run.device,
            &mut rng,
        )
        .with_context(|| format!("estimating the log-likelihood of {what}"))?;
        out.push(
            serde_json::json!({"k": k, "images": r.images, "log_likelihood": r.log_likelihood}),
        );
        if !a.json {
            println!(
                "K = {k:>5}: log p(x) >= {:.2} nats per image ({} images of {what})",
                r.log_likelihood, r.images
            );
        }
    }
    if a.json {
        print_json(&out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- denoise-table

#[derive(Debug, Args)]
pub struct DenoiseTableArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    #[command(flatten)]
    pub images: ImagesArgs,
    /// Noises (comma separated; default gaussian:0.2, 0.4, 0.6 and salt-pepper:0.2).
    #[arg(long, value_delimiter = ',')]
    pub noise: Option<Vec<Noise>>,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn denoise_table(a: DenoiseTableArgs) -> Result<()> {
    let run = a.run.load()?;
    let (set, what) = a.images.load(&run)?;
    let noises = a.noise.clone().unwrap_or_else(ae_uses::standard_noises);
    let rows = ae_uses::denoise_table(
        run.model.as_ref(),
        &set,
        &noises,
        a.run.batch_size,
        &run.device,
        a.run.seed,
    )
    .with_context(|| format!("denoising {what}"))?;
    if a.json {
        return print_json(&rows);
    }
    println!("{} images of {what}; PSNR in dB, mean per image", set.len());
    println!("noise              PSNR noisy  PSNR denoised  SSIM noisy  SSIM denoised");
    for r in &rows {
        println!(
            "{:<18} {:>10.2}  {:>13.2}  {:>10.3}  {:>13.3}",
            r.noise, r.psnr_noisy, r.psnr_denoised, r.ssim_noisy, r.ssim_denoised
        );
    }
    Ok(())
}
