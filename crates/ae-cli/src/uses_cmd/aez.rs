//! `ae compress` and `ae decompress`: IDX images to a `.aez` file of quantised
//! codes and back ([`ae_uses::compress`], [`ae_uses::decompress_to`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use ae_train::checkpoint::write_atomic;
use anyhow::{Context, Result, bail};
use clap::Args;

use super::{UseRunArgs, read_images};

#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    pub run: UseRunArgs,
    /// IDX file of images to compress (raw or gzipped).
    pub input: PathBuf,
    /// The .aez file to write.
    pub output: PathBuf,
    /// Bits per code value (8 or 4 usual; 1..=8).
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
}

pub fn compress(a: CompressArgs) -> Result<()> {
    let run = a.run.load()?;
    let set = read_images(&a.input, None)?;
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
    /// The IDX file of 8-bit images to write (gzipped when it ends in .gz).
    pub output: PathBuf,
    /// The original images, to print the PSNR of the decompressed ones.
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
            let orig = read_images(r, None)?;
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
    let dims = if c == 1 {
        vec![n, h, w]
    } else {
        vec![n, c, h, w]
    };
    let gz = a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut out = ae_data::IdxU8Writer::create(&a.output, &dims, gz)?;
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
