//! Writing IDX files: encoding to bytes, atomic whole-array writes and the streaming `u8` writer.

use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{IdxArray, IdxData};
use crate::error::{DataError, Result};

fn header_bytes(arr: &IdxArray) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * arr.dims.len());
    out.extend_from_slice(&[0, 0, arr.dtype().code()]);
    out.push(u8::try_from(arr.dims.len()).unwrap_or(u8::MAX));
    for &d in &arr.dims {
        out.extend_from_slice(&u32::try_from(d).unwrap_or(u32::MAX).to_be_bytes());
    }
    out
}

/// Appends the big-endian bytes of the elements in `range` to `out`.
fn append_be(out: &mut Vec<u8>, data: &IdxData, range: std::ops::Range<usize>) {
    fn ext<T: Copy, const N: usize>(
        out: &mut Vec<u8>,
        v: &[T],
        range: std::ops::Range<usize>,
        f: fn(T) -> [u8; N],
    ) {
        if let Some(s) = v.get(range) {
            out.reserve(s.len() * N);
            for &x in s {
                out.extend_from_slice(&f(x));
            }
        }
    }
    match data {
        IdxData::U8(v) => out.extend_from_slice(v.get(range).unwrap_or(&[])),
        IdxData::I8(v) => ext(out, v, range, i8::to_be_bytes),
        IdxData::I16(v) => ext(out, v, range, i16::to_be_bytes),
        IdxData::I32(v) => ext(out, v, range, i32::to_be_bytes),
        IdxData::F32(v) => ext(out, v, range, f32::to_be_bytes),
        IdxData::F64(v) => ext(out, v, range, f64::to_be_bytes),
    }
}

/// The bytes of an uncompressed IDX file.
pub fn encode_idx(arr: &IdxArray) -> Vec<u8> {
    let mut out = header_bytes(arr);
    out.reserve(arr.data.len() * arr.dtype().size());
    append_be(&mut out, &arr.data, 0..arr.data.len());
    out
}

fn write_array<W: Write>(w: &mut W, arr: &IdxArray) -> std::io::Result<()> {
    w.write_all(&header_bytes(arr))?;
    const CHUNK: usize = 1 << 16;
    let mut buf = Vec::with_capacity(CHUNK * arr.dtype().size());
    let n = arr.data.len();
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        buf.clear();
        append_be(&mut buf, &arr.data, start..end);
        w.write_all(&buf)?;
        start = end;
    }
    Ok(())
}

/// Writes `arr` to `path` (gzip-compressed when `gzip`), atomically: the data goes to a
/// temporary file in the same directory, is flushed and synced, then renamed over
/// `path`. On failure no file (and no temporary file) is left behind.
pub fn write_idx(path: &Path, arr: &IdxArray, gzip: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = crate::atomic::temp_in(dir, ".ae-idx-", ".tmp").map_err(|e| DataError::io(dir, e))?;
    let io = |e| DataError::io(path, e);
    {
        let mut w = BufWriter::with_capacity(1 << 16, tmp.as_file());
        if gzip {
            let mut gz = GzEncoder::new(&mut w, Compression::default());
            write_array(&mut gz, arr).map_err(io)?;
            gz.finish().map_err(io)?;
        } else {
            write_array(&mut w, arr).map_err(io)?;
        }
        w.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path)
        .map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}

/// Writes a `u8` IDX file whose items arrive in pieces (a decoder streaming
/// its output), atomically: the file appears at `path` only when
/// [`IdxU8Writer::finish`] has checked that exactly `dims` worth of values came;
/// dropped before that, it leaves nothing.
pub struct IdxU8Writer {
    tmp: tempfile::NamedTempFile,
    out: Sink,
    path: std::path::PathBuf,
    expected: u64,
    written: u64,
}

enum Sink {
    Raw(BufWriter<std::fs::File>),
    Gz(GzEncoder<BufWriter<std::fs::File>>),
}

impl Sink {
    fn get(&mut self) -> &mut dyn Write {
        match self {
            Sink::Raw(w) => w,
            Sink::Gz(w) => w,
        }
    }
}

impl IdxU8Writer {
    /// Starts `path` (gzip-compressed when `gzip`) with the header of a `u8`
    /// array of `dims` (1..=255 dimensions, each fitting a `u32`).
    pub fn create(path: &Path, dims: &[usize], gzip: bool) -> Result<IdxU8Writer> {
        if dims.is_empty() || dims.len() > 255 || dims.iter().any(|&d| u32::try_from(d).is_err()) {
            return Err(DataError::InvalidArray(format!(
                "{}: dims {dims:?} do not fit an IDX header",
                path.display()
            )));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let header = IdxArray {
            dims: dims.to_vec(),
            data: IdxData::U8(Vec::new()),
        };
        let expected = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| DataError::InvalidArray(format!("dims {dims:?} overflow")))?;
        let tmp =
            crate::atomic::temp_in(dir, ".ae-idx-", ".tmp").map_err(|e| DataError::io(dir, e))?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| DataError::io(path, e))?;
        let buf = BufWriter::with_capacity(1 << 16, file);
        let mut out = if gzip {
            Sink::Gz(GzEncoder::new(buf, Compression::default()))
        } else {
            Sink::Raw(buf)
        };
        out.get()
            .write_all(&header_bytes(&header))
            .map_err(|e| DataError::io(path, e))?;
        Ok(IdxU8Writer {
            tmp,
            out,
            path: path.into(),
            expected,
            written: 0,
        })
    }

    /// Appends values (row-major, continuing where the last call stopped).
    pub fn write(&mut self, values: &[u8]) -> Result<()> {
        self.written += values.len() as u64;
        if self.written > self.expected {
            return Err(DataError::InvalidArray(format!(
                "{}: more values than the {} its header declares",
                self.path.display(),
                self.expected
            )));
        }
        self.out
            .get()
            .write_all(values)
            .map_err(|e| DataError::io(&self.path, e))
    }

    /// Checks the count, flushes, syncs and renames the file into place.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        if self.written != self.expected {
            return Err(DataError::InvalidArray(format!(
                "{}: {} values written, its header declares {}",
                path.display(),
                self.written,
                self.expected
            )));
        }
        let io = |e| DataError::io(&path, e);
        let mut buf = match self.out {
            Sink::Raw(w) => w,
            Sink::Gz(gz) => gz.finish().map_err(io)?,
        };
        buf.flush().map_err(io)?;
        drop(buf);
        self.tmp.as_file().sync_all().map_err(io)?;
        self.tmp
            .persist(&path)
            .map_err(|e| DataError::io(&path, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::read_idx;
    use crate::idx::tests::u8_array;

    #[test]
    fn encode_layout_is_big_endian() {
        let a = IdxArray::new(vec![2], IdxData::I16(vec![1, -2])).unwrap();
        assert_eq!(
            encode_idx(&a),
            vec![0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 0xff, 0xfe]
        );
    }

    #[test]
    fn the_streaming_writer_matches_write_idx_and_checks_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let a = u8_array(vec![3, 2, 2]);
        for gz in [false, true] {
            let p = dir.path().join(format!("s{gz}"));
            let mut w = IdxU8Writer::create(&p, a.dims(), gz).unwrap();
            let IdxData::U8(v) = a.data() else { panic!() };
            w.write(&v[..5]).unwrap();
            w.write(&v[5..]).unwrap();
            w.finish().unwrap();
            assert_eq!(read_idx(&p).unwrap(), a);
        }
        // Too few values: an error, and no file (nor temporary file) is left.
        let short = dir.path().join("short");
        let mut w = IdxU8Writer::create(&short, &[2, 2], false).unwrap();
        w.write(&[1, 2, 3]).unwrap();
        assert!(w.finish().is_err());
        assert!(!short.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
