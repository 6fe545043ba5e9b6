//! Reading IDX files: header validation, payload decoding, raw or gzip (by magic bytes).

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{IdxArray, IdxData, IdxType};
use crate::error::{DataError, Result};

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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::idx::encode_idx;
    use crate::idx::tests::u8_array;

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
    fn u8_owned_path_drops_header() {
        let a = u8_array(vec![3, 2]);
        let back = parse_idx_vec(encode_idx(&a), "m").unwrap();
        assert_eq!(back, a);
    }
}
