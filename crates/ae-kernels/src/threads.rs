//! Start-up setting for candle's CPU worker threads, which otherwise compete with rayon's.
//!
//! candle 0.11 runs its element-wise CPU ops (the gradient sums of every backward pass, for
//! example) on its own "barrier pool" of worker threads, separate from rayon's pool that the
//! GEMMs and this crate's kernels use. After each job a barrier-pool worker busy-waits for
//! 25,000 spins before it parks. On a machine with as many cores as threads, the spinning
//! workers take the cores the next GEMM needs: on the 2-core dev machine the dense
//! autoencoder's training step took 3.0-3.7 ms with the default and 2.0-2.2 ms with a limit
//! of 1,000 (`docs/performance.md`).

/// The spin limit [`tune_candle_threads`] sets.
pub const CANDLE_SPIN_LIMIT: u32 = 1_000;

/// The environment variable candle reads, once, when its barrier pool starts.
pub const CANDLE_SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Makes candle's barrier-pool workers park after [`CANDLE_SPIN_LIMIT`] spins instead of
/// 25,000, unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` is already set (the user's value wins).
/// Returns whether it set the variable.
///
/// It must run before candle's first CPU element-wise op, which starts the pool.
///
/// # Safety
/// It sets an environment variable, so, as for [`std::env::set_var`], no other thread may
/// read or write the environment at the same time: call it first thing in `main`, before
/// any thread is spawned.
pub unsafe fn tune_candle_threads() -> bool {
    let Some(value) = value_to_set(std::env::var_os(CANDLE_SPIN_LIMIT_VAR).as_deref()) else {
        return false;
    };
    // SAFETY: the caller guarantees that no other thread accesses the environment.
    unsafe { std::env::set_var(CANDLE_SPIN_LIMIT_VAR, value) };
    true
}

/// The value to give the variable, given its current value: none when the user set one.
fn value_to_set(current: Option<&std::ffi::OsStr>) -> Option<String> {
    current.is_none().then(|| CANDLE_SPIN_LIMIT.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test does not call `tune_candle_threads` itself: other tests' threads read the
    // environment (candle does when it starts its pools), so setting it here would race.
    #[test]
    fn only_an_unset_variable_is_set() {
        assert_eq!(value_to_set(None).as_deref(), Some("1000"));
        assert_eq!(value_to_set(Some(std::ffi::OsStr::new("25000"))), None);
    }
}
