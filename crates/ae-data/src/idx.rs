//! IDX files (the MNIST container format): reading, validating, encoding and atomic writing.
//!
//! Layout (all integers big-endian): two zero bytes, a type byte
//! (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), a dimension count
//! byte (1..=255), one `u32` per dimension, then the elements in row-major order.
//!
//! * gzip is recognised by its magic bytes `1f 8b` (never by file name) and
//!   decompressed transparently.
//! * Untrusted headers never drive allocations: for raw bytes the payload size is
//!   compared with the bytes actually present before anything is allocated; for
//!   gzip the payload is read incrementally and the buffer only grows as
//!   decompressed data arrives (at most doubling), so a 1 KB file claiming
//!   4 billion images fails fast with [`DataError::PayloadTooShort`].
//! * A dimension of size 0 is allowed (an empty set, e.g. `[0, 28, 28]`); zero
//!   dimensions (`ndims == 0`) is an error.
//! * Trailing bytes after the payload are an error ([`DataError::PayloadTooLong`]).

use std::fmt;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The element type of an IDX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdxType {
    /// Unsigned byte, code 0x08.
    U8,
    /// Signed byte, code 0x09.
    I8,
    /// Big-endian `i16`, code 0x0B.
    I16,
    /// Big-endian `i32`, code 0x0C.
    I32,
    /// Big-endian `f32`, code 0x0D.
    F32,
    /// Big-endian `f64`, code 0x0E.
    F64,
}

impl IdxType {
    /// Every type, in code order.
    pub const ALL: [IdxType; 6] = [
        IdxType::U8,
        IdxType::I8,
        IdxType::I16,
        IdxType::I32,
        IdxType::F32,
        IdxType::F64,
    ];

    /// The type byte of the IDX header.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The type of a header type byte, if it is a known one.
    pub fn from_code(code: u8) -> Option<IdxType> {
        IdxType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// Short name: `u8`, `i8`, `i16`, `i32`, `f32`, `f64`.
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }

    /// Whether this is an integer type.
    pub fn is_integer(self) -> bool {
        !matches!(self, IdxType::F32 | IdxType::F64)
    }
}

impl fmt::Display for IdxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of an IDX file, one `Vec` per element type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// 0x08.
    U8(Vec<u8>),
    /// 0x09.
    I8(Vec<i8>),
    /// 0x0B.
    I16(Vec<i16>),
    /// 0x0C.
    I32(Vec<i32>),
    /// 0x0D.
    F32(Vec<f32>),
    /// 0x0E.
    F64(Vec<f64>),
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        match self {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// Element `i` as `f64` (exact for every type), `None` when out of range.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match self {
            IdxData::U8(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::I8(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::I16(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::I32(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::F32(v) => v.get(i).map(|&x| f64::from(x)),
            IdxData::F64(v) => v.get(i).copied(),
        }
    }
}

/// An IDX array: dimensions plus row-major elements (`product(dims) == data.len()`).
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

impl IdxArray {
    /// Checks that there are 1..=255 dims, each fitting in a `u32`, and that their
    /// product equals the number of elements.
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<IdxArray> {
        if dims.is_empty() {
            return Err(DataError::InvalidArray(
                "an IDX array needs at least one dimension".into(),
            ));
        }
        if dims.len() > 255 {
            return Err(DataError::InvalidArray(format!(
                "{} dimensions, IDX allows at most 255",
                dims.len()
            )));
        }
        if let Some(d) = dims.iter().find(|&&d| u32::try_from(d).is_err()) {
            return Err(DataError::InvalidArray(format!(
                "dimension {d} in {dims:?} does not fit in the u32 of an IDX header"
            )));
        }
        let product = if dims.contains(&0) {
            Some(0)
        } else {
            dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
        };
        if product != Some(data.len()) {
            return Err(DataError::InvalidArray(format!(
                "dims {dims:?} need {} elements but the data holds {}",
                product.map_or_else(|| "more than usize::MAX".to_string(), |p| p.to_string()),
                data.len()
            )));
        }
        Ok(IdxArray { dims, data })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The dimensions after the first (the shape of one item).
    pub fn item_dims(&self) -> &[usize] {
        self.dims.get(1..).unwrap_or(&[])
    }

    /// The elements.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        self.data.dtype()
    }

    /// Number of items: the first dimension.
    pub fn len(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of elements (product of the dims).
    pub fn num_elements(&self) -> usize {
        self.data.len()
    }

    /// The elements, consuming the array.
    pub fn into_data(self) -> IdxData {
        self.data
    }

    /// Dimensions and elements, consuming the array.
    pub fn into_parts(self) -> (Vec<usize>, IdxData) {
        (self.dims, self.data)
    }
}

/// A validated header.
struct Header {
    dtype: IdxType,
    dims: Vec<usize>,
    /// Payload size in bytes.
    payload: usize,
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn gz_err(file: &str) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Gzip {
        file: file.to_string(),
        source,
    }
}

/// Reads and validates the header from `r` (a byte slice or a decompressor).
fn read_header<R: Read>(r: &mut R, file: &str) -> Result<Header> {
    let err = gz_err(file);
    let mut magic = [0u8; 4];
    let n = fill(r, &mut magic[..2]).map_err(&err)?;
    if n < 2 {
        return Err(DataError::TruncatedHeader {
            file: file.into(),
            len: n,
            need: 4,
        });
    }
    if magic[..2] != [0, 0] {
        return Err(DataError::BadMagic {
            file: file.into(),
            found: [magic[0], magic[1]],
        });
    }
    let n = fill(r, &mut magic[2..]).map_err(&err)?;
    if n < 2 {
        return Err(DataError::TruncatedHeader {
            file: file.into(),
            len: 2 + n,
            need: 4,
        });
    }
    let dtype = IdxType::from_code(magic[2]).ok_or_else(|| DataError::UnknownType {
        file: file.into(),
        code: magic[2],
    })?;
    let ndims = usize::from(magic[3]);
    if ndims == 0 {
        return Err(DataError::ZeroDims { file: file.into() });
    }
    let mut raw = [0u8; 4 * 255];
    let raw = &mut raw[..4 * ndims];
    let n = fill(r, raw).map_err(&err)?;
    if n < raw.len() {
        return Err(DataError::TruncatedHeader {
            file: file.into(),
            len: 4 + n,
            need: 4 + 4 * ndims,
        });
    }
    let dims64: Vec<u64> = raw
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let overflow = || DataError::DimsOverflow {
        file: file.into(),
        dims: dims64.clone(),
        elem_size: dtype.size(),
    };
    let elements: u64 = if dims64.contains(&0) {
        0
    } else {
        dims64
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(overflow)?
    };
    let bytes = elements
        .checked_mul(dtype.size() as u64)
        .ok_or_else(overflow)?;
    let payload = usize::try_from(bytes).map_err(|_| overflow())?;
    let dims = dims64
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| overflow())?;
    Ok(Header {
        dtype,
        dims,
        payload,
    })
}

/// Big-endian conversion of a payload whose length is a multiple of `N`.
fn from_be<const N: usize, T>(payload: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    payload
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// Decodes a payload of exactly `product(dims) * size` bytes.
fn decode(dtype: IdxType, payload: &[u8]) -> IdxData {
    match dtype {
        IdxType::U8 => IdxData::U8(payload.to_vec()),
        IdxType::I8 => IdxData::I8(payload.iter().map(|&b| b as i8).collect()),
        IdxType::I16 => IdxData::I16(from_be(payload, i16::from_be_bytes)),
        IdxType::I32 => IdxData::I32(from_be(payload, i32::from_be_bytes)),
        IdxType::F32 => IdxData::F32(from_be(payload, f32::from_be_bytes)),
        IdxType::F64 => IdxData::F64(from_be(payload, f64::from_be_bytes)),
    }
}

/// Decodes an owned buffer whose bytes from `start` are exactly the payload
/// (u8 data reuses the allocation).
fn decode_owned(dtype: IdxType, mut bytes: Vec<u8>, start: usize) -> IdxData {
    match dtype {
        IdxType::U8 => {
            bytes.drain(..start);
            IdxData::U8(bytes)
        }
        _ => decode(dtype, bytes.get(start..).unwrap_or(&[])),
    }
}

fn array(header: Header, data: IdxData, file: &str) -> Result<IdxArray> {
    IdxArray::new(header.dims, data).map_err(|e| match e {
        DataError::InvalidArray(msg) => DataError::InvalidArray(format!("{file}: {msg}")),
        other => other,
    })
}

/// Validates the raw (uncompressed) bytes and returns the header and payload offset.
fn check_raw(bytes: &[u8], file: &str) -> Result<(Header, usize)> {
    let mut cur = bytes;
    let header = read_header(&mut cur, file)?;
    let start = bytes.len() - cur.len();
    let have = cur.len();
    if have < header.payload {
        return Err(DataError::PayloadTooShort {
            file: file.into(),
            actual: have as u64,
            expected: header.payload as u64,
            dims: header.dims,
        });
    }
    if have > header.payload {
        return Err(DataError::PayloadTooLong {
            file: file.into(),
            extra: (have - header.payload) as u64,
            expected: header.payload as u64,
            dims: header.dims,
        });
    }
    Ok((header, start))
}

/// Reads exactly `expected` bytes, growing the buffer only as data arrives.
fn read_payload<R: Read>(
    r: &mut R,
    expected: usize,
    header: &Header,
    file: &str,
) -> Result<Vec<u8>> {
    const CHUNK: usize = 1 << 20;
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < expected {
        let start = buf.len();
        // Grow by at most the data already received (or 1 MiB), never by the claim.
        let want = (expected - start).min(start.max(CHUNK));
        buf.resize(start + want, 0);
        let n = fill(r, &mut buf[start..]).map_err(gz_err(file))?;
        if n < want {
            return Err(DataError::PayloadTooShort {
                file: file.into(),
                actual: (start + n) as u64,
                expected: expected as u64,
                dims: header.dims.clone(),
            });
        }
    }
    Ok(buf)
}

/// Parses a gzip-compressed IDX file from a reader of the compressed bytes.
fn parse_gz<R: Read>(compressed: R, file: &str) -> Result<IdxArray> {
    let mut r = MultiGzDecoder::new(compressed);
    let header = read_header(&mut r, file)?;
    let payload = read_payload(&mut r, header.payload, &header, file)?;
    // Read to the end: verifies the gzip trailer (CRC, size) and finds trailing data.
    let extra = std::io::copy(&mut r, &mut std::io::sink()).map_err(gz_err(file))?;
    if extra > 0 {
        return Err(DataError::PayloadTooLong {
            file: file.into(),
            extra,
            expected: header.payload as u64,
            dims: header.dims,
        });
    }
    let data = decode_owned(header.dtype, payload, 0);
    array(header, data, file)
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Parses an IDX file held in memory; `name` is used in error messages.
/// gzip is detected by the magic bytes `1f 8b`.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    if is_gzip(bytes) {
        return parse_gz(bytes, name);
    }
    let (header, start) = check_raw(bytes, name)?;
    let data = decode(header.dtype, bytes.get(start..).unwrap_or(&[]));
    array(header, data, name)
}

/// Like [`parse_idx`] but takes ownership of the bytes (u8 payloads reuse the buffer).
pub fn parse_idx_vec(bytes: Vec<u8>, name: &str) -> Result<IdxArray> {
    if is_gzip(&bytes) {
        return parse_gz(bytes.as_slice(), name);
    }
    let (header, start) = check_raw(&bytes, name)?;
    let data = decode_owned(header.dtype, bytes, start);
    array(header, data, name)
}

/// Reads an IDX file, raw or gzip-compressed.
///
/// The path must be a regular file ([`crate::input::open_regular`]: a FIFO,
/// `/dev/zero` or a directory is an error at once). It is opened once and
/// streamed: a raw file's size must equal what its header claims before the
/// payload is read; a gzip file is decompressed incrementally, never holding
/// more than the header claims.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let name = path.display().to_string();
    let (file, len) = crate::input::open_regular(path)?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, file);
    let mut first = [0u8; 2];
    let n = fill(&mut r, &mut first).map_err(|e| DataError::io(path, e))?;
    let mut whole = std::io::Read::chain(&first[..n], r);
    if is_gzip(&first[..n]) {
        return parse_gz(whole, &name);
    }
    let header = read_header(&mut whole, &name)?;
    let header_len = 4 + 4 * header.dims.len() as u64;
    let have = len.saturating_sub(header_len);
    if have < header.payload as u64 {
        return Err(DataError::PayloadTooShort {
            file: name,
            actual: have,
            expected: header.payload as u64,
            dims: header.dims,
        });
    }
    if have > header.payload as u64 {
        return Err(DataError::PayloadTooLong {
            file: name,
            extra: have - header.payload as u64,
            expected: header.payload as u64,
            dims: header.dims,
        });
    }
    let payload = read_payload(&mut whole, header.payload, &header, &name)?;
    let data = decode_owned(header.dtype, payload, 0);
    array(header, data, &name)
}

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

/// Converts a 1-d integer label array to `u8` (values must be in 0..=255).
pub fn labels_to_u8(labels: &IdxArray, file: &str) -> Result<Vec<u8>> {
    if labels.dims().len() != 1 || !labels.dtype().is_integer() {
        return Err(DataError::LabelsShape {
            file: file.into(),
            dtype: labels.dtype().to_string(),
            dims: labels.dims().to_vec(),
        });
    }
    fn conv<T: Copy + Into<i64>>(v: &[T], file: &str) -> Result<Vec<u8>> {
        v.iter()
            .enumerate()
            .map(|(index, &x)| {
                let value: i64 = x.into();
                u8::try_from(value).map_err(|_| DataError::LabelValue {
                    file: file.into(),
                    index,
                    value,
                })
            })
            .collect()
    }
    match labels.data() {
        IdxData::U8(v) => Ok(v.clone()),
        IdxData::I8(v) => conv(v, file),
        IdxData::I16(v) => conv(v, file),
        IdxData::I32(v) => conv(v, file),
        IdxData::F32(_) | IdxData::F64(_) => Err(DataError::LabelsShape {
            file: file.into(),
            dtype: labels.dtype().to_string(),
            dims: labels.dims().to_vec(),
        }),
    }
}

/// Checks a label file against its image file and returns the labels as `u8`:
/// labels must be 1-d integers in 0..=255, one per image, and `< num_classes`
/// when given.
pub fn check_labels(
    labels: &IdxArray,
    labels_file: &str,
    images: &IdxArray,
    images_file: &str,
    num_classes: Option<usize>,
) -> Result<Vec<u8>> {
    let values = labels_to_u8(labels, labels_file)?;
    if values.len() != images.len() {
        return Err(DataError::LabelCount {
            labels_file: labels_file.into(),
            labels: values.len(),
            images_file: images_file.into(),
            images: images.len(),
        });
    }
    if let Some(k) = num_classes {
        check_label_range(&values, labels_file, k)?;
    }
    Ok(values)
}

/// Checks that every label is `< num_classes`.
pub fn check_label_range(labels: &[u8], file: &str, num_classes: usize) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            file: file.into(),
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u8_array(dims: Vec<usize>) -> IdxArray {
        let n = dims.iter().product::<usize>();
        IdxArray::new(dims, IdxData::U8((0..n).map(|i| i as u8).collect())).unwrap()
    }

    #[test]
    fn codes_roundtrip() {
        for t in IdxType::ALL {
            assert_eq!(IdxType::from_code(t.code()), Some(t));
        }
        assert_eq!(IdxType::from_code(0x0A), None);
    }

    #[test]
    fn new_checks_shape() {
        assert!(IdxArray::new(vec![2, 3], IdxData::U8(vec![0; 5])).is_err());
        assert!(IdxArray::new(vec![], IdxData::U8(vec![])).is_err());
        assert!(IdxArray::new(vec![1; 256], IdxData::U8(vec![0])).is_err());
        assert!(IdxArray::new(vec![0, 3], IdxData::U8(vec![])).is_ok());
        let a = u8_array(vec![4, 2, 3]);
        assert_eq!(a.len(), 4);
        assert_eq!(a.item_dims(), &[2, 3]);
    }

    #[test]
    fn encode_layout_is_big_endian() {
        let a = IdxArray::new(vec![2], IdxData::I16(vec![1, -2])).unwrap();
        assert_eq!(
            encode_idx(&a),
            vec![0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 0xff, 0xfe]
        );
    }

    #[test]
    fn gzip_payload_buffer_grows_only_with_data() {
        // Header claims 2^32-1 x 2^32-1 bytes (fits u64), gzip holds 10 bytes.
        let mut raw = vec![
            0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        raw.extend_from_slice(&[7; 10]);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&raw).unwrap();
        let bytes = gz.finish().unwrap();
        let err = parse_idx(&bytes, "x.gz").unwrap_err();
        assert!(
            matches!(err, DataError::PayloadTooShort { actual: 10, .. }),
            "{err}"
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

    #[test]
    fn u8_owned_path_drops_header() {
        let a = u8_array(vec![3, 2]);
        let back = parse_idx_vec(encode_idx(&a), "m").unwrap();
        assert_eq!(back, a);
    }
}
