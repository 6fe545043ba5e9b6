//! Run-time instruction-set dispatch: the one place that decides whether a kernel body runs
//! compiled for AVX-512 or AVX2.
//!
//! The element-wise kernels are written once, as plain `#[inline(always)]` functions that the
//! compiler vectorises. [`avx2_dispatch!`] declares a function that calls such a body through a
//! twin compiled with `#[target_feature(enable = "avx512f")]` when the CPU has AVX-512F, or
//! `avx2` when it has AVX2 (wider vectors: the same operations in the same order, so the same
//! results: a vanilla, VAE and conv run wrote byte-identical weights with and without the
//! AVX-512 twin), and the body as it is otherwise (other CPUs, other architectures). The
//! AVX-512 twin took the sigmoid of a vanilla reconstruction from 3.8 to 2.4 ms
//! (`cargo run --release -p ae-benches --example infer_profile -- vanilla 10`, AMD EPYC).

/// Declares `fn NAME<T: BOUND>(ARGS) -> RET` that runs `BODY(ARGS)` compiled for AVX-512F or
/// AVX2 when the CPU supports it, and as is otherwise. `BODY` should be `#[inline(always)]`
/// so that it is compiled inside the twins.
///
/// ```ignore
/// avx2_dispatch! {
///     /// `chunk_sum` with the widest vectors the CPU has.
///     fn chunk_sum_dispatch<T: Real>(x: &[T], y: &[T]) -> f64 = chunk_sum;
/// }
/// ```
macro_rules! avx2_dispatch {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?)
            $(-> $ret:ty)? = $body:path;
    ) => {
        $(#[$attr])*
        $vis fn $name<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                /// The body compiled for AVX2.
                ///
                /// # Safety
                /// The CPU must support AVX2.
                #[target_feature(enable = "avx2")]
                unsafe fn avx2<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                /// The body compiled for AVX-512.
                ///
                /// # Safety
                /// The CPU must support AVX-512F.
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F support was just checked.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 support was just checked.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use avx2_dispatch;
