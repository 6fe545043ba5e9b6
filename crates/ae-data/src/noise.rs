//! Input corruption for denoising autoencoders: Gaussian, salt-and-pepper, masking and
//! translation noise, drawn from `AeRng`.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng::AeRng;

/// A corruption applied to inputs in [0, 1]; results always stay in [0, 1].
///
/// JSON: `{"type": "none"}`, `{"type": "gaussian", "std": 0.4}`,
/// `{"type": "salt-pepper", "prob": 0.1}`, `{"type": "mask", "fraction": 0.3}`,
/// `{"type": "shift", "pixels": 2}`.
/// Text (CLI): `none`, `gaussian:0.4`, `salt-pepper:0.1`, `mask:0.3`, `shift:2`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Noise {
    /// No corruption.
    #[default]
    None,
    /// `x + std * N(0, 1)`, clipped to [0, 1] (the keras.io denoising recipe uses std 0.4).
    Gaussian {
        /// Standard deviation (finite, >= 0).
        std: f32,
    },
    /// Each pixel, with probability `prob`, becomes 0 or 1 (half each).
    SaltPepper {
        /// Probability a pixel is replaced, in [0, 1].
        prob: f32,
    },
    /// Each pixel, with probability `fraction`, becomes 0.
    Mask {
        /// Probability a pixel is dropped, in [0, 1].
        fraction: f32,
    },
    /// Each image is translated by `(dy, dx)`, each drawn uniformly from
    /// `-pixels..=pixels`; the pixels it uncovers become 0. A denoising model
    /// trained on it learns to put the digit back in place, so its code has to
    /// ignore small translations.
    Shift {
        /// Largest translation along each axis, in pixels (at most 1000).
        pixels: u32,
    },
}

impl Noise {
    /// Checks the parameter: `std` finite and >= 0, `prob`/`fraction` in [0, 1].
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
            Noise::Shift { pixels } if pixels <= 1000 => Ok(()),
            Noise::Shift { pixels } => Err(DataError::InvalidNoise(format!(
                "shift must be at most 1000 pixels, got {pixels}"
            ))),
        }
    }

    /// Whether this is [`Noise::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Noise::None)
    }

    /// Corrupts `x` in place: whole images of `image` = `[channels, height,
    /// width]`, row-major (a trailing partial image is left as it is).
    ///
    /// Draws are consumed from `rng` in pixel order (one normal per pixel for
    /// Gaussian; one uniform per pixel, plus one bit per replaced pixel, for
    /// salt-and-pepper; one uniform per pixel for masking) or image order (`dy`
    /// then `dx` per image for shifts), so a given seed always gives the same
    /// result. Outputs are clamped to [0, 1] (NaN becomes 0), whatever the
    /// parameters.
    pub fn apply(&self, x: &mut [f32], image: [usize; 3], rng: &mut AeRng) {
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
            Noise::Shift { pixels } => shift_images(x, image, i64::from(pixels), rng),
        }
    }
}

/// Translates each image of `x` by a random `(dy, dx)` in `[-p, p]²` (see [`Noise::Shift`]).
fn shift_images(x: &mut [f32], [c, h, w]: [usize; 3], p: i64, rng: &mut AeRng) {
    let len = c * h * w;
    if len == 0 {
        return;
    }
    let mut src = vec![0f32; len];
    for img in x.chunks_exact_mut(len) {
        let dy = rng.random_range(-p..=p);
        let dx = rng.random_range(-p..=p);
        src.copy_from_slice(img);
        for (plane_out, plane_in) in img.chunks_exact_mut(h * w).zip(src.chunks_exact(h * w)) {
            for (y, row) in plane_out.chunks_exact_mut(w).enumerate() {
                let sy = y as i64 - dy;
                if sy < 0 || sy >= h as i64 {
                    row.fill(0.0);
                    continue;
                }
                let from = &plane_in[sy as usize * w..(sy as usize + 1) * w];
                for (xo, v) in row.iter_mut().enumerate() {
                    let sx = xo as i64 - dx;
                    *v = if sx < 0 || sx >= w as i64 {
                        0.0
                    } else {
                        clip(from[sx as usize])
                    };
                }
            }
        }
    }
}

/// Clamp to [0, 1]; NaN → 0.
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
            Noise::Shift { pixels } => write!(f, "shift:{pixels}"),
        }
    }
}

impl FromStr for Noise {
    type Err = DataError;

    /// Parses `none`, `gaussian:STD`, `salt-pepper:PROB` (also `salt_pepper`,
    /// `saltpepper`), `mask:FRACTION` or `shift:PIXELS`, and validates the parameter.
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
            "shift" => {
                let a = arg.ok_or_else(|| {
                    DataError::InvalidNoise(format!("{s:?}: expected shift:<pixels>"))
                })?;
                Noise::Shift {
                    pixels: a.parse::<u32>().map_err(|e| {
                        DataError::InvalidNoise(format!(
                            "{s:?}: pixels {a:?} is not a whole number: {e}"
                        ))
                    })?,
                }
            }
            _ => {
                return Err(DataError::InvalidNoise(format!(
                    "{s:?}: expected none, gaussian:STD, salt-pepper:PROB, mask:FRACTION or shift:PIXELS"
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
            Noise::Shift { pixels: 2 },
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
            "shift",
            "shift:1.5",
            "shift:-1",
            "shift:1001",
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
        Noise::None.apply(&mut x, [1, 1, 1], &mut rng);
        assert_eq!(x, vec![0.3; 10]);
        assert_eq!(rng.get_word_pos(), 0);
    }

    #[test]
    fn salt_pepper_sets_extremes() {
        let mut x = vec![0.5; 10_000];
        Noise::SaltPepper { prob: 0.2 }.apply(&mut x, [1, 1, 1], &mut seeded(3));
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
        Noise::Gaussian { std: 0.4 }.apply(&mut x, [1, 1, 1], &mut seeded(4));
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(x.contains(&0.0) && x.contains(&1.0));
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn unvalidated_parameters_still_clip() {
        let mut x = vec![0.5; 100];
        Noise::Gaussian { std: f32::NAN }.apply(&mut x, [1, 1, 1], &mut seeded(5));
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn shift_moves_whole_images_and_fills_with_zeros() {
        // Two 1x3x4 images with distinct values; a shift of at most 1 pixel.
        let orig: Vec<f32> = (0..24).map(|v| v as f32 / 24.0).collect();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let mut x = orig.clone();
            Noise::Shift { pixels: 1 }.apply(&mut x, [1, 3, 4], &mut seeded(seed));
            for (img, src) in x.chunks(12).zip(orig.chunks(12)) {
                // Find the (dy, dx) that explains the result; it must exist.
                let fit = (-1i64..=1)
                    .flat_map(|dy| (-1i64..=1).map(move |dx| (dy, dx)))
                    .find(|&(dy, dx)| {
                        (0..3i64).all(|y| {
                            (0..4i64).all(|xx| {
                                let (sy, sx) = (y - dy, xx - dx);
                                let want = if (0..3).contains(&sy) && (0..4).contains(&sx) {
                                    src[(sy * 4 + sx) as usize]
                                } else {
                                    0.0
                                };
                                img[(y * 4 + xx) as usize] == want
                            })
                        })
                    });
                let fit = fit.unwrap_or_else(|| panic!("seed {seed}: not a shift: {img:?}"));
                seen.insert(fit);
            }
        }
        assert_eq!(seen.len(), 9, "all nine shifts occur: {seen:?}");
        // Same seed, same result; shift 0 changes nothing.
        let (mut a, mut b, mut c) = (orig.clone(), orig.clone(), orig.clone());
        Noise::Shift { pixels: 2 }.apply(&mut a, [2, 3, 2], &mut seeded(5));
        Noise::Shift { pixels: 2 }.apply(&mut b, [2, 3, 2], &mut seeded(5));
        Noise::Shift { pixels: 0 }.apply(&mut c, [1, 3, 4], &mut seeded(5));
        assert_eq!(a, b);
        assert_eq!(c, orig);
    }
}
