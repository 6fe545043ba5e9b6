//! Parsing `--device cpu|cuda[:N]|metal[:N]` into a candle device, with a clear error when
//! the build lacks the backend.

use candle_core::Device;

use crate::{Result, TrainError};

/// Parses `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
///
/// A CUDA or Metal device in a build without the `cuda` / `metal` feature is an
/// error that says how to build with it.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => {
            let n = i.parse::<usize>().map_err(|_| {
                TrainError::Device(format!("'{spec}': the index after ':' must be a number"))
            })?;
            (k.to_string(), n)
        }
        None => (spec.clone(), 0),
    };
    match kind.as_str() {
        "cpu" if index == 0 => Ok(Device::Cpu),
        "cuda" => {
            if !candle_core::utils::cuda_is_available() {
                return Err(TrainError::Device(format!(
                    "'{spec}': this build has no CUDA support (build with --features cuda)"
                )));
            }
            Device::new_cuda(index).map_err(|e| TrainError::Device(format!("'{spec}': {e}")))
        }
        "metal" => {
            if !candle_core::utils::metal_is_available() {
                return Err(TrainError::Device(format!(
                    "'{spec}': this build has no Metal support (build with --features metal)"
                )));
            }
            Device::new_metal(index).map_err(|e| TrainError::Device(format!("'{spec}': {e}")))
        }
        _ => Err(TrainError::Device(format!(
            "'{spec}' is not one of cpu, cuda, cuda:N, metal, metal:N"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_junk_is_rejected() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cpu:1", ""] {
            let err = parse_device(bad).unwrap_err().to_string();
            assert!(err.starts_with("device"), "{bad}: {err}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = parse_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
