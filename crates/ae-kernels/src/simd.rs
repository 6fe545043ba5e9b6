//! Run-time instruction-set dispatch: the one place that decides whether a kernel body runs
//! compiled for AVX2.
//!
//! The element-wise kernels are written once, as plain `#[inline(always)]` functions that the
//! compiler vectorises. [`avx2_dispatch!`] declares a function that calls such a body through a
//! twin compiled with `#[target_feature(enable = "avx2")]` when the CPU has AVX2 (wider vectors:
//! the same operations in the same order, so the same results), and the body as it is
//! otherwise (other CPUs, other architectures).

/// Declares `fn NAME<T: BOUND>(ARGS) -> RET` that runs `BODY(ARGS)` compiled for AVX2 when the
/// CPU supports it, and as is otherwise. `BODY` should be `#[inline(always)]` so that it is
/// compiled inside the AVX2 twin.
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
