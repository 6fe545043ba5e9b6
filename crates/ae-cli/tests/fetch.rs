//! `ae data fetch` from a local mirror, and where commands find an IDX data set
//! when given no data flags (the run-time lookup of `ae_data::dataset::DataSearch`);
//! logs redirected to a pipe hold no ANSI colour codes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;

use common::{ae, fails, ok};

fn bytes(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether two files hold the same bytes (without dumping them on failure).
fn same_file(a: PathBuf, b: PathBuf) -> bool {
    bytes(a) == bytes(b)
}

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// The repository's MNIST files, (name, bytes).
fn mnist_files() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    NAMES
        .iter()
        .map(|n| (n.to_string(), bytes(root.join(n))))
        .collect()
}

/// Serves `files` (name -> bytes) over HTTP/1.1 on loopback for at most `max_requests` requests.
fn serve(files: Vec<(String, Vec<u8>)>, max_requests: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let resp = match files.iter().find(|(n, _)| *n == path) {
                Some((_, body)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&resp);
        }
    });
    format!("http://{addr}/")
}

#[test]
fn data_fetch_verifies_checksums_and_leaves_nothing_on_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let files = mnist_files();
    let tmp = tempfile::tempdir().unwrap();

    // A good mirror: the four files arrive, verified, and load.
    let good = tmp.path().join("good");
    let url = serve(files.clone(), 8);
    ok(&[
        "data",
        "fetch",
        "mnist",
        "--data-dir",
        good.to_str().unwrap(),
        "--base-url",
        &url,
    ]);
    for n in NAMES {
        assert!(same_file(good.join(n), root.join(n)), "{n}");
    }

    // A mirror serving a corrupted test-label file: an error naming it, and no file of it left.
    let mut bad_files = files;
    let last = bad_files.last_mut().unwrap();
    let mid = last.1.len() / 2;
    last.1[mid] ^= 0x40;
    let bad = tmp.path().join("bad");
    let url = serve(bad_files, 8);
    let err = fails(&[
        "data",
        "fetch",
        "mnist",
        "--data-dir",
        bad.to_str().unwrap(),
        "--base-url",
        &url,
    ]);
    assert!(err.contains("t10k-labels-idx1-ubyte"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&bad)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with("t10k-labels") || n.contains("tmp")),
        "{left:?}"
    );
}

#[test]
fn without_data_flags_the_data_set_is_found_in_or_above_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let sub = home.join("projects/sub");
    std::fs::create_dir_all(&sub).unwrap();
    let out = tmp.path().join("run");
    let out = out.to_str().unwrap();
    let train = [
        "train",
        "--model",
        "vanilla",
        "--epochs",
        "1",
        "--train-limit",
        "64",
        "--test-limit",
        "32",
        "--out",
        out,
        "--overwrite",
    ];

    // No data anywhere up the tree: a clean error that says what was tried and what to do.
    let o = ae().args(train).current_dir(&sub).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for want in [
        "data set mnist not found",
        &sub.join("data/mnist").display().to_string(),
        "--data-dir",
        "AE_DATA_DIR",
        "ae data fetch mnist",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }

    // `ae data fetch` without --data-dir, from `home`: written to ./data/mnist.
    let url = serve(mnist_files(), 8);
    let o = ae()
        .args(["data", "fetch", "mnist", "--base-url", &url])
        .current_dir(&home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in NAMES {
        assert!(home.join("data/mnist").join(n).is_file(), "{n}");
    }

    // Training from a folder below finds it. Logs at info go to a pipe here: no
    // ANSI colour codes in them.
    let o = ae()
        .args(train)
        .env("RUST_LOG", "info")
        .current_dir(&sub)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("epoch 1/1"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "ANSI escape codes in a piped log: {err:?}"
    );

    // $AE_DATA_DIR, when set, is the only place looked at.
    let err = String::from_utf8_lossy(
        &ae()
            .args(train)
            .env("AE_DATA_DIR", tmp.path().join("nowhere"))
            .current_dir(&sub)
            .output()
            .unwrap()
            .stderr,
    )
    .into_owned();
    assert!(err.contains("nowhere"), "{err}");
}
