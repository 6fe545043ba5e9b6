//! `ae plot` on small runs: every picture that applies, the manifest, the
//! sparse model compared with the vanilla run beside it, and clean errors.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn ae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ae"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("AE_DATA_DIR")
        .output()
        .expect("the ae binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = ae(args);
    assert!(
        out.status.success(),
        "ae {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn train(dir: &Path, model: &str) {
    ok(&[
        "train",
        "--model",
        model,
        "--out",
        dir.to_str().unwrap(),
        "--train-limit",
        "128",
        "--test-limit",
        "40",
        "--epochs",
        "1",
        "--batch-size",
        "64",
    ]);
}

fn manifest_files(dir: &Path) -> Vec<String> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plots.json")).unwrap()).unwrap();
    m["pictures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plot_writes_every_picture_that_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let vanilla = tmp.path().join("vanilla");
    let sparse = tmp.path().join("sparse");
    train(&vanilla, "vanilla");
    train(&sparse, "sparse");

    // Into the run folder by default.
    let out = ok(&[
        "plot",
        "--checkpoint",
        vanilla.to_str().unwrap(),
        "--limit",
        "40",
    ]);
    assert!(out.contains("reconstructions.png"), "{out}");
    assert_eq!(
        manifest_files(&vanilla),
        ["loss.png", "reconstructions.png", "latent.png"]
    );
    for f in manifest_files(&vanilla) {
        let head = std::fs::read(vanilla.join(&f)).unwrap();
        assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n", "{f}");
    }

    // The sparse run finds the vanilla run beside it; --out elsewhere.
    let pics = tmp.path().join("pics");
    let out = ok(&[
        "plot",
        "--checkpoint",
        sparse.to_str().unwrap(),
        "--out",
        pics.to_str().unwrap(),
        "-n",
        "6",
        "--limit",
        "40",
    ]);
    assert!(out.contains("against vanilla"), "{out}");
    assert_eq!(
        manifest_files(&pics),
        [
            "loss.png",
            "reconstructions.png",
            "latent.png",
            "code-histogram.png"
        ]
    );
    // 6 columns of 56 px + 7 gaps of 2 px.
    let head = std::fs::read(pics.join("reconstructions.png")).unwrap();
    assert_eq!(
        u32::from_be_bytes(head[16..20].try_into().unwrap()),
        6 * 56 + 7 * 2
    );
    assert!(!sparse.join("plots.json").exists());

    // The same pictures again: same bytes.
    let again = tmp.path().join("again");
    ok(&[
        "plot",
        "--checkpoint",
        sparse.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "-n",
        "6",
        "--limit",
        "40",
    ]);
    for f in manifest_files(&pics) {
        assert!(
            std::fs::read(pics.join(&f)).unwrap() == std::fs::read(again.join(&f)).unwrap(),
            "{f} differs between two runs"
        );
    }

    // Not a run: a clean error naming the folder.
    let out = ae(&[
        "plot",
        "--checkpoint",
        tmp.path().join("nope").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && !err.contains("panicked"), "{err}");
}
