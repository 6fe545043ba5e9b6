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
            let device = Device::new_cuda(index)
                .map_err(|e| TrainError::Device(format!("'{spec}': {e}")))?;
            #[cfg(feature = "cuda")]
            if let Device::Cuda(d) = &device {
                cuda_setup::prepare(d);
            }
            Ok(device)
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

/// What a CUDA device gets once, before any work (builds with the `cuda` feature).
#[cfg(feature = "cuda")]
mod cuda_setup {
    use candle_core::cuda::CudaDevice;
    use candle_core::cuda::cudarc::driver::{result, sys};
    use candle_core::cuda::cudarc::nvrtc::Ptx;
    use candle_core::cuda::kernels;

    /// The modules of candle's kernels that training and evaluation use (not the quantized
    /// and sort ones).
    const MODULES: [&kernels::Module; 9] = [
        &kernels::AFFINE,
        &kernels::BINARY,
        &kernels::CAST,
        &kernels::CONV,
        &kernels::FILL,
        &kernels::INDEXING,
        &kernels::REDUCE,
        &kernels::TERNARY,
        &kernels::UNARY,
    ];

    /// Two things that made the first CUDA epoch slow, each best effort (a failure is a
    /// note on stderr, never an error):
    ///
    /// - **The PTX JIT.** candle ships its kernels as PTX and loads each module the first time
    ///   one of its kernels runs, one after the other under a lock: about 13 s on an H200 the
    ///   first time (binary.ptx alone is 2.2 MB). The driver keeps what it compiled in its
    ///   JIT cache (`~/.nv/ComputeCache`), keyed by the PTX, so compiling every module here,
    ///   in parallel threads, leaves candle's own loads a cache hit. With a warm cache this
    ///   is a few milliseconds.
    /// - **The memory pool's release threshold.** The stream-ordered allocator candle uses
    ///   (`cuMemAllocAsync`) hands freed memory back to the driver at every synchronisation
    ///   by default (a threshold of 0), so each evaluation batch and each epoch's loss read
    ///   made the next allocations go to the driver again. Setting the threshold to the
    ///   maximum keeps freed memory in the pool for reuse, as PyTorch's caching allocator does.
    pub(super) fn prepare(dev: &CudaDevice) {
        let stream = dev.cuda_stream();
        let ctx = stream.context();
        // SAFETY: the device is the context's own; the attribute takes a u64.
        let kept = unsafe {
            result::device::get_default_mem_pool(ctx.cu_device()).and_then(|pool| {
                let mut threshold = u64::MAX;
                result::mem_pool::set_attribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    (&raw mut threshold).cast(),
                )
            })
        };
        if let Err(e) = kept {
            eprintln!("note: could not keep freed GPU memory in the pool: {e:?}");
        }
        std::thread::scope(|s| {
            let loads: Vec<_> = MODULES
                .iter()
                .map(|m| s.spawn(|| ctx.load_module(Ptx::from_src(m.ptx())).map(drop)))
                .collect();
            for load in loads {
                if let Ok(Err(e)) = load.join() {
                    eprintln!("note: compiling candle's CUDA kernels ahead of time failed: {e:?}");
                }
            }
        });
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
