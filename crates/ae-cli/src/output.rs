//! Writers for latent codes (CSV, NPY, safetensors), all atomic.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use ae_train::checkpoint::{safetensors_bytes, write_atomic};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};

/// A table of `rows x cols` f32 codes with optional labels.
pub struct Codes<'a> {
    pub rows: usize,
    pub cols: usize,
    pub values: &'a [f32],
    pub labels: Option<&'a [u8]>,
}

/// Writes codes in the format named by `path`'s extension: csv, npy or safetensors.
pub fn write_codes(path: &Path, codes: &Codes<'_>) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "csv" => csv(codes).into_bytes(),
        "npy" => return write_npy_atomic(path, &codes_tensor(codes)?),
        "safetensors" => {
            let mut t = HashMap::from([("codes".to_string(), codes_tensor(codes)?)]);
            if let Some(l) = codes.labels {
                t.insert(
                    "labels".to_string(),
                    Tensor::from_slice(l, codes.rows, &Device::Cpu)?,
                );
            }
            safetensors_bytes(&t, HashMap::new(), path)?
        }
        _ => bail!(
            "{}: unknown output format '{ext}': use .csv, .npy or .safetensors",
            path.display()
        ),
    };
    write_atomic(path, &bytes)?;
    Ok(())
}

/// The codes as an f32 tensor `[rows, cols]`.
fn codes_tensor(codes: &Codes<'_>) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        codes.values,
        (codes.rows, codes.cols),
        &Device::Cpu,
    )?)
}

/// `t` as NPY (candle's `Tensor::write_npy`: version 1.0, little-endian, C
/// order), written atomically like [`write_atomic`]: to a temporary file in
/// the same folder, synced, then renamed over `path`.
fn write_npy_atomic(path: &Path, t: &Tensor) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Errors read as write_atomic's do: `<path>: <cause>`.
    let at = || path.display().to_string();
    let tmp = ae_data::atomic::temp_in(dir, ".tmp-", "").with_context(at)?;
    t.write_npy(tmp.path()).with_context(at)?;
    tmp.as_file().sync_all().with_context(at)?;
    tmp.persist(path).map_err(|e| e.error).with_context(at)?;
    Ok(())
}

fn csv(c: &Codes<'_>) -> String {
    let mut s = String::new();
    if c.labels.is_some() {
        s.push_str("label,");
    }
    let header: Vec<String> = (0..c.cols).map(|j| format!("z{j}")).collect();
    s.push_str(&header.join(","));
    s.push('\n');
    for i in 0..c.rows {
        if let Some(l) = c.labels {
            let _ = write!(s, "{},", l[i]);
        }
        let row = &c.values[i * c.cols..(i + 1) * c.cols];
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = write!(s, "{v}");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_is_candles_and_reads_back_with_its_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.npy");
        let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let c = Codes {
            rows: 2,
            cols: 3,
            values: &values,
            labels: None,
        };
        write_codes(&path, &c).unwrap();
        let b = std::fs::read(&path).unwrap();
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.contains("'descr': '<f4'"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
        let back = Tensor::read_npy(&path).unwrap();
        assert_eq!(back.dims(), [2, 3]);
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            values
        );
        // Nothing but the file is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn csv_has_header_labels_and_rows() {
        let c = Codes {
            rows: 2,
            cols: 2,
            values: &[0.5, 1.0, -2.0, 3.0],
            labels: Some(&[7, 1]),
        };
        assert_eq!(csv(&c), "label,z0,z1\n7,0.5,1\n1,-2,3\n");
    }
}
