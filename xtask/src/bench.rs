//! `cargo xtask bench`: our throughput against the peers' on the same work.
//!
//! Each row is one piece of work measured on our side and, where a peer does
//! the same work, on the peer's side, alternately (ours, peer, ours, peer ...
//! for `--rounds`), so that a change in the machine's load hits both sides.
//! Training rows time the training loop only, as the peers' scripts do: our
//! `EpochMetrics::seconds` (batches, forward, loss, backward, Adam; no
//! evaluation, no checkpoint) against the `time` each peer prints per epoch.
//! The first epoch of every run, ours and the peers', is dropped (JAX
//! compiles its step in epoch 0). The ratio of a row is peer time / our time
//! (> 1: we are faster), from the chosen statistic of each side.
//!
//! Writes `<out>/bench.md` (the table, also printed) and `<out>/bench.json`
//! (every sample). See docs/performance.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ae_data::{DataConfig, DataFile, ImageSet, Split};
use ae_models::init::seeded_model;
use ae_models::{
    Activation, Autoencoder, ConvConfig, DenseConfig, ImageShape, ModelConfig, ModelKind, VaeArch,
    VaeConfig,
};
use ae_train::{ProgressMode, RunConfig, TrainOptions, train_on};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use serde::Serialize;

/// The Python made by `bash ../shared/anchors/setup.sh`, used when none is given.
const DEFAULT_PYTHON: &str = "/tmp/anchors/bin/python";
/// The environment variable naming the peers' Python.
const PYTHON_ENV: &str = "AE_PEER_PYTHON";
/// Batch size of the inference rows.
const INFER_BATCH: usize = 1024;
/// Training and test images of a `--quick` run (small: the integration test
/// runs it in a debug build).
const QUICK_TRAIN: usize = 256;
const QUICK_TEST: usize = 256;

/// The rows `--only` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Work {
    /// Dense seed model, one training epoch, against PyTorch and JAX.
    Dense,
    /// VAE 784-400-20, one training epoch, against PyTorch.
    Vae,
    /// Conv autoencoder, one training epoch, against PyTorch.
    Conv,
    /// Encode and reconstruct the test set at batch 1024, against PyTorch.
    Infer,
    /// Reading an uncompressed IDX file (ours only).
    Idx,
}

const ALL_WORK: [Work; 5] = [Work::Dense, Work::Vae, Work::Conv, Work::Infer, Work::Idx];

/// Which statistic of each side's samples the table compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stat {
    /// The median sample.
    Median,
    /// The best sample: the shortest time, the highest throughput.
    Min,
}

/// `cargo xtask bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Alternating rounds (ours, peer, ours, peer ...) per row.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Epochs per training run, ours and each peer's (at least 2: the first is dropped).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Timed passes over the test set per round in the inference rows (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub infer_reps: usize,
    /// Only these rows (comma separated): dense, vae, conv, infer, idx.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<Work>>,
    /// Also measure the peak resident memory of a whole `train-all` run (a child process).
    #[arg(long)]
    pub memory: bool,
    /// Smoke test: 256 training and test images, one round, 2 epochs, no peers;
    /// `train-all --quick` for --memory.
    #[arg(long)]
    pub quick: bool,
    /// The peers' Python (with torch, and jax + optax for the JAX row); default
    /// $AE_PEER_PYTHON, else /tmp/anchors/bin/python if it exists.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The peers' scripts (default: ../shared/anchors beside the repository).
    #[arg(long)]
    pub anchors: Option<PathBuf>,
    /// Measure our side only.
    #[arg(long)]
    pub no_peers: bool,
    /// The statistic each side is summarised by.
    #[arg(long, value_enum, default_value_t = Stat::Median)]
    pub stat: Stat,
    /// Where bench.md and bench.json go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
}

/// The unit of a row's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Seconds (lower is better).
    Seconds,
    /// Gigabytes (1e9 bytes) per second (higher is better).
    GbPerSec,
    /// Gibibytes of memory (lower is better).
    Gib,
}

impl Unit {
    fn higher_is_better(self) -> bool {
        matches!(self, Unit::GbPerSec)
    }

    fn format(self, v: f64) -> String {
        match self {
            Unit::Seconds if v < 1.0 => format!("{:.1} ms", v * 1e3),
            Unit::Seconds => format!("{v:.2} s"),
            Unit::GbPerSec => format!("{v:.2} GB/s"),
            Unit::Gib => format!("{v:.3} GiB"),
        }
    }
}

/// What a row must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Peer time / our time at least this.
    RatioAtLeast {
        /// The ratio.
        ratio: f64,
    },
    /// Our value at least this (throughput).
    AtLeast {
        /// The value, in the row's unit.
        value: f64,
    },
    /// Our value below this (memory).
    Below {
        /// The value, in the row's unit.
        value: f64,
    },
}

impl Target {
    fn describe(&self, unit: Unit) -> String {
        match *self {
            Target::RatioAtLeast { ratio } => format!(">= {ratio}x"),
            Target::AtLeast { value } => format!(">= {}", unit.format(value)),
            Target::Below { value } => format!("< {}", unit.format(value)),
        }
    }
}

/// The samples of one side of a row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Samples {
    /// Every sample, in the order measured.
    pub values: Vec<f64>,
}

impl Samples {
    fn new(values: Vec<f64>) -> Self {
        Self { values }
    }

    /// The median (mean of the two middle samples for an even count).
    pub fn median(&self) -> Option<f64> {
        let mut v: Vec<f64> = self
            .values
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        })
    }

    /// The best sample: the smallest, or the largest when higher is better.
    pub fn best(&self, higher_is_better: bool) -> Option<f64> {
        let it = self.values.iter().copied().filter(|x| x.is_finite());
        if higher_is_better {
            it.max_by(f64::total_cmp)
        } else {
            it.min_by(f64::total_cmp)
        }
    }

    fn stat(&self, stat: Stat, unit: Unit) -> Option<f64> {
        match stat {
            Stat::Median => self.median(),
            Stat::Min => self.best(unit.higher_is_better()),
        }
    }
}

/// The peer side of a row: measured, or why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerSide {
    /// The peer, e.g. "PyTorch 2.5.1".
    pub name: String,
    /// Its samples, when it ran.
    pub samples: Option<Samples>,
    /// Why there are no samples.
    pub missing: Option<String>,
}

impl PeerSide {
    fn measured(name: &str, samples: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            samples: Some(Samples::new(samples)),
            missing: None,
        }
    }

    fn missing(name: &str, why: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            samples: None,
            missing: Some(why.into()),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// What is measured.
    pub work: String,
    /// The unit of both sides' samples.
    pub unit: Unit,
    /// Our samples.
    pub ours: Samples,
    /// The peer, if the row has one.
    pub peer: Option<PeerSide>,
    /// What the row must reach.
    pub target: Target,
    /// How the samples were taken.
    pub note: String,
}

/// The outcome of a row under a statistic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Our statistic.
    pub ours: Option<f64>,
    /// The peer's statistic.
    pub peer: Option<f64>,
    /// Peer / ours for time rows (> 1: we are faster).
    pub ratio: Option<f64>,
    /// Whether the target is met; `None` when it cannot be told.
    pub met: Option<bool>,
}

impl Row {
    /// Compares the two sides under `stat`.
    pub fn outcome(&self, stat: Stat) -> Outcome {
        let ours = self.ours.stat(stat, self.unit);
        let peer = self
            .peer
            .as_ref()
            .and_then(|p| p.samples.as_ref())
            .and_then(|s| s.stat(stat, self.unit));
        let ratio = match (ours, peer) {
            (Some(o), Some(p)) if o > 0.0 => Some(if self.unit.higher_is_better() {
                o / p
            } else {
                p / o
            }),
            _ => None,
        };
        let met = match self.target {
            Target::RatioAtLeast { ratio: r } => ratio.map(|x| x >= r),
            Target::AtLeast { value } => ours.map(|o| o >= value),
            Target::Below { value } => ours.map(|o| o < value),
        };
        Outcome {
            ours,
            peer,
            ratio,
            met,
        }
    }
}

/// Where and how the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo, if any.
    pub cpu: String,
    /// Threads available to this process.
    pub threads: usize,
    /// 1-minute load average when the bench started and ended (Linux).
    pub load_start: Option<f64>,
    /// See `load_start`.
    pub load_end: Option<f64>,
}

/// Everything `bench.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// The statistic of the table.
    pub stat: Stat,
    /// Alternating rounds per row.
    pub rounds: usize,
    /// Epochs per training run.
    pub epochs: usize,
    /// A smoke test on slices.
    pub quick: bool,
    /// The machine.
    pub machine: Machine,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A row's outcome under both statistics, for `bench.json`.
#[derive(Debug, Clone, Serialize)]
struct RowSummary<'a> {
    work: &'a str,
    peer: Option<&'a str>,
    median: Outcome,
    min: Outcome,
}

/// `bench.json`: the report, and each row's statistics, ratio and verdict.
fn to_json(r: &Report) -> Result<String> {
    #[derive(Serialize)]
    struct Json<'a> {
        #[serde(flatten)]
        report: &'a Report,
        summary: Vec<RowSummary<'a>>,
    }
    let summary = r
        .rows
        .iter()
        .map(|row| RowSummary {
            work: &row.work,
            peer: row.peer.as_ref().map(|p| p.name.as_str()),
            median: row.outcome(Stat::Median),
            min: row.outcome(Stat::Min),
        })
        .collect();
    Ok(serde_json::to_string_pretty(&Json { report: r, summary })?)
}

/// The markdown table of a report (what `bench.md` holds).
pub fn render_markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# `{}`\n", r.command);
    if r.quick {
        let _ = writeln!(
            s,
            "**Smoke test (`--quick`)**: small slices, no peers. These numbers are not the work \
             of the targets.\n"
        );
    }
    let load = |l: Option<f64>| l.map_or("?".to_string(), |v| format!("{v:.2}"));
    let _ = writeln!(
        s,
        "Machine: {}, {} threads; load average {} at the start, {} at the end. {} of each side; \
         {} alternating round(s) per row; training runs of {} epochs, the first dropped.\n",
        r.machine.cpu,
        r.machine.threads,
        load(r.machine.load_start),
        load(r.machine.load_end),
        match r.stat {
            Stat::Median => "Median",
            Stat::Min => "Best sample (min time, max throughput)",
        },
        r.rounds,
        r.epochs,
    );
    let _ = writeln!(
        s,
        "Ratio = peer time / our time (> 1: we are faster).\n\n\
         | work | ours | peer | peer's | ratio | target | met? |\n\
         |---|---:|---|---:|---:|---|---|"
    );
    for row in &r.rows {
        let o = row.outcome(r.stat);
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| row.unit.format(x));
        let (peer_name, peer_val) = match &row.peer {
            None => ("-".to_string(), "-".to_string()),
            Some(p) => match (&p.samples, &p.missing) {
                (Some(_), _) => (p.name.clone(), fmt(o.peer)),
                (None, why) => (
                    p.name.clone(),
                    format!("missing: {}", why.as_deref().unwrap_or("not run")),
                ),
            },
        };
        let ratio = o.ratio.map_or("-".to_string(), |x| format!("{x:.2}x"));
        let met = match o.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.work,
            fmt(o.ours),
            peer_name,
            peer_val.replace('|', "/"),
            ratio,
            row.target.describe(row.unit),
            met
        );
    }
    let _ = writeln!(s, "\nHow the rows were measured:\n");
    // One line per distinct note, naming the rows it applies to.
    let mut notes: Vec<(Vec<&str>, &str)> = Vec::new();
    for row in &r.rows {
        match notes.iter_mut().find(|(_, n)| *n == row.note) {
            Some((works, _)) if !works.contains(&row.work.as_str()) => works.push(&row.work),
            Some(_) => {}
            None => notes.push((vec![&row.work], &row.note)),
        }
    }
    for (works, note) in notes {
        let _ = writeln!(s, "- {}: {note}", works.join("; "));
    }
    s
}

// ---------------------------------------------------------------- parsing

/// `(epoch, seconds)` of every line of a peer's output that has an
/// `epoch <n>` and a `time <seconds>s` token pair (torch_seed.py, jax_seed.py,
/// torch_variants.py, keras_seed.py all print one per epoch).
pub fn parse_epoch_times(stdout: &str) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            toks.iter()
                .position(|t| *t == key)
                .and_then(|i| toks.get(i + 1))
                .copied()
        };
        let epoch = after("epoch").and_then(|t| t.parse::<usize>().ok());
        let secs = after("time")
            .and_then(|t| t.strip_suffix('s'))
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0);
        if let (Some(e), Some(s)) = (epoch, secs) {
            out.push((e, s));
        }
    }
    out
}

/// The epoch times of a peer run, its first epoch (0) dropped.
pub fn peer_epoch_seconds(stdout: &str) -> std::result::Result<Vec<f64>, String> {
    let all = parse_epoch_times(stdout);
    if all.is_empty() {
        return Err("no `epoch N ... time Ts` line in its output".into());
    }
    let kept: Vec<f64> = all
        .iter()
        .filter(|(e, _)| *e > 0)
        .map(|&(_, s)| s)
        .collect();
    if kept.is_empty() {
        return Err("only epoch 0 ran (give --epochs 2 or more)".into());
    }
    Ok(kept)
}

/// The `infer <variant> <op> rep <i> seconds <s>` lines of torch_infer.py,
/// by (variant, op), in order.
pub fn parse_infer_lines(stdout: &str) -> BTreeMap<(String, String), Vec<f64>> {
    let mut out: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for line in stdout.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if let ["infer", variant, op, "rep", _, "seconds", s] = toks.as_slice()
            && let Ok(v) = s.parse::<f64>()
            && v.is_finite()
            && v >= 0.0
        {
            out.entry((variant.to_string(), op.to_string()))
                .or_default()
                .push(v);
        }
    }
    out
}

// ---------------------------------------------------------------- peers

/// A Python that can run the peers, or why there is none.
struct Peers {
    python: PathBuf,
    /// The directory of the peers' scripts, or why there is none (the
    /// inference peer is ours, in xtask/peers, and runs without it).
    anchors: std::result::Result<PathBuf, String>,
    mnist_dir: PathBuf,
    /// Module name → version, for the modules the peers need that imported.
    versions: BTreeMap<String, String>,
}

/// The root of this repository.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn find_python(args: &BenchArgs) -> std::result::Result<PathBuf, String> {
    if let Some(p) = &args.python {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let default = Path::new(DEFAULT_PYTHON);
    if default.is_file() {
        return Ok(default.to_path_buf());
    }
    Err(format!(
        "no Python with the peers: give --python or ${PYTHON_ENV}, or run \
         `bash ../shared/anchors/setup.sh` (makes {DEFAULT_PYTHON})"
    ))
}

fn peers(args: &BenchArgs, mnist_dir: &Path) -> std::result::Result<Peers, String> {
    if args.no_peers {
        return Err("not run (--no-peers)".into());
    }
    if args.quick {
        return Err("not run with --quick (a slice is not the peers' work)".into());
    }
    let python = find_python(args)?;
    let anchors = args
        .anchors
        .clone()
        .unwrap_or_else(|| repo_root().join("../shared/anchors"));
    let anchors = if anchors.join("torch_seed.py").is_file() {
        Ok(anchors)
    } else {
        Err(format!(
            "no peer scripts in {} (give --anchors)",
            anchors.display()
        ))
    };
    let probe = "import importlib, sys\n\
                 for m in ('torch', 'jax', 'optax'):\n\
                 \x20   try: print(m, importlib.import_module(m).__version__)\n\
                 \x20   except Exception: pass\n";
    let out = Command::new(&python)
        .args(["-c", probe])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            python.display(),
            last_line(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    let versions = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(m, v)| (m.to_string(), v.trim().to_string()))
        .collect();
    Ok(Peers {
        python,
        anchors,
        mnist_dir: mnist_dir.to_path_buf(),
        versions,
    })
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
        .to_string()
}

/// Runs `python script args...` in `cwd` with `envs` set and returns its
/// stdout, or why it did not run or failed (the last line of its stderr).
pub fn run_python(
    python: &Path,
    script: &Path,
    args: &[String],
    envs: &[(&str, String)],
    cwd: &Path,
) -> std::result::Result<String, String> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(args)
        .current_dir(cwd)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            out.status,
            last_line(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A peer training script and the modules it needs.
struct PeerScript {
    name: &'static str,
    module: &'static str,
    needs: &'static [&'static str],
    script: &'static str,
    args: &'static [&'static str],
}

impl PeerScript {
    fn label(&self, peers: Option<&Peers>) -> String {
        match peers.and_then(|p| p.versions.get(self.module)) {
            Some(v) => format!("{} {}", self.name, v.split('+').next().unwrap_or(v)),
            None => self.name.to_string(),
        }
    }

    /// One run of `epochs` epochs: the epoch times after the first.
    fn run(&self, peers: &Peers, epochs: usize) -> std::result::Result<Vec<f64>, String> {
        if let Some(m) = self
            .needs
            .iter()
            .find(|m| !peers.versions.contains_key(**m))
        {
            return Err(format!("{} has no `{m}`", peers.python.display()));
        }
        let anchors = peers.anchors.as_ref().map_err(Clone::clone)?;
        let stdout = run_python(
            &peers.python,
            &anchors.join(self.script),
            &self
                .args
                .iter()
                .map(|a| a.replace("{epochs}", &epochs.to_string()))
                .collect::<Vec<_>>(),
            &[
                ("EPOCHS", epochs.to_string()),
                ("MNIST_DIR", peers.mnist_dir.display().to_string()),
            ],
            anchors,
        )?;
        peer_epoch_seconds(&stdout)
    }
}

const TORCH_SEED: PeerScript = PeerScript {
    name: "PyTorch",
    module: "torch",
    needs: &["torch"],
    script: "torch_seed.py",
    args: &[],
};
const JAX_SEED: PeerScript = PeerScript {
    name: "JAX",
    module: "jax",
    needs: &["jax", "optax"],
    script: "jax_seed.py",
    args: &[],
};
const TORCH_VAE: PeerScript = PeerScript {
    name: "PyTorch",
    module: "torch",
    needs: &["torch"],
    script: "torch_variants.py",
    args: &["vae", "{epochs}"],
};
const TORCH_CONV: PeerScript = PeerScript {
    name: "PyTorch",
    module: "torch",
    needs: &["torch"],
    script: "torch_variants.py",
    args: &["conv", "{epochs}"],
};

// ---------------------------------------------------------------- our side

/// The peers' model of `kind` (torch_seed.py / jax_seed.py, torch_variants.py),
/// written out in full so that a change of our defaults cannot pass unseen.
fn peer_model(kind: ModelKind) -> Option<ModelConfig> {
    let input = ImageShape::new(1, 28, 28);
    Some(match kind {
        ModelKind::Vanilla => ModelConfig::Vanilla(DenseConfig {
            input,
            hidden: vec![128, 64],
            latent_dim: 32,
            activation: Activation::Relu,
            code_activation: Activation::Relu,
        }),
        ModelKind::Vae => ModelConfig::Vae(VaeConfig {
            input,
            arch: VaeArch::Dense { hidden: vec![400] },
            latent_dim: 20,
            beta: 1.0,
            activation: Activation::Relu,
        }),
        ModelKind::Conv => ModelConfig::Conv(ConvConfig {
            input,
            channels: vec![32, 32],
            kernel: 3,
            activation: Activation::Relu,
            dense_code: None,
        }),
        ModelKind::Sparse | ModelKind::Denoising => return None,
    })
}

/// The default run of `kind`, checked to be the peers' model, batch size and
/// Adam learning rate.
fn our_config(kind: ModelKind, data: &DataConfig) -> Result<RunConfig> {
    let mut cfg = RunConfig::for_kind(kind, data.clone(), ImageShape::default());
    // The peers' scripts run Adam at a constant 1e-3; our default recipe (a one-cycle
    // schedule, docs/results.md) costs the same per step, but the bench runs theirs.
    cfg.train.lr = 1e-3;
    cfg.train.schedule = ae_train::LrSchedule::Constant;
    let batch = match kind {
        ModelKind::Vanilla => 256,
        _ => 128,
    };
    if peer_model(kind).as_ref() != Some(&cfg.model)
        || cfg.train.batch_size != batch
        || cfg.train.lr != 1e-3
    {
        bail!(
            "the default {kind} run is no longer the peers' work (batch {}, lr {}, model \
             {:?}): update xtask/src/bench.rs and the peer scripts together",
            cfg.train.batch_size,
            cfg.train.lr,
            cfg.model
        );
    }
    Ok(cfg)
}

/// One training run of `epochs` epochs of `kind`: the training-loop seconds of
/// every epoch after the first.
fn our_epochs(
    kind: ModelKind,
    split: &Split,
    data: &DataConfig,
    epochs: usize,
) -> Result<Vec<f64>> {
    let mut cfg = our_config(kind, data)?;
    cfg.train.epochs = epochs;
    let dir = tempfile::tempdir().context("creating a temporary run folder")?;
    let opts = TrainOptions {
        overwrite: true,
        progress: ProgressMode::Off,
        ..TrainOptions::default()
    };
    let report = train_on(&cfg, split.clone(), dir.path(), &opts)
        .with_context(|| format!("training {kind}"))?;
    Ok(report.metrics.iter().skip(1).map(|m| m.seconds).collect())
}

/// Our model of `kind` with seeded weights.
fn our_model(kind: ModelKind) -> Result<Box<dyn Autoencoder>> {
    let cfg = ModelConfig::default_for(kind, ImageShape::default());
    Ok(seeded_model(&cfg, &Device::Cpu, &mut ae_data::rng::stream(0, "init"))?.0)
}

/// Seconds per pass of encode and reconstruct over `test` in batches of
/// [`INFER_BATCH`] (batches made before timing; one warm-up pass each).
fn our_inference(
    model: &dyn Autoencoder,
    test: &ImageSet,
    reps: usize,
) -> Result<[(&'static str, Vec<f64>); 2]> {
    let layout = model.input_layout();
    let dim = layout.dim();
    let batches = test
        .pixels()
        .chunks(INFER_BATCH * dim)
        .map(|c| Tensor::from_slice(c, layout.shape(c.len() / dim).as_slice(), &Device::Cpu))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let time = |f: &dyn Fn(&Tensor) -> ae_models::Result<Tensor>| -> Result<Vec<f64>> {
        for x in &batches {
            f(x)?;
        }
        let mut v = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            for x in &batches {
                f(x)?;
            }
            v.push(t.elapsed().as_secs_f64());
        }
        Ok(v)
    };
    let enc = time(&|x| model.encode(x))?;
    let rec = time(&|x| model.reconstruct(x))?;
    Ok([("encode", enc), ("reconstruct", rec)])
}

/// GB/s of `ae_data::read_idx` on an uncompressed copy of the training images
/// (written to a temporary folder, so read from the page cache).
fn idx_throughput(train_images: &Path, reps: usize) -> Result<(Vec<f64>, usize)> {
    let arr = ae_data::read_idx(train_images)?;
    let raw = ae_data::encode_idx(&arr);
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&path, &raw).with_context(|| format!("writing {}", path.display()))?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let a = ae_data::read_idx(&path)?;
        let secs = t.elapsed().as_secs_f64();
        if a.len() != arr.len() {
            bail!(
                "re-reading {} gave {} values, not {}",
                path.display(),
                a.len(),
                arr.len()
            );
        }
        v.push(raw.len() as f64 / secs.max(1e-9) / 1e9);
    }
    Ok((v, raw.len()))
}

// ---------------------------------------------------------------- memory

/// Peak resident set size (bytes) and wall seconds of a child process.
#[cfg(target_os = "linux")]
fn peak_rss(cmd: &mut Command) -> Result<(u64, f64)> {
    let started = Instant::now();
    let child = cmd.spawn().context("starting the child")?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std reaps only in
        // `wait`/`try_wait`, which are never called on it); the pointers are
        // to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the child");
        }
    }
    drop(child);
    let secs = started.elapsed().as_secs_f64();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("the child failed (wait status {status:#x})");
    }
    // Linux reports ru_maxrss in KiB.
    Ok((usage.ru_maxrss.max(0) as u64 * 1024, secs))
}

fn memory_row(quick: bool) -> Result<Row> {
    let target = Target::Below { value: 1.0 };
    let work = format!(
        "peak memory of `train-all{}`",
        if quick { " --quick" } else { "" }
    );
    #[cfg(target_os = "linux")]
    {
        let exe = std::env::current_exe().context("finding the xtask binary")?;
        let dir = tempfile::tempdir().context("creating a temporary folder")?;
        let mut cmd = Command::new(exe);
        cmd.arg("train-all")
            .arg("--out")
            .arg(dir.path().join("runs"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if quick {
            cmd.arg("--quick");
        }
        tracing::info!(
            "bench: running train-all{} as a child",
            if quick { " --quick" } else { "" }
        );
        let (bytes, secs) = peak_rss(&mut cmd).context("measuring train-all's peak memory")?;
        Ok(Row {
            work,
            unit: Unit::Gib,
            ours: Samples::new(vec![bytes as f64 / (1u64 << 30) as f64]),
            peer: None,
            target,
            note: format!(
                "maximum resident set size of the child process (`wait4`), one run of {secs:.0} s \
                 (training, evaluation, pictures and report)"
            ),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = quick;
        Ok(Row {
            work,
            unit: Unit::Gib,
            ours: Samples::default(),
            peer: None,
            target,
            note: "not measured: the peak-memory row reads `wait4` and runs on Linux only".into(),
        })
    }
}

// ---------------------------------------------------------------- the bench

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// One training row pair (ours against each peer), alternating for `rounds`.
fn training_rows(
    kind: ModelKind,
    work: &str,
    peer_scripts: &[(&PeerScript, f64)],
    ctx: &Ctx<'_>,
) -> Result<Vec<Row>> {
    let mut ours = Vec::new();
    let mut theirs: Vec<std::result::Result<Vec<f64>, String>> =
        peer_scripts.iter().map(|_| Ok(Vec::new())).collect();
    for round in 0..ctx.rounds {
        tracing::info!("bench: {kind}, round {}/{}: ours", round + 1, ctx.rounds);
        ours.extend(our_epochs(kind, ctx.split, ctx.data, ctx.epochs)?);
        for ((script, _), acc) in peer_scripts.iter().zip(theirs.iter_mut()) {
            let (Ok(peers), Ok(v)) = (ctx.peers, acc.as_mut()) else {
                continue;
            };
            tracing::info!(
                "bench: {kind}, round {}/{}: {}",
                round + 1,
                ctx.rounds,
                script.name
            );
            match script.run(peers, ctx.epochs) {
                Ok(s) => v.extend(s),
                Err(e) => *acc = Err(e),
            }
        }
    }
    let slice = if ctx.quick {
        format!(" on the first {} training images", ctx.split.train.len())
    } else {
        String::new()
    };
    Ok(peer_scripts
        .iter()
        .zip(theirs)
        .map(|((script, target), result)| {
            let label = script.label(ctx.peers.as_ref().ok());
            let peer = match (ctx.peers, result) {
                (Err(why), _) => PeerSide::missing(&label, why.clone()),
                (Ok(_), Err(why)) => PeerSide::missing(&label, why),
                (Ok(_), Ok(v)) => PeerSide::measured(&label, v),
            };
            Row {
                work: work.to_string(),
                unit: Unit::Seconds,
                ours: Samples::new(ours.clone()),
                peer: Some(peer),
                target: Target::RatioAtLeast { ratio: *target },
                note: format!(
                    "training-loop seconds per epoch{slice} (no evaluation or checkpoint), \
                     {kept} of every {}-epoch run; ours in-process (`ae_train::train_on`, \
                     default config), the peer `{}`, alternately",
                    ctx.epochs,
                    peer_command(script),
                    kept = if ctx.epochs == 2 {
                        "epoch 2".to_string()
                    } else {
                        format!("epochs 2-{}", ctx.epochs)
                    },
                ),
            }
        })
        .collect())
}

/// How a peer script is run, for the notes: `EPOCHS=N python torch_seed.py`.
fn peer_command(script: &PeerScript) -> String {
    let args: Vec<String> = script
        .args
        .iter()
        .map(|a| a.replace("{epochs}", "N"))
        .collect();
    if args.is_empty() {
        format!("EPOCHS=N python {}", script.script)
    } else {
        format!("python {} {}", script.script, args.join(" "))
    }
}

struct Ctx<'a> {
    split: &'a Split,
    data: &'a DataConfig,
    peers: &'a std::result::Result<Peers, String>,
    rounds: usize,
    epochs: usize,
    quick: bool,
}

fn inference_rows(ctx: &Ctx<'_>, reps: usize) -> Result<Vec<Row>> {
    let kinds = [ModelKind::Vanilla, ModelKind::Conv, ModelKind::Vae];
    let models = kinds
        .iter()
        .map(|&k| our_model(k))
        .collect::<Result<Vec<_>>>()?;
    let mut ours: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut theirs: std::result::Result<BTreeMap<(String, String), Vec<f64>>, String> =
        Ok(BTreeMap::new());
    let script = repo_root().join("xtask/peers/torch_infer.py");
    let test = &ctx.split.test;
    for round in 0..ctx.rounds {
        tracing::info!("bench: inference, round {}/{}: ours", round + 1, ctx.rounds);
        for (k, m) in kinds.iter().zip(&models) {
            for (op, v) in our_inference(m.as_ref(), test, reps)? {
                ours.entry((k.to_string(), op.to_string()))
                    .or_default()
                    .extend(v);
            }
        }
        if let (Ok(peers), Ok(acc)) = (ctx.peers, theirs.as_mut()) {
            tracing::info!(
                "bench: inference, round {}/{}: PyTorch",
                round + 1,
                ctx.rounds
            );
            let args = [
                "--variants".to_string(),
                kinds.map(|k| k.to_string()).join(","),
                "--reps".into(),
                reps.to_string(),
                "--batch".into(),
                INFER_BATCH.to_string(),
                "--limit".into(),
                test.len().to_string(),
            ];
            let run = if peers.versions.contains_key("torch") {
                run_python(
                    &peers.python,
                    &script,
                    &args,
                    &[("MNIST_DIR", peers.mnist_dir.display().to_string())],
                    &repo_root(),
                )
            } else {
                Err(format!("{} has no `torch`", peers.python.display()))
            };
            match run {
                Ok(stdout) => {
                    for (key, v) in parse_infer_lines(&stdout) {
                        acc.entry(key).or_default().extend(v);
                    }
                }
                Err(e) => theirs = Err(e),
            }
        }
    }
    let label = TORCH_SEED.label(ctx.peers.as_ref().ok());
    let mut rows = Vec::new();
    for k in kinds {
        for op in ["encode", "reconstruct"] {
            let key = (k.to_string(), op.to_string());
            let peer = match (ctx.peers, &theirs) {
                (Err(why), _) => PeerSide::missing(&label, why.clone()),
                (Ok(_), Err(why)) => PeerSide::missing(&label, why.clone()),
                (Ok(_), Ok(map)) => match map.get(&key) {
                    Some(v) if !v.is_empty() => PeerSide::measured(&label, v.clone()),
                    _ => PeerSide::missing(&label, format!("no `infer {k} {op}` line")),
                },
            };
            rows.push(Row {
                work: format!("{k} {op}, {} test images, batch {INFER_BATCH}", test.len()),
                unit: Unit::Seconds,
                ours: Samples::new(ours.get(&key).cloned().unwrap_or_default()),
                peer: Some(peer),
                target: Target::RatioAtLeast { ratio: 1.0 },
                note: format!(
                    "seconds per pass over the test images (seeded weights; batches made \
                     before timing; one warm-up pass), {reps} passes per round, against \
                     `python xtask/peers/torch_infer.py` (the same models, torch.no_grad), \
                     alternately"
                ),
            });
        }
    }
    Ok(rows)
}

/// Runs the bench, writes `bench.md` and `bench.json` into `args.out`, returns the markdown.
pub fn run(args: &BenchArgs) -> Result<String> {
    let rounds = if args.quick { 1 } else { args.rounds };
    let epochs = if args.quick { 2 } else { args.epochs };
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if epochs < 2 {
        bail!("--epochs must be at least 2 (the first epoch of every run is dropped)");
    }
    if args.infer_reps == 0 {
        bail!("--infer-reps must be at least 1");
    }
    let load_start = load_average();
    let mut data = DataConfig::default();
    if args.quick {
        data.train_limit = Some(QUICK_TRAIN);
        data.test_limit = Some(QUICK_TEST);
    }
    let work = args.only.clone().unwrap_or_else(|| ALL_WORK.to_vec());
    let train_images = data
        .resolve(DataFile::TrainImages)?
        .context("no MNIST training images (data/mnist)")?;
    let mnist_dir = train_images
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // Every row but IDX reading trains or runs models on MNIST and has a peer.
    let (split, peers) = if work.iter().any(|w| *w != Work::Idx) {
        let peers = peers(args, &mnist_dir);
        if let Err(why) = &peers {
            tracing::info!("bench: peers {why}");
        }
        (Some(data.load().context("loading MNIST")?), peers)
    } else {
        (None, Err("no peer rows".to_string()))
    };
    let mut rows = Vec::new();
    for w in &work {
        let ctx = split.as_ref().map(|split| Ctx {
            split,
            data: &data,
            peers: &peers,
            rounds,
            epochs,
            quick: args.quick,
        });
        let ctx = || ctx.as_ref().context("MNIST was not loaded");
        match w {
            Work::Dense => rows.extend(training_rows(
                ModelKind::Vanilla,
                "dense 784-128-64-32 training epoch, batch 256",
                &[(&TORCH_SEED, 2.0), (&JAX_SEED, 1.3)],
                ctx()?,
            )?),
            Work::Vae => rows.extend(training_rows(
                ModelKind::Vae,
                "VAE 784-400-20 training epoch, batch 128",
                &[(&TORCH_VAE, 1.5)],
                ctx()?,
            )?),
            Work::Conv => rows.extend(training_rows(
                ModelKind::Conv,
                "conv AE training epoch, batch 128",
                &[(&TORCH_CONV, 1.0)],
                ctx()?,
            )?),
            Work::Infer => {
                let reps = if args.quick { 1 } else { args.infer_reps };
                rows.extend(inference_rows(ctx()?, reps)?)
            }
            Work::Idx => {
                tracing::info!("bench: IDX reading");
                let reps = if args.quick { 2 } else { 5 * rounds };
                let (v, bytes) = idx_throughput(&train_images, reps)?;
                rows.push(Row {
                    work: "reading uncompressed IDX".into(),
                    unit: Unit::GbPerSec,
                    ours: Samples::new(v),
                    peer: None,
                    target: Target::AtLeast { value: 1.0 },
                    note: format!(
                        "`ae_data::read_idx` of the training images \
                         ({bytes} bytes, decompressed into a temporary folder, so from the page \
                         cache), {reps} reads"
                    ),
                });
            }
        }
    }
    if args.memory {
        rows.push(memory_row(args.quick)?);
    }
    let report = Report {
        command: format!(
            "cargo xtask {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        stat: args.stat,
        rounds,
        epochs,
        quick: args.quick,
        machine: Machine {
            cpu: cpu_name(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_start,
            load_end: load_average(),
        },
        rows,
    };
    let md = render_markdown(&report);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    ae_train::checkpoint::write_atomic(&args.out.join("bench.md"), md.as_bytes())?;
    let json = to_json(&report)?;
    ae_train::checkpoint::write_atomic(&args.out.join("bench.json"), json.as_bytes())?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_lines_of_every_peer_script_parse() {
        let torch = "epoch 0 train_loss 0.2345 val_loss 0.1500 time 2.31s threads 2\n\
                     epoch 1 train_loss 0.1400 val_loss 0.1300 time 1.87s threads 2\n";
        assert_eq!(parse_epoch_times(torch), vec![(0, 2.31), (1, 1.87)]);
        let jax = "epoch 0 val_loss 0.1612 time 3.90s\nepoch 1 val_loss 0.1302 time 1.21s\n";
        assert_eq!(peer_epoch_seconds(jax), Ok(vec![1.21]));
        let variants = "WARNING: something\nconv epoch 0 test_loss 0.0900 time 38.20s\n\
                        conv epoch 1 test_loss 0.0800 time 37.10s\n\
                        conv epoch 2 test_loss 0.0790 time 36.90s\n";
        assert_eq!(peer_epoch_seconds(variants), Ok(vec![37.10, 36.90]));
        let keras = "epoch 3 train_loss 0.1 val_loss 0.1 time 2.00s\nfinal test_mse 0.01195\n";
        assert_eq!(parse_epoch_times(keras), vec![(3, 2.0)]);
    }

    #[test]
    fn malformed_or_missing_epoch_lines_are_reported() {
        assert!(parse_epoch_times("epoch x time 1.0s\nepoch 1 time fast\nepoch 2\n").is_empty());
        assert!(parse_epoch_times("epoch 1 time -1.0s\nepoch 2 time NaNs\n").is_empty());
        assert!(peer_epoch_seconds("Traceback ...\n").is_err());
        let only_first = peer_epoch_seconds("epoch 0 val_loss 0.2 time 4.00s\n");
        assert!(only_first.is_err_and(|e| e.contains("only epoch 0")));
    }

    #[test]
    fn inference_lines_parse_by_variant_and_op() {
        let out = "torch 2.5.1 threads 2\n\
                   infer vanilla encode rep 0 seconds 0.011941\n\
                   infer vanilla encode rep 1 seconds 0.012031\n\
                   infer conv reconstruct rep 0 seconds 5.298311\n\
                   infer conv reconstruct rep x seconds bad\n\
                   infer vae encode rep 0 seconds\n";
        let m = parse_infer_lines(out);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[&("vanilla".into(), "encode".into())],
            vec![0.011941, 0.012031]
        );
        assert_eq!(m[&("conv".into(), "reconstruct".into())], vec![5.298311]);
    }

    #[test]
    fn our_default_runs_are_the_peers_models_and_batch_sizes() {
        for (kind, batch) in [
            (ModelKind::Vanilla, 256),
            (ModelKind::Vae, 128),
            (ModelKind::Conv, 128),
        ] {
            let cfg = our_config(kind, &DataConfig::default()).unwrap();
            assert_eq!(cfg.train.batch_size, batch, "{kind}");
        }
        assert!(our_config(ModelKind::Sparse, &DataConfig::default()).is_err());
        // 784-128-64-32-64-128-784 has 222,384 parameters (README); 784-400-20 has 652,824.
        let count = |kind| {
            let cfg = peer_model(kind).unwrap();
            let (_, varmap) =
                seeded_model(&cfg, &Device::Cpu, &mut ae_data::rng::seeded(0)).unwrap();
            varmap
                .all_vars()
                .iter()
                .map(|v| v.elem_count())
                .sum::<usize>()
        };
        assert_eq!(count(ModelKind::Vanilla), 222_384);
        assert_eq!(count(ModelKind::Vae), 652_824);
    }

    #[test]
    fn statistics() {
        let s = Samples::new(vec![3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!(s.median(), Some(2.0));
        assert_eq!(s.best(false), Some(1.0));
        assert_eq!(s.best(true), Some(3.0));
        assert_eq!(Samples::new(vec![4.0, 1.0, 2.0, 3.0]).median(), Some(2.5));
        assert_eq!(Samples::default().median(), None);
    }

    fn time_row(ours: Vec<f64>, peer: Option<Vec<f64>>, target: f64) -> Row {
        Row {
            work: "w".into(),
            unit: Unit::Seconds,
            ours: Samples::new(ours),
            peer: Some(match peer {
                Some(v) => PeerSide::measured("PyTorch 2.5", v),
                None => PeerSide::missing("PyTorch", "not run (--no-peers)"),
            }),
            target: Target::RatioAtLeast { ratio: target },
            note: String::new(),
        }
    }

    #[test]
    fn ratio_is_peer_time_over_ours_and_the_verdict_follows_the_target() {
        let r = time_row(vec![1.0, 1.2, 0.8], Some(vec![2.2, 2.0, 2.6]), 2.0);
        let o = r.outcome(Stat::Median);
        assert_eq!((o.ours, o.peer), (Some(1.0), Some(2.2)));
        assert!((o.ratio.unwrap() - 2.2).abs() < 1e-12);
        assert_eq!(o.met, Some(true));
        let o = r.outcome(Stat::Min);
        assert!((o.ratio.unwrap() - 2.5).abs() < 1e-12);
        // Slower than the target.
        let r = time_row(vec![1.5], Some(vec![2.0]), 2.0);
        assert_eq!(r.outcome(Stat::Median).met, Some(false));
        // No peer: no ratio, no verdict.
        let r = time_row(vec![1.5], None, 2.0);
        let o = r.outcome(Stat::Median);
        assert_eq!((o.ratio, o.met), (None, None));
    }

    #[test]
    fn throughput_and_memory_targets() {
        let mut r = time_row(vec![0.8, 1.4, 1.2], None, 1.0);
        r.peer = None;
        r.unit = Unit::GbPerSec;
        r.target = Target::AtLeast { value: 1.0 };
        assert_eq!(r.outcome(Stat::Median).met, Some(true));
        assert_eq!(r.outcome(Stat::Min).ours, Some(1.4));
        r.ours = Samples::new(vec![0.5]);
        assert_eq!(r.outcome(Stat::Median).met, Some(false));
        r.unit = Unit::Gib;
        r.target = Target::Below { value: 1.0 };
        assert_eq!(r.outcome(Stat::Median).met, Some(true));
        r.ours = Samples::new(vec![1.0]);
        assert_eq!(r.outcome(Stat::Median).met, Some(false));
    }

    #[test]
    fn the_table_has_a_row_per_measurement_with_ratio_target_and_why_a_peer_is_missing() {
        let report = Report {
            command: "cargo xtask bench".into(),
            stat: Stat::Median,
            rounds: 3,
            epochs: 3,
            quick: false,
            machine: Machine {
                cpu: "Test CPU".into(),
                threads: 2,
                load_start: Some(0.5),
                load_end: None,
            },
            rows: vec![
                time_row(vec![1.0], Some(vec![2.5]), 2.0),
                time_row(vec![0.012], None, 1.0),
            ],
        };
        let md = render_markdown(&report);
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| w |")).collect();
        assert_eq!(lines.len(), 2, "{md}");
        assert_eq!(
            lines[0],
            "| w | 1.00 s | PyTorch 2.5 | 2.50 s | 2.50x | >= 2x | yes |"
        );
        assert_eq!(
            lines[1],
            "| w | 12.0 ms | PyTorch | missing: not run (--no-peers) | - | >= 1x | ? |"
        );
        assert!(md.contains("Test CPU, 2 threads; load average 0.50 at the start, ? at the end"));
        assert!(md.contains("Ratio = peer time / our time"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_the_childs_own_high_water_mark() {
        // A shell holding a 64 MB string peaks above 64 MB; a bare shell far below.
        let mut big = Command::new("sh");
        big.args([
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null",
        ]);
        let (bytes, secs) = peak_rss(&mut big).unwrap();
        assert!(bytes > 64_000_000, "{bytes}");
        assert!(secs > 0.0);
        let (small, _) = peak_rss(Command::new("sh").args(["-c", "exit 0"])).unwrap();
        assert!(small > 0 && small < 32_000_000, "{small}");
        let failed = peak_rss(Command::new("sh").args(["-c", "exit 3"]));
        assert!(failed.is_err_and(|e| e.to_string().contains("failed")));
    }

    #[cfg(unix)]
    #[test]
    fn a_peer_script_runs_with_the_epochs_and_data_in_its_environment() {
        // `sh` stands in for python (so no freshly written file is executed):
        // the fake torch_variants.py prints an epoch line per EPOCHS, with MNIST_DIR in it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("torch_variants.py"),
            "for e in $(seq 0 $((EPOCHS - 1))); do \
             echo \"$1 epoch $e data $MNIST_DIR time 1.5${e}s\"; done\n",
        )
        .unwrap();
        let peers = Peers {
            python: PathBuf::from("sh"),
            anchors: Ok(dir.path().to_path_buf()),
            mnist_dir: PathBuf::from("/data/mnist"),
            versions: [("torch".to_string(), "2.5.1+cpu".to_string())].into(),
        };
        assert_eq!(TORCH_VAE.run(&peers, 3), Ok(vec![1.51, 1.52]));
        assert_eq!(TORCH_VAE.label(Some(&peers)), "PyTorch 2.5.1");
        let out = run_python(
            Path::new("sh"),
            &dir.path().join("torch_variants.py"),
            &["conv".into()],
            &[("EPOCHS", "1".into()), ("MNIST_DIR", "/d".into())],
            dir.path(),
        )
        .unwrap();
        assert_eq!(out.trim(), "conv epoch 0 data /d time 1.50s");
        // JAX is missing from this Python: the row says so.
        assert!(
            JAX_SEED
                .run(&peers, 3)
                .is_err_and(|e| e.contains("no `jax`"))
        );
        // A failing script: its last stderr line is the reason.
        std::fs::write(
            dir.path().join("torch_variants.py"),
            "echo 'ModuleNotFoundError: torch' >&2\nexit 1\n",
        )
        .unwrap();
        let err = TORCH_CONV.run(&peers, 3).unwrap_err();
        assert!(err.contains("ModuleNotFoundError: torch"), "{err}");
        // No python at all.
        let none = Peers {
            python: dir.path().join("no-such-python"),
            ..peers
        };
        assert!(
            TORCH_CONV
                .run(&none, 3)
                .is_err_and(|e| e.contains("cannot run"))
        );
    }
}
