//! How big a model is before it is built: parameter count and activation size
//! from the config alone, and the memory bound every config is checked against.
//!
//! A config (from flags or a hand-edited `config.json`) with `latent_dim`
//! 10^12 or `hidden` 10^9 would otherwise abort in a terabyte allocation. Every
//! `validate()` estimates the bytes the model needs (see [`Footprint::bytes`])
//! and refuses more than [`max_model_bytes`] with an error stating the estimate
//! and the limit. The limit is [`DEFAULT_MAX_MODEL_BYTES`] unless the program
//! raises it ([`set_max_model_bytes`]; the `ae` binary's `--max-model-bytes`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{ConvConfig, DenseConfig, ImageShape, ModelConfig, VaeArch, VaeConfig};
use crate::error::{Result, invalid};

/// The default bound on a model's estimated memory: 4 GiB (the default models
/// need a few MB; the largest run in the repository under 100 MB).
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 4 << 30;

static MAX_MODEL_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_MODEL_BYTES);

/// Sets the bound [`ModelConfig::validate`] checks models against (process-wide).
pub fn set_max_model_bytes(bytes: u64) {
    MAX_MODEL_BYTES.store(bytes, Ordering::Relaxed);
}

/// The bound [`ModelConfig::validate`] checks models against.
pub fn max_model_bytes() -> u64 {
    MAX_MODEL_BYTES.load(Ordering::Relaxed)
}

/// The size of a model, from its config (saturating: a absurd config gives
/// `u128::MAX`-ish numbers, never an overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Scalar parameters (weights and biases): exactly what `build` creates.
    pub parameters: u128,
    /// Values of the activations of one image through the model (inputs,
    /// every layer's output, codes), an estimate.
    pub activations: u128,
}

impl Footprint {
    /// Estimated bytes to train with batches of `batch` images (f32): four
    /// copies of the parameters (weights, gradients, Adam's two moments) and
    /// two of the activations (values and gradients).
    pub fn bytes(&self, batch: usize) -> u128 {
        let p = self.parameters.saturating_mul(16);
        let a = self
            .activations
            .saturating_mul(8)
            .saturating_mul(batch.max(1) as u128);
        p.saturating_add(a)
    }

    fn add(self, other: Footprint) -> Footprint {
        Footprint {
            parameters: self.parameters.saturating_add(other.parameters),
            activations: self.activations.saturating_add(other.activations),
        }
    }
}

fn mul(a: usize, b: usize) -> u128 {
    (a as u128).saturating_mul(b as u128)
}

fn linear(i: usize, o: usize) -> u128 {
    mul(i, o).saturating_add(o as u128)
}

fn conv(ci: usize, co: usize, k: usize) -> u128 {
    mul(ci, co)
        .saturating_mul(mul(k, k))
        .saturating_add(co as u128)
}

fn image(c: usize, h: usize, w: usize) -> u128 {
    mul(c, h).saturating_mul(w as u128)
}

/// A stack of linear layers `sizes[i] -> sizes[i+1]`.
fn stack(sizes: &[usize]) -> Footprint {
    let mut f = Footprint {
        parameters: 0,
        activations: sizes.first().map_or(0, |&s| s as u128),
    };
    for w in sizes.windows(2) {
        f = f.add(Footprint {
            parameters: linear(w[0], w[1]),
            activations: w[1] as u128,
        });
    }
    f
}

fn dense(c: &DenseConfig) -> Footprint {
    let mut sizes = vec![c.input.dim()];
    sizes.extend_from_slice(&c.hidden);
    sizes.push(c.latent_dim);
    let enc = stack(&sizes);
    sizes.reverse();
    enc.add(stack(&sizes))
}

/// The conv encoder (convs and poolings) and decoder (transposed convs and
/// the output conv) of a validated stack.
fn conv_stack(input: &ImageShape, channels: &[usize], k: usize) -> Footprint {
    let mut f = Footprint {
        parameters: 0,
        activations: image(input.channels, input.height, input.width),
    };
    let (mut c_in, mut h, mut w) = (input.channels, input.height, input.width);
    for &c in channels {
        f = f.add(Footprint {
            parameters: conv(c_in, c, k),
            activations: image(c, h, w).saturating_add(image(c, h / 2, w / 2)),
        });
        (c_in, h, w) = (c, h / 2, w / 2);
    }
    for j in 0..channels.len() {
        let c = channels[channels.len() - 1 - j];
        (h, w) = (h.saturating_mul(2), w.saturating_mul(2));
        f = f.add(Footprint {
            parameters: conv(c_in, c, k),
            activations: image(c, h, w),
        });
        c_in = c;
    }
    f.add(Footprint {
        parameters: conv(c_in, input.channels, k),
        activations: image(input.channels, input.height, input.width),
    })
}

fn conv_model(c: &ConvConfig) -> Footprint {
    let f = conv_stack(&c.input, &c.channels, c.kernel);
    match c.dense_code {
        None => f,
        Some(k) => {
            let features: usize = c.code_shape().iter().product();
            f.add(Footprint {
                parameters: linear(features, k).saturating_add(linear(k, features)),
                activations: (k as u128).saturating_add(features as u128),
            })
        }
    }
}

fn vae(c: &VaeConfig) -> Footprint {
    let latent = c.latent_dim;
    let (body, features) = match &c.arch {
        VaeArch::Dense { hidden } => {
            let mut enc = vec![c.input.dim()];
            enc.extend_from_slice(hidden);
            let features = enc.last().copied().unwrap_or(0);
            let mut dec = vec![latent];
            dec.extend(hidden.iter().rev());
            dec.push(c.input.dim());
            (stack(&enc).add(stack(&dec)), features)
        }
        VaeArch::Conv { channels, kernel } => {
            let code = crate::conv::bottleneck(&c.input, channels);
            let features: usize = code.iter().product();
            let fc = Footprint {
                parameters: linear(latent, features),
                activations: features as u128,
            };
            (conv_stack(&c.input, channels, *kernel).add(fc), features)
        }
    };
    body.add(Footprint {
        // mu and logvar.
        parameters: linear(features, latent).saturating_mul(2),
        // mu, logvar, the noise and z.
        activations: mul(latent, 4),
    })
}

impl ModelConfig {
    /// Parameter count and activation size of the model this (validated)
    /// config describes, without building it.
    pub fn footprint(&self) -> Footprint {
        match self {
            ModelConfig::Vanilla(c) => dense(c),
            ModelConfig::Sparse(c) => dense(&c.dense),
            ModelConfig::Denoising(c) => c.base.footprint().add(Footprint {
                parameters: 0,
                // The corrupted copy of the input.
                activations: c.base.input().dim() as u128,
            }),
            ModelConfig::Conv(c) => conv_model(c),
            ModelConfig::Vae(c) => vae(c),
        }
    }

    /// Checks that training this model with batches of `batch` images fits
    /// [`max_model_bytes`]; the error states the estimate and the limit.
    pub fn check_footprint(&self, batch: usize) -> Result<()> {
        let f = self.footprint();
        let need = f.bytes(batch);
        let limit = max_model_bytes();
        if need > u128::from(limit) {
            return invalid(format!(
                "the {} model would need about {} ({} parameters, {} activation values per \
                 image, batches of {batch}), more than the limit of {}: make it smaller, or \
                 raise the limit with --max-model-bytes",
                self.kind(),
                human_bytes(need),
                f.parameters,
                f.activations,
                human_bytes(u128::from(limit)),
            ));
        }
        Ok(())
    }
}

/// `1.5 GiB`-style sizes.
pub fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
