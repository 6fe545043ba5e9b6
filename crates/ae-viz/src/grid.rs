//! Image grids: lay out many small images (grey or RGB, values in `[0, 1]`) as one PNG.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use crate::{Result, VizError};

/// The largest picture this crate will draw, per side, in pixels.
const MAX_SIDE: usize = 16_384;

/// An 8-bit RGB picture in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major `height * width * 3` bytes.
    pub data: Vec<u8>,
}

impl Rgb8Image {
    /// The RGB value at `(x, y)`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// The number of distinct colours (a blank picture has one).
    pub fn distinct_colours(&self) -> usize {
        let mut seen: Vec<[u8; 3]> = self
            .data
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}

/// Lays out `rows x cols` images of one shape (`channels x height x width`,
/// channel-first, values in `[0, 1]`) as a grid with padding between them.
///
/// One channel is drawn in grey, three as RGB; any other channel count is
/// drawn from its first channel in grey.
#[derive(Debug, Clone, Copy)]
pub struct ImageGrid {
    channels: usize,
    height: usize,
    width: usize,
    scale: usize,
    padding: usize,
    background: u8,
}

impl ImageGrid {
    /// A grid of images of `channels x height x width`, scale 1, padding 2.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            scale: 1,
            padding: 2,
            background: 128,
        }
    }

    /// Draws each image pixel as a `scale x scale` block.
    pub fn scale(mut self, scale: usize) -> Self {
        self.scale = scale;
        self
    }

    /// Pixels of background between images and around the grid.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// The grey level of the background (0 black, 255 white).
    pub fn background(mut self, level: u8) -> Self {
        self.background = level;
        self
    }

    /// A grid for images of `channels x height x width` whose scale makes each
    /// image about 56 pixels on its longer side (MNIST's 28x28 is drawn at
    /// scale 2), between 1 and 4.
    pub fn auto(channels: usize, height: usize, width: usize) -> Self {
        let side = height.max(width).max(1);
        Self::new(channels, height, width).scale((56 / side).clamp(1, 4))
    }

    /// Values one image takes.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The top-left pixel `(x, y)` of the image at `row`, `col` in the picture.
    pub fn cell_origin(&self, row: usize, col: usize) -> (usize, usize) {
        let (w, h) = self.cell_size();
        (
            self.padding + col * (w + self.padding),
            self.padding + row * (h + self.padding),
        )
    }

    /// The size `(width, height)` of one image in the picture, in pixels.
    pub fn cell_size(&self) -> (usize, usize) {
        (self.width * self.scale, self.height * self.scale)
    }

    /// The size `(width, height)` of the picture of `rows x cols` images.
    pub fn picture_size(&self, rows: usize, cols: usize) -> (usize, usize) {
        let (w, h) = self.cell_size();
        (
            cols * w + (cols + 1) * self.padding,
            rows * h + (rows + 1) * self.padding,
        )
    }

    /// Draws `rows * cols` images from `pixels` (row-major: image `r * cols + c`
    /// goes to row `r`, column `c`). Values are clamped to `[0, 1]`; NaN draws black.
    pub fn render(&self, pixels: &[f32], rows: usize, cols: usize) -> Result<Rgb8Image> {
        let (c, h, w, s, p) = (
            self.channels,
            self.height,
            self.width,
            self.scale,
            self.padding,
        );
        if c == 0 || h == 0 || w == 0 || s == 0 || rows == 0 || cols == 0 {
            return Err(VizError::Shape(format!(
                "a {rows}x{cols} grid of {c}x{h}x{w} images at scale {s}"
            )));
        }
        let expected = rows * cols * self.image_len();
        if pixels.len() != expected {
            return Err(VizError::PixelCount {
                rows,
                cols,
                channels: c,
                height: h,
                width: w,
                expected,
                got: pixels.len(),
            });
        }
        let width = cols * w * s + (cols + 1) * p;
        let height = rows * h * s + (rows + 1) * p;
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(VizError::Shape(format!(
                "a {width}x{height} picture (the limit is {MAX_SIDE} per side)"
            )));
        }
        let mut data = vec![self.background; width * height * 3];
        let to_u8 = |v: f32| -> u8 {
            if v.is_nan() {
                0
            } else {
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            }
        };
        for r in 0..rows {
            for col in 0..cols {
                let img = &pixels[(r * cols + col) * self.image_len()..][..self.image_len()];
                let x0 = p + col * (w * s + p);
                let y0 = p + r * (h * s + p);
                for y in 0..h {
                    for x in 0..w {
                        let rgb = if c == 3 {
                            [
                                to_u8(img[y * w + x]),
                                to_u8(img[h * w + y * w + x]),
                                to_u8(img[2 * h * w + y * w + x]),
                            ]
                        } else {
                            let g = to_u8(img[y * w + x]);
                            [g, g, g]
                        };
                        for dy in 0..s {
                            let row = (y0 + y * s + dy) * width;
                            for dx in 0..s {
                                let i = (row + x0 + x * s + dx) * 3;
                                data[i..i + 3].copy_from_slice(&rgb);
                            }
                        }
                    }
                }
            }
        }
        Ok(Rgb8Image {
            width,
            height,
            data,
        })
    }

    /// Renders the grid and writes it to `path` as a PNG (atomically).
    pub fn write(
        &self,
        path: &Path,
        pixels: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Rgb8Image> {
        let img = self.render(pixels, rows, cols)?;
        write_png(path, &img)?;
        Ok(img)
    }
}

/// Writes an RGB picture as a PNG file, atomically: a temporary file in the
/// same folder is written, flushed and synced, then renamed onto `path`.
pub fn write_png(path: &Path, img: &Rgb8Image) -> Result<()> {
    // Charts and grids are flat areas and thin lines: the best deflate level
    // with per-row filter choice makes them several times smaller.
    write_png_bytes(
        path,
        (img.width, img.height),
        png::ColorType::Rgb,
        png::Compression::Best,
        &img.data,
    )
}

/// Writes one image given as channel planes (`chw`: `channels x height x
/// width` bytes, the layout of a batch of images) as a PNG file, atomically:
/// grey for 1 channel, RGB for 3, RGBA for 4. Other channel counts, or a
/// buffer of another length, are an error naming `path`.
pub fn write_image_png(
    path: &Path,
    (channels, height, width): (usize, usize, usize),
    chw: &[u8],
) -> Result<()> {
    let colour = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => {
            return Err(VizError::Shape(format!(
                "{}: a PNG holds 1, 3 or 4 channels, not {channels}",
                path.display()
            )));
        }
    };
    let plane = height * width;
    if chw.len() != channels * plane || plane == 0 {
        return Err(VizError::Shape(format!(
            "{}: {} bytes for a {channels}x{height}x{width} image",
            path.display(),
            chw.len()
        )));
    }
    let mut data = vec![0u8; chw.len()];
    for (c, src) in chw.chunks_exact(plane).enumerate() {
        for (i, &v) in src.iter().enumerate() {
            data[i * channels + c] = v;
        }
    }
    write_png_bytes(
        path,
        (width, height),
        colour,
        png::Compression::Default,
        &data,
    )
}

/// The PNG writer of [`write_png`] and [`write_image_png`]: interleaved 8-bit
/// `data` of `colour`, written to a temporary file in `path`'s folder, synced,
/// then renamed onto `path`.
fn write_png_bytes(
    path: &Path,
    (width, height): (usize, usize),
    colour: png::ColorType,
    compression: png::Compression,
    data: &[u8],
) -> Result<()> {
    let io = |source| VizError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = ae_data::atomic::temp_in(dir, ".tmp-", ".png").map_err(io)?;
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(compression);
        enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let png_err = |source| VizError::Png {
            path: path.to_path_buf(),
            source,
        };
        let mut writer = enc.write_header().map_err(png_err)?;
        writer.write_image_data(data).map_err(png_err)?;
        writer.finish().map_err(png_err)?;
        out.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a PNG file (any colour type and bit depth) as 8-bit RGB; alpha is dropped.
pub fn read_png(path: &Path) -> Result<Rgb8Image> {
    let file = std::fs::File::open(path).map_err(|source| VizError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dec_err = |source| VizError::PngDecode {
        path: path.to_path_buf(),
        source,
    };
    let mut dec = png::Decoder::new(BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(dec_err)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(dec_err)?;
    let (width, height) = (info.width as usize, info.height as usize);
    let step = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(VizError::Shape(format!(
                "{}: an indexed PNG that was not expanded",
                path.display()
            )));
        }
    };
    let mut data = Vec::with_capacity(width * height * 3);
    for px in buf[..info.buffer_size()].chunks_exact(step) {
        if step < 3 {
            data.extend_from_slice(&[px[0]; 3]);
        } else {
            data.extend_from_slice(&px[..3]);
        }
    }
    Ok(Rgb8Image {
        width,
        height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_grid_places_images_and_padding() {
        // Two 1x2x2 images: all black and all white, side by side.
        let px = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let img = ImageGrid::new(1, 2, 2)
            .padding(1)
            .render(&px, 1, 2)
            .unwrap();
        assert_eq!((img.width, img.height), (7, 4));
        assert_eq!(img.pixel(0, 0), [128; 3]); // padding
        assert_eq!(img.pixel(1, 1), [0; 3]); // first image
        assert_eq!(img.pixel(4, 2), [255; 3]); // second image
        assert_eq!(img.pixel(3, 1), [128; 3]); // gap between images
    }

    #[test]
    fn rgb_channels_are_kept_apart() {
        let px = [1.0, 0.0, 0.5]; // one 3x1x1 image
        let img = ImageGrid::new(3, 1, 1)
            .padding(0)
            .render(&px, 1, 1)
            .unwrap();
        assert_eq!(img.pixel(0, 0), [255, 0, 128]);
    }

    #[test]
    fn scale_repeats_pixels_and_values_are_clamped() {
        let px = [2.0, -1.0];
        let img = ImageGrid::new(1, 1, 2)
            .padding(0)
            .scale(3)
            .render(&px, 1, 1)
            .unwrap();
        assert_eq!((img.width, img.height), (6, 3));
        assert_eq!(img.pixel(2, 2), [255; 3]);
        assert_eq!(img.pixel(3, 0), [0; 3]);
    }

    #[test]
    fn wrong_pixel_count_is_an_error_not_a_panic() {
        let err = ImageGrid::new(1, 28, 28)
            .render(&[0.0; 10], 2, 5)
            .unwrap_err();
        assert!(
            err.to_string().contains("needs 7840 values, got 10"),
            "{err}"
        );
        assert!(ImageGrid::new(1, 0, 28).render(&[], 1, 1).is_err());
        assert!(
            ImageGrid::new(1, 28, 28)
                .scale(1000)
                .render(&[0.0; 784], 1, 1)
                .is_err()
        );
    }

    #[test]
    fn png_round_trips_through_the_decoder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let px: Vec<f32> = (0..2 * 3 * 16).map(|i| (i % 7) as f32 / 6.0).collect();
        let img = ImageGrid::new(1, 4, 4).write(&path, &px, 2, 3).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.width as usize, info.height as usize),
            (img.width, img.height)
        );
        assert_eq!(&buf[..info.buffer_size()], &img.data[..]);
        // Only the PNG is left in the folder: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn geometry_helpers_match_the_rendered_picture() {
        let grid = ImageGrid::auto(1, 28, 28);
        assert_eq!(grid.cell_size(), (56, 56));
        assert_eq!(ImageGrid::auto(3, 100, 60).cell_size(), (60, 100));
        assert_eq!(ImageGrid::auto(1, 8, 8).cell_size(), (32, 32));
        let grid = ImageGrid::new(1, 2, 3).scale(2).padding(1);
        let px: Vec<f32> = (0..2 * 2 * 6).map(|i| (i % 2) as f32).collect();
        let img = grid.render(&px, 2, 2).unwrap();
        assert_eq!(grid.picture_size(2, 2), (img.width, img.height));
        assert_eq!(grid.cell_origin(1, 1), (1 + 6 + 1, 1 + 4 + 1));
        // The first pixel of image (1, 1) is its first value (0 -> black).
        let (x, y) = grid.cell_origin(1, 1);
        assert_eq!(img.pixel(x, y), [0; 3]);
        assert_eq!(img.pixel(x + 2, y), [255; 3]);
    }

    #[test]
    fn read_png_returns_what_write_png_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.png");
        let img = Rgb8Image {
            width: 3,
            height: 2,
            data: (0..18).map(|i| i * 13).collect(),
        };
        write_png(&path, &img).unwrap();
        assert_eq!(read_png(&path).unwrap(), img);
        assert_eq!(img.distinct_colours(), 6);
        let err = read_png(&dir.path().join("missing.png")).unwrap_err();
        assert!(err.to_string().contains("missing.png"), "{err}");
        std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
        assert!(read_png(&dir.path().join("bad.png")).is_err());
    }

    #[test]
    fn image_pngs_interleave_the_channel_planes() {
        let dir = tempfile::tempdir().unwrap();
        // RGB 2x3: plane r = 0..6, g = 10..16, b = 20..26.
        let chw: Vec<u8> = (0..3u8)
            .flat_map(|c| (0..6u8).map(move |i| c * 10 + i))
            .collect();
        let rgb = dir.path().join("rgb.png");
        write_image_png(&rgb, (3, 2, 3), &chw).unwrap();
        let back = read_png(&rgb).unwrap();
        assert_eq!((back.width, back.height), (3, 2));
        assert_eq!(back.pixel(2, 1), [5, 15, 25]);
        assert_eq!(back.pixel(1, 0), [1, 11, 21]);
        // Grey is written as one channel (read back as equal RGB).
        let grey = dir.path().join("grey.png");
        write_image_png(&grey, (1, 2, 3), &chw[..6]).unwrap();
        let g = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&grey).unwrap()))
            .read_info()
            .unwrap();
        assert_eq!(g.info().color_type, png::ColorType::Grayscale);
        assert_eq!(read_png(&grey).unwrap().pixel(2, 1), [5; 3]);
        // Two channels, or a buffer of the wrong length, are errors naming the file.
        let err = write_image_png(&dir.path().join("two.png"), (2, 2, 3), &chw[..12]).unwrap_err();
        assert!(err.to_string().contains("two.png") && err.to_string().contains("2"));
        let err = write_image_png(&grey, (1, 2, 3), &chw[..5]).unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
    }
    #[test]
    fn writing_into_a_missing_folder_names_the_file() {
        let img = Rgb8Image {
            width: 1,
            height: 1,
            data: vec![0; 3],
        };
        let err = write_png(Path::new("/nonexistent-dir/x.png"), &img).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.png"), "{err}");
    }
}
