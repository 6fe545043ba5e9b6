//! `.aez`: images compressed to quantised latent codes of an autoencoder.
//!
//! # Format (version 1, little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `89 41 45 5A` (`\x89AEZ`) |
//! | 4 | 1 | format version, 1 |
//! | 5 | 1 | bits per code value, 1..=8 |
//! | 6 | 1 | flags: bit 0 = payload deflated (raw DEFLATE, RFC 1951); other bits 0 |
//! | 7 | 1 | reserved, 0 |
//! | 8 | 32 | model fingerprint: SHA-256 of the model config (JSON) and every weight ([`model_fingerprint`]) |
//! | 40 | 12 | image channels, height, width (`u32` each) |
//! | 52 | 8 | image count N (`u64`) |
//! | 60 | 4 | latent size L (`u32`) |
//! | 64 | 8·L | per latent dimension: `f32` min, `f32` max of the codes |
//! | 64+8L | 8 | payload length P (`u64`) |
//! | 72+8L | P | payload: N·L quantised values of `bits` bits, row-major, packed MSB first, the last byte zero-padded (deflated when the flag says so) |
//! | 72+8L+P | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Value `q` of dimension `j` decodes to `min_j + q / (2^bits - 1) · (max_j - min_j)`.
//! Decoding checks the magic, the CRC, the version, the sizes and, against the
//! model, the fingerprint, the latent size and the image size; any mismatch is
//! an error naming the file.

use std::io::{Read, Write};
use std::path::Path;

use ae_data::ImageSet;
use ae_models::ModelConfig;
use ae_train::LoadedRun;
use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use sha2::{Digest, Sha256};

use crate::batches::{check_fits, encode_set, model_image_size};
use crate::error::{Result, UsesError};

/// The first four bytes of a `.aez` file.
pub const MAGIC: [u8; 4] = [0x89, b'A', b'E', b'Z'];
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
const FIXED: usize = 64;

/// The header of a `.aez` file.
#[derive(Debug, Clone, PartialEq)]
pub struct AezHeader {
    /// Bits per code value.
    pub bits: u8,
    /// Whether the payload is deflated.
    pub deflated: bool,
    /// The fingerprint of the model that made the codes.
    pub model: [u8; 32],
    /// `[C, H, W]` of the images.
    pub shape: [usize; 3],
    /// Number of images.
    pub count: usize,
    /// `(min, max)` of each latent dimension.
    pub ranges: Vec<(f32, f32)>,
}

/// A decoded `.aez` file: its header and the dequantised codes `[N, L]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AezFile {
    /// The header.
    pub header: AezHeader,
    /// Dequantised codes, row-major `[count, latent]`.
    pub codes: Vec<f32>,
}

/// SHA-256 over the model config (as JSON) and every variable (name, shape,
/// `f32` little-endian values), visited by name: two runs with the same
/// config and weights have the same fingerprint, whatever the file layout.
pub fn model_fingerprint(config: &ModelConfig, varmap: &VarMap) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let json = serde_json::to_vec(config)
        .map_err(|e| UsesError::Invalid(format!("model config is not serialisable: {e}")))?;
    h.update((json.len() as u64).to_le_bytes());
    h.update(&json);
    for (name, var) in ae_train::checkpoint::named_vars(varmap) {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        for &d in var.dims() {
            h.update((d as u64).to_le_bytes());
        }
        let values = var
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for v in values {
            h.update(v.to_le_bytes());
        }
    }
    Ok(h.finalize().into())
}

/// Lower-case hex of the first `n` bytes.
pub fn short_hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

fn check_bits(bits: u8) -> Result<()> {
    if (1..=8).contains(&bits) {
        Ok(())
    } else {
        Err(UsesError::Invalid(format!(
            "bits per code value must be in 1..=8 (8 and 4 are the usual), got {bits}"
        )))
    }
}

/// `(min, max)` of each latent dimension.
pub type Ranges = Vec<(f32, f32)>;

/// Per-dimension ranges and quantised values (`0..2^bits`) of codes `[N, L]`.
pub fn quantise(codes: &[f32], latent: usize, bits: u8) -> Result<(Ranges, Vec<u8>)> {
    check_bits(bits)?;
    if latent == 0 || !codes.len().is_multiple_of(latent) {
        return Err(UsesError::Mismatch(format!(
            "{} code values are not rows of {latent}",
            codes.len()
        )));
    }
    if let Some(i) = codes.iter().position(|v| !v.is_finite()) {
        return Err(UsesError::Invalid(format!(
            "code value #{i} is {}: the model gave a non-finite code",
            codes[i]
        )));
    }
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); latent];
    for row in codes.chunks_exact(latent) {
        for (r, &v) in ranges.iter_mut().zip(row) {
            r.0 = r.0.min(v);
            r.1 = r.1.max(v);
        }
    }
    if codes.is_empty() {
        ranges = vec![(0.0, 0.0); latent];
    }
    let levels = f32::from((1u16 << bits) - 1);
    let q = codes
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (lo, hi) = ranges[i % latent];
            if hi > lo {
                ((v - lo) / (hi - lo) * levels).round().clamp(0.0, levels) as u8
            } else {
                0
            }
        })
        .collect();
    Ok((ranges, q))
}

/// Codes back from quantised values.
pub fn dequantise(q: &[u8], ranges: &[(f32, f32)], bits: u8) -> Vec<f32> {
    let levels = f32::from((1u16 << bits) - 1);
    let latent = ranges.len().max(1);
    q.iter()
        .enumerate()
        .map(|(i, &v)| {
            let (lo, hi) = ranges[i % latent];
            lo + f32::from(v) / levels * (hi - lo)
        })
        .collect()
}

fn pack(q: &[u8], bits: u8) -> Vec<u8> {
    let mut out = vec![0u8; (q.len() * usize::from(bits)).div_ceil(8)];
    let mut pos = 0usize;
    for &v in q {
        for b in (0..bits).rev() {
            if (v >> b) & 1 == 1 {
                out[pos / 8] |= 0x80 >> (pos % 8);
            }
            pos += 1;
        }
    }
    out
}

fn unpack(bytes: &[u8], bits: u8, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut pos = 0usize;
    for _ in 0..n {
        let mut v = 0u8;
        for _ in 0..bits {
            let bit = (bytes[pos / 8] >> (7 - pos % 8)) & 1;
            v = (v << 1) | bit;
            pos += 1;
        }
        out.push(v);
    }
    out
}

/// Encodes codes `[N, L]` of images of `shape` made by the model with
/// fingerprint `model` into `.aez` bytes, `bits` per value.
pub fn encode_aez(
    codes: &[f32],
    latent: usize,
    bits: u8,
    model: [u8; 32],
    shape: [usize; 3],
) -> Result<Vec<u8>> {
    let (ranges, q) = quantise(codes, latent, bits)?;
    let packed = pack(&q, bits);
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    let deflated = enc
        .write_all(&packed)
        .and_then(|()| enc.finish())
        .map_err(|e| UsesError::Invalid(format!("deflating the codes: {e}")))?;
    let (payload, flag) = if deflated.len() < packed.len() {
        (deflated, 1u8)
    } else {
        (packed, 0u8)
    };
    let u32_of = |v: usize, what: &str| {
        u32::try_from(v)
            .map_err(|_| UsesError::Invalid(format!("{what} {v} does not fit a .aez header")))
    };
    let mut out = Vec::with_capacity(FIXED + 8 * latent + 12 + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, bits, flag, 0]);
    out.extend_from_slice(&model);
    for (d, what) in shape.iter().zip(["channels", "height", "width"]) {
        out.extend_from_slice(&u32_of(*d, what)?.to_le_bytes());
    }
    out.extend_from_slice(&((codes.len() / latent) as u64).to_le_bytes());
    out.extend_from_slice(&u32_of(latent, "latent size")?.to_le_bytes());
    for (lo, hi) in &ranges {
        out.extend_from_slice(&lo.to_le_bytes());
        out.extend_from_slice(&hi.to_le_bytes());
    }
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes: &'a [u8] = self.bytes;
        let s = bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f32(&mut self) -> Option<f32> {
        Some(f32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The largest ratio of DEFLATE output to input (RFC 1951: 258 bytes from 2 bits).
const MAX_DEFLATE_RATIO: usize = 1032;

/// A `.aez` file whose header, sizes and CRC have been checked, and whose
/// payload has not been decoded yet.
pub struct AezParts<'a> {
    /// The header.
    pub header: AezHeader,
    payload: &'a [u8],
    /// Bytes of packed codes the payload must decode to.
    packed_len: usize,
}

/// Checks `.aez` bytes (`path` names the file in errors) without decoding the
/// payload: the magic, the CRC-32, the version, every size, and that the
/// payload can hold the image count the header claims (a raw payload exactly,
/// a deflated one within DEFLATE's largest ratio), so that a small file
/// claiming millions of images is refused before anything is allocated.
pub fn parse_aez<'a>(bytes: &'a [u8], path: &Path) -> Result<AezParts<'a>> {
    let bad = |message: String| UsesError::File {
        path: path.into(),
        message,
    };
    if bytes.len() < 4 || bytes[..4] != MAGIC {
        return Err(bad("not a .aez file (wrong magic bytes)".into()));
    }
    if bytes.len() < FIXED + 12 {
        return Err(bad(format!(
            "truncated: {} bytes, a .aez file has at least {}",
            bytes.len(),
            FIXED + 12
        )));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let crc = crc32fast::hash(body);
    if crc != stored {
        return Err(bad(format!(
            "corrupted: the CRC-32 of the contents is {crc:08x} but the file says {stored:08x} \
             (damaged or truncated)"
        )));
    }
    let mut r = Reader {
        bytes: body,
        pos: 4,
    };
    let trunc = || bad("truncated header".into());
    let head = r.take(4).ok_or_else(trunc)?;
    let (version, bits, flags) = (head[0], head[1], head[2]);
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}; this build reads version {VERSION}"
        )));
    }
    if !(1..=8).contains(&bits) {
        return Err(bad(format!("{bits} bits per value is not valid (1..=8)")));
    }
    if flags & !1 != 0 {
        return Err(bad(format!("unknown flags {flags:#04x}")));
    }
    let mut model = [0u8; 32];
    model.copy_from_slice(r.take(32).ok_or_else(trunc)?);
    let c = r.u32().ok_or_else(trunc)? as usize;
    let h = r.u32().ok_or_else(trunc)? as usize;
    let w = r.u32().ok_or_else(trunc)? as usize;
    let count = usize::try_from(r.u64().ok_or_else(trunc)?)
        .map_err(|_| bad("image count does not fit in memory".into()))?;
    let latent = r.u32().ok_or_else(trunc)? as usize;
    if latent == 0 || c == 0 || h == 0 || w == 0 {
        return Err(bad(format!(
            "header has a zero size: images {c}x{h}x{w}, latent {latent}"
        )));
    }
    if latent.saturating_mul(8) > body.len() {
        return Err(bad(format!("latent size {latent} is larger than the file")));
    }
    let mut ranges = Vec::with_capacity(latent);
    for _ in 0..latent {
        let lo = r.f32().ok_or_else(trunc)?;
        let hi = r.f32().ok_or_else(trunc)?;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(bad(format!("invalid code range [{lo}, {hi}]")));
        }
        ranges.push((lo, hi));
    }
    let plen = usize::try_from(r.u64().ok_or_else(trunc)?)
        .map_err(|_| bad("payload length does not fit in memory".into()))?;
    let payload = r.take(plen).ok_or_else(|| {
        bad(format!(
            "payload of {plen} bytes is longer than the file holds"
        ))
    })?;
    if r.pos != body.len() {
        return Err(bad(format!(
            "{} unexpected bytes after the payload",
            body.len() - r.pos
        )));
    }
    let deflated = flags & 1 == 1;
    let need = count
        .checked_mul(latent)
        .and_then(|v| v.checked_mul(usize::from(bits)))
        .map(|b| b.div_ceil(8))
        .ok_or_else(|| bad(format!("{count} images of {latent} values overflow")))?;
    let most = if deflated {
        plen.saturating_mul(MAX_DEFLATE_RATIO)
    } else {
        plen
    };
    if need > most || (!deflated && need != plen) {
        return Err(bad(format!(
            "claims {count} images of {latent} values at {bits} bits ({need} bytes of codes), \
             but its {}payload of {plen} bytes {}",
            if deflated { "deflated " } else { "" },
            if deflated {
                format!("can hold at most {most}")
            } else {
                format!("holds {plen}")
            }
        )));
    }
    Ok(AezParts {
        header: AezHeader {
            bits,
            deflated,
            model,
            shape: [c, h, w],
            count,
            ranges,
        },
        payload,
        packed_len: need,
    })
}

impl AezParts<'_> {
    /// Decodes the codes `rows_per_chunk` images at a time (rounded up to a
    /// multiple of 8, so that every chunk but the last starts on a byte),
    /// handing each chunk of dequantised codes `[rows, latent]` to `sink`.
    /// The payload must decode to exactly the codes the header claims.
    pub fn for_each_chunk(
        &self,
        path: &Path,
        rows_per_chunk: usize,
        mut sink: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let bad = |message: String| UsesError::File {
            path: path.into(),
            message,
        };
        let h = &self.header;
        let latent = h.ranges.len();
        let bits = usize::from(h.bits);
        let rows = rows_per_chunk.max(1).next_multiple_of(8);
        let mut reader: Box<dyn Read + '_> = if h.deflated {
            Box::new(DeflateDecoder::new(self.payload))
        } else {
            Box::new(self.payload)
        };
        let damaged = |e: std::io::Error| bad(format!("the deflated payload is damaged: {e}"));
        let short = |got: usize| {
            bad(format!(
                "payload holds {got} bytes of codes, {} images of {latent} values at {bits} bits need {}",
                h.count, self.packed_len
            ))
        };
        let mut buf = Vec::new();
        let (mut done, mut got) = (0usize, 0usize);
        while done < h.count {
            let n = rows.min(h.count - done);
            let values = n * latent;
            let len = (values * bits).div_ceil(8);
            buf.resize(len, 0);
            let mut filled = 0;
            while filled < len {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => return Err(short(got + filled)),
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(damaged(e)),
                }
            }
            got += len;
            let q = unpack(&buf, h.bits, values);
            sink(&dequantise(&q, &h.ranges, h.bits))?;
            done += n;
        }
        let mut extra = [0u8; 1];
        match reader.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(bad(format!(
                "payload holds more than the {} bytes of codes of {} images",
                self.packed_len, h.count
            ))),
            Err(e) => Err(damaged(e)),
        }
    }
}

/// Decodes `.aez` bytes (`path` names the file in errors): checks the magic,
/// the CRC-32, the version and every size ([`parse_aez`]), and dequantises
/// the codes (all in memory: for files of a known model, [`decompress_to`]
/// checks the model first and streams).
pub fn decode_aez(bytes: &[u8], path: &Path) -> Result<AezFile> {
    let parts = parse_aez(bytes, path)?;
    let mut codes = Vec::new();
    parts.for_each_chunk(path, 4096, |c| {
        codes.extend_from_slice(c);
        Ok(())
    })?;
    Ok(AezFile {
        header: parts.header,
        codes,
    })
}

/// Compresses `set` with the run's encoder to `.aez` bytes.
pub fn compress(run: &LoadedRun, set: &ImageSet, bits: u8, batch: usize) -> Result<Vec<u8>> {
    check_bits(bits)?;
    check_fits(run.model.as_ref(), set, "the images to compress")?;
    let codes = encode_set(run.model.as_ref(), set, batch, &run.device)?;
    let fp = model_fingerprint(&run.config.model, &run.varmap)?;
    encode_aez(&codes, run.model.latent_dim(), bits, fp, set.shape())
}

/// Checks that the `.aez` file of `header` was made by the run's model: its
/// fingerprint, latent size and image shape (`C x H x W` exactly).
fn check_model(run: &LoadedRun, header: &AezHeader, path: &Path) -> Result<()> {
    let bad = |message: String| UsesError::File {
        path: path.into(),
        message,
    };
    let fp = model_fingerprint(&run.config.model, &run.varmap)?;
    if header.model != fp {
        return Err(bad(format!(
            "was compressed by another model (fingerprint {}…) than the one in {} ({}…): \
             decompress with the checkpoint that compressed it",
            short_hex(&header.model, 8),
            run.dir.display(),
            short_hex(&fp, 8)
        )));
    }
    let model = run.model.as_ref();
    if header.ranges.len() != model.latent_dim() {
        return Err(bad(format!(
            "holds codes of size {} but the model's latent size is {}",
            header.ranges.len(),
            model.latent_dim()
        )));
    }
    let [c, h, w] = header.shape;
    let input = run.config.model.input();
    if [input.channels, input.height, input.width] != header.shape {
        return Err(bad(format!(
            "holds images of {c}x{h}x{w} but the model makes {}",
            model_image_size(model)
        )));
    }
    Ok(())
}

/// Decompresses `.aez` bytes (from `path`) with the run's decoder, streaming:
/// checks the header and that the file was made by this very model before
/// decoding anything, then decodes `batch` images at a time and hands each
/// batch's pixels (in [0, 1], `[n, C, H, W]` row-major) to `sink`. Memory stays
/// bounded by the batch, whatever the file claims. Returns the header.
pub fn decompress_to(
    run: &LoadedRun,
    bytes: &[u8],
    path: &Path,
    batch: usize,
    mut sink: impl FnMut(&[f32]) -> Result<()>,
) -> Result<AezHeader> {
    let parts = parse_aez(bytes, path)?;
    check_model(run, &parts.header, path)?;
    let model = run.model.as_ref();
    let latent = parts.header.ranges.len();
    parts.for_each_chunk(path, batch, |codes| {
        let z = Tensor::from_slice(codes, (codes.len() / latent, latent), &run.device)?;
        // The model's own output (a sigmoid for BCE models, the identity for MSE ones).
        let x = model.output(&model.decode(&z)?)?;
        let mut pixels = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        for p in &mut pixels {
            *p = p.clamp(0.0, 1.0);
        }
        sink(&pixels)
    })?;
    Ok(parts.header)
}

/// Decompresses `.aez` bytes (from `path`) with the run's decoder into memory
/// (see [`decompress_to`] for the checks): the decoded images in [0, 1].
pub fn decompress(run: &LoadedRun, bytes: &[u8], path: &Path, batch: usize) -> Result<ImageSet> {
    let mut pixels = Vec::new();
    let h = decompress_to(run, bytes, path, batch, |p| {
        pixels.extend_from_slice(p);
        Ok(())
    })?;
    let [c, hh, w] = h.shape;
    Ok(ImageSet::from_parts(pixels, None, c, hh, w)?)
}
