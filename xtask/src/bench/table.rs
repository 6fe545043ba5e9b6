//! The bench's table: rows of samples on both sides, their statistics and verdicts, and
//! `bench.md` / `bench.json`.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::Stat;

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
    pub(super) fn higher_is_better(self) -> bool {
        matches!(self, Unit::GbPerSec)
    }

    pub(super) fn format(self, v: f64) -> String {
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
    pub(super) fn describe(&self, unit: Unit) -> String {
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
    pub(super) fn new(values: Vec<f64>) -> Self {
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

    pub(super) fn stat(&self, stat: Stat, unit: Unit) -> Option<f64> {
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
    pub(super) fn measured(name: &str, samples: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            samples: Some(Samples::new(samples)),
            missing: None,
        }
    }

    pub(super) fn missing(name: &str, why: impl Into<String>) -> Self {
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
pub(super) struct RowSummary<'a> {
    work: &'a str,
    peer: Option<&'a str>,
    median: Outcome,
    min: Outcome,
}

/// `bench.json`: the report, and each row's statistics, ratio and verdict.
pub(super) fn to_json(r: &Report) -> Result<String> {
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
