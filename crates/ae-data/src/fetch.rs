//! Downloading MNIST / Fashion-MNIST: size-capped HTTP, checksum verification, atomic writes.
//!
//! Each file is streamed into a temporary file in the target directory (hashing
//! as it goes), verified, synced, then renamed to its final name. A failed,
//! oversized, truncated or corrupted download leaves nothing behind (the
//! temporary file is deleted) and returns a typed error naming the file.
//! A file that is already present and verifies is not downloaded again.
//!
//! Verification:
//! * MNIST: SHA-256 of the *decompressed* content (so a recompressed mirror
//!   still passes), [`Checksum::Sha256Content`].
//! * Fashion-MNIST: MD5 of the `.gz` bytes as published (torchvision's list),
//!   [`Checksum::Md5`].

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::dataset::DatasetName;
use crate::error::{DataError, Result};
use crate::rng::to_hex;

/// Default download base for MNIST.
pub const MNIST_BASE_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
/// Default download base for Fashion-MNIST.
pub const FASHION_MNIST_BASE_URL: &str =
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
/// Default cap on one downloaded file (and on its decompressed content: 4x this).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// How a downloaded file is verified (lower-case hex digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 of the content after gzip decompression (of the bytes themselves
    /// when they are not gzip).
    Sha256Content(String),
    /// MD5 of the bytes as downloaded.
    Md5(String),
}

/// One file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFile {
    /// File name, appended to the base URL and used in the target directory
    /// (a plain name: no `/`, `\` or `..`).
    pub name: String,
    /// Expected checksum.
    pub checksum: Checksum,
}

/// What to download and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSpec {
    /// Base URL; file names are appended (a `/` is inserted if missing).
    pub base_url: String,
    /// The files.
    pub files: Vec<FetchFile>,
    /// Cap on each download in bytes.
    pub max_bytes: u64,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each read of the body.
    pub read_timeout: Duration,
    /// Timeout for a whole file.
    pub file_timeout: Duration,
}

const MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

const FASHION_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
];

impl FetchSpec {
    /// A spec with the default limits and timeouts.
    pub fn new(base_url: impl Into<String>, files: Vec<FetchFile>) -> FetchSpec {
        FetchSpec {
            base_url: base_url.into(),
            files,
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            file_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// The built-in spec of MNIST or Fashion-MNIST, from `base_url` or the default
    /// mirror. `Custom` has no built-in spec.
    pub fn builtin(name: DatasetName, base_url: Option<&str>) -> Result<FetchSpec> {
        let (default, files): (&str, Vec<FetchFile>) = match name {
            DatasetName::Mnist => (
                MNIST_BASE_URL,
                MNIST_SHA256
                    .iter()
                    .map(|(n, h)| FetchFile {
                        name: (*n).into(),
                        checksum: Checksum::Sha256Content((*h).into()),
                    })
                    .collect(),
            ),
            DatasetName::FashionMnist => (
                FASHION_MNIST_BASE_URL,
                FASHION_MD5
                    .iter()
                    .map(|(n, h)| FetchFile {
                        name: (*n).into(),
                        checksum: Checksum::Md5((*h).into()),
                    })
                    .collect(),
            ),
            DatasetName::Custom => {
                return Err(DataError::InvalidFetchSpec(
                    "a custom data set cannot be downloaded".into(),
                ));
            }
        };
        Ok(FetchSpec::new(base_url.unwrap_or(default), files))
    }

    /// Checks file names and digests.
    pub fn validate(&self) -> Result<()> {
        if self.max_bytes == 0 {
            return Err(DataError::InvalidFetchSpec("max_bytes is 0".into()));
        }
        for f in &self.files {
            let n = &f.name;
            if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\\']) {
                return Err(DataError::InvalidFetchSpec(format!(
                    "{n:?} is not a plain file name"
                )));
            }
            let (digest, len) = match &f.checksum {
                Checksum::Sha256Content(h) => (h, 64),
                Checksum::Md5(h) => (h, 32),
            };
            if digest.len() != len || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DataError::InvalidFetchSpec(format!(
                    "{n}: checksum {digest:?} is not {len} hex digits"
                )));
            }
        }
        Ok(())
    }

    fn url(&self, name: &str) -> String {
        if self.base_url.ends_with('/') {
            format!("{}{name}", self.base_url)
        } else {
            format!("{}/{name}", self.base_url)
        }
    }
}

/// One file of a [`FetchReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// `false` when it was already present and verified.
    pub downloaded: bool,
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The target directory.
    pub dir: PathBuf,
    /// The files, in spec order.
    pub files: Vec<FetchedFile>,
}

impl std::fmt::Display for FetchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for file in &self.files {
            writeln!(
                f,
                "{}: {} bytes, {}",
                file.path.display(),
                file.bytes,
                if file.downloaded {
                    "downloaded and verified"
                } else {
                    "already present, verified"
                }
            )?;
        }
        Ok(())
    }
}

/// Downloads the four files of MNIST or Fashion-MNIST into `dir` (created if
/// needed), from `base_url` or the default mirror.
pub fn fetch(name: DatasetName, dir: &Path, base_url: Option<&str>) -> Result<FetchReport> {
    fetch_with(&FetchSpec::builtin(name, base_url)?, dir)
}

/// Downloads and verifies the files of `spec` into `dir` (see the module docs).
pub fn fetch_with(spec: &FetchSpec, dir: &Path) -> Result<FetchReport> {
    spec.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(spec.connect_timeout))
        .timeout_per_read(Some(spec.read_timeout))
        .timeout_global(Some(spec.file_timeout))
        // The checksums are of the bytes as published: no transparent decoding.
        .accept_encoding("identity")
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut files = Vec::with_capacity(spec.files.len());
    for file in &spec.files {
        let path = dir.join(&file.name);
        if path.is_file() {
            if let Ok(bytes) = verify_file(&path, file, spec.max_bytes) {
                tracing::info!(file = %path.display(), "already present and verified");
                files.push(FetchedFile {
                    path,
                    bytes,
                    downloaded: false,
                });
                continue;
            }
            tracing::warn!(file = %path.display(), "present but does not verify: downloading again");
        }
        let bytes = download(&agent, spec, file, dir, &path)?;
        files.push(FetchedFile {
            path,
            bytes,
            downloaded: true,
        });
    }
    Ok(FetchReport {
        dir: dir.to_path_buf(),
        files,
    })
}

/// Verifies a file already on disk; returns its size.
fn verify_file(path: &Path, file: &FetchFile, max_bytes: u64) -> Result<u64> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    let md5 = match file.checksum {
        Checksum::Md5(_) => {
            let mut h = Md5::new();
            let mut r = BufReader::new(&f);
            copy_hashing(&mut r, &mut std::io::sink(), &mut h, u64::MAX)
                .map_err(|e| DataError::io(path, e))?;
            Some(to_hex(&h.finalize()))
        }
        Checksum::Sha256Content(_) => None,
    };
    check(path, &f, file, md5, max_bytes)?;
    Ok(len)
}

/// Compares the checksum of `f` (rewound here); `md5` is the hex MD5 of its bytes when known.
fn check(
    path: &Path,
    mut f: &File,
    file: &FetchFile,
    md5: Option<String>,
    max_bytes: u64,
) -> Result<()> {
    let name = path.display().to_string();
    let (algorithm, expected, actual) = match &file.checksum {
        Checksum::Md5(expected) => ("md5", expected, md5.unwrap_or_default()),
        Checksum::Sha256Content(expected) => {
            f.seek(SeekFrom::Start(0))
                .map_err(|e| DataError::io(path, e))?;
            let mut head = [0u8; 2];
            let n = f.read(&mut head).map_err(|e| DataError::io(path, e))?;
            f.seek(SeekFrom::Start(0))
                .map_err(|e| DataError::io(path, e))?;
            let mut h = Sha256::new();
            let limit = max_bytes.saturating_mul(4);
            let content = if n == 2 && head == [0x1f, 0x8b] {
                let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(f));
                copy_hashing(&mut gz, &mut std::io::sink(), &mut h, limit).map_err(|source| {
                    DataError::Gzip {
                        file: name.clone(),
                        source,
                    }
                })?
            } else {
                copy_hashing(&mut BufReader::new(f), &mut std::io::sink(), &mut h, limit)
                    .map_err(|e| DataError::io(path, e))?
            };
            if content > limit {
                return Err(DataError::ContentTooLarge { file: name, limit });
            }
            (
                "sha256 (decompressed content)",
                expected,
                to_hex(&h.finalize()),
            )
        }
    };
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(DataError::Checksum {
            file: name,
            algorithm: algorithm.into(),
            expected: expected.to_ascii_lowercase(),
            actual,
        });
    }
    Ok(())
}

/// Copies up to `limit + 1` bytes from `r` to `w`, hashing them; returns the count
/// (a count above `limit` means the source is larger than the limit).
fn copy_hashing<R: Read, W: Write, D: Digest>(
    r: &mut R,
    w: &mut W,
    h: &mut D,
    limit: u64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total: u64 = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        h.update(chunk);
        w.write_all(chunk)?;
        total += n as u64;
        if total > limit {
            return Ok(total);
        }
    }
}

/// Downloads one file to a temporary file in `dir`, verifies it, then renames it to `path`.
fn download(
    agent: &ureq::Agent,
    spec: &FetchSpec,
    file: &FetchFile,
    dir: &Path,
    path: &Path,
) -> Result<u64> {
    let url = spec.url(&file.name);
    tracing::info!(%url, "downloading");
    let response = agent.get(&url).call().map_err(|e| DataError::Http {
        url: url.clone(),
        source: Box::new(e),
    })?;
    let too_large = || DataError::TooLarge {
        url: url.clone(),
        limit: spec.max_bytes,
    };
    if response
        .body()
        .content_length()
        .is_some_and(|n| n > spec.max_bytes)
    {
        return Err(too_large());
    }
    let tmp =
        crate::atomic::temp_in(dir, ".ae-fetch-", ".part").map_err(|e| DataError::io(dir, e))?;
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(spec.max_bytes.saturating_add(1))
        .reader();
    let mut md5 = Md5::new();
    let received;
    {
        let mut w = BufWriter::new(tmp.as_file());
        let mut counting = CountingReader {
            inner: &mut reader,
            count: 0,
        };
        let copied = copy_hashing(&mut counting, &mut w, &mut md5, spec.max_bytes);
        received = counting.count;
        let n = copied.map_err(|source| {
            let over_limit = source
                .get_ref()
                .and_then(|e| e.downcast_ref::<ureq::Error>())
                .is_some_and(|e| matches!(e, ureq::Error::BodyExceedsLimit(_)));
            if over_limit {
                too_large()
            } else {
                DataError::Download {
                    url: url.clone(),
                    received,
                    source,
                }
            }
        })?;
        if n > spec.max_bytes {
            return Err(too_large());
        }
        w.flush().map_err(|e| DataError::io(tmp.path(), e))?;
    }
    check(
        path,
        tmp.as_file(),
        file,
        Some(to_hex(&md5.finalize())),
        spec.max_bytes,
    )?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| DataError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| DataError::io(path, e.error))?;
    tracing::info!(file = %path.display(), bytes = received, "verified");
    Ok(received)
}

/// Counts the bytes read through it (so a failed transfer can say how far it got).
struct CountingReader<'a, R> {
    inner: &'a mut R,
    count: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
