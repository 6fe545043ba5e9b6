//! Small data sets of every kind `--data` reads, written on the fly: for the
//! tests of this crate and of the CLI, the loading benches, and the examples of
//! docs/data.md. The pictures are seeded smooth gradients plus noise, so that
//! an autoencoder has something to learn.

use std::path::Path;
use std::sync::Arc;

use image::{GrayImage, RgbImage};
use rand::Rng;

use crate::error::{DataError, Result};
use crate::npy::encode_npy;
use crate::rng::stream;

/// An image file format of [`write_folder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.png`
    Png,
    /// `.jpg` (quality 90)
    Jpeg,
}

/// `n` seeded `h x w` pictures with `c` channels (1 or 3), `[N, H, W, C]` u8.
pub fn pictures(n: usize, h: usize, w: usize, c: usize, seed: u64) -> Vec<u8> {
    let mut rng = stream(seed, "fixtures");
    let mut out = Vec::with_capacity(n * h * w * c);
    for _ in 0..n {
        let (a, b): (f32, f32) = (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0));
        let tint: [f32; 3] = [rng.random(), rng.random(), rng.random()];
        for y in 0..h {
            for x in 0..w {
                let g = a * y as f32 / h as f32 + b * x as f32 / w as f32;
                for t in tint.iter().take(c) {
                    let v = (g * 0.5 + 0.5 * t) * 255.0 + rng.random_range(-8.0f32..8.0);
                    out.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    out
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::io(path, e)
}

/// Writes `n` pictures of `(h, w)` pixels and `c` channels (1 or 3) into `dir`: with
/// `classes > 0`, into the subfolders `class0`, `class1`, ... in turn, else flat.
pub fn write_folder(
    dir: &Path,
    n: usize,
    (h, w): (u32, u32),
    c: usize,
    format: Format,
    classes: usize,
    seed: u64,
) -> Result<()> {
    let px = pictures(n, h as usize, w as usize, c, seed);
    let size = (h * w) as usize * c;
    for i in 0..n {
        let folder = if classes > 0 {
            dir.join(format!("class{}", i % classes))
        } else {
            dir.to_path_buf()
        };
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let ext = match format {
            Format::Png => "png",
            Format::Jpeg => "jpg",
        };
        let path = folder.join(format!("img{i:05}.{ext}"));
        let raw = px[i * size..(i + 1) * size].to_vec();
        let res = if c == 1 {
            GrayImage::from_raw(w, h, raw).map(|im| im.save(&path))
        } else {
            RgbImage::from_raw(w, h, raw).map(|im| im.save(&path))
        };
        match res {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(DataError::Decode {
                    file: path,
                    problem: e.to_string(),
                });
            }
            None => return Err(DataError::InvalidArray("picture buffer size".into())),
        }
    }
    Ok(())
}

/// The `.npy` bytes of u8 pictures `[N, H, W, C]` (or `[N, H, W]` when `c` is 0).
pub fn npy_u8(n: usize, h: usize, w: usize, c: usize, seed: u64) -> Vec<u8> {
    let px = pictures(n, h, w, c.max(1), seed);
    let shape = if c == 0 {
        vec![n, h, w]
    } else {
        vec![n, h, w, c]
    };
    encode_npy("|u1", &shape, &px)
}

/// The `.npy` bytes of `values` as `<f4` of `shape`.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode_npy("<f4", shape, &payload)
}

/// The `.npy` bytes of `values` as `<f8` of `shape`.
pub fn npy_f64(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode_npy("<f8", shape, &payload)
}

/// Writes an `.npz` of `(name, npy bytes)` members, deflated or stored.
pub fn write_npz(path: &Path, members: &[(&str, Vec<u8>)], deflate: bool) -> Result<()> {
    use std::io::Write;
    let f = std::fs::File::create(path).map_err(io(path))?;
    let mut z = zip::ZipWriter::new(f);
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    let bad = |e: zip::result::ZipError| DataError::io(path, std::io::Error::other(e));
    for (name, bytes) in members {
        z.start_file(format!("{name}.npy"), opts).map_err(bad)?;
        z.write_all(bytes).map_err(io(path))?;
    }
    z.finish().map_err(bad)?;
    Ok(())
}

/// A seeded table of `rows` x `cols` features: rows near a few linear factors,
/// and every `1 / anomaly_every`-th row (label 1) off them; others label 0.
pub fn table(rows: usize, cols: usize, anomaly_every: usize, seed: u64) -> (Vec<f64>, Vec<u8>) {
    let mut rng = stream(seed, "fixtures-table");
    let loadings: Vec<f64> = (0..3 * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (mut x, mut y) = (Vec::with_capacity(rows * cols), Vec::with_capacity(rows));
    for r in 0..rows {
        let z: [f64; 3] = [
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
        ];
        let anomalous = anomaly_every > 0 && r % anomaly_every == anomaly_every - 1;
        for j in 0..cols {
            let mut v: f64 =
                (0..3).map(|k| z[k] * loadings[k * cols + j]).sum::<f64>() * 10.0 + 50.0;
            v += rng.random_range(-0.2..0.2);
            if anomalous {
                v += rng.random_range(-6.0..6.0);
            }
            x.push(v);
        }
        y.push(u8::from(anomalous));
    }
    (x, y)
}

/// The CSV text of a table with columns `f0..`, and a `label` column when labels are given.
pub fn csv_text(values: &[f64], cols: usize, labels: Option<&[u8]>) -> String {
    let mut s: Vec<String> = (0..cols).map(|j| format!("f{j}")).collect();
    if labels.is_some() {
        s.push("label".into());
    }
    let mut out = s.join(",") + "\n";
    for (i, row) in values.chunks_exact(cols).enumerate() {
        let mut cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        if let Some(l) = labels {
            cells.push(l[i].to_string());
        }
        out += &cells.join(",");
        out.push('\n');
    }
    out
}

/// Writes a Parquet table (Snappy) with DOUBLE columns `f0..` and, when
/// labels are given, a text column `label` (`"normal"` for 0, `"fault"` else).
pub fn write_parquet(
    path: &Path,
    values: &[f64],
    cols: usize,
    labels: Option<&[u8]>,
) -> Result<()> {
    use parquet::basic::Compression;
    use parquet::column::writer::ColumnWriter;
    use parquet::data_type::ByteArray;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let bad = |e: parquet::errors::ParquetError| DataError::io(path, std::io::Error::other(e));
    let mut msg = String::from("message table {");
    for j in 0..cols {
        msg += &format!(" REQUIRED DOUBLE f{j};");
    }
    if labels.is_some() {
        msg += " REQUIRED BYTE_ARRAY label (UTF8);";
    }
    msg += " }";
    let schema = Arc::new(parse_message_type(&msg).map_err(bad)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let f = std::fs::File::create(path).map_err(io(path))?;
    let mut w = SerializedFileWriter::new(f, schema, props).map_err(bad)?;
    let mut rg = w.next_row_group().map_err(bad)?;
    let mut j = 0;
    while let Some(mut col) = rg.next_column().map_err(bad)? {
        match col.untyped() {
            ColumnWriter::DoubleColumnWriter(c) => {
                let v: Vec<f64> = values.iter().skip(j).step_by(cols).copied().collect();
                c.write_batch(&v, None, None).map_err(bad)?;
            }
            ColumnWriter::ByteArrayColumnWriter(c) => {
                let v: Vec<ByteArray> = labels
                    .unwrap_or(&[])
                    .iter()
                    .map(|&l| ByteArray::from(if l == 0 { "normal" } else { "fault" }))
                    .collect();
                c.write_batch(&v, None, None).map_err(bad)?;
            }
            _ => return Err(DataError::InvalidArray("unexpected parquet column".into())),
        }
        col.close().map_err(bad)?;
        j += 1;
    }
    rg.close().map_err(bad)?;
    w.close().map_err(bad)?;
    Ok(())
}
