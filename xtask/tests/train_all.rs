//! `cargo xtask train-all --quick`: all five variants train on a slice and the summary lists them.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn train_all_quick_writes_every_run_and_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "train-all",
            "--quick",
            "--out",
            tmp.path().to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read_to_string(tmp.path().join("summary.md")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), summary.trim());
    for kind in ["vanilla", "sparse", "conv", "denoising", "vae"] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {kind} |")))
            .unwrap_or_else(|| panic!("no row for {kind}:\n{summary}"));
        // epochs, time, BCE, MSE are numbers; BCE is a plausible loss after one short epoch.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], "1", "{row}");
        let bce: f64 = cells[4].parse().unwrap();
        assert!(bce > 0.0 && bce < 0.7, "{row}");
        for f in ["config.json", "model.safetensors", "metrics.json"] {
            assert!(tmp.path().join(kind).join(f).is_file(), "{kind}/{f}");
        }
    }
    assert!(summary.contains("n/a (quick)"));
}
