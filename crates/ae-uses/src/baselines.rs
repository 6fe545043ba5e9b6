//! Compression measured: `.aez` files of a run's codes (bytes per image and
//! PSNR of the 8-bit decompressed images) against the lossless baselines,
//! gzip of the raw IDX bytes and PNG of each image.

use std::io::Write;
use std::path::Path;

use ae_data::ImageSet;
use ae_train::LoadedRun;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::aez::{compress, decompress};
use crate::error::{Result, UsesError};
use crate::stats::psnr;

/// The images as 8-bit values (`round(255·v)`), `[N, C, H, W]`: the bytes
/// themselves when the set holds bytes (`round(255·(v/255))` is `v`).
pub fn to_u8(set: &ImageSet) -> Vec<u8> {
    if let Some(bytes) = set.pixels_u8() {
        return bytes.to_vec();
    }
    set.pixels()
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// The images quantised to 8 bits and back to [0, 1] (`round(255·v) / 255`),
/// as a decompressed file of them holds them.
pub fn quantised(set: &ImageSet) -> Vec<f32> {
    to_u8(set).iter().map(|&v| f32::from(v) / 255.0).collect()
}

/// One `.aez` round trip, measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AezMeasure {
    /// Bits per code value.
    pub bits: u8,
    /// Bytes per image (the whole file over the images, headers included).
    pub bytes_per_image: f64,
    /// PSNR of the 8-bit decompressed images against the 8-bit originals, dB.
    pub psnr: f64,
}

/// Compresses `set` with the run's model at `bits` bits per code value,
/// decompresses it in memory and measures the file and the images.
pub fn measure_aez(run: &LoadedRun, set: &ImageSet, bits: u8, batch: usize) -> Result<AezMeasure> {
    let bytes = compress(run, set, bits, batch)?;
    let back = decompress(run, &bytes, Path::new("<in memory>"), batch)?;
    Ok(AezMeasure {
        bits,
        bytes_per_image: bytes.len() as f64 / set.len().max(1) as f64,
        psnr: psnr(&quantised(&back), &quantised(set)),
    })
}

/// Bytes per image of the lossless baselines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LosslessSizes {
    /// gzip -9 of the raw 8-bit pixels ([`gzip_size`]).
    pub gzip: f64,
    /// One PNG per image ([`png_size`]).
    pub png: f64,
}

/// The lossless baselines of `set`, bytes per image.
pub fn lossless_sizes(set: &ImageSet) -> Result<LosslessSizes> {
    let n = set.len().max(1) as f64;
    Ok(LosslessSizes {
        gzip: gzip_size(set)? as f64 / n,
        png: png_size(set)? as f64 / n,
    })
}

/// Size in bytes of the images' raw 8-bit values gzipped (level 9) as one
/// stream (the `.gz` of an IDX file, less its 16-byte header).
pub fn gzip_size(set: &ImageSet) -> Result<usize> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(&to_u8(set))
        .and_then(|()| enc.finish())
        .map(|v| v.len())
        .map_err(|e| UsesError::Invalid(format!("gzip: {e}")))
}

/// Total size in bytes of every image written as its own 8-bit PNG (grey for
/// one channel, RGB for three; other channel counts as a grey strip of
/// planes), with the png crate's best compression and adaptive filtering.
pub fn png_size(set: &ImageSet) -> Result<usize> {
    let [c, h, w] = set.shape();
    let bytes = to_u8(set);
    let d = set.dim();
    let mut total = 0usize;
    for img in bytes.chunks_exact(d) {
        let (width, height, color, data) = match c {
            1 => (w, h, png::ColorType::Grayscale, img.to_vec()),
            3 => {
                let plane = h * w;
                let mut rgb = Vec::with_capacity(d);
                for p in 0..plane {
                    rgb.extend_from_slice(&[img[p], img[plane + p], img[2 * plane + p]]);
                }
                (w, h, png::ColorType::Rgb, rgb)
            }
            _ => (w, h * c, png::ColorType::Grayscale, img.to_vec()),
        };
        let mut out = Vec::new();
        {
            let err = |e: png::EncodingError| UsesError::Invalid(format!("png: {e}"));
            let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Best);
            enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
            let mut wr = enc.write_header().map_err(err)?;
            wr.write_image_data(&data).map_err(err)?;
            wr.finish().map_err(err)?;
        }
        total += out.len();
    }
    Ok(total)
}
