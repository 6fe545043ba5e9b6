//! The files of a run: atomic writes (temporary file, fsync, rename), JSON,
//! reads capped at a size, and the block-wise comparison of two files.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::io_err;
use crate::{Result, TrainError};

/// The largest safetensors or JSON file a run may hold (guards against reading junk).
const MAX_FILE_BYTES: u64 = 4 << 30;

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = ae_data::atomic::temp_in(dir, ".tmp-", "").map_err(io_err(path))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.into(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

pub(super) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    Ok(ae_data::input::read_capped(
        path,
        MAX_FILE_BYTES,
        "a run file",
    )?)
}

/// Reads a JSON file of a run.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
        path: path.into(),
        source,
    })
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Whether two files hold the same bytes (compared in blocks, never whole in memory).
pub(super) fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let (fa, la) = ae_data::input::open_regular(a)?;
    let (fb, lb) = ae_data::input::open_regular(b)?;
    if la != lb {
        return Ok(false);
    }
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = ra.read(&mut ba).map_err(io_err(a))?;
        if n == 0 {
            return Ok(true);
        }
        rb.read_exact(&mut bb[..n]).map_err(io_err(b))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}
