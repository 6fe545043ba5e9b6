//! Helpers shared by the xtask integration tests.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs the xtask binary with `args` (logging at warn) and returns its output, failing the
/// test with its stderr unless it succeeded.
pub fn xtask_ok<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
