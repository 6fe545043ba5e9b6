//! End-to-end tests of the `ae` binary on a small slice of the embedded MNIST:
//! train -> eval -> reconstruct -> encode, determinism, resume, kill -9, bad input.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;

use common::{ae, fails, ok, run};

/// A small, fast training run.
fn train(dir: &Path, model: &str, extra: &[&str]) -> String {
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--model",
        model,
        "--out",
        d,
        "--train-limit",
        "256",
        "--test-limit",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "64",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn bytes(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether two files hold the same bytes (without dumping them on failure).
fn same_file(a: PathBuf, b: PathBuf) -> bool {
    bytes(a) == bytes(b)
}

#[test]
fn train_eval_reconstruct_encode() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("v");
    let rd = run_dir.to_str().unwrap();
    let out = train(&run_dir, "vanilla", &["--json"]);
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bce = m["bce"].as_f64().unwrap();
    assert!(bce > 0.05 && bce < 0.7, "{m}");
    for f in [
        "config.json",
        "model.safetensors",
        "metrics.json",
        "checkpoints/LATEST",
    ] {
        assert!(run_dir.join(f).exists(), "{f} missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&bytes(run_dir.join("metrics.json"))).unwrap();
    let epochs = metrics["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1]["train_loss"].as_f64().unwrap() < epochs[0]["train_loss"].as_f64().unwrap());
    assert!(epochs[0]["images_per_sec"].as_f64().unwrap() > 0.0);

    // eval agrees with what training reported.
    let e: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--checkpoint",
        rd,
        "--limit",
        "64",
        "--json",
    ]))
    .unwrap();
    assert!(
        (e["bce"].as_f64().unwrap() - bce).abs() < 1e-6,
        "{e} vs {m}"
    );
    assert!(e["psnr"].as_f64().unwrap() > 5.0);
    assert!(ok(&["eval", "--checkpoint", rd, "--limit", "64"]).contains("psnr"));

    let png = tmp.path().join("rec.png");
    ok(&[
        "reconstruct",
        "--checkpoint",
        rd,
        "--out",
        png.to_str().unwrap(),
        "-n",
        "5",
    ]);
    let head = bytes(png);
    assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n");
    // 5 columns of 56 px (scale 2) + 6 gaps of 2 px = 292 wide; 2 rows: 2*56 + 3*2 = 118 high.
    assert_eq!(u32::from_be_bytes(head[16..20].try_into().unwrap()), 292);
    assert_eq!(u32::from_be_bytes(head[20..24].try_into().unwrap()), 118);

    let csv = tmp.path().join("codes.csv");
    ok(&[
        "encode",
        "--checkpoint",
        rd,
        "--out",
        csv.to_str().unwrap(),
        "--limit",
        "20",
    ]);
    let text = String::from_utf8(bytes(csv)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 21);
    assert!(lines[0].starts_with("label,z0,"));
    assert_eq!(lines[1].split(',').count(), 33);
    assert!(
        lines[1].starts_with("7,"),
        "first MNIST test label is 7: {}",
        lines[1]
    );

    let npy = tmp.path().join("codes.npy");
    ok(&[
        "encode",
        "--checkpoint",
        rd,
        "--out",
        npy.to_str().unwrap(),
        "--limit",
        "20",
    ]);
    let b = bytes(npy);
    // candle's writer spells the shape `(20,32,)`, numpy `(20, 32)`: both read back the same.
    let header = String::from_utf8_lossy(&b[..128]).replace(' ', "");
    assert!(
        header.contains("'shape':(20,32)") || header.contains("'shape':(20,32,)"),
        "{header}"
    );
    let st = tmp.path().join("codes.safetensors");
    ok(&[
        "encode",
        "--checkpoint",
        rd,
        "--out",
        st.to_str().unwrap(),
        "--limit",
        "20",
        "--split",
        "train",
    ]);
    assert!(bytes(st).len() > 20 * 32 * 4);

    let err = fails(&[
        "encode",
        "--checkpoint",
        rd,
        "--out",
        tmp.path().join("c.txt").to_str().unwrap(),
    ]);
    assert!(err.contains("c.txt") && err.contains(".csv"), "{err}");
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    train(&a, "vanilla", &["--seed", "7"]);
    train(&b, "vanilla", &["--seed", "7"]);
    train(&c, "vanilla", &["--seed", "8"]);
    assert!(same_file(
        a.join("model.safetensors"),
        b.join("model.safetensors")
    ));
    assert!(!same_file(
        a.join("model.safetensors"),
        c.join("model.safetensors")
    ));
}

/// The train and validation losses of every epoch of a run.
fn losses(dir: &Path) -> Vec<(f64, f64)> {
    let m: serde_json::Value = serde_json::from_slice(&bytes(dir.join("metrics.json"))).unwrap();
    m["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["train_loss"].as_f64().unwrap(),
                e["val_loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn gemm_thresholds_and_thread_counts_change_no_bit_and_bad_ones_are_refused() {
    // AE_GEMM_*_FLOPS (for tuning a many-core machine without a rebuild) only move work
    // between threads: every block sums as one thread does. With both at 1 every GEMM is
    // cut as far as it goes, on 8 threads (two-way grids), and the weights are the default
    // run's, bit for bit.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(&a, "vanilla", &[]);
    let d = b.to_str().unwrap();
    let run = |envs: &[(&str, &str)], out: &str| {
        let mut cmd = ae();
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.args(["train", "--model", "vanilla", "--out", out])
            .args(["--train-limit", "256", "--test-limit", "64"])
            .args(["--epochs", "2", "--batch-size", "64"])
            .output()
            .unwrap()
    };
    let tuned = [
        ("AE_GEMM_PAR_MIN_FLOPS", "1"),
        ("AE_GEMM_BLOCK_MIN_FLOPS", "1"),
        ("RAYON_NUM_THREADS", "8"),
    ];
    let out = run(&tuned, d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(same_file(
        a.join("model.safetensors"),
        b.join("model.safetensors")
    ));
    let c = tmp.path().join("c");
    let out = run(&[("AE_GEMM_BLOCK_MIN_FLOPS", "lots")], c.to_str().unwrap());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AE_GEMM_BLOCK_MIN_FLOPS=\"lots\"") && err.contains("at least 1"),
        "{err}"
    );
    assert!(!c.exists(), "nothing is written on a refused start");
}

#[test]
fn portable_runs_the_device_path_on_the_cpu() {
    // `--portable` (and `AE_PORTABLE=1`) trains through candle's stock ops, what a GPU runs,
    // instead of the fused CPU step: the same model up to rounding, but other weights bit for
    // bit, which shows the switch took effect.
    let tmp = tempfile::tempdir().unwrap();
    let (k, p, e) = (
        tmp.path().join("k"),
        tmp.path().join("p"),
        tmp.path().join("e"),
    );
    train(&k, "vanilla", &[]);
    train(&p, "vanilla", &["--portable"]);
    let d = e.to_str().unwrap();
    let out = ae()
        .env("AE_PORTABLE", "1")
        .args([
            "train",
            "--model",
            "vanilla",
            "--out",
            d,
            "--train-limit",
            "256",
        ])
        .args(["--test-limit", "64", "--epochs", "2", "--batch-size", "64"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!same_file(
        k.join("model.safetensors"),
        p.join("model.safetensors")
    ));
    assert!(same_file(
        p.join("model.safetensors"),
        e.join("model.safetensors")
    ));
    for ((a, b), (c, d)) in losses(&k).into_iter().zip(losses(&p)) {
        assert!(
            (a - c).abs() <= 1e-3 * a && (b - d).abs() <= 1e-3 * b,
            "{a} {b} vs {c} {d}"
        );
    }
}

#[test]
fn resume_reaches_the_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, parts) = (tmp.path().join("full"), tmp.path().join("parts"));
    // The denoising model draws noise, so the RNG state must be restored too.
    let extra = ["--seed", "3", "--epochs", "3", "--base", "vanilla"];
    train(&full, "denoising", &extra);
    let mut first = extra.to_vec();
    first.extend(["--max-epochs-this-call", "1"]);
    train(&parts, "denoising", &first);
    assert!(!same_file(
        full.join("model.safetensors"),
        parts.join("model.safetensors")
    ));
    ok(&["train", "--out", parts.to_str().unwrap(), "--resume"]);
    assert!(same_file(
        full.join("model.safetensors"),
        parts.join("model.safetensors")
    ));
    let m: serde_json::Value = serde_json::from_slice(&bytes(parts.join("metrics.json"))).unwrap();
    assert_eq!(m["epochs"].as_array().unwrap().len(), 3);
}

#[cfg(unix)]
#[test]
fn kill_9_during_training_leaves_a_loadable_run_that_resumes() {
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("k");
    let d = dir.to_str().unwrap();
    let mut child = ae()
        .args([
            "train",
            "--model",
            "vanilla",
            "--out",
            d,
            "--train-limit",
            "2000",
            "--test-limit",
            "64",
            "--epochs",
            "200",
            "--batch-size",
            "32",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let latest = dir.join("checkpoints").join("LATEST");
    let start = Instant::now();
    while !latest.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill somewhere inside a later epoch (or while it checkpoints).
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let e: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "--checkpoint", d, "--limit", "64", "--json"])).unwrap();
    assert!(e["bce"].as_f64().unwrap().is_finite());
    // No temporary checkpoint folders are taken for real ones.
    let m: serde_json::Value = serde_json::from_slice(&bytes(dir.join("metrics.json"))).unwrap();
    let done = m["epochs"].as_array().unwrap().len();
    assert!(done >= 1);
    ok(&[
        "train",
        "--out",
        d,
        "--resume",
        "--epochs",
        &(done + 1).to_string(),
    ]);
    let m: serde_json::Value = serde_json::from_slice(&bytes(dir.join("metrics.json"))).unwrap();
    assert_eq!(m["epochs"].as_array().unwrap().len(), done + 1);
}

#[test]
fn vae_trains_evaluates_and_samples_and_denoise_writes_three_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let vae = tmp.path().join("vae");
    let m: serde_json::Value = serde_json::from_str(&train(&vae, "vae", &["--json"])).unwrap();
    let elbo = m["elbo"].as_f64().unwrap();
    assert!(elbo < 0.0 && elbo > -600.0, "{m}");
    let png = tmp.path().join("s.png");
    ok(&[
        "sample",
        "--checkpoint",
        vae.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
        "-n",
        "16",
    ]);
    let head = bytes(png.clone());
    // 4x4 grid of 56 px images with 2 px padding: 4*56 + 5*2 = 234.
    assert_eq!(u32::from_be_bytes(head[16..20].try_into().unwrap()), 234);

    let van = tmp.path().join("van");
    train(&van, "vanilla", &[]);
    let err = fails(&[
        "sample",
        "--checkpoint",
        van.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(err.contains("vae"), "{err}");
    let den = tmp.path().join("den.png");
    let out = ok(&[
        "denoise",
        "--checkpoint",
        van.to_str().unwrap(),
        "--out",
        den.to_str().unwrap(),
        "-n",
        "4",
    ]);
    assert!(out.contains("PSNR noisy"), "{out}");
    let head = bytes(den);
    // 3 rows: 3*56 + 4*2 = 176 high.
    assert_eq!(u32::from_be_bytes(head[20..24].try_into().unwrap()), 176);
}

#[test]
fn bad_input_gets_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // A wrong flag: clap's usage error, exit 2.
    let out = run(&["train", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));

    // A folder that is not a run.
    let err = fails(&["eval", "--checkpoint", t.join("nope").to_str().unwrap()]);
    assert!(err.contains("nope"), "{err}");

    // Weights of one model under the config of another.
    let (v, c) = (t.join("v"), t.join("s"));
    train(&v, "vanilla", &["--epochs", "1"]);
    train(&c, "vae", &["--epochs", "1"]);
    let vw = v.join("model.safetensors");
    std::fs::copy(c.join("model.safetensors"), &vw).unwrap();
    let err = fails(&["eval", "--checkpoint", v.to_str().unwrap(), "--limit", "8"]);
    assert!(
        err.contains("model.safetensors") && err.contains("tensor"),
        "{err}"
    );

    // A truncated safetensors file.
    let full = bytes(c.join("model.safetensors"));
    let cw = c.join("model.safetensors");
    std::fs::write(&cw, &full[..full.len() / 2]).unwrap();
    let err = fails(&["eval", "--checkpoint", c.to_str().unwrap(), "--limit", "8"]);
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );

    // A damaged config.
    std::fs::write(
        c.join("config.json"),
        b"{\"format_version\": 1, \"model\": 3}",
    )
    .unwrap();
    let err = fails(&["eval", "--checkpoint", c.to_str().unwrap()]);
    assert!(err.contains("config.json"), "{err}");

    // Training into a folder that already holds a run.
    let err = fails(&[
        "train",
        "--out",
        v.to_str().unwrap(),
        "--train-limit",
        "64",
        "--test-limit",
        "8",
    ]);
    assert!(err.contains("already holds a run"), "{err}");

    // Options that do not fit the model.
    let err = fails(&[
        "train",
        "--model",
        "conv",
        "--latent-dim",
        "8",
        "--out",
        t.join("x").to_str().unwrap(),
    ]);
    assert!(err.contains("--latent-dim"), "{err}");
    let err = fails(&[
        "train",
        "--model",
        "vanilla",
        "--latent-dim",
        "0",
        "--out",
        t.join("x").to_str().unwrap(),
    ]);
    assert!(err.to_lowercase().contains("latent"), "{err}");

    // Data that does not exist.
    let err = fails(&[
        "train",
        "--dataset",
        "custom",
        "--train-images",
        t.join("missing.idx").to_str().unwrap(),
        "--test-images",
        t.join("missing2.idx").to_str().unwrap(),
        "--out",
        t.join("y").to_str().unwrap(),
    ]);
    assert!(err.contains("missing.idx"), "{err}");
}

#[test]
fn data_inspect_reports_mnist_and_rejects_junk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let out = ok(&[
        "data",
        "inspect",
        root.join("train-images-idx3-ubyte.gz").to_str().unwrap(),
        root.join("t10k-labels-idx1-ubyte.gz").to_str().unwrap(),
    ]);
    assert!(out.contains("60000") && out.contains("28"), "{out}");
    assert!(out.contains("10000"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.idx");
    std::fs::write(&junk, b"\x01\x02\x03\x04hello").unwrap();
    // One bad file: one line naming it, exit 1.
    let err = fails(&["data", "inspect", junk.to_str().unwrap()]);
    assert!(err.contains("junk.idx") && err.contains("IDX"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Several files: the good ones are reported, the bad ones named, and the exit is 1.
    let good = root.join("t10k-labels-idx1-ubyte.gz");
    let out = run(&[
        "data",
        "inspect",
        good.to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("10 classes"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("junk.idx") && stderr.contains("1 of 2 files"),
        "{stderr}"
    );
}
