//! Input corruption for denoising autoencoders: Gaussian, salt-and-pepper and masking noise, drawn from `AeRng`.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng::AeRng;

/// A corruption applied to inputs in [0,1]; results always stay in [0,1].
///
/// JSON: `{"type": "none"}`, `{"type": "gaussian", "std": 0.4}`,
/// `{"type": "salt-pepper", "prob": 0.1}`, `{"type": "mask", "fraction": 0.3}`.
/// Text (CLI): `none`, `gaussian:0.4`, `salt-pepper:0.1`, `mask:0.3`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Noise {
    /// No corruption.
    #[default]
    None,
    /// `x + std * N(0, 1)`, clipped to [0,1] (the keras.io denoising recipe uses std 0.4).
    Gaussian {
        /// Standard deviation (finite, >= 0).
        std: f32,
    },
    /// Each pixel, with probability `prob`, becomes 0 or 1 (half each).
    SaltPepper {
        /// Probability a pixel is replaced, in [0,1].
        prob: f32,
    },
    /// Each pixel, with probability `fraction`, becomes 0.
    Mask {
        /// Probability a pixel is dropped, in [0,1].
        fraction: f32,
    },
}

impl Noise {
    /// Checks the parameter: `std` finite and >= 0, `prob`/`fraction` in [0,1].
    pub fn validate(&self) -> Result<()> {
        match *self {
            Noise::None => Ok(()),
            Noise::Gaussian { std } if std.is_finite() && std >= 0.0 => Ok(()),
            Noise::Gaussian { std } => Err(DataError::InvalidNoise(format!(
                "gaussian std must be finite and >= 0, got {std}"
            ))),
            Noise::SaltPepper { prob } if (0.0..=1.0).contains(&prob) => Ok(()),
            Noise::SaltPepper { prob } => Err(DataError::InvalidNoise(format!(
                "salt-pepper prob must be in [0, 1], got {prob}"
            ))),
            Noise::Mask { fraction } if (0.0..=1.0).contains(&fraction) => Ok(()),
            Noise::Mask { fraction } => Err(DataError::InvalidNoise(format!(
                "mask fraction must be in [0, 1], got {fraction}"
            ))),
        }
    }

    /// Whether this is [`Noise::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Noise::None)
    }

    /// Corrupts `x` in place. Draws are consumed from `rng` in pixel order (one
    /// normal per pixel for Gaussian; one uniform per pixel, plus one bit per
    /// replaced pixel, for salt-and-pepper; one uniform per pixel for masking),
    /// so a given seed always gives the same result. Outputs are clamped to
    /// [0,1] (NaN becomes 0), whatever the parameters.
    pub fn apply(&self, x: &mut [f32], rng: &mut AeRng) {
        match *self {
            Noise::None => {}
            Noise::Gaussian { std } => {
                for v in x.iter_mut() {
                    let z: f32 = rng.sample(StandardNormal);
                    *v = clip(*v + std * z);
                }
            }
            Noise::SaltPepper { prob } => {
                for v in x.iter_mut() {
                    if rng.random::<f32>() < prob {
                        *v = if rng.random::<bool>() { 1.0 } else { 0.0 };
                    }
                }
            }
            Noise::Mask { fraction } => {
                for v in x.iter_mut() {
                    if rng.random::<f32>() < fraction {
                        *v = 0.0;
                    }
                }
            }
        }
    }
}

/// Clamp to [0,1]; NaN → 0.
fn clip(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

impl fmt::Display for Noise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Noise::None => f.write_str("none"),
            Noise::Gaussian { std } => write!(f, "gaussian:{std}"),
            Noise::SaltPepper { prob } => write!(f, "salt-pepper:{prob}"),
            Noise::Mask { fraction } => write!(f, "mask:{fraction}"),
        }
    }
}

impl FromStr for Noise {
    type Err = DataError;

    /// Parses `none`, `gaussian:STD`, `salt-pepper:PROB` (also `salt_pepper`,
    /// `saltpepper`) or `mask:FRACTION`, and validates the parameter.
    fn from_str(s: &str) -> Result<Noise> {
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k.trim().to_ascii_lowercase(), Some(a.trim())),
            None => (s.to_ascii_lowercase(), None),
        };
        let value = |what: &str| -> Result<f32> {
            let a = arg.ok_or_else(|| {
                DataError::InvalidNoise(format!("{s:?}: expected {kind}:<{what}>"))
            })?;
            a.parse::<f32>().map_err(|e| {
                DataError::InvalidNoise(format!("{s:?}: {what} {a:?} is not a number: {e}"))
            })
        };
        let noise = match kind.as_str() {
            "none" if arg.is_none() => Noise::None,
            "gaussian" => Noise::Gaussian { std: value("std")? },
            "salt-pepper" | "salt_pepper" | "saltpepper" => Noise::SaltPepper {
                prob: value("prob")?,
            },
            "mask" => Noise::Mask {
                fraction: value("fraction")?,
            },
            _ => {
                return Err(DataError::InvalidNoise(format!(
                    "{s:?}: expected none, gaussian:STD, salt-pepper:PROB or mask:FRACTION"
                )));
            }
        };
        noise.validate()?;
        Ok(noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn parse_display_roundtrip() {
        for n in [
            Noise::None,
            Noise::Gaussian { std: 0.4 },
            Noise::SaltPepper { prob: 0.1 },
            Noise::Mask { fraction: 0.3 },
        ] {
            assert_eq!(n.to_string().parse::<Noise>().unwrap(), n);
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(serde_json::from_str::<Noise>(&json).unwrap(), n);
        }
        assert_eq!(
            serde_json::to_string(&Noise::SaltPepper { prob: 0.5 }).unwrap(),
            r#"{"type":"salt-pepper","prob":0.5}"#
        );
        assert_eq!(
            "gaussian:0.4".parse::<Noise>().unwrap(),
            Noise::Gaussian { std: 0.4 }
        );
        for bad in [
            "gaussian",
            "gaussian:x",
            "gaussian:-1",
            "gaussian:inf",
            "mask:1.5",
            "salt-pepper:NaN",
            "blur:1",
            "none:1",
            "",
        ] {
            assert!(bad.parse::<Noise>().is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_rules() {
        assert!(Noise::Gaussian { std: f32::NAN }.validate().is_err());
        assert!(Noise::Mask { fraction: -0.1 }.validate().is_err());
        assert!(Noise::SaltPepper { prob: 1.0 }.validate().is_ok());
        assert!(Noise::default().is_none());
    }

    #[test]
    fn none_keeps_input_and_draws_nothing() {
        let mut rng = seeded(1);
        let mut x = vec![0.3; 10];
        Noise::None.apply(&mut x, &mut rng);
        assert_eq!(x, vec![0.3; 10]);
        assert_eq!(rng.get_word_pos(), 0);
    }

    #[test]
    fn salt_pepper_sets_extremes() {
        let mut x = vec![0.5; 10_000];
        Noise::SaltPepper { prob: 0.2 }.apply(&mut x, &mut seeded(3));
        let zeros = x.iter().filter(|&&v| v == 0.0).count();
        let ones = x.iter().filter(|&&v| v == 1.0).count();
        let kept = x.iter().filter(|&&v| v == 0.5).count();
        assert_eq!(zeros + ones + kept, x.len());
        assert!((1700..2300).contains(&(zeros + ones)), "{zeros} {ones}");
        assert!(zeros > 800 && ones > 800, "{zeros} {ones}");
    }

    #[test]
    fn gaussian_changes_and_clips() {
        let mut x = vec![0.5; 1000];
        Noise::Gaussian { std: 0.4 }.apply(&mut x, &mut seeded(4));
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(x.contains(&0.0) && x.contains(&1.0));
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn unvalidated_parameters_still_clip() {
        let mut x = vec![0.5; 100];
        Noise::Gaussian { std: f32::NAN }.apply(&mut x, &mut seeded(5));
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
