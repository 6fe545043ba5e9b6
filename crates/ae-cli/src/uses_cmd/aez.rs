//! `ae compress` and `ae decompress`: images (IDX, a folder, `.npy`/`.npz`) to a
//! `.aez` file of quantised codes and back ([`ae_uses::compress`],
//! [`ae_uses::decompress_to`]) as IDX, `.npy` or a folder of PNGs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ae_data::ImageSet;
use ae_train::LoadedRun;
use ae_train::checkpoint::write_atomic;
use anyhow::{Context, Result, bail};
use clap::Args;

use super::UseRunArgs;

#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// The images to compress, of any kind the run reads (IDX, raw or gzipped; a folder of
    /// images; .npy or .npz), read with the run's own options (size, colour).
    pub input: PathBuf,
    /// The .aez file to write.
    pub output: PathBuf,
    /// Bits per code value (8 or 4 usual; 1..=8).
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
}

pub fn compress(a: CompressArgs) -> Result<()> {
    let run = a.run.load()?;
    let set = read_run_images(&run, &a.input)?;
    let bytes = ae_uses::compress(&run, &set, a.bits, a.run.batch_size)
        .with_context(|| format!("compressing {}", a.input.display()))?;
    write_atomic(&a.output, &bytes)?;
    let raw = std::fs::metadata(&a.input).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {}: {} images in {} bytes ({:.1} bytes per image; the input file is {raw} bytes)",
        a.output.display(),
        set.len(),
        bytes.len(),
        bytes.len() as f64 / set.len().max(1) as f64
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct DecompressArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// The .aez file.
    pub input: PathBuf,
    /// Where the 8-bit images go: a `.npy` file (uint8, [N, H, W] or numpy's channels-last
    /// [N, H, W, C]), a folder (an existing one, or a path ending in `/`: one PNG per image,
    /// 000000.png, ...), or else an IDX file (gzipped when it ends in .gz).
    pub output: PathBuf,
    /// The original images (any kind `compress` takes), to print the PSNR of the decompressed
    /// ones.
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// The largest `.aez` file read (it is checked whole, CRC first).
const MAX_AEZ_BYTES: u64 = 1 << 30;

// The sink returns ae-uses' own (large) error type, as decompress_to asks.
#[allow(clippy::result_large_err)]
pub fn decompress(a: DecompressArgs) -> Result<()> {
    let run = a.run.load()?;
    let bytes = ae_data::input::read_capped(&a.input, MAX_AEZ_BYTES, "a .aez file")?;
    // Everything is checked before the output is created: the file's header
    // and model, then the reference images against it.
    let header = ae_uses::parse_aez(&bytes, &a.input)?.header;
    let [c, h, w] = header.shape;
    let n = header.count;
    let reference = match &a.reference {
        Some(r) => {
            let orig = read_run_images(&run, r)?;
            if orig.shape() != header.shape || orig.len() != n {
                bail!(
                    "{}: {} images of {:?}, the .aez holds {n} of {:?}",
                    r.display(),
                    orig.len(),
                    orig.shape(),
                    header.shape
                );
            }
            Some(orig)
        }
        None => None,
    };
    let mut out = Sink::create(&a.output, n, [c, h, w])?;
    let (mut sq, mut at) = (0f64, 0usize);
    let reference = reference.as_ref().map(|r| r.pixels());
    ae_uses::decompress_to(&run, &bytes, &a.input, a.run.batch_size, |pixels| {
        let q: Vec<u8> = pixels
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        if let Some(orig) = &reference {
            for (&v, &o) in q.iter().zip(&orig[at..]) {
                sq += f64::from(f32::from(v) / 255.0 - o).powi(2);
            }
        }
        at += q.len();
        out.write(&q)?;
        Ok(())
    })?;
    out.finish()?;
    let mut msg = format!("wrote {} ({n} images of {c}x{h}x{w})", a.output.display());
    if let Some(r) = &a.reference {
        let _ = write!(
            msg,
            "; PSNR {:.2} dB against {}",
            ae_uses::stats::psnr_of_mse(sq / at.max(1) as f64),
            r.display()
        );
    }
    println!("{msg}");
    Ok(())
}

/// Images for a run's model from any file or folder its data config reads; a
/// table is refused (its rows are not images to quantise: `ae encode` gives their
/// codes).
fn read_run_images(run: &LoadedRun, path: &Path) -> Result<ImageSet> {
    if run.config.data.is_table() {
        bail!(
            "{}: the run {} was trained on a table; compress works on images \
             (`ae encode --data` writes a table's codes)",
            path.display(),
            run.dir.display()
        );
    }
    run.config.data.load_file(path).with_context(|| {
        format!(
            "reading {} for the run {}",
            path.display(),
            run.dir.display()
        )
    })
}

/// Where `decompress` writes its 8-bit images, chosen by the output path.
enum Sink {
    /// An IDX file, streamed.
    Idx(ae_data::IdxU8Writer),
    /// A `.npy` file, written whole at the end (`[n, c, h, w]` bytes gathered).
    Npy {
        path: PathBuf,
        shape: [usize; 4],
        bytes: Vec<u8>,
    },
    /// A folder of PNGs, one per image as it comes.
    Pngs {
        dir: PathBuf,
        shape: [usize; 3],
        next: usize,
    },
}

impl Sink {
    fn create(path: &Path, n: usize, [c, h, w]: [usize; 3]) -> Result<Self> {
        let trailing_slash = path.as_os_str().to_string_lossy().ends_with('/');
        if path.is_dir() || trailing_slash {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating the folder {}", path.display()))?;
            if std::fs::read_dir(path)?.next().is_some() {
                bail!(
                    "{}: the folder is not empty; decompress writes 000000.png, ... into an \
                     empty or new folder",
                    path.display()
                );
            }
            if ![1, 3, 4].contains(&c) {
                bail!(
                    "{}: a PNG holds 1, 3 or 4 channels, these images have {c}",
                    path.display()
                );
            }
            return Ok(Self::Pngs {
                dir: path.to_path_buf(),
                shape: [c, h, w],
                next: 0,
            });
        }
        let ext = |e: &str| path.extension().is_some_and(|x| x.eq_ignore_ascii_case(e));
        if ext("npy") {
            return Ok(Self::Npy {
                path: path.to_path_buf(),
                shape: [n, c, h, w],
                bytes: Vec::with_capacity(n * c * h * w),
            });
        }
        let dims = if c == 1 {
            vec![n, h, w]
        } else {
            vec![n, c, h, w]
        };
        Ok(Self::Idx(ae_data::IdxU8Writer::create(
            path,
            &dims,
            ext("gz"),
        )?))
    }

    /// Appends whole images (`k x c x h x w` bytes); the error is ae-uses' own, as
    /// [`ae_uses::decompress_to`]'s sink returns.
    #[allow(clippy::result_large_err)]
    fn write(&mut self, q: &[u8]) -> std::result::Result<(), ae_uses::UsesError> {
        match self {
            Self::Idx(out) => out.write(q)?,
            Self::Npy { bytes, .. } => bytes.extend_from_slice(q),
            Self::Pngs { dir, shape, next } => {
                let [c, h, w] = *shape;
                for img in q.chunks_exact(c * h * w) {
                    let path = dir.join(format!("{next:06}.png"));
                    // The viz error names the file already.
                    ae_viz::write_image_png(&path, (c, h, w), img)
                        .map_err(|e| ae_uses::UsesError::Invalid(e.to_string()))?;
                    *next += 1;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Self::Idx(out) => out.finish()?,
            Self::Npy { path, shape, bytes } => {
                let [n, c, h, w] = shape;
                // numpy's layout: [N, H, W] for grey, channels last otherwise.
                let t =
                    candle_core::Tensor::from_vec(bytes, (n, c, h, w), &candle_core::Device::Cpu)?;
                let t = if c == 1 {
                    t.reshape((n, h, w))?
                } else {
                    t.permute((0, 2, 3, 1))?.contiguous()?
                };
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                let tmp = ae_data::atomic::temp_in(dir, ".tmp-", ".npy")
                    .with_context(|| format!("writing {}", path.display()))?;
                t.write_npy(tmp.path())
                    .with_context(|| format!("writing {}", path.display()))?;
                tmp.as_file().sync_all()?;
                tmp.persist(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Self::Pngs { .. } => {}
        }
        Ok(())
    }
}
