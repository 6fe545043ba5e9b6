//! Learning-rate schedules: a pure function of the step, so a resumed run
//! follows the same rates, parsed from and printed as the CLI's `--schedule` text.
//!
//! The epoch-wise schedules (`constant`, `step`, `exp`, `cosine`) hold one rate
//! for a whole epoch, as they always have. The step-wise ones (`warmup`,
//! `warmup-cosine`, `onecycle`) change the rate after every batch, since a
//! warm-up of a fraction of an epoch or a one-cycle over ten epochs needs a finer
//! grain than the epoch.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// How the learning rate changes during a run; `base` (the config's `lr`) is the
/// rate of `constant` and the peak of the others.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same rate every epoch.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// Cosine annealing from the base rate down to `min_lr` at the last epoch.
    Cosine {
        /// The rate reached at the last epoch.
        min_lr: f64,
    },
    /// Linear warm-up over the first `warmup` fraction of the steps (from
    /// `base / steps` up to `base`), then the base rate.
    Warmup {
        /// Fraction of all steps spent warming up, in [0, 1).
        warmup: f64,
    },
    /// Linear warm-up over the first `warmup` fraction of the steps, then a
    /// cosine from the base rate down to `min_lr` at the last step.
    WarmupCosine {
        /// Fraction of all steps spent warming up, in [0, 1).
        warmup: f64,
        /// The rate of the last step.
        min_lr: f64,
    },
    /// One-cycle (Smith & Topin; PyTorch's `OneCycleLR` with cosine phases):
    /// from `base / div` up to `base` over the first `pct_start` of the steps,
    /// then down to `base / (div * final_div)` at the last step.
    OneCycle {
        /// Fraction of the steps spent rising, in (0, 1).
        pct_start: f64,
        /// The first rate is `base / div`.
        div: f64,
        /// The last rate is `base / (div * final_div)`.
        final_div: f64,
    },
}

/// PyTorch's `OneCycleLR` defaults.
const ONECYCLE_PCT: f64 = 0.3;
const ONECYCLE_DIV: f64 = 25.0;
const ONECYCLE_FINAL_DIV: f64 = 1e4;

/// From `a` at `x = 0` to `b` at `x = 1` along half a cosine.
fn cos_between(a: f64, b: f64, x: f64) -> f64 {
    b + 0.5 * (a - b) * (1.0 + (PI * x.clamp(0.0, 1.0)).cos())
}

impl LrSchedule {
    /// One-cycle with PyTorch's defaults (30% rising, from base/25, ending at base/25e4).
    pub fn one_cycle() -> Self {
        LrSchedule::OneCycle {
            pct_start: ONECYCLE_PCT,
            div: ONECYCLE_DIV,
            final_div: ONECYCLE_FINAL_DIV,
        }
    }

    /// True for the schedules that change the rate after every batch.
    pub fn is_stepwise(&self) -> bool {
        matches!(
            self,
            LrSchedule::Warmup { .. }
                | LrSchedule::WarmupCosine { .. }
                | LrSchedule::OneCycle { .. }
        )
    }

    /// The learning rate of epoch `epoch` (0-based) out of `epochs`: for the
    /// step-wise schedules, the rate of the epoch's first step when an epoch
    /// has one step (use [`LrSchedule::lr_at`] in a training loop).
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        self.lr_at(base, epoch, 1, epochs)
    }

    /// The learning rate of step `step` (0-based, counted over the whole run)
    /// of a run of `epochs` epochs of `steps_per_epoch` steps each.
    pub fn lr_at(&self, base: f64, step: usize, steps_per_epoch: usize, epochs: usize) -> f64 {
        let per = steps_per_epoch.max(1);
        let epoch = step / per;
        let total = (per * epochs).max(1);
        // Where the step lies in the run: 0 at the first step, 1 at the last.
        let frac = |s: usize, n: usize| {
            if n <= 1 {
                1.0
            } else {
                s as f64 / (n - 1) as f64
            }
        };
        // Steps of a linear warm-up covering the fraction `w` of the run.
        // (less a hair, so that 0.3 * 10 = 3.0000000000000004 counts as 3 steps)
        let warm_steps = |w: f64| (w * total as f64 - 1e-9).ceil().max(0.0) as usize;
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            LrSchedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            LrSchedule::Cosine { min_lr } => {
                let t = if epochs <= 1 {
                    0.0
                } else {
                    frac(epoch, epochs)
                };
                cos_between(base, min_lr, t)
            }
            LrSchedule::Warmup { warmup } => {
                let w = warm_steps(warmup);
                if step < w {
                    base * (step + 1) as f64 / w as f64
                } else {
                    base
                }
            }
            LrSchedule::WarmupCosine { warmup, min_lr } => {
                let w = warm_steps(warmup);
                if step < w {
                    base * (step + 1) as f64 / w as f64
                } else {
                    cos_between(base, min_lr, frac(step - w + 1, total - w + 1))
                }
            }
            LrSchedule::OneCycle {
                pct_start,
                div,
                final_div,
            } => {
                let start = base / div;
                let end = start / final_div;
                // PyTorch: the peak is at step pct_start * total - 1, the end at total - 1.
                let peak = ((pct_start * total as f64) - 1.0).max(0.0);
                let s = step as f64;
                if s <= peak && peak > 0.0 {
                    cos_between(start, base, s / peak)
                } else {
                    let down = (total as f64 - 1.0 - peak).max(1.0);
                    cos_between(base, end, (s - peak) / down)
                }
            }
        }
    }

    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        let fraction = |w: f64| (0.0..1.0).contains(&w);
        let rate = |r: f64| r >= 0.0 && r.is_finite();
        let open_fraction = |w: f64| w > 0.0 && w < 1.0;
        let factor = |x: f64| x >= 1.0 && x.is_finite();
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { every, gamma }
                if every == 0 || !(gamma > 0.0 && gamma.is_finite()) =>
            {
                bad(format!(
                    "step schedule needs every >= 1 and gamma > 0, got every {every}, gamma {gamma}"
                ))
            }
            LrSchedule::Exponential { gamma } if !(gamma > 0.0 && gamma.is_finite()) => {
                bad(format!("exponential schedule needs gamma > 0, got {gamma}"))
            }
            LrSchedule::Cosine { min_lr } if !rate(min_lr) => {
                bad(format!("cosine schedule needs min_lr >= 0, got {min_lr}"))
            }
            LrSchedule::Warmup { warmup } if !fraction(warmup) => bad(format!(
                "warmup schedule needs a warm-up fraction in [0, 1), got {warmup}"
            )),
            LrSchedule::WarmupCosine { warmup, min_lr } if !fraction(warmup) || !rate(min_lr) => {
                bad(format!(
                    "warmup-cosine schedule needs a warm-up fraction in [0, 1) and min_lr >= 0, got {warmup} and {min_lr}"
                ))
            }
            LrSchedule::OneCycle {
                pct_start,
                div,
                final_div,
            } if !open_fraction(pct_start) || !factor(div) || !factor(final_div) => bad(format!(
                "onecycle schedule needs a rising fraction in (0, 1), div >= 1 and final_div >= 1, got {pct_start}, {div} and {final_div}"
            )),
            _ => Ok(()),
        }
    }

    /// The schedule in words, with `base` as its rate or peak, for summaries
    /// (e.g. "one-cycle, peak lr 3e-3").
    pub fn describe(&self, base: f64) -> String {
        let pct = |w: f64| format!("{:.0}%", 100.0 * w);
        match *self {
            LrSchedule::Constant => format!("constant lr {}", sci(base)),
            LrSchedule::Step { every, gamma } => {
                format!("lr {} times {gamma} every {every} epochs", sci(base))
            }
            LrSchedule::Exponential { gamma } => {
                format!("lr {} times {gamma} every epoch", sci(base))
            }
            LrSchedule::Cosine { min_lr } => {
                format!("cosine from lr {} to {}", sci(base), sci(min_lr))
            }
            LrSchedule::Warmup { warmup } => {
                format!("{} linear warm-up to lr {}", pct(warmup), sci(base))
            }
            LrSchedule::WarmupCosine { warmup, min_lr } => format!(
                "{} linear warm-up to lr {}, cosine to {}",
                pct(warmup),
                sci(base),
                sci(min_lr)
            ),
            LrSchedule::OneCycle { pct_start, .. } => {
                format!("one-cycle, peak lr {} at {}", sci(base), pct(pct_start))
            }
        }
    }
}

/// `3e-3` rather than `0.003`.
fn sci(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let s = format!("{x:e}");
    // `{:e}` prints 3e-3 and 2.5e-4 already; keep at most three significant digits.
    match s.split_once('e') {
        Some((m, e)) if m.len() > 4 => format!("{:.2}e{e}", m.parse::<f64>().unwrap_or(0.0)),
        _ => s,
    }
}

/// The `--schedule` text of a schedule; [`LrSchedule::from_str`] reads it back.
impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LrSchedule::Constant => write!(f, "constant"),
            LrSchedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            LrSchedule::Exponential { gamma } => write!(f, "exp:{gamma}"),
            LrSchedule::Cosine { min_lr } => write!(f, "cosine:{min_lr}"),
            LrSchedule::Warmup { warmup } => write!(f, "warmup:{warmup}"),
            LrSchedule::WarmupCosine { warmup, min_lr } => {
                write!(f, "warmup-cosine:{warmup}:{min_lr}")
            }
            LrSchedule::OneCycle {
                pct_start,
                div,
                final_div,
            } => write!(f, "onecycle:{pct_start}:{div}:{final_div}"),
        }
    }
}

/// What `--schedule` accepts.
pub const SCHEDULE_FORMS: &str = "constant, step:EVERY:GAMMA, exp:GAMMA, cosine:MIN_LR, \
     warmup:FRACTION, warmup-cosine:FRACTION:MIN_LR, onecycle[:PCT_START[:DIV:FINAL_DIV]]";

impl FromStr for LrSchedule {
    type Err = TrainError;

    /// Parses the `--schedule` forms ([`SCHEDULE_FORMS`]) and checks the values.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: String| TrainError::InvalidConfig(format!("schedule '{s}': {m}"));
        let num = |x: &str| -> Result<f64> {
            x.parse::<f64>()
                .map_err(|_| bad(format!("'{x}' is not a number")))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let sched = match parts.as_slice() {
            ["constant"] => LrSchedule::Constant,
            ["step", every, gamma] => LrSchedule::Step {
                every: every
                    .parse()
                    .map_err(|_| bad(format!("'{every}' is not an epoch count")))?,
                gamma: num(gamma)?,
            },
            ["exp", gamma] => LrSchedule::Exponential { gamma: num(gamma)? },
            ["cosine", min_lr] => LrSchedule::Cosine {
                min_lr: num(min_lr)?,
            },
            ["warmup", w] => LrSchedule::Warmup { warmup: num(w)? },
            ["warmup-cosine", w, min_lr] => LrSchedule::WarmupCosine {
                warmup: num(w)?,
                min_lr: num(min_lr)?,
            },
            ["onecycle"] => LrSchedule::one_cycle(),
            ["onecycle", pct] => LrSchedule::OneCycle {
                pct_start: num(pct)?,
                div: ONECYCLE_DIV,
                final_div: ONECYCLE_FINAL_DIV,
            },
            ["onecycle", pct, div, final_div] => LrSchedule::OneCycle {
                pct_start: num(pct)?,
                div: num(div)?,
                final_div: num(final_div)?,
            },
            _ => return Err(bad(format!("expected one of {SCHEDULE_FORMS}"))),
        };
        match sched.validate() {
            Err(TrainError::InvalidConfig(m)) => Err(bad(m)),
            other => other.map(|()| sched),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn epochwise_schedules_hold_one_rate_per_epoch() {
        let s = LrSchedule::Step {
            every: 2,
            gamma: 0.5,
        };
        // 3 steps per epoch: steps 0-5 are epochs 0-1, steps 6-8 epoch 2.
        let rates: Vec<f64> = (0..9).map(|i| s.lr_at(1.0, i, 3, 3)).collect();
        assert_eq!(rates, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]);
        let c = LrSchedule::Cosine { min_lr: 0.0 };
        assert_eq!(c.lr_at(1.0, 2, 3, 3), 1.0);
        assert!(close(c.lr_at(1.0, 3, 3, 3), 0.5));
        assert!(c.lr_at(1.0, 8, 3, 3).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr_at(0.3, 77, 10, 10), 0.3);
    }

    #[test]
    fn warmup_rises_linearly_then_holds() {
        // 10 steps, 30% warm-up: 3 steps at 1/3, 2/3, 1, then 1.
        let s = LrSchedule::Warmup { warmup: 0.3 };
        let rates: Vec<f64> = (0..10).map(|i| s.lr_at(3.0, i, 5, 2)).collect();
        assert_eq!(rates[..4], [1.0, 2.0, 3.0, 3.0]);
        assert!(rates[3..].iter().all(|&r| r == 3.0));
        // No warm-up is the constant schedule.
        let none = LrSchedule::Warmup { warmup: 0.0 };
        assert!((0..10).all(|i| none.lr_at(3.0, i, 5, 2) == 3.0));
    }

    #[test]
    fn warmup_cosine_peaks_after_the_warmup_and_ends_at_min_lr() {
        let s = LrSchedule::WarmupCosine {
            warmup: 0.2,
            min_lr: 0.1,
        };
        // 10 steps: warm-up over steps 0-1 (0.5, 1.0), cosine over 2..=9 ending at 0.1.
        let rates: Vec<f64> = (0..10).map(|i| s.lr_at(1.0, i, 10, 1)).collect();
        assert!(close(rates[0], 0.5));
        assert!(close(rates[1], 1.0));
        assert!(close(rates[9], 0.1), "{rates:?}");
        assert!(rates[1..].windows(2).all(|w| w[1] < w[0]), "{rates:?}");
        assert!(rates[2] > 0.9);
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        // torch.optim.lr_scheduler.OneCycleLR(max_lr=1, total_steps=100) (pct 0.3,
        // div 25, final_div 1e4, cosine): rates of steps 0, 14, 29, 64, 99.
        let s = LrSchedule::one_cycle();
        let at = |i| s.lr_at(1.0, i, 20, 5);
        assert!(close(at(0), 0.04));
        assert!(close(at(14), 1.0 - 0.48 * (1.0 + (PI * 14.0 / 29.0).cos())));
        assert!(close(at(29), 1.0));
        let end = 0.04 / 1e4;
        assert!(close(
            at(64),
            end + 0.5 * (1.0 - end) * (1.0 + (PI * 35.0 / 70.0).cos())
        ));
        assert!(close(at(99), end));
        let rates: Vec<f64> = (0..100).map(at).collect();
        assert!(rates[..30].windows(2).all(|w| w[1] > w[0]));
        assert!(rates[29..].windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn text_forms_round_trip_and_old_forms_still_parse() {
        for s in [
            LrSchedule::Constant,
            LrSchedule::Step {
                every: 3,
                gamma: 0.5,
            },
            LrSchedule::Exponential { gamma: 0.9 },
            LrSchedule::Cosine { min_lr: 1e-5 },
            LrSchedule::Warmup { warmup: 0.05 },
            LrSchedule::WarmupCosine {
                warmup: 0.1,
                min_lr: 1e-5,
            },
            LrSchedule::one_cycle(),
            LrSchedule::OneCycle {
                pct_start: 0.25,
                div: 10.0,
                final_div: 100.0,
            },
        ] {
            assert_eq!(s.to_string().parse::<LrSchedule>().unwrap(), s, "{s}");
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), s);
        }
        assert_eq!(
            "cosine:0.00001".parse::<LrSchedule>().unwrap(),
            LrSchedule::Cosine { min_lr: 1e-5 }
        );
        assert_eq!(
            "onecycle:0.25".parse::<LrSchedule>().unwrap(),
            LrSchedule::OneCycle {
                pct_start: 0.25,
                div: 25.0,
                final_div: 1e4
            }
        );
        // The old JSON of config.json files still reads.
        let old: LrSchedule = serde_json::from_str(r#"{"type":"cosine","min_lr":0.0}"#).unwrap();
        assert_eq!(old, LrSchedule::Cosine { min_lr: 0.0 });
    }

    #[test]
    fn bad_text_and_values_are_clear_errors() {
        for (text, says) in [
            ("linear", "expected one of"),
            ("onecycle:x", "'x' is not a number"),
            ("onecycle:1.5", "rising fraction in (0, 1)"),
            ("onecycle:0.3:0.5:10", "div >= 1"),
            ("warmup:1", "warm-up fraction in [0, 1)"),
            ("warmup-cosine:0.1:-1", "min_lr >= 0"),
            ("step:0:0.5", "every >= 1"),
        ] {
            let err = text.parse::<LrSchedule>().unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn descriptions_name_the_recipe() {
        assert_eq!(
            LrSchedule::one_cycle().describe(3e-3),
            "one-cycle, peak lr 3e-3 at 30%"
        );
        assert_eq!(LrSchedule::Constant.describe(1e-3), "constant lr 1e-3");
        assert_eq!(
            LrSchedule::WarmupCosine {
                warmup: 0.05,
                min_lr: 0.0
            }
            .describe(2.5e-3),
            "5% linear warm-up to lr 2.5e-3, cosine to 0"
        );
    }
}
