//! Helpers shared by the `ae` binary's end-to-end tests: run it, expect success or a clean failure.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

/// The `ae` binary with quiet logs and no `AE_DATA_DIR` from the environment.
pub fn ae() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ae"));
    c.env("RUST_LOG", "warn").env_remove("AE_DATA_DIR");
    c
}

/// Runs `ae args`.
pub fn run(args: &[&str]) -> Output {
    ae().args(args).output().expect("the ae binary runs")
}

/// Runs `ae args`, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "ae {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ae args`, asserts it fails cleanly (exit 1, not a panic's 101, an
/// `error:` line); returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "ae {args:?} should fail cleanly: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A run folder's `config.json`.
pub fn config(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}
