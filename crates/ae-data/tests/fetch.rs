//! Downloads against a tiny loopback HTTP/1.1 server: good, corrupted, truncated, oversized and missing files.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::Duration;

use ae_data::fetch::{Checksum, FetchFile, FetchSpec};
use ae_data::{DataError, DatasetName, IdxArray, IdxData, encode_idx, fetch, fetch_with, read_idx};
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use sha2::Sha256;

#[derive(Clone)]
enum Reply {
    /// 200 with an exact Content-Length.
    Ok(Vec<u8>),
    /// 200 claiming `claimed` bytes, sending the body, then closing.
    Truncated { body: Vec<u8>, claimed: usize },
}

/// Serves `files` on 127.0.0.1 (ephemeral port) for at most `max_conns`
/// connections; returns the base URL. Unknown paths get 404.
fn serve(files: HashMap<String, Reply>, max_conns: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    thread::spawn(move || {
        for stream in listener.incoming().take(max_conns) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the headers (bounded).
            for _ in 0..100 {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, claimed) = match files.get(path.trim_start_matches('/')) {
                Some(Reply::Ok(b)) => ("200 OK", b.clone(), b.len()),
                Some(Reply::Truncated { body, claimed }) => ("200 OK", body.clone(), *claimed),
                None => ("404 Not Found", b"not found".to_vec(), 9),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {claimed}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    format!("http://{addr}/")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn md5(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// An images file (gzip, verified by content SHA-256) and a labels file (raw, MD5).
fn sample() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let images = IdxArray::new(
        vec![10, 4, 4],
        IdxData::U8((0..160).map(|i| (i * 3) as u8).collect()),
    )
    .unwrap();
    let labels = IdxArray::new(vec![10], IdxData::U8((0..10).collect())).unwrap();
    let raw_images = encode_idx(&images);
    (gzip(&raw_images), raw_images, encode_idx(&labels))
}

fn spec(base: &str, images_raw: &[u8], labels: &[u8]) -> FetchSpec {
    FetchSpec::new(
        base,
        vec![
            FetchFile {
                name: "images.gz".into(),
                checksum: Checksum::Sha256Content(sha256(images_raw)),
            },
            FetchFile {
                name: "labels".into(),
                checksum: Checksum::Md5(md5(labels)),
            },
        ],
    )
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn good_files_are_downloaded_verified_and_parse() {
    let (gz, raw, labels) = sample();
    let files = HashMap::from([
        ("images.gz".to_string(), Reply::Ok(gz.clone())),
        ("labels".to_string(), Reply::Ok(labels.clone())),
    ]);
    let base = serve(files, 2);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new-sub-dir");
    let spec = spec(&base, &raw, &labels);
    let report = fetch_with(&spec, &target).unwrap();
    assert_eq!(entries(&target), vec!["images.gz", "labels"]);
    assert!(report.files.iter().all(|f| f.downloaded));
    assert_eq!(report.files[0].bytes, gz.len() as u64);
    assert_eq!(
        read_idx(&target.join("images.gz")).unwrap().dims(),
        &[10, 4, 4]
    );
    assert_eq!(read_idx(&target.join("labels")).unwrap().len(), 10);
    // Second run: already present and verified, no connection needed (the server is done).
    let again = fetch_with(&spec, &target).unwrap();
    assert!(again.files.iter().all(|f| !f.downloaded));
}

#[test]
fn corrupted_files_leave_nothing() {
    let (gz, raw, labels) = sample();
    let mut bad_labels = labels.clone();
    bad_labels[12] ^= 0x01;
    // A recompressed file whose *content* has one flipped byte: valid gzip, wrong SHA-256.
    let mut bad_raw = raw.clone();
    bad_raw[20] ^= 0x01;
    let mut bad_gz_bytes = gz.clone();
    let mid = bad_gz_bytes.len() / 2;
    bad_gz_bytes[mid] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("labels", bad_labels),
        ("images.gz", gzip(&bad_raw)),
        ("images.gz", bad_gz_bytes),
    ];
    for (name, body) in cases {
        let files = HashMap::from([(name.to_string(), Reply::Ok(body))]);
        let base = serve(files, 1);
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(&base, &raw, &labels);
        s.files.retain(|f| f.name == name);
        let e = fetch_with(&s, dir.path()).unwrap_err();
        assert!(
            matches!(e, DataError::Checksum { .. } | DataError::Gzip { .. }),
            "{name}: {e}"
        );
        assert!(e.to_string().contains(name), "{e}");
        if let DataError::Checksum {
            expected, actual, ..
        } = &e
        {
            assert_ne!(expected, actual);
            let msg = e.to_string();
            assert!(
                msg.contains(expected.as_str()) && msg.contains(actual.as_str()),
                "{msg}"
            );
        }
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }
}

#[test]
fn truncated_download_leaves_nothing() {
    let (gz, raw, labels) = sample();
    let cut = gz[..gz.len() / 2].to_vec();
    let files = HashMap::from([(
        "images.gz".to_string(),
        Reply::Truncated {
            body: cut,
            claimed: gz.len(),
        },
    )]);
    let base = serve(files, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&base, &raw, &labels);
    s.files.truncate(1);
    let e = fetch_with(&s, dir.path()).unwrap_err();
    assert!(
        matches!(e, DataError::Download { .. } | DataError::Gzip { .. }),
        "{e}"
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn oversized_and_missing_downloads_are_errors() {
    let (gz, raw, labels) = sample();
    let files = HashMap::from([("images.gz".to_string(), Reply::Ok(gz.clone()))]);
    let base = serve(files, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&base, &raw, &labels);
    s.max_bytes = 16;
    s.files.truncate(1);
    let e = fetch_with(&s, dir.path()).unwrap_err();
    assert!(matches!(e, DataError::TooLarge { limit: 16, .. }), "{e}");
    assert!(entries(dir.path()).is_empty());
    // 404
    let mut s = spec(&base, &raw, &labels);
    s.files.retain(|f| f.name == "labels");
    let e = fetch_with(&s, dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Http { .. }), "{e}");
    assert!(e.to_string().contains("labels"), "{e}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn specs_are_validated() {
    let good = FetchSpec::builtin(DatasetName::Mnist, None).unwrap();
    good.validate().unwrap();
    assert_eq!(good.files.len(), 4);
    FetchSpec::builtin(DatasetName::FashionMnist, None)
        .unwrap()
        .validate()
        .unwrap();
    assert!(FetchSpec::builtin(DatasetName::Custom, None).is_err());
    let dir = tempfile::tempdir().unwrap();
    for name in ["../escape", "a/b", "", ".."] {
        let s = FetchSpec::new(
            "http://127.0.0.1:9/",
            vec![FetchFile {
                name: name.into(),
                checksum: Checksum::Md5("0".repeat(32)),
            }],
        );
        assert!(
            matches!(
                fetch_with(&s, dir.path()),
                Err(DataError::InvalidFetchSpec(_))
            ),
            "{name}"
        );
    }
    let s = FetchSpec::new(
        "http://127.0.0.1:9/",
        vec![FetchFile {
            name: "x".into(),
            checksum: Checksum::Sha256Content("abc".into()),
        }],
    );
    assert!(matches!(s.validate(), Err(DataError::InvalidFetchSpec(_))));
}

#[test]
fn repository_mnist_matches_the_builtin_checksums() {
    // The repo's files are recompressed: only the content SHA-256 can match.
    // They verify in place, so nothing is downloaded (the base URL is a closed
    // loopback port, never contacted).
    let dir = tempfile::tempdir().unwrap();
    for f in FetchSpec::builtin(DatasetName::Mnist, None).unwrap().files {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/mnist")
                .join(&f.name),
            dir.path().join(&f.name),
        )
        .unwrap();
    }
    let report = fetch(DatasetName::Mnist, dir.path(), Some("http://127.0.0.1:9/")).unwrap();
    assert_eq!(report.files.len(), 4);
    assert!(report.files.iter().all(|f| !f.downloaded));
}

#[test]
fn decompression_bombs_are_capped() {
    let bomb = gzip(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 2000);
    let files = HashMap::from([("bomb.gz".to_string(), Reply::Ok(bomb))]);
    let base = serve(files, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut s = FetchSpec::new(
        base,
        vec![FetchFile {
            name: "bomb.gz".into(),
            checksum: Checksum::Sha256Content("0".repeat(64)),
        }],
    );
    s.max_bytes = 2000;
    let e = fetch_with(&s, dir.path()).unwrap_err();
    assert!(
        matches!(e, DataError::ContentTooLarge { limit: 8000, .. }),
        "{e}"
    );
    assert!(entries(dir.path()).is_empty());
}
