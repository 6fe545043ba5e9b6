//! Lossless baselines for compression: gzip of the raw IDX bytes and PNG of each image.

use std::io::Write;

use ae_data::ImageSet;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::{Result, UsesError};

/// The images as 8-bit values (`round(255·v)`), `[N, C, H, W]`.
pub fn to_u8(set: &ImageSet) -> Vec<u8> {
    set.pixels()
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
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
