//! One crafted file per IDX / label validation error, checking the variant and that the message names the file.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use ae_data::idx::{check_labels, labels_to_u8};
use ae_data::{DataError, IdxArray, IdxData, encode_idx, parse_idx, read_idx, write_idx};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::time::{Duration, Instant};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn header(code: u8, dims: &[u32]) -> Vec<u8> {
    let mut b = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

#[track_caller]
fn err(bytes: &[u8], name: &str) -> DataError {
    let e = parse_idx(bytes, name).unwrap_err();
    assert!(
        e.to_string().contains(name),
        "message {e} does not name {name}"
    );
    e
}

#[test]
fn bad_magic() {
    let mut b = header(0x08, &[1]);
    b.push(0);
    b[0] = 1;
    let e = err(&b, "magic.idx");
    assert!(
        matches!(e, DataError::BadMagic { found: [1, 0], .. }),
        "{e}"
    );
    // gzip-compressed too
    let e = err(&gzip(&b), "magic.idx.gz");
    assert!(matches!(e, DataError::BadMagic { .. }), "{e}");
}

#[test]
fn truncated_header() {
    for b in [
        &[][..],
        &[0][..],
        &[0, 0, 8][..],
        &[0, 0, 8, 2, 0, 0, 0, 1][..],
    ] {
        let e = err(b, "short.idx");
        assert!(matches!(e, DataError::TruncatedHeader { .. }), "{e}");
    }
}

#[test]
fn unknown_type() {
    let e = err(&header(0x0A, &[0]), "type.idx");
    assert!(
        matches!(e, DataError::UnknownType { code: 0x0A, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("0x0A"), "{e}");
}

#[test]
fn zero_dims() {
    let e = err(&header(0x08, &[]), "zero.idx");
    assert!(matches!(e, DataError::ZeroDims { .. }), "{e}");
}

#[test]
fn overflowing_dims_product() {
    let b = header(0x08, &[u32::MAX, u32::MAX, u32::MAX]);
    let e = err(&b, "overflow.idx");
    assert!(matches!(e, DataError::DimsOverflow { .. }), "{e}");
    // Fits in u64 as elements, but not times 8 bytes.
    let e = err(&header(0x0E, &[u32::MAX, u32::MAX]), "overflow64.idx");
    assert!(matches!(e, DataError::DimsOverflow { .. }), "{e}");
    // A zero dimension makes the product 0, whatever the others.
    let a = parse_idx(
        &header(0x08, &[u32::MAX, u32::MAX, u32::MAX, 0]),
        "empty.idx",
    )
    .unwrap();
    assert_eq!(a.num_elements(), 0);
    assert_eq!(a.len(), u32::MAX as usize);
}

#[test]
fn short_payload() {
    let mut b = header(0x0C, &[2, 3]);
    b.extend_from_slice(&[0; 23]);
    let e = err(&b, "short.idx");
    assert!(
        matches!(
            e,
            DataError::PayloadTooShort {
                actual: 23,
                expected: 24,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "short.idx: payload is 23 bytes but the header's dims [2, 3] need 24"
    );
    let e = err(&gzip(&b), "short.idx.gz");
    assert!(
        matches!(
            e,
            DataError::PayloadTooShort {
                actual: 23,
                expected: 24,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn long_payload() {
    let mut b = header(0x08, &[2]);
    b.extend_from_slice(&[1, 2, 3]);
    let e = err(&b, "long.idx");
    assert!(
        matches!(
            e,
            DataError::PayloadTooLong {
                extra: 1,
                expected: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&gzip(&b), "long.idx.gz");
    assert!(
        matches!(e, DataError::PayloadTooLong { extra: 1, .. }),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_gzip() {
    let arr = IdxArray::new(
        vec![100, 10],
        IdxData::U8((0..1000).map(|i| (i * 7) as u8).collect()),
    )
    .unwrap();
    let gz = gzip(&encode_idx(&arr));
    // Cut inside the deflate stream, and cut inside the 8-byte trailer.
    for cut in [gz.len() / 2, gz.len() - 3] {
        let e = err(&gz[..cut], "cut.gz");
        assert!(matches!(e, DataError::Gzip { .. }), "cut at {cut}: {e}");
    }
    // A flipped payload byte: caught by the CRC at the latest.
    let mut bad = gz.clone();
    let i = bad.len() - 8; // last byte of the CRC
    bad[i] ^= 1;
    let e = err(&bad, "crc.gz");
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
}

#[test]
fn huge_claim_in_a_small_file_fails_fast_without_allocating() {
    // 1 KB files claiming 4e9 images of 28x28 (~3 TB): raw and gzip.
    let mut b = header(0x08, &[4_000_000_000, 28, 28]);
    b.resize(1024, 0);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("huge.idx");
    let gz = dir.path().join("huge.idx.gz");
    std::fs::write(&raw, &b).unwrap();
    std::fs::write(&gz, gzip(&b)).unwrap();
    for path in [&raw, &gz] {
        let t = Instant::now();
        let e = read_idx(path).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        match e {
            DataError::PayloadTooShort {
                actual, expected, ..
            } => {
                assert_eq!(actual, 1024 - 16);
                assert_eq!(expected, 4_000_000_000 * 784);
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn io_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("missing.idx");
    let e = read_idx(&p).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(e.to_string().contains("missing.idx"));
}

#[test]
fn failed_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let arr = IdxArray::new(vec![1], IdxData::U8(vec![1])).unwrap();
    // Target is an existing directory: the rename fails.
    let target = dir.path().join("sub");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    assert!(write_idx(&target, &arr, false).is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("sub")]);
    // Overwriting an existing file works.
    let f = dir.path().join("a.idx");
    std::fs::write(&f, b"old").unwrap();
    write_idx(&f, &arr, false).unwrap();
    assert_eq!(read_idx(&f).unwrap(), arr);
}

fn images(n: usize) -> IdxArray {
    IdxArray::new(vec![n, 2, 2], IdxData::U8(vec![0; n * 4])).unwrap()
}

#[test]
fn labels_count_mismatch() {
    let labels = IdxArray::new(vec![3], IdxData::U8(vec![0, 1, 2])).unwrap();
    let e = check_labels(&labels, "lab.idx", &images(4), "img.idx", Some(10)).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelCount {
                labels: 3,
                images: 4,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "lab.idx has 3 labels but img.idx has 4 images"
    );
}

#[test]
fn label_out_of_range() {
    let labels = IdxArray::new(vec![3], IdxData::U8(vec![0, 10, 2])).unwrap();
    let e = check_labels(&labels, "lab.idx", &images(3), "img.idx", Some(10)).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                num_classes: 10,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("lab.idx"));
    // Without a class count any u8 is fine.
    assert_eq!(
        check_labels(&labels, "lab.idx", &images(3), "img.idx", None).unwrap(),
        vec![0, 10, 2]
    );
}

#[test]
fn label_types() {
    let ok = IdxArray::new(vec![2], IdxData::I32(vec![3, 255])).unwrap();
    assert_eq!(labels_to_u8(&ok, "l").unwrap(), vec![3, 255]);
    let neg = IdxArray::new(vec![2], IdxData::I16(vec![3, -1])).unwrap();
    let e = labels_to_u8(&neg, "neg.idx").unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelValue {
                index: 1,
                value: -1,
                ..
            }
        ),
        "{e}"
    );
    let big = IdxArray::new(vec![1], IdxData::I32(vec![256])).unwrap();
    assert!(matches!(
        labels_to_u8(&big, "b"),
        Err(DataError::LabelValue { .. })
    ));
    let float = IdxArray::new(vec![1], IdxData::F32(vec![1.0])).unwrap();
    assert!(matches!(
        labels_to_u8(&float, "f"),
        Err(DataError::LabelsShape { .. })
    ));
    let two_d = IdxArray::new(vec![1, 1], IdxData::U8(vec![1])).unwrap();
    let e = labels_to_u8(&two_d, "2d.idx").unwrap_err();
    assert!(matches!(e, DataError::LabelsShape { .. }), "{e}");
}
