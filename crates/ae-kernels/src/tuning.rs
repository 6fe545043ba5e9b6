//! The dense GEMMs' parallel thresholds, settable at run time ([`GemmTuning`]).
//!
//! How many threads a dense layer's GEMM should use depends on what a parallel region costs
//! on the machine (waking threads, re-packing the right-hand matrix per block) against the
//! work per block. The defaults were measured on 2 cores; on 16 the small layers of the
//! dense models may run faster on fewer threads (issue 17, docs/performance.md). The machine
//! with many cores at hand may have no Rust toolchain, so the thresholds are read from the
//! environment instead of rebuilt: [`GEMM_PAR_MIN_FLOPS_VAR`] and
//! [`GEMM_BLOCK_MIN_FLOPS_VAR`], read once. They change which threads compute which block,
//! never a bit of the result (every grid the GEMMs may use sums as one thread does).

use std::sync::OnceLock;

/// GEMMs with fewer multiply-adds run on one thread: `AE_GEMM_PAR_MIN_FLOPS`.
pub const GEMM_PAR_MIN_FLOPS_VAR: &str = "AE_GEMM_PAR_MIN_FLOPS";
/// On more than four threads, the fewest multiply-adds of a block of a GEMM cut into rows
/// and columns (so a GEMM uses at most its multiply-adds / this many threads):
/// `AE_GEMM_BLOCK_MIN_FLOPS`.
pub const GEMM_BLOCK_MIN_FLOPS_VAR: &str = "AE_GEMM_BLOCK_MIN_FLOPS";

/// The dense GEMMs' parallel thresholds, in multiply-adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTuning {
    /// GEMMs below this run on one thread.
    pub par_min_flops: usize,
    /// The fewest multiply-adds of a block of a two-way grid (more than four threads).
    pub block_min_flops: usize,
}

impl Default for GemmTuning {
    fn default() -> Self {
        Self {
            par_min_flops: 1 << 17,
            block_min_flops: 1 << 16,
        }
    }
}

/// A threshold variable whose value is not a positive whole number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuningError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
}

impl std::fmt::Display for TuningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={:?}: expected a number of multiply-adds, a whole number of at least 1",
            self.var, self.value
        )
    }
}

impl std::error::Error for TuningError {}

impl GemmTuning {
    /// The thresholds given by `get(variable)` (the defaults where it gives `None`); a value
    /// that is not a positive whole number is an error naming the variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, TuningError> {
        let d = Self::default();
        let read = |var: &'static str, default: usize| match get(var) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<usize>() {
                Ok(v) if v >= 1 => Ok(v),
                _ => Err(TuningError { var, value }),
            },
        };
        Ok(Self {
            par_min_flops: read(GEMM_PAR_MIN_FLOPS_VAR, d.par_min_flops)?,
            block_min_flops: read(GEMM_BLOCK_MIN_FLOPS_VAR, d.block_min_flops)?,
        })
    }

    /// The thresholds the environment sets (see [`GemmTuning::from_vars`]). Binaries check
    /// it at start-up, so that a bad value is an error rather than ignored.
    pub fn from_env() -> Result<Self, TuningError> {
        Self::from_vars(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }
}

static TUNING: OnceLock<GemmTuning> = OnceLock::new();

/// The thresholds in force: the environment's, read on first use (the defaults if a value
/// is bad: [`GemmTuning::from_env`] reports it).
pub fn gemm_tuning() -> GemmTuning {
    *TUNING.get_or_init(|| GemmTuning::from_env().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn unset_variables_give_the_defaults_and_set_ones_their_values() {
        assert_eq!(GemmTuning::from_vars(vars(&[])), Ok(GemmTuning::default()));
        let t = GemmTuning::from_vars(vars(&[(GEMM_BLOCK_MIN_FLOPS_VAR, " 1000000 ")])).unwrap();
        assert_eq!(t.block_min_flops, 1_000_000);
        assert_eq!(t.par_min_flops, GemmTuning::default().par_min_flops);
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        for bad in ["", "0", "-5", "1e6", "lots"] {
            let e = GemmTuning::from_vars(vars(&[(GEMM_PAR_MIN_FLOPS_VAR, bad)])).unwrap_err();
            assert_eq!(e.var, GEMM_PAR_MIN_FLOPS_VAR);
            assert!(e.to_string().starts_with("AE_GEMM_PAR_MIN_FLOPS="), "{e}");
        }
    }
}
