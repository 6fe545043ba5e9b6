//! End-to-end tests of the measured uses on small slices of the embedded MNIST:
//! compare-pca, anomaly fit/score/eval, compress/decompress, probe, iwae, denoise-table.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ae_data::{IdxArray, IdxData, write_idx};

mod common;

use common::{fails, ok};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn train(dir: &Path, model: &str, seed: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--model",
        model,
        "--out",
        dir.to_str().unwrap(),
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

fn mnist_test_images() -> String {
    format!(
        "{}/../../data/mnist/t10k-images-idx3-ubyte.gz",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A small IDX file of `n` images of `h x w`.
fn idx_file(path: &Path, n: usize, h: usize, w: usize) {
    let data: Vec<u8> = (0..n * h * w).map(|i| (i * 37 % 256) as u8).collect();
    write_idx(
        path,
        &IdxArray::new(vec![n, h, w], IdxData::U8(data)).unwrap(),
        false,
    )
    .unwrap();
}

#[test]
fn compare_pca_on_a_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("cmp");
    let args = [
        "compare-pca",
        "--latent-dims",
        "2,8",
        "--epochs",
        "1",
        "--hidden",
        "64",
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--seed",
        "1",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--json",
    ];
    let v = json(&ok(&args));
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let pca = |i: usize| rows[i]["pca_mse"].as_f64().unwrap();
    assert!(pca(1) < pca(0), "{v}");
    assert!(rows[0]["ae_mse"].as_f64().unwrap() > 0.0);
    assert!(runs.join("latent-8").join("model.safetensors").is_file());
    // A second call reuses the finished runs: same numbers, as a table.
    let text = ok(&args[..args.len() - 1]);
    assert!(text.contains("PCA mse"), "{text}");
    let mse8 = format!("{:.5}", rows[1]["ae_mse"].as_f64().unwrap());
    assert!(text.contains(&mse8), "{text} lacks {mse8}");
}

#[test]
fn anomaly_fit_score_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let det = tmp.path().join("det");
    let d = det.to_str().unwrap();
    let out = ok(&[
        "anomaly",
        "fit",
        "--normal-class",
        "1",
        "--out",
        d,
        "--train-limit",
        "2000",
        "--test-limit",
        "200",
        "--epochs",
        "10",
        "--batch-size",
        "16",
        "--contamination",
        "0.1",
        "--seed",
        "2",
    ]);
    assert!(
        out.contains("class 1") && out.contains("threshold"),
        "{out}"
    );
    let spec = json(&std::fs::read_to_string(det.join("anomaly.json")).unwrap());
    assert_eq!(spec["normal_class"], 1);
    let csv = tmp.path().join("scores.csv");
    let out = ok(&[
        "anomaly",
        "score",
        "--checkpoint",
        d,
        "--out",
        csv.to_str().unwrap(),
        "--seed",
        "2",
    ]);
    assert!(out.contains("above the threshold"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 201, "header + 200 test images");
    assert!(text.starts_with("index,label,score,anomaly\n"));
    let ev = json(&ok(&["anomaly", "eval", "--checkpoint", d, "--json"]));
    let auc = ev["roc_auc"].as_f64().unwrap();
    // Ones are the easiest digit: 10 epochs on ~220 of them separate them.
    assert!(auc > 0.8 && auc <= 1.0, "{ev}");
    assert!(ev["pr_auc"].as_f64().unwrap() > 0.8, "{ev}");
    // A second detector (another seed): the ensemble of the two is evaluated.
    let det2 = tmp.path().join("det2");
    ok(&[
        "anomaly",
        "fit",
        "--normal-class",
        "1",
        "--out",
        det2.to_str().unwrap(),
        "--train-limit",
        "2000",
        "--test-limit",
        "200",
        "--epochs",
        "10",
        "--batch-size",
        "16",
        "--contamination",
        "0.1",
        "--seed",
        "3",
    ]);
    let both = [
        "anomaly",
        "eval",
        "--checkpoint",
        d,
        "--with",
        det2.to_str().unwrap(),
    ];
    let ev2 = json(&ok(&[&both[..], &["--json"]].concat()));
    let auc2 = ev2["roc_auc"].as_f64().unwrap();
    assert!(auc2 > 0.8 && auc2 <= 1.0, "{ev2}");
    assert_ne!(
        auc2, auc,
        "the ensemble scores differently from one detector"
    );
    assert!(ok(&both).contains("the mean of 2 detectors"));
    // Images of another size are rejected with the sizes named.
    let small = tmp.path().join("small.idx");
    idx_file(&small, 5, 16, 16);
    let err = fails(&[
        "anomaly",
        "score",
        "--checkpoint",
        d,
        "--images",
        small.to_str().unwrap(),
    ]);
    assert!(err.contains("1x16x16") && err.contains("784"), "{err}");
    // A plain run has no normal class to evaluate against.
    let plain = tmp.path().join("plain");
    train(&plain, "vanilla", "0", &[]);
    let err = fails(&["anomaly", "eval", "--checkpoint", plain.to_str().unwrap()]);
    assert!(err.contains("--normal-class"), "{err}");
    // Nor can it join an ensemble.
    let err = fails(&[
        "anomaly",
        "eval",
        "--checkpoint",
        d,
        "--with",
        plain.to_str().unwrap(),
    ]);
    assert!(err.contains("not a detector made by"), "{err}");
    let ev = json(&ok(&[
        "anomaly",
        "eval",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--normal-class",
        "0",
        "--json",
    ]));
    assert!(ev["roc_auc"].as_f64().unwrap() > 0.0);
}

#[test]
fn compress_decompress_and_its_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(&a, "vanilla", "0", &["--latent-dim", "16"]);
    train(&b, "vanilla", "1", &["--latent-dim", "16"]);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let images = tmp.path().join("in.idx");
    // 200 test images as their own IDX file.
    let src = ae_data::read_idx(Path::new(&mnist_test_images())).unwrap();
    let IdxData::U8(px) = src.data() else {
        panic!("MNIST is u8")
    };
    let arr = IdxArray::new(vec![200, 28, 28], IdxData::U8(px[..200 * 784].to_vec())).unwrap();
    write_idx(&images, &arr, false).unwrap();
    let aez = tmp.path().join("out.aez");
    let out = ok(&[
        "compress",
        "--checkpoint",
        a,
        images.to_str().unwrap(),
        aez.to_str().unwrap(),
        "--seed",
        "0",
    ]);
    assert!(out.contains("200 images"), "{out}");
    let size = std::fs::metadata(&aez).unwrap().len();
    assert!(size < 200 * 30, "{size} bytes");
    let back = tmp.path().join("back.idx.gz");
    let out = ok(&[
        "decompress",
        "--checkpoint",
        a,
        aez.to_str().unwrap(),
        back.to_str().unwrap(),
        "--reference",
        images.to_str().unwrap(),
    ]);
    assert!(out.contains("PSNR"), "{out}");
    let dec = ae_data::read_idx(&back).unwrap();
    assert_eq!(dec.dims(), &[200, 28, 28]);
    // 4 bits: smaller.
    let aez4 = tmp.path().join("out4.aez");
    ok(&[
        "compress",
        "--checkpoint",
        a,
        images.to_str().unwrap(),
        aez4.to_str().unwrap(),
        "--bits",
        "4",
    ]);
    assert!(std::fs::metadata(&aez4).unwrap().len() < size);
    // Another model, a corrupted file, images of another size: clear errors.
    let err = fails(&[
        "decompress",
        "--checkpoint",
        b,
        aez.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert!(err.contains("another model"), "{err}");
    let mut bytes = std::fs::read(&aez).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let bad = tmp.path().join("bad.aez");
    std::fs::write(&bad, &bytes).unwrap();
    let err = fails(&[
        "decompress",
        "--checkpoint",
        a,
        bad.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert!(
        err.contains("bad.aez") && err.contains("corrupted"),
        "{err}"
    );
    let small = tmp.path().join("small.idx");
    idx_file(&small, 3, 10, 10);
    let err = fails(&[
        "compress",
        "--checkpoint",
        a,
        small.to_str().unwrap(),
        aez.to_str().unwrap(),
    ]);
    assert!(err.contains("1x10x10"), "{err}");
    let err = fails(&[
        "compress",
        "--checkpoint",
        a,
        images.to_str().unwrap(),
        aez.to_str().unwrap(),
        "--bits",
        "9",
    ]);
    assert!(err.contains("bits"), "{err}");
}

#[test]
fn probe_iwae_and_denoise_table() {
    let tmp = tempfile::tempdir().unwrap();
    let v = tmp.path().join("v");
    train(&v, "vae", "0", &["--latent-dim", "8", "--hidden", "128"]);
    let vs = v.to_str().unwrap();
    let r = json(&ok(&[
        "iwae",
        "--checkpoint",
        vs,
        "-k",
        "1,20",
        "--limit",
        "50",
        "--seed",
        "4",
        "--json",
    ]));
    let ll: Vec<f64> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["log_likelihood"].as_f64().unwrap())
        .collect();
    assert!(ll[0] < ll[1] && ll[1] < 0.0, "{ll:?}");
    let out = ok(&["loglik", "--checkpoint", vs, "-k", "5", "--limit", "20"]);
    assert!(out.contains("nats per image"), "{out}");
    let p = json(&ok(&[
        "probe",
        "--checkpoint",
        vs,
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--max-iter",
        "50",
        "--baselines",
        "--json",
    ]));
    let rows = p.as_array().unwrap();
    assert_eq!(rows.len(), 3, "codes, raw pixels, PCA: {p}");
    for row in rows {
        let acc = row["result"]["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.3 && acc <= 1.0, "{row}");
    }
    let d = json(&ok(&[
        "denoise-table",
        "--checkpoint",
        vs,
        "--limit",
        "40",
        "--seed",
        "5",
        "--json",
    ]));
    assert_eq!(d.as_array().unwrap().len(), 4);
    let d2 = json(&ok(&[
        "denoise-table",
        "--checkpoint",
        vs,
        "--limit",
        "40",
        "--noise",
        "gaussian:0.5",
        "--seed",
        "5",
        "--json",
    ]));
    assert_eq!(d2[0]["noise"], "gaussian:0.5");
    // The IWAE needs a VAE.
    let plain = tmp.path().join("plain");
    train(&plain, "vanilla", "0", &[]);
    let err = fails(&[
        "iwae",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--limit",
        "5",
    ]);
    assert!(err.contains("vae"), "{err}");
}

#[test]
fn probe_on_a_conv_model_with_a_dense_code() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c");
    train(&c, "conv", "0", &["--dense-code", "8"]);
    let config = json(&std::fs::read_to_string(c.join("config.json")).unwrap());
    assert_eq!(config["model"]["dense_code"], 8, "{config}");
    let p = json(&ok(&[
        "probe",
        "--checkpoint",
        c.to_str().unwrap(),
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--max-iter",
        "50",
        "--baselines",
        "--standardize",
        "--json",
    ]));
    let rows = p.as_array().unwrap();
    assert_eq!(rows.len(), 3, "codes, raw pixels, PCA: {p}");
    assert_eq!(rows[0]["result"]["features"], 8, "{p}");
    assert_eq!(rows[2]["features"], "PCA, 8 components", "{p}");
    let acc = rows[0]["result"]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.2 && acc <= 1.0, "{p}");
    // The flag belongs to the conv model; --latent-dim alone does not size a conv code.
    let d = tmp.path().join("d");
    let err = fails(&[
        "train",
        "--model",
        "vanilla",
        "--dense-code",
        "8",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(err.contains("--dense-code does not apply"), "{err}");
    let err = fails(&[
        "train",
        "--model",
        "conv",
        "--latent-dim",
        "8",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(err.contains("without --dense-code"), "{err}");
    let err = fails(&[
        "train",
        "--model",
        "conv",
        "--latent-dim",
        "8",
        "--dense-code",
        "16",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(err.contains("disagree"), "{err}");
}
