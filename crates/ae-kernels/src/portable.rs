//! The portable path: candle's stock ops, exactly what a CUDA or Metal device takes, forced on
//! the CPU so that every device path is exercised (and tested) on a machine without a GPU.
//!
//! Every CPU-only shortcut of the project (this crate's custom ops, the fused dense training
//! step of `ae-models`, the fused Adam update of `ae-train`) asks [`cpu_kernels`] whether to
//! run; with the portable path on, the answer is `false` on every device, and the CPU computes
//! the same graph of stock candle ops that a GPU computes.
//!
//! The setting is, in order of precedence:
//! 1. a per-thread override, [`with_portable`] (for tests, which share one process);
//! 2. the process-wide value set by [`set_portable`] (the CLI's `--portable`);
//! 3. the environment variable [`PORTABLE_VAR`] (`AE_PORTABLE=1`), read once.
//!
//! The per-thread override covers everything built on the calling thread: candle builds the
//! graph and runs the backward pass on the thread that calls `forward` / `backward`, so its
//! worker threads never need to see the setting.
//!
//! [`Backend`] names the ways a training step can run (the CPU kernels, the CPU portable path,
//! CUDA, Metal) and runs a closure on one of them; [`test_device!`](crate::test_device)
//! turns one test body into a test per backend, in the style of candle's own `test_device!`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{Device, Result};

/// The environment variable that turns the portable path on for the whole process:
/// `AE_PORTABLE=1` (also `true`, `yes`, `on`, any case); unset, empty or anything else is off.
pub const PORTABLE_VAR: &str = "AE_PORTABLE";

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static PROCESS: AtomicU8 = AtomicU8::new(UNSET);

thread_local! {
    static THREAD: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether `value` (of [`PORTABLE_VAR`]) turns the portable path on.
fn env_says_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Forces the portable path on (or off) for the whole process, overriding [`PORTABLE_VAR`].
/// Threads inside [`with_portable`] keep their own setting.
pub fn set_portable(on: bool) {
    PROCESS.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether the portable path is on for the calling thread (see the module docs for the
/// precedence of the settings).
pub fn portable() -> bool {
    if let Some(on) = THREAD.with(Cell::get) {
        return on;
    }
    match PROCESS.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = env_says_on(std::env::var(PORTABLE_VAR).ok().as_deref());
            // A concurrent `set_portable` wins over the environment.
            let _ = PROCESS.compare_exchange(
                UNSET,
                if on { ON } else { OFF },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            PROCESS.load(Ordering::Relaxed) == ON
        }
    }
}

/// Runs `f` with the portable path set to `on` on the calling thread only (restored
/// afterwards, also when `f` panics). Tests use it: they run in parallel in one process.
pub fn with_portable<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(THREAD.with(|t| t.replace(Some(on))));
    f()
}

/// Whether the CPU-only kernels may run for tensors on `device`: the device is the CPU and
/// the portable path is off. Every CPU shortcut checks this (besides dtypes and shapes).
pub fn cpu_kernels(device: &Device) -> bool {
    device.is_cpu() && !portable()
}

/// A way to run the project's training steps: the device and, on the CPU, which path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The CPU with this crate's kernels and the fused steps (the default on the CPU).
    CpuKernels,
    /// The CPU through candle's stock ops only: what a GPU computes.
    CpuPortable,
    /// CUDA device 0 (builds with the `cuda` feature).
    Cuda,
    /// Metal device 0 (builds with the `metal` feature).
    Metal,
}

impl Backend {
    /// Every backend, in a fixed order.
    pub const ALL: [Backend; 4] = [
        Backend::CpuKernels,
        Backend::CpuPortable,
        Backend::Cuda,
        Backend::Metal,
    ];

    /// The device of this backend (device 0 for CUDA and Metal); an error when this build
    /// or machine has none.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::CpuKernels | Backend::CpuPortable => Ok(Device::Cpu),
            Backend::Cuda => Device::new_cuda(0),
            Backend::Metal => Device::new_metal(0),
        }
    }

    /// Whether this build was compiled with this backend (the CPU always is).
    pub fn compiled(self) -> bool {
        match self {
            Backend::CpuKernels | Backend::CpuPortable => true,
            Backend::Cuda => candle_core::utils::cuda_is_available(),
            Backend::Metal => candle_core::utils::metal_is_available(),
        }
    }

    /// Runs `f` on this backend's device, with the portable path on for every backend but
    /// [`Backend::CpuKernels`] (on the calling thread, see [`with_portable`]).
    pub fn run<R>(self, f: impl FnOnce(&Device) -> R) -> Result<R> {
        let device = self.device()?;
        Ok(with_portable(self != Backend::CpuKernels, || f(&device)))
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::CpuKernels => "cpu (kernels)",
            Backend::CpuPortable => "cpu (portable)",
            Backend::Cuda => "cuda",
            Backend::Metal => "metal",
        })
    }
}

/// One test per backend from a function `fn(&Device)`, in the style of candle's
/// `test_device!`: `test_device!(body, body_cpu, body_portable, body_cuda, body_metal)`
/// defines the tests `body_cpu` ([`Backend::CpuKernels`]), `body_portable`
/// ([`Backend::CpuPortable`]), and `body_cuda` / `body_metal` when the *calling* crate is
/// built with its `cuda` / `metal` feature (they fail when the machine has no such device).
#[macro_export]
macro_rules! test_device {
    ($fn_name:ident, $cpu:ident, $portable:ident, $cuda:ident, $metal:ident) => {
        #[test]
        fn $cpu() {
            $crate::portable::Backend::CpuKernels
                .run($fn_name)
                .expect("the CPU is always there")
        }

        #[test]
        fn $portable() {
            $crate::portable::Backend::CpuPortable
                .run($fn_name)
                .expect("the CPU is always there")
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $cuda() {
            $crate::portable::Backend::Cuda
                .run($fn_name)
                .expect("a build with the cuda feature tests on a CUDA device")
        }

        #[cfg(feature = "metal")]
        #[test]
        fn $metal() {
            $crate::portable::Backend::Metal
                .run($fn_name)
                .expect("a build with the metal feature tests on a Metal device")
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_value_is_read_strictly() {
        for on in ["1", "true", "TRUE", " yes ", "On"] {
            assert!(env_says_on(Some(on)), "{on:?}");
        }
        for off in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("no"),
            Some("2"),
        ] {
            assert!(!env_says_on(off), "{off:?}");
        }
    }

    #[test]
    fn a_thread_override_wins_and_is_restored_even_on_panic() {
        let before = portable();
        with_portable(!before, || {
            assert_eq!(portable(), !before);
            assert_eq!(cpu_kernels(&Device::Cpu), before);
            with_portable(before, || assert_eq!(portable(), before));
            assert_eq!(portable(), !before);
        });
        assert_eq!(portable(), before);
        let r = std::panic::catch_unwind(|| with_portable(!before, || panic!("inside")));
        assert!(r.is_err());
        assert_eq!(portable(), before);
    }

    #[test]
    fn backends_run_with_their_path() {
        let on = Backend::CpuPortable
            .run(|d| (d.is_cpu(), portable()))
            .unwrap();
        assert_eq!(on, (true, true));
        let off = Backend::CpuKernels
            .run(|d| (d.is_cpu(), portable()))
            .unwrap();
        assert_eq!(off, (true, false));
        assert!(Backend::CpuKernels.compiled() && Backend::CpuPortable.compiled());
        if !Backend::Cuda.compiled() {
            assert!(Backend::Cuda.run(|_| ()).is_err());
        }
    }
}
