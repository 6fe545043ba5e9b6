//! Hostile inputs and concurrent runs (issue 14): a second writer is refused,
//! `--resume` refuses contradicting flags, bad weights and absurd sizes are
//! refused before anything is built, non-regular inputs and `.aez` bombs are
//! refused at once. Small slices: every run here trains for a second or two.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use ae_data::{IdxArray, IdxData, write_idx};
use candle_core::{DType, Device, Tensor};
use common::{ae, fails, ok, s};

/// A tiny vanilla run: 256 training images, 64 test images, one epoch.
fn tiny(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--out",
        s(dir),
        "--train-limit",
        "256",
        "--test-limit",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--hidden",
        "32",
        "--latent-dim",
        "8",
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

fn mnist_test_images() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist/t10k-images-idx3-ubyte.gz")
}

/// Like `common::fails`, with warnings off (the one that says which weights are used).
fn fails_quiet(args: &[&str]) -> String {
    let out = ae().args(args).env("RUST_LOG", "error").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "ae {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

/// Runs `ae args`, failing the test (not hanging) when it takes over 60 s.
fn bounded(args: &[&str]) -> std::process::Output {
    let mut child = ae()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("ae {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_writer_is_refused_at_once_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // A writer that runs until killed (60,000 images, many epochs).
    let mut first = ae()
        .args([
            "train",
            "--out",
            s(&run),
            "--epochs",
            "1000",
            "--hidden",
            "32",
            "--latent-dim",
            "8",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    let start = Instant::now();
    while std::fs::read_to_string(run.join(".lock"))
        .map(|t| t.trim().to_string())
        .ok()
        != Some(pid.to_string())
    {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first writer ended"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no lock taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second writer, with --overwrite or --resume: refused, naming the holder.
    for extra in ["--overwrite", "--resume"] {
        let err = fails(&[
            "train",
            "--out",
            s(&run),
            "--model",
            "vae",
            extra,
            "--train-limit",
            "64",
            "--test-limit",
            "8",
            "--epochs",
            "1",
        ]);
        assert!(
            err.contains("in use") && err.contains(&format!("pid {pid}")),
            "{err}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The operating system released the lock with the process: the folder is usable.
    tiny(&run, &["--overwrite"]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"]["hidden"], serde_json::json!([32]));
    ok(&["eval", "--checkpoint", s(&run), "--limit", "16"]);
}

#[test]
fn resume_refuses_contradicting_flags_and_records_the_epoch_count() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    tiny(&run, &[]);
    let err = fails(&[
        "train",
        "--out",
        s(&run),
        "--resume",
        "--epochs",
        "2",
        "--model",
        "vae",
        "--lr",
        "0.003",
        "--seed",
        "3",
        "--train-limit",
        "100",
        "--latent-dim",
        "4",
        "--batch-size",
        "64",
    ]);
    for flag in ["--model", "--lr", "--seed", "--train-limit", "--latent-dim"] {
        assert!(err.contains(flag), "{flag} not named: {err}");
    }
    // --batch-size 64 agrees with the run: not named.
    assert!(!err.contains("--batch-size"), "{err}");
    let err = fails(&[
        "train",
        "--out",
        s(&run),
        "--resume",
        "--epochs",
        "3",
        "--max-epochs-this-call",
        "0",
    ]);
    assert!(err.contains("--max-epochs-this-call"), "{err}");
    ok(&[
        "train",
        "--out",
        s(&run),
        "--resume",
        "--epochs",
        "2",
        "--batch-size",
        "64",
    ]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["epochs"], 2);

    // A state.json claiming 10^18 epochs is refused, naming it.
    let latest = std::fs::read_to_string(run.join("checkpoints/LATEST")).unwrap();
    let state = run
        .join("checkpoints")
        .join(latest.trim())
        .join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["epochs_done"] = serde_json::json!(1_000_000_000_000_000_000u64);
    std::fs::write(&state, v.to_string()).unwrap();
    let err = fails(&["train", "--out", s(&run), "--resume", "--epochs", "3"]);
    assert!(err.contains("state.json"), "{err}");
}

fn load_st(p: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

fn save_st(t: &HashMap<String, Tensor>, p: &Path) {
    candle_core::safetensors::save(t, p).unwrap();
}

#[test]
fn the_run_s_model_safetensors_is_used_and_bad_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    tiny(&run, &[]);
    let model = run.join("model.safetensors");
    let orig = std::fs::read(&model).unwrap();
    let eval = || -> serde_json::Value {
        serde_json::from_str(&ok(&[
            "eval",
            "--checkpoint",
            s(&run),
            "--limit",
            "32",
            "--json",
        ]))
        .unwrap()
    };
    let before = eval()["bce"].as_f64().unwrap();

    // Weights edited elsewhere (the decoder's last bias shifted) and saved back are used.
    let mut t = load_st(&model);
    let b = t["decoder.1.bias"].clone();
    t.insert("decoder.1.bias".into(), (b + 3.0).unwrap());
    save_st(&t, &model);
    let out = ae()
        .args(["eval", "--checkpoint", s(&run), "--limit", "32", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((after["bce"].as_f64().unwrap() - before).abs() > 1e-3);
    // ... and the difference from the checkpoint is said.
    assert!(String::from_utf8_lossy(&out.stderr).contains("differs"));

    // A NaN, and an integer tensor: refused, naming the tensor.
    let mut t = load_st(&run.join("checkpoints/epoch-0001/model.safetensors"));
    let w = t["encoder.0.weight"].to_vec2::<f32>().unwrap();
    let mut w = w;
    w[0][0] = f32::NAN;
    t.insert(
        "encoder.0.weight".into(),
        Tensor::new(w, &Device::Cpu).unwrap(),
    );
    save_st(&t, &model);
    let err = fails_quiet(&["eval", "--checkpoint", s(&run), "--limit", "8"]);
    assert!(
        err.contains("encoder.0.weight") && err.contains("NaN"),
        "{err}"
    );
    let mut t = load_st(&run.join("checkpoints/epoch-0001/model.safetensors"));
    let b = t["encoder.0.bias"].to_dtype(DType::I64).unwrap();
    t.insert("encoder.0.bias".into(), b);
    save_st(&t, &model);
    let err = fails_quiet(&["eval", "--checkpoint", s(&run), "--limit", "8"]);
    assert!(
        err.contains("encoder.0.bias") && err.contains("I64"),
        "{err}"
    );

    // A truncated model.safetensors is an error, not a fall-back.
    std::fs::write(&model, &orig[..orig.len() - 100]).unwrap();
    let err = fails_quiet(&["eval", "--checkpoint", s(&run), "--limit", "8"]);
    assert!(err.contains("model.safetensors"), "{err}");

    // A config.json of a huge model beside small weights: refused before building.
    std::fs::write(&model, &orig).unwrap();
    let cfg_path = run.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["model"]["hidden"] = serde_json::json!([20000, 64]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let start = Instant::now();
    let err = fails_quiet(&["eval", "--checkpoint", s(&run), "--limit", "8"]);
    assert!(err.contains("another model"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30));
    cfg["model"]["latent_dim"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = fails_quiet(&[
        "sample",
        "--checkpoint",
        s(&run),
        "--out",
        s(&tmp.path().join("x.png")),
    ]);
    assert!(err.contains("latent_dim"), "{err}");
}

#[test]
fn absurd_model_sizes_are_refused_with_the_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let base = [
        "train",
        "--out",
        s(&out),
        "--train-limit",
        "16",
        "--test-limit",
        "8",
    ];
    for extra in [
        &["--hidden", "1000000000"][..],
        &["--hidden", "3000000"][..],
        &["--latent-dim", "1000000000000"][..],
        &["--model", "conv", "--channels", "100000000"][..],
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let err = fails(&args);
        assert!(err.contains("invalid model config"), "{extra:?}: {err}");
    }
    let err = fails(
        &base
            .iter()
            .copied()
            .chain(["--hidden", "3000000"])
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains("GiB") && err.contains("--max-model-bytes"),
        "{err}"
    );
    assert!(!out.join("config.json").exists());
}

#[cfg(unix)]
#[test]
fn non_regular_inputs_and_aez_bombs_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = t.join("run");
    tiny(&run, &[]);
    let fifo = t.join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let o = s(&t.join("o")).to_string();
    for args in [
        vec!["data", "inspect", "/dev/zero"],
        vec!["data", "inspect", s(&fifo)],
        vec!["compress", "--checkpoint", s(&run), "/dev/zero", &o],
        vec!["compress", "--checkpoint", s(&run), s(&fifo), &o],
        vec!["decompress", "--checkpoint", s(&run), "/dev/zero", &o],
        vec!["decompress", "--checkpoint", s(&run), s(&fifo), &o],
        vec![
            "anomaly",
            "score",
            "--checkpoint",
            s(&run),
            "--images",
            "/dev/zero",
        ],
    ] {
        let out = bounded(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }

    // A real .aez of 16 images, then hand-edited headers (CRC fixed).
    let src = ae_data::read_idx(&mnist_test_images()).unwrap();
    let IdxData::U8(px) = src.data() else {
        panic!()
    };
    let images = t.join("in.idx");
    write_idx(
        &images,
        &IdxArray::new(vec![16, 28, 28], IdxData::U8(px[..16 * 784].to_vec())).unwrap(),
        false,
    )
    .unwrap();
    let aez = t.join("a.aez");
    ok(&["compress", "--checkpoint", s(&run), s(&images), s(&aez)]);
    let bytes = std::fs::read(&aez).unwrap();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| -> PathBuf {
        let mut b = bytes.clone();
        f(&mut b);
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        let p = t.join("edited.aez");
        std::fs::write(&p, &b).unwrap();
        p
    };
    // 2^22 images claimed by a small file: refused before decoding.
    let bomb = edit(&|b| b[52..60].copy_from_slice(&(1u64 << 22).to_le_bytes()));
    let back = t.join("back.idx");
    let err = fails(&["decompress", "--checkpoint", s(&run), s(&bomb), s(&back)]);
    assert!(err.contains("claims 4194304 images"), "{err}");
    // 16x7x7 (as many values as 1x28x28): refused, not decoded into 16 channels.
    let odd = edit(&|b| {
        for (i, d) in [16u32, 7, 7].iter().enumerate() {
            b[40 + 4 * i..44 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
    });
    let err = fails(&["decompress", "--checkpoint", s(&run), s(&odd), s(&back)]);
    assert!(err.contains("16x7x7"), "{err}");
    // A reference of another size: refused before the output is written.
    let small = t.join("small.idx");
    write_idx(
        &small,
        &IdxArray::new(vec![16, 8, 8], IdxData::U8(vec![0; 16 * 64])).unwrap(),
        false,
    )
    .unwrap();
    let err = fails(&[
        "decompress",
        "--checkpoint",
        s(&run),
        s(&aez),
        s(&back),
        "--reference",
        s(&small),
    ]);
    assert!(err.contains("small.idx"), "{err}");
    assert!(!back.exists());
    // The good file still decodes, streamed, to 16 images.
    ok(&[
        "decompress",
        "--checkpoint",
        s(&run),
        s(&aez),
        s(&back),
        "--reference",
        s(&images),
    ]);
    assert_eq!(ae_data::read_idx(&back).unwrap().dims(), &[16, 28, 28]);

    // An output path that is a folder: one error, its cause not repeated.
    let err = fails(&["compress", "--checkpoint", s(&run), s(&images), s(t)]);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    let err = fails(&["iwae", "--checkpoint", s(&run), "-k", "2000000"]);
    assert!(err.contains("vae") || err.contains("1000000"), "{err}");
}
