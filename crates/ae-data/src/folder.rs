//! A folder of images as an [`ImageSet`]: class subfolders or a flat folder.
//!
//! * First-level subfolders are classes: sorted names get labels 0, 1, ...
//!   (at most 256); their images are the files directly inside them. A folder
//!   of only images is unlabelled. A folder mixing both is an error.
//! * Images are files with the extension `png`, `jpg`, `jpeg`, `bmp`, `gif`,
//!   `tif`, `tiff` or `webp` (any case); the format is detected from the content.
//!   Names starting with `.` are ignored, other files are skipped with a warning.
//!   Every image must be a regular file.
//! * Decoding is parallel (rayon), with a progress bar on a terminal. An image
//!   larger than 16384 pixels a side, or needing more than 512 MiB to decode,
//!   is refused before it is decoded. A file the decoder rejects is an error
//!   naming it, or with `skip_bad_images` a warning (with the count).
//! * `image_size` resizes with the Triangle (bilinear) filter, after cutting
//!   the largest centred region of the target's aspect ratio with
//!   `crop = center`. Without it every image must have the same size.
//! * `color`: `rgb` (3 channels; alpha is dropped), `gray` (luma) or `auto`
//!   (gray when every image is gray). Pixels are `v / 255` (16-bit images are
//!   reduced to 8 bits first), held as bytes until a batch is built.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageReader, Limits};
use rayon::prelude::*;

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::source::{Color, Crop, SourceOptions};

/// The extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"];

/// The largest side of an image that is decoded.
pub const MAX_DECODE_SIDE: u32 = 16_384;

/// The most memory one image may take to decode.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// The images of a folder, in order (by class, then by file name), with their labels.
#[derive(Debug, Clone)]
pub struct Listing {
    folder: PathBuf,
    files: Vec<PathBuf>,
    labels: Option<Vec<u8>>,
    classes: Vec<String>,
}

impl Listing {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The image files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The class names (subfolders), label `i` is `classes()[i]`; empty for a flat folder.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The entries of `dir` (sorted, hidden ones left out), split into folders and
/// image files; other files are counted.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>, usize)> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut paths = Vec::new();
    for e in rd {
        let p = e.map_err(|e| DataError::io(dir, e))?.path();
        if !hidden(&p) {
            paths.push(p);
        }
    }
    paths.sort();
    let (mut dirs, mut images, mut other) = (Vec::new(), Vec::new(), 0);
    for p in paths {
        let meta = std::fs::metadata(&p).map_err(|e| DataError::io(&p, e))?;
        if meta.is_dir() {
            dirs.push(p);
        } else if is_image(&p) {
            if !meta.is_file() {
                return Err(DataError::Decode {
                    file: p,
                    problem: "not a regular file (a FIFO, socket or device?)".into(),
                });
            }
            images.push(p);
        } else {
            other += 1;
        }
    }
    Ok((dirs, images, other))
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Lists the images of `folder` (see the module docs); decodes nothing.
pub fn list(folder: &Path) -> Result<Listing> {
    let err = |problem: String| DataError::Folder {
        folder: folder.into(),
        problem,
    };
    let (dirs, loose, mut skipped) = entries(folder)?;
    if !dirs.is_empty() && !loose.is_empty() {
        return Err(err(format!(
            "it mixes class subfolders ({}) and loose images ({}): put every image in a class \
             folder, or none",
            name_of(&dirs[0]),
            name_of(&loose[0])
        )));
    }
    let listing = if dirs.is_empty() {
        Listing {
            folder: folder.into(),
            files: loose,
            labels: None,
            classes: Vec::new(),
        }
    } else {
        if dirs.len() > 256 {
            return Err(err(format!(
                "{} class subfolders: at most 256 classes",
                dirs.len()
            )));
        }
        let (mut files, mut labels, mut classes) = (Vec::new(), Vec::new(), Vec::new());
        for (label, d) in dirs.iter().enumerate() {
            let (_, imgs, other) = entries(d)?;
            skipped += other;
            if imgs.is_empty() {
                return Err(DataError::Folder {
                    folder: d.clone(),
                    problem: "this class folder holds no image".into(),
                });
            }
            labels.extend(std::iter::repeat_n(label as u8, imgs.len()));
            files.extend(imgs);
            classes.push(name_of(d));
        }
        Listing {
            folder: folder.into(),
            files,
            labels: Some(labels),
            classes,
        }
    };
    if listing.is_empty() {
        return Err(err(format!(
            "no images in it (files named *.{{{}}})",
            IMAGE_EXTENSIONS.join(",")
        )));
    }
    if skipped > 0 {
        tracing::warn!(folder = %folder.display(), "skipped {skipped} files that are not images");
    }
    Ok(listing)
}

struct Decoded {
    image: DynamicImage,
    size: (u32, u32),
    gray: bool,
}

fn decode_one(path: &Path, opts: &SourceOptions) -> Result<Decoded> {
    let bad = |problem: String| DataError::Decode {
        file: path.into(),
        problem,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| bad(e.to_string()))?;
    let size = (img.height(), img.width());
    let gray = matches!(
        img.color(),
        ColorType::L8 | ColorType::L16 | ColorType::La8 | ColorType::La16
    );
    let img = match opts.image_size {
        None => img,
        Some(t) => {
            let img = match opts.crop {
                Crop::None => img,
                Crop::Center => {
                    // the largest region of aspect t.width / t.height
                    let (h, w) = (u64::from(size.0), u64::from(size.1));
                    let (th, tw) = (u64::from(t.height), u64::from(t.width));
                    let (ch, cw) = if w * th > h * tw {
                        (h, (h * tw / th).max(1))
                    } else {
                        ((w * th / tw).max(1), w)
                    };
                    img.crop_imm(
                        ((w - cw) / 2) as u32,
                        ((h - ch) / 2) as u32,
                        cw as u32,
                        ch as u32,
                    )
                }
            };
            img.resize_exact(t.width, t.height, FilterType::Triangle)
        }
    };
    Ok(Decoded {
        image: img,
        size,
        gray,
    })
}

/// Decodes the images at `idx` (all with `None`) of `listing` (see the module docs).
pub fn decode(listing: &Listing, idx: Option<&[usize]>, opts: &SourceOptions) -> Result<ImageSet> {
    decode_kept(listing, idx, opts).map(|(set, _)| set)
}

/// [`decode`], with the listing index of every image kept (all of `idx`
/// unless `skip_bad_images` skipped some).
pub fn decode_kept(
    listing: &Listing,
    idx: Option<&[usize]>,
    opts: &SourceOptions,
) -> Result<(ImageSet, Vec<usize>)> {
    let all: Vec<usize>;
    let idx = match idx {
        Some(i) => i,
        None => {
            all = (0..listing.len()).collect();
            &all
        }
    };
    let bar = indicatif::ProgressBar::new(idx.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("decoding {pos}/{len} images {wide_bar} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let results: Vec<Result<Decoded>> = idx
        .par_iter()
        .map(|&i| {
            let r = decode_one(&listing.files[i], opts);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let (mut kept, mut labels, mut bad) = (Vec::new(), Vec::new(), 0usize);
    for (r, &i) in results.into_iter().zip(idx) {
        match r {
            Ok(d) => {
                kept.push((d, i));
                if let Some(l) = &listing.labels {
                    labels.push(l[i]);
                }
            }
            Err(e) if opts.skip_bad_images && matches!(e, DataError::Decode { .. }) => {
                bad += 1;
                tracing::warn!("skipped: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    if bad > 0 {
        tracing::warn!(folder = %listing.folder.display(), "skipped {bad} images the decoder rejected");
    }
    if kept.is_empty() && !idx.is_empty() {
        return Err(DataError::Folder {
            folder: listing.folder.clone(),
            problem: format!("none of its {} images could be decoded", idx.len()),
        });
    }
    let gray = match opts.color {
        Color::Gray => true,
        Color::Rgb => false,
        Color::Auto => kept.iter().all(|(d, _)| d.gray),
    };
    let channels = if gray { 1 } else { 3 };
    let (h, w) = match kept.first() {
        Some((d, _)) => (d.image.height(), d.image.width()),
        None => opts.image_size.map_or((1, 1), |s| (s.height, s.width)),
    };
    if let Some((d, i)) = kept
        .iter()
        .find(|(d, _)| (d.image.height(), d.image.width()) != (h, w))
    {
        let (d0, i0) = &kept[0];
        return Err(DataError::MixedSizes {
            first: listing.files[*i0].clone(),
            first_size: d0.size,
            second: listing.files[*i].clone(),
            second_size: d.size,
        });
    }
    let plane = (h as usize) * (w as usize);
    let mut pixels = Vec::with_capacity(kept.len() * plane * channels);
    for (d, _) in &kept {
        if gray {
            pixels.extend_from_slice(d.image.to_luma8().as_raw());
        } else {
            let rgb = d.image.to_rgb8();
            let raw = rgb.as_raw();
            for c in 0..3 {
                pixels.extend(raw[c..].iter().step_by(3));
            }
        }
    }
    let labels = listing.labels.as_ref().map(|_| labels);
    let kept_idx = kept.iter().map(|&(_, i)| i).collect();
    Ok((
        ImageSet::from_parts_u8(pixels, labels, channels, h as usize, w as usize)?,
        kept_idx,
    ))
}

/// Reads the whole folder (see the module docs).
pub fn read(folder: &Path, opts: &SourceOptions) -> Result<ImageSet> {
    decode(&list(folder)?, None, opts)
}
