//! `--data` end to end: folders of PNG/JPEG (RGB, gray), .npy/.npz, CSV and
//! Parquet through train, eval, encode, reconstruct, plot and anomaly; bad
//! input fails cleanly and leaves nothing behind. Tiny sets, one or two epochs.

#![allow(clippy::unwrap_used)]

use ae_data::fixtures::{self, Format};

mod common;

use common::{config, fails, ok, s};

#[test]
fn image_folder_rgb_conv_and_gray_jpeg() {
    let t = tempfile::tempdir().unwrap();
    let photos = t.path().join("photos");
    fixtures::write_folder(&photos, 40, (16, 16), 3, Format::Png, 2, 1).unwrap();
    let run = t.path().join("conv");
    let out = ok(&[
        "train",
        "--model",
        "conv",
        "--data",
        s(&photos),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--channels",
        "4,8",
        "--json",
    ]);
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(m["psnr"].as_f64().unwrap() > 5.0, "{m}");
    let c = config(&run);
    assert_eq!(c["data"]["data"], s(&photos));
    assert_eq!(
        c["data"]["source"]["color"], "rgb",
        "auto resolved and recorded"
    );
    assert_eq!(c["model"]["input"]["channels"], 3, "{}", c["model"]);
    // eval reloads the same held-out images; encode a whole folder in order
    let e: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "--checkpoint", s(&run), "--json"])).unwrap();
    assert_eq!(e["images"], 4, "{e}");
    let codes = t.path().join("codes.csv");
    ok(&[
        "encode",
        "--checkpoint",
        s(&run),
        "--data",
        s(&photos),
        "--out",
        s(&codes),
    ]);
    let text = std::fs::read_to_string(&codes).unwrap();
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        41,
        "header + 40 rows"
    );
    let png = t.path().join("rec.png");
    ok(&["reconstruct", "--checkpoint", s(&run), "--out", s(&png)]);
    assert!(png.is_file());

    // gray JPEGs of mixed sizes: an error naming two files, then --image-size
    let gray = t.path().join("gray");
    fixtures::write_folder(&gray, 12, (10, 12), 1, Format::Jpeg, 0, 2).unwrap();
    image::GrayImage::new(7, 9)
        .save(gray.join("odd.jpg"))
        .unwrap();
    let run2 = t.path().join("gray-run");
    let err = fails(&[
        "train",
        "--model",
        "vanilla",
        "--data",
        s(&gray),
        "--out",
        s(&run2),
        "--epochs",
        "1",
    ]);
    assert!(
        err.contains("odd.jpg") && err.contains("--image-size"),
        "{err}"
    );
    assert!(!run2.exists(), "a failed command leaves no run folder");
    ok(&[
        "train",
        "--model",
        "vanilla",
        "--data",
        s(&gray),
        "--image-size",
        "8x8",
        "--crop",
        "center",
        "--out",
        s(&run2),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--hidden",
        "16",
        "--latent-dim",
        "4",
    ]);
    assert_eq!(config(&run2)["data"]["source"]["color"], "gray");
    assert_eq!(config(&run2)["model"]["input"]["height"], 8);
}

#[test]
fn numpy_arrays_train_and_test_files() {
    let t = tempfile::tempdir().unwrap();
    let train = t.path().join("faces.npy");
    std::fs::write(&train, fixtures::npy_u8(48, 6, 6, 3, 3)).unwrap();
    let test = t.path().join("faces-test.npz");
    fixtures::write_npz(&test, &[("x", fixtures::npy_u8(8, 6, 6, 3, 4))], true).unwrap();
    let run = t.path().join("vae");
    ok(&[
        "train",
        "--model",
        "vae",
        "--data",
        s(&train),
        "--test-data",
        s(&test),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
    ]);
    let e: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "--checkpoint", s(&run), "--json"])).unwrap();
    assert_eq!(e["images"], 8, "the test file");
    // test data of another size: both files named
    let other = t.path().join("small.npy");
    std::fs::write(&other, fixtures::npy_u8(4, 5, 6, 3, 4)).unwrap();
    let err = fails(&[
        "train",
        "--model",
        "vanilla",
        "--data",
        s(&train),
        "--test-data",
        s(&other),
        "--out",
        s(&t.path().join("x")),
        "--epochs",
        "1",
    ]);
    assert!(
        err.contains("faces.npy") && err.contains("small.npy"),
        "{err}"
    );
}

#[test]
fn tables_train_anomaly_score_encode() {
    let t = tempfile::tempdir().unwrap();
    let (x, y) = fixtures::table(300, 6, 10, 7);
    let csv = t.path().join("sensors.csv");
    std::fs::write(&csv, fixtures::csv_text(&x, 6, Some(&y))).unwrap();
    let normal: Vec<f64> = x
        .chunks_exact(6)
        .zip(&y)
        .filter(|&(_, &l)| l == 0)
        .flat_map(|(r, _)| r.to_vec())
        .collect();
    let pq = t.path().join("normal.parquet");
    fixtures::write_parquet(&pq, &normal, 6, None).unwrap();

    // a conv model on a table says why not
    let err = fails(&[
        "train",
        "--model",
        "conv",
        "--data",
        s(&csv),
        "--label-column",
        "label",
        "--out",
        s(&t.path().join("c")),
    ]);
    assert!(
        err.contains("table") && err.contains("dense model"),
        "{err}"
    );

    let run = t.path().join("tab");
    ok(&[
        "train",
        "--model",
        "vanilla",
        "--data",
        s(&csv),
        "--label-column",
        "label",
        "--out",
        s(&run),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--hidden",
        "16",
        "--latent-dim",
        "3",
    ]);
    let c = config(&run);
    assert_eq!(
        c["data"]["scaler"]["columns"].as_array().unwrap().len(),
        6,
        "the scaler is saved"
    );
    // a table is standardised and trained with MSE through a linear output
    assert_eq!(c["data"]["scaler"]["kind"], "standardise", "{}", c["data"]);
    assert_eq!(c["data"]["scaler"]["std"].as_array().unwrap().len(), 6);
    assert_eq!(c["model"]["loss"], "mse", "{}", c["model"]);
    assert_eq!(
        c["train"]["lr"], 0.01,
        "a table keeps the recipe's common peak"
    );
    let e = ok(&["eval", "--checkpoint", s(&run)]);
    assert!(e.contains("standardised") && !e.contains("psnr"), "{e}");
    // bce on standardised features says why not
    let err = fails(&[
        "train",
        "--data",
        s(&csv),
        "--label-column",
        "label",
        "--loss",
        "bce",
        "--out",
        s(&t.path().join("b")),
        "--epochs",
        "1",
    ]);
    assert!(
        err.contains("bce") && err.contains("standardised") && err.contains("--loss mse"),
        "{err}"
    );
    let codes = t.path().join("codes.csv");
    ok(&[
        "encode",
        "--checkpoint",
        s(&run),
        "--data",
        s(&csv),
        "--out",
        s(&codes),
    ]);
    let rows = std::fs::read_to_string(&codes).unwrap();
    assert_eq!(rows.lines().filter(|l| !l.starts_with('#')).count(), 301);
    // encode keeps row order: the label column follows the CSV's
    let labels: Vec<u8> = rows
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(labels, y);
    // plot: table runs get no image pictures
    let plots = t.path().join("plots");
    let out = ok(&["plot", "--checkpoint", s(&run), "--out", s(&plots)]);
    assert!(
        out.contains("loss.png") && !out.contains("reconstructions"),
        "{out}"
    );

    // one-class detector on the normal rows, scored on the whole CSV
    let det = t.path().join("det");
    ok(&[
        "anomaly",
        "fit",
        "--data",
        s(&pq),
        "--out",
        s(&det),
        "--epochs",
        "20",
        "--hidden",
        "16",
        "--latent-dim",
        "3",
        "--contamination",
        "0.05",
    ]);
    let scores = t.path().join("scores.csv");
    ok(&[
        "anomaly",
        "score",
        "--checkpoint",
        s(&det),
        "--data",
        s(&csv),
        "--label-column",
        "label",
        "--out",
        s(&scores),
    ]);
    let text = std::fs::read_to_string(&scores).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "index,label,score,anomaly");
    assert_eq!(lines.len(), 301);
    // row order is kept, and the anomalous rows score higher on average
    let (mut a, mut n) = (Vec::new(), Vec::new());
    for (i, l) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f[0], i.to_string());
        let v: f64 = f[2].parse().unwrap();
        if y[i] == 1 {
            a.push(v)
        } else {
            n.push(v)
        }
        assert!(f[3] == "0" || f[3] == "1");
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&a) > 1.2 * mean(&n),
        "anomalies {} normal {}",
        mean(&a),
        mean(&n)
    );

    // the detector trained with MSE on standardised features
    let dc = config(&det);
    assert_eq!(dc["model"]["loss"], "mse", "{}", dc["model"]);
    assert_eq!(dc["data"]["scaler"]["kind"], "standardise");
    // a planted outlier among normal rows scores highest, far above the median
    let mut planted = normal[..30 * 6].to_vec();
    planted[7 * 6 + 2] += 60.0;
    let planted_csv = t.path().join("planted.csv");
    std::fs::write(&planted_csv, fixtures::csv_text(&planted, 6, None)).unwrap();
    let planted_scores = t.path().join("planted_scores.csv");
    ok(&[
        "anomaly",
        "score",
        "--checkpoint",
        s(&det),
        "--data",
        s(&planted_csv),
        "--out",
        s(&planted_scores),
    ]);
    let text = std::fs::read_to_string(&planted_scores).unwrap();
    let v: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(v.len(), 30);
    let top = (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
    let mut sorted = v.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[15];
    assert_eq!(top, 7, "scores {v:?}");
    assert!(v[7] > 10.0 * median, "outlier {} median {median}", v[7]);

    // eval on labelled rows: a detector fitted on all its rows takes label 0 as normal
    // (PyOD's convention), alone or in an ensemble with another seed's detector
    let eval = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "anomaly",
            "eval",
            "--checkpoint",
            s(&det),
            "--data",
            s(&csv),
            "--label-column",
            "label",
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let one = eval(&[]);
    assert_eq!(one["anomalous"], 30, "{one}");
    assert!(one["roc_auc"].as_f64().unwrap() > 0.7, "{one}");
    let det2 = t.path().join("det2");
    ok(&[
        "anomaly",
        "fit",
        "--data",
        s(&pq),
        "--out",
        s(&det2),
        "--epochs",
        "20",
        "--hidden",
        "16",
        "--latent-dim",
        "3",
        "--seed",
        "1",
    ]);
    let two = eval(&["--with", s(&det2)]);
    assert_eq!(two["anomalous"], 30, "{two}");
    assert!(two["roc_auc"].as_f64().unwrap() > 0.7, "{two}");
    assert_ne!(
        one["roc_auc"], two["roc_auc"],
        "the ensemble has its own scores"
    );

    // a table's run given images, columns that differ: clean errors
    let img = t.path().join("img.npy");
    std::fs::write(&img, fixtures::npy_u8(4, 2, 3, 0, 0)).unwrap();
    let err = fails(&[
        "anomaly",
        "score",
        "--checkpoint",
        s(&det),
        "--data",
        s(&img),
    ]);
    assert!(
        err.contains("images given to a model of table rows"),
        "{err}"
    );
    let other = t.path().join("other.csv");
    std::fs::write(&other, "f0,f1,f2,f3,f4,zz\n1,2,3,4,5,6\n").unwrap();
    let err = fails(&[
        "anomaly",
        "score",
        "--checkpoint",
        s(&det),
        "--data",
        s(&other),
    ]);
    assert!(err.contains("\"zz\"") && err.contains("other.csv"), "{err}");
}

#[test]
fn bad_data_fails_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = t.path().join("r");
    let err = fails(&["train", "--data", s(&empty), "--out", s(&run)]);
    assert!(err.contains("no images"), "{err}");
    let bad = t.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n3,oops\n").unwrap();
    let err = fails(&["train", "--data", s(&bad), "--out", s(&run)]);
    assert!(err.contains("row 2") && err.contains("\"b\""), "{err}");
    assert!(!run.exists());
    // the IDX flags and --data do not mix
    let out = common::run(&[
        "train",
        "--data",
        s(&bad),
        "--data-dir",
        s(t.path()),
        "--out",
        s(&run),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("--data"), "{err}");
}

#[test]
fn resume_accepts_the_runs_own_data_flags_and_names_changed_ones() {
    let t = tempfile::tempdir().unwrap();
    let photos = t.path().join("photos");
    fixtures::write_folder(&photos, 24, (8, 8), 1, Format::Png, 2, 3).unwrap();
    let run = t.path().join("run");
    let base = [
        "train",
        "--data",
        s(&photos),
        "--test-fraction",
        "0.25",
        "--color",
        "auto",
        "--out",
        s(&run),
        "--batch-size",
        "8",
        "--hidden",
        "16",
        "--latent-dim",
        "4",
    ];
    ok(&[&base[..], &["--epochs", "1"]].concat());
    // The same data flags again: they agree with config.json (auto was resolved to gray).
    ok(&[&base[..], &["--epochs", "2", "--resume"]].concat());
    assert_eq!(config(&run)["train"]["epochs"], 2);
    // A different hold-out or colour contradicts the run, and each is named.
    let err = fails(&[
        "train",
        "--data",
        s(&photos),
        "--test-fraction",
        "0.5",
        "--color",
        "rgb",
        "--out",
        s(&run),
        "--epochs",
        "3",
        "--resume",
    ]);
    assert!(err.contains("--test-fraction"), "{err}");
    assert!(err.contains("--color"), "{err}");
    assert!(!err.contains("--data "), "{err}");
}

/// `compress` takes every kind of image data a run reads, and `decompress` writes
/// `.npy`, a folder of PNGs or IDX; a table run is refused with the reason.
#[test]
fn compress_any_images_and_decompress_to_npy_pngs_or_idx() {
    let t = tempfile::tempdir().unwrap();
    let photos = t.path().join("photos");
    fixtures::write_folder(&photos, 24, (8, 8), 3, Format::Png, 0, 5).unwrap();
    let run = t.path().join("v");
    ok(&[
        "train",
        "--model",
        "vanilla",
        "--data",
        s(&photos),
        "--out",
        s(&run),
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--latent-dim",
        "8",
    ]);
    // MSE on images peaks lower unless --lr says otherwise
    for (lr, want) in [(None, 0.003), (Some("0.01"), 0.01)] {
        let mse = t.path().join("mse");
        let mut args = vec![
            "train",
            "--model",
            "vanilla",
            "--data",
            s(&photos),
            "--out",
            s(&mse),
            "--epochs",
            "1",
            "--loss",
            "mse",
            "--overwrite",
        ];
        args.extend(lr.iter().flat_map(|lr| ["--lr", *lr]));
        ok(&args);
        assert_eq!(config(&mse)["train"]["lr"], want, "{lr:?}");
    }
    let aez = t.path().join("photos.aez");
    let out = ok(&["compress", "--checkpoint", s(&run), s(&photos), s(&aez)]);
    assert!(out.contains("24 images"), "{out}");
    // a .npy of the same pictures (numpy's channels-last u8) compresses to the same bytes
    let npy_in = t.path().join("photos.npy");
    std::fs::write(&npy_in, fixtures::npy_u8(24, 8, 8, 3, 5)).unwrap();
    let aez2 = t.path().join("npy.aez");
    ok(&["compress", "--checkpoint", s(&run), s(&npy_in), s(&aez2)]);
    assert_eq!(std::fs::read(&aez).unwrap(), std::fs::read(&aez2).unwrap());

    // .npy out: uint8 [N, H, W, C], within the model's error of the originals
    let npy = t.path().join("back.npy");
    let out = ok(&[
        "decompress",
        "--checkpoint",
        s(&run),
        s(&aez),
        s(&npy),
        "--reference",
        s(&photos),
    ]);
    assert!(out.contains("PSNR"), "{out}");
    let bytes = std::fs::read(&npy).unwrap();
    let header = String::from_utf8_lossy(&bytes[..128]).replace(' ', "");
    assert!(
        header.contains("u1'") && header.contains("(24,8,8,3"),
        "{header}"
    );
    // a folder of PNGs: one per image, readable back as the run's data
    let pngs = t.path().join("pngs");
    let slash = format!("{}/", s(&pngs));
    ok(&["decompress", "--checkpoint", s(&run), s(&aez), &slash]);
    let mut names: Vec<_> = std::fs::read_dir(&pngs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 24);
    assert_eq!(
        (names[0].as_str(), names[23].as_str()),
        ("000000.png", "000023.png")
    );
    // the PNGs hold exactly the .npy's pixels: recompressing either gives the same file
    let from_pngs = t.path().join("pngs.aez");
    let from_npy = t.path().join("back.aez");
    ok(&["compress", "--checkpoint", s(&run), s(&pngs), s(&from_pngs)]);
    ok(&["compress", "--checkpoint", s(&run), s(&npy), s(&from_npy)]);
    assert_eq!(
        std::fs::read(&from_pngs).unwrap(),
        std::fs::read(&from_npy).unwrap()
    );
    // a non-empty folder is refused rather than mixed into
    let err = fails(&["decompress", "--checkpoint", s(&run), s(&aez), s(&pngs)]);
    assert!(err.contains("not empty"), "{err}");
    // IDX as before: 4-d for colour
    let idx = t.path().join("back.idx");
    ok(&["decompress", "--checkpoint", s(&run), s(&aez), s(&idx)]);
    assert_eq!(
        std::fs::metadata(&idx).unwrap().len(),
        4 + 4 * 4 + 24 * 3 * 8 * 8
    );

    // a table run: compress says why not
    let (x, _) = fixtures::table(60, 4, 0, 1);
    let csv = t.path().join("t.csv");
    std::fs::write(&csv, fixtures::csv_text(&x, 4, None)).unwrap();
    let tab = t.path().join("tab");
    ok(&[
        "train",
        "--model",
        "vanilla",
        "--data",
        s(&csv),
        "--out",
        s(&tab),
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--latent-dim",
        "2",
    ]);
    let err = fails(&["compress", "--checkpoint", s(&tab), s(&csv), s(&aez)]);
    assert!(err.contains("table") && err.contains("ae encode"), "{err}");
}
