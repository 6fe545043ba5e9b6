//! `--data` sources built on the fly: folders of PNG and JPEG (RGB, gray,
//! classes, flat), .npy/.npz of each dtype and layout, CSV and Parquet; and the
//! "bad input" list of issue 12, each a typed error naming the file.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ae_data::fixtures::{self, Format};
use ae_data::{Color, Crop, DataConfig, DataError, ImageSize, Normalize, Scaler, SourceOptions};

fn cfg(data: &Path) -> DataConfig {
    DataConfig {
        data: Some(data.to_path_buf()),
        ..DataConfig::default()
    }
}

fn load(c: &DataConfig) -> ae_data::Split {
    c.clone().load_fitted().unwrap()
}

#[test]
fn folders_png_jpeg_rgb_gray_classes() {
    let d = tempfile::tempdir().unwrap();
    for (name, fmt, c, classes) in [
        ("png-rgb", Format::Png, 3, 2),
        ("png-gray", Format::Png, 1, 0),
        ("jpg-rgb", Format::Jpeg, 3, 0),
        ("jpg-gray", Format::Jpeg, 1, 3),
    ] {
        let dir = d.path().join(name);
        fixtures::write_folder(&dir, 20, (8, 6), c, fmt, classes, 1).unwrap();
        let mut c0 = cfg(&dir);
        let split = c0.load_fitted().unwrap();
        assert_eq!((split.train.len(), split.test.len()), (18, 2), "{name}");
        assert_eq!(split.train.shape(), [c, 8, 6], "{name}");
        assert_eq!(split.train.labels().is_some(), classes > 0, "{name}");
        if classes > 0 {
            assert_eq!(split.train.num_classes(), Some(classes), "{name}");
        }
        // auto colour resolved and recorded, so a later load of one split matches
        let want = if c == 1 { Color::Gray } else { Color::Rgb };
        assert_eq!(c0.source.color, want, "{name}");
        assert!(split.train.pixels().iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // PNG pixels are exact: v / 255 of what was written, channels first
    let dir = d.path().join("png-rgb");
    let mut c1 = cfg(&dir);
    c1.test_fraction = Some(0.0);
    let all = c1.clone().load_fitted().unwrap().train;
    let raw = fixtures::pictures(20, 8, 6, 3, 1);
    // held as bytes, one per value
    assert_eq!(all.stored_bytes(), 20 * 8 * 6 * 3);
    assert!(all.pixels_u8().is_some());
    // files are sorted by class folder: class0 holds images 0, 2, 4, ...
    assert_eq!(all.image(0).unwrap()[0], f32::from(raw[0]) / 255.0);
    assert_eq!(
        all.image(0).unwrap()[8 * 6],
        f32::from(raw[1]) / 255.0,
        "green plane"
    );
    assert_eq!(
        all.image(1).unwrap()[0],
        f32::from(raw[2 * 8 * 6 * 3]) / 255.0
    );
    // forced colours, resizing with a centre crop
    c1.source = SourceOptions {
        color: Color::Gray,
        image_size: Some("4x4".parse().unwrap()),
        crop: Crop::Center,
        ..SourceOptions::default()
    };
    let s = c1.load().unwrap().train;
    assert_eq!(s.shape(), [1, 4, 4]);
    let dir = d.path().join("png-gray");
    let mut c2 = cfg(&dir);
    c2.source.color = Color::Rgb;
    assert_eq!(c2.load().unwrap().train.shape(), [3, 8, 6]);
}

#[test]
fn holdout_is_seeded_and_recorded_by_config() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x.npy"), fixtures::npy_u8(50, 4, 4, 0, 2)).unwrap();
    let mut c = cfg(&d.path().join("x.npy"));
    c.test_fraction = Some(0.2);
    let a = load(&c);
    assert_eq!((a.train.len(), a.test.len()), (40, 10));
    assert_eq!(load(&c), a, "same seed, same split");
    c.split_seed = 1;
    assert_ne!(load(&c).test, a.test);
    // the config (as config.json holds it) round-trips
    let json = serde_json::to_string(&c).unwrap();
    let back: DataConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    // an old config.json without the new fields still loads
    let old: DataConfig = serde_json::from_str(r#"{"name":"mnist","train_limit":5}"#).unwrap();
    assert_eq!(old.data, None);
}

#[test]
fn npy_dtypes_and_layouts() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    // u8 [N, H, W] and [N, H, W, C]
    std::fs::write(p("a.npy"), fixtures::npy_u8(10, 4, 5, 0, 3)).unwrap();
    std::fs::write(p("b.npy"), fixtures::npy_u8(10, 4, 5, 3, 3)).unwrap();
    let mut c = cfg(&p("a.npy"));
    c.test_data = Some(p("a.npy"));
    assert_eq!(load(&c).train.shape(), [1, 4, 5]);
    let mut c = cfg(&p("b.npy"));
    c.test_data = Some(p("b.npy"));
    let s = load(&c).train;
    assert_eq!(s.shape(), [3, 4, 5]);
    assert_eq!(s.stored_bytes(), 10 * 3 * 4 * 5, "uint8 held as bytes");
    // channels-last to channels-first: pixel (0, 1) of channel 2
    let raw = fixtures::pictures(10, 4, 5, 3, 3);
    assert_eq!(
        s.image(0).unwrap()[2 * 20 + 1],
        f32::from(raw[3 + 2]) / 255.0
    );
    // f32 [N, C, H, W] with --channels-first; f64 [N, H, W, 1]
    let v: Vec<f32> = (0..2 * 3 * 2 * 2).map(|i| i as f32 / 24.0).collect();
    std::fs::write(p("c.npy"), fixtures::npy_f32(&[2, 3, 2, 2], &v)).unwrap();
    let mut c = cfg(&p("c.npy"));
    c.test_data = Some(p("c.npy"));
    c.source.channels_first = true;
    let s = load(&c).train;
    assert_eq!(s.shape(), [3, 2, 2]);
    assert_eq!(s.pixels(), v.as_slice());
    assert_eq!(s.pixels_u8(), None, "floats stay f32");
    let w: Vec<f64> = (0..8).map(|i| f64::from(i) / 8.0).collect();
    std::fs::write(p("d.npy"), fixtures::npy_f64(&[2, 2, 2, 1], &w)).unwrap();
    let mut c = cfg(&p("d.npy"));
    c.test_data = Some(p("d.npy"));
    assert_eq!(load(&c).train.shape(), [1, 2, 2]);
    // floats outside [0, 1]: an error, or min-max scaled
    std::fs::write(
        p("e.npy"),
        fixtures::npy_f32(&[2, 2, 2], &[0.0, 2.0, 4.0, 8.0, 1.0, 1.0, 1.0, 1.0]),
    )
    .unwrap();
    let mut c = cfg(&p("e.npy"));
    c.test_data = Some(p("e.npy"));
    let e = c.load().unwrap_err();
    assert!(
        e.to_string().contains("--normalize minmax") && e.to_string().contains("e.npy"),
        "{e}"
    );
    c.source.normalize = Normalize::Minmax;
    assert_eq!(&load(&c).train.pixels()[..4], &[0.0, 0.25, 0.5, 1.0]);
    // [N, D] is a table: columns "0".."D-1", standardised by the training split
    let t: Vec<f32> = vec![1.0, 10.0, 3.0, 20.0, 5.0, 30.0];
    std::fs::write(p("t.npy"), fixtures::npy_f32(&[3, 2], &t)).unwrap();
    let mut c = cfg(&p("t.npy"));
    c.test_data = Some(p("t.npy"));
    let mut c2 = c.clone();
    let s = c2.load_fitted().unwrap().train;
    assert!(s.is_table());
    assert_eq!(s.columns().unwrap(), &["0".to_string(), "1".to_string()]);
    // mean (3, 20), population std (sqrt(8/3), sqrt(200/3)): both columns become -a, 0, a
    let a = (1.5f64).sqrt() as f32;
    for (got, want) in s.pixels().iter().zip([-a, -a, 0.0, 0.0, a, a]) {
        assert!((got - want).abs() < 1e-6, "{:?}", s.pixels());
    }
    match c2.scaler.as_ref().unwrap() {
        Scaler::Standardise { mean, .. } => assert_eq!(mean, &vec![3.0, 20.0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn npz_members_labels_stored_and_deflated() {
    let d = tempfile::tempdir().unwrap();
    let x = fixtures::npy_u8(6, 3, 3, 1, 4);
    let y = ae_data::npy::encode_npy(
        "<i8",
        &[6],
        &[0u8, 1, 2, 0, 1, 2]
            .iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    for deflate in [false, true] {
        let path = d.path().join(format!("s{deflate}.npz"));
        fixtures::write_npz(&path, &[("images", x.clone()), ("y", y.clone())], deflate).unwrap();
        let mut c = cfg(&path);
        c.test_data = Some(path.clone());
        // two members and no "x": the data must be named
        let e = c.load().unwrap_err();
        assert!(e.to_string().contains("--array"), "{e}");
        c.source.array = Some("images".into());
        c.source.label_array = Some("y".into());
        let s = load(&c).train;
        assert_eq!(s.shape(), [1, 3, 3]);
        assert_eq!(s.labels().unwrap(), &[0, 1, 2, 0, 1, 2]);
        c.source.array = Some("nope".into());
        assert!(c.load().unwrap_err().to_string().contains("nope"));
    }
    // the only member is picked without --array
    let path = d.path().join("one.npz");
    fixtures::write_npz(&path, &[("whatever", x)], true).unwrap();
    let mut c = cfg(&path);
    c.test_data = Some(path);
    assert_eq!(load(&c).train.len(), 6);
}

#[test]
fn csv_and_parquet_tables() {
    let d = tempfile::tempdir().unwrap();
    let (x, y) = fixtures::table(40, 4, 10, 5);
    let csv = d.path().join("t.csv");
    std::fs::write(&csv, fixtures::csv_text(&x, 4, Some(&y))).unwrap();
    let pq = d.path().join("t.parquet");
    fixtures::write_parquet(&pq, &x, 4, Some(&y)).unwrap();
    for path in [&csv, &pq] {
        let mut c = cfg(path);
        c.source.label_column = Some("label".into());
        c.test_fraction = Some(0.25);
        let mut fitted = c.clone();
        let s = fitted.load_fitted().unwrap();
        assert_eq!((s.train.len(), s.test.len()), (30, 10), "{path:?}");
        assert_eq!(s.train.columns().unwrap().len(), 4);
        // the training columns are standardised: mean 0, std 1
        let rows = s.train.pixels();
        for j in 0..4 {
            let c: Vec<f64> = rows
                .iter()
                .skip(j)
                .step_by(4)
                .map(|&v| f64::from(v))
                .collect();
            let m = c.iter().sum::<f64>() / c.len() as f64;
            let sd = (c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / c.len() as f64).sqrt();
            assert!(
                m.abs() < 1e-5 && (sd - 1.0).abs() < 1e-5,
                "{path:?} column {j}: {m} {sd}"
            );
        }
        let scaler = fitted.scaler.clone().unwrap();
        assert!(scaler.is_standardise());
        assert_eq!(scaler.columns(), ["f0", "f1", "f2", "f3"]);
        // labels: CSV has 0/1, Parquet has text ("fault" < "normal": fault = 0)
        let n_anom = s
            .train
            .labels()
            .unwrap()
            .iter()
            .chain(s.test.labels().unwrap())
            .filter(|&&l| l == 1)
            .count();
        assert_eq!(
            if path == &csv { n_anom } else { 40 - n_anom },
            4,
            "{path:?}"
        );
        // a later load uses the recorded scaler, and a whole file keeps row order
        let whole = fitted.load_file(path).unwrap();
        assert_eq!(whole.len(), 40);
        let mut first = vec![x[0] as f32, x[1] as f32, x[2] as f32, x[3] as f32];
        scaler.apply(&mut first);
        assert_eq!(whole.image(0).unwrap(), first.as_slice());
    }
}

fn err_of(c: &DataConfig) -> String {
    let e = c.clone().load_fitted().unwrap_err();
    e.to_string()
}

#[test]
fn bad_folders() {
    let d = tempfile::tempdir().unwrap();
    // empty folder
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let m = err_of(&cfg(&empty));
    assert!(m.contains("empty") && m.contains("no images"), "{m}");
    // mixed classes and loose images
    let mixed = d.path().join("mixed");
    fixtures::write_folder(&mixed.join("a"), 3, (4, 4), 1, Format::Png, 0, 0).unwrap();
    fixtures::write_folder(&mixed, 2, (4, 4), 1, Format::Png, 0, 0).unwrap();
    let m = err_of(&cfg(&mixed));
    assert!(m.contains("mixes class subfolders"), "{m}");
    // mixed sizes: both files named; --image-size fixes it
    let sizes = d.path().join("sizes");
    fixtures::write_folder(&sizes, 3, (4, 4), 3, Format::Png, 0, 0).unwrap();
    image::RgbImage::new(5, 4)
        .save(sizes.join("zz.png"))
        .unwrap();
    let e = cfg(&sizes).load_fitted().unwrap_err();
    assert!(matches!(e, DataError::MixedSizes { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("img0000") && m.contains("zz.png") && m.contains("--image-size"),
        "{m}"
    );
    let mut c = cfg(&sizes);
    c.source.image_size = Some(ImageSize {
        height: 4,
        width: 4,
    });
    c.test_fraction = Some(0.25);
    assert_eq!(load(&c).train.shape(), [3, 4, 4]);
    // a file the decoder rejects: named, or skipped with --skip-bad-images
    std::fs::write(sizes.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = c.clone().load_fitted().unwrap_err();
    assert!(
        matches!(e, DataError::Decode { .. }) && e.to_string().contains("broken.png"),
        "{e}"
    );
    c.source.skip_bad_images = true;
    let s = load(&c);
    assert_eq!(s.train.len() + s.test.len(), 4);
    // a hostile header: a PNG claiming 10^9 x 10^9 pixels is refused before decoding
    let huge = d.path().join("huge");
    std::fs::create_dir(&huge).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    png.extend_from_slice(&1_000_000_000u32.to_be_bytes());
    png.extend_from_slice(&1_000_000_000u32.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = crc32fast::hash(&png[12..]);
    png.extend_from_slice(&crc.to_be_bytes());
    std::fs::write(huge.join("a.png"), &png).unwrap();
    std::fs::write(huge.join("b.png"), &png).unwrap();
    let e = cfg(&huge).load_fitted().unwrap_err();
    assert!(matches!(e, DataError::Decode { .. }), "{e}");
    // not a file or folder
    let m = err_of(&cfg(&d.path().join("missing")));
    assert!(m.contains("missing"), "{m}");
}

#[cfg(unix)]
#[test]
fn fifo_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("x.npy");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return; // no mkfifo on this system: nothing to test
    }
    let m = err_of(&cfg(&fifo));
    assert!(m.contains("not a regular file"), "{m}");
}

#[test]
fn bad_npy() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let write_err = |name: &str, bytes: Vec<u8>| {
        std::fs::write(p(name), bytes).unwrap();
        let mut c = cfg(&p(name));
        c.test_data = Some(p(name));
        let m = err_of(&c);
        assert!(m.contains(name), "{m}");
        m
    };
    // unsupported dtype
    let m = write_err(
        "i16.npy",
        ae_data::npy::encode_npy("<i2", &[2, 2, 2], &[0; 16]),
    );
    assert!(m.contains("uint8"), "{m}");
    let m = write_err(
        "str.npy",
        ae_data::npy::encode_npy("<U3", &[2, 2, 2], &[0; 96]),
    );
    assert!(m.contains("unsupported dtype"), "{m}");
    // shapes that are not images or a table
    let m = write_err("1d.npy", ae_data::npy::encode_npy("|u1", &[4], &[0; 4]));
    assert!(m.contains("not images or a table"), "{m}");
    let m = write_err(
        "5d.npy",
        ae_data::npy::encode_npy("|u1", &[1, 1, 1, 1, 1], &[0; 1]),
    );
    assert!(m.contains("not images or a table"), "{m}");
    let m = write_err(
        "c7.npy",
        ae_data::npy::encode_npy("|u1", &[1, 2, 2, 7], &[0; 28]),
    );
    assert!(m.contains("--channels-first"), "{m}");
    // truncated payload, trailing bytes
    let m = write_err(
        "short.npy",
        ae_data::npy::encode_npy("|u1", &[2, 3, 3], &[0; 10]),
    );
    assert!(m.contains("truncated"), "{m}");
    let m = write_err(
        "long.npy",
        ae_data::npy::encode_npy("|u1", &[2, 3, 3], &[0; 20]),
    );
    assert!(m.contains("trailing"), "{m}");
    // a header claiming 10^18 elements: refused before allocating, no overflow
    let m = write_err(
        "huge.npy",
        ae_data::npy::encode_npy(
            "<f4",
            &[1_000_000_000, 1_000_000_000, 1_000_000_000],
            &[0; 4],
        ),
    );
    assert!(m.contains("overflows") || m.contains("truncated"), "{m}");
    let m = write_err(
        "big.npy",
        ae_data::npy::encode_npy("<f4", &[1_000_000, 1000, 1000], &[0; 4]),
    );
    assert!(m.contains("truncated"), "{m}");
    // a header length beyond the file
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    let m = write_err("hdr.npy", b);
    assert!(m.contains("header claims"), "{m}");
    // NaN, not a .npy, Fortran order
    let m = write_err("nan.npy", fixtures::npy_f32(&[1, 1, 2], &[0.5, f32::NAN]));
    assert!(m.contains("finite"), "{m}");
    let m = write_err("text.npy", b"hello, world".to_vec());
    assert!(m.contains("not a .npy"), "{m}");
    let mut f = ae_data::npy::encode_npy("|u1", &[1, 2, 2], &[0; 4]);
    let at = f.windows(5).position(|w| w == b"False").unwrap();
    f.splice(at..at + 5, b"True ".iter().copied());
    let m = write_err("fortran.npy", f);
    assert!(m.contains("Fortran"), "{m}");
    // labels out of range, of the wrong length
    let x = fixtures::npy_u8(3, 2, 2, 0, 0);
    let y = ae_data::npy::encode_npy("<i4", &[3], &[0, 0, 0, 0, 44, 1, 0, 0, 1, 0, 0, 0]);
    fixtures::write_npz(&p("lab.npz"), &[("x", x.clone()), ("y", y)], false).unwrap();
    let mut c = cfg(&p("lab.npz"));
    c.test_data = Some(p("lab.npz"));
    c.source.label_array = Some("y".into());
    let m = err_of(&c);
    assert!(
        m.contains("label #1 is 300") && m.contains("lab.npz:y"),
        "{m}"
    );
    let y = ae_data::npy::encode_npy("|u1", &[2], &[0, 1]);
    fixtures::write_npz(&p("lab2.npz"), &[("x", x), ("y", y)], false).unwrap();
    c.data = Some(p("lab2.npz"));
    c.test_data = c.data.clone();
    let m = err_of(&c);
    assert!(m.contains("for 3 items"), "{m}");
}

#[test]
fn bad_tables() {
    let d = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str, label: Option<&str>, want: &[&str]| {
        let path = d.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut c = cfg(&path);
        c.test_data = Some(path.clone());
        c.source.label_column = label.map(str::to_string);
        let m = err_of(&c);
        assert!(m.contains(name), "{m}");
        for w in want {
            assert!(m.contains(w), "{m} lacks {w}");
        }
    };
    check("ragged.csv", "a,b\n1,2\n3\n", None, &["row 2", "ragged"]);
    check(
        "text.csv",
        "a,b\n1,2\n3,x\n",
        None,
        &["row 2", "\"b\"", "not a number"],
    );
    check(
        "nan.csv",
        "a,b\n1,NaN\n",
        None,
        &["row 1", "\"b\"", "finite"],
    );
    check(
        "inf.csv",
        "a,b\n1,2\ninf,2\n",
        None,
        &["row 2", "\"a\"", "finite"],
    );
    check(
        "empty-cell.csv",
        "a,b\n1,\n",
        None,
        &["row 1", "\"b\"", "empty cell"],
    );
    check(
        "nolabel.csv",
        "a,b\n1,2\n",
        Some("fault"),
        &["no label column", "fault"],
    );
    check("dup.csv", "a,a\n1,2\n", None, &["twice"]);
    check("empty.csv", "", None, &["header"]);
    check("norows.csv", "a,b\n", None, &["no data rows"]);
    check("const.csv", "a,b\n1,2\n1,3\n", None, &["\"a\"", "constant"]);
    let wide = (0..200_000)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    check("wide.csv", &wide, None, &["200000 columns"]);
    // Parquet with a text feature column
    let (x, y) = fixtures::table(10, 2, 0, 0);
    let pq = d.path().join("s.parquet");
    fixtures::write_parquet(&pq, &x, 2, Some(&y)).unwrap();
    let mut c = cfg(&pq);
    c.test_data = Some(pq.clone());
    let m = err_of(&c);
    assert!(m.contains("\"label\"") && m.contains("text"), "{m}");
}

#[test]
fn test_data_must_match_training_data() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("a.npy"), fixtures::npy_u8(4, 4, 4, 0, 0)).unwrap();
    std::fs::write(p("b.npy"), fixtures::npy_u8(4, 5, 4, 0, 0)).unwrap();
    let mut c = cfg(&p("a.npy"));
    c.test_data = Some(p("b.npy"));
    let m = err_of(&c);
    assert!(m.contains("a.npy") && m.contains("b.npy"), "{m}");
    std::fs::write(p("a.csv"), "x,y\n1,2\n2,3\n").unwrap();
    std::fs::write(p("b.csv"), "x,z\n1,2\n").unwrap();
    let mut c = cfg(&p("a.csv"));
    c.test_data = Some(p("b.csv"));
    let m = err_of(&c);
    assert!(
        m.contains("a.csv") && m.contains("b.csv") && m.contains("\"z\""),
        "{m}"
    );
    // images and a table
    c.test_data = Some(p("a.npy"));
    let m = err_of(&c);
    assert!(m.contains("table") && m.contains("a.npy"), "{m}");
    // a run of a table given images, and the reverse
    let mut t = cfg(&p("a.csv"));
    t.test_data = Some(p("a.csv"));
    t.load_fitted().unwrap();
    let m = t.load_file(&p("a.npy")).unwrap_err().to_string();
    assert!(m.contains("images given to a model of table rows"), "{m}");
    let m = t.load_file(&p("b.csv")).unwrap_err().to_string();
    assert!(m.contains("\"z\"") || m.contains("\"y\""), "{m}");
    let mut i = cfg(&p("a.npy"));
    i.test_data = Some(p("a.npy"));
    i.load_fitted().unwrap();
    let m = i.load_file(&p("a.csv")).unwrap_err().to_string();
    assert!(m.contains("a table given to a model of images"), "{m}");
}
