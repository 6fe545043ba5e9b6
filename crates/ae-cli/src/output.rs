//! Writers for latent codes (CSV, NPY, safetensors), all atomic.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use ae_train::checkpoint::{safetensors_bytes, write_atomic};
use anyhow::{Result, bail};
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
        "npy" => npy(codes.values, &[codes.rows, codes.cols]),
        "safetensors" => {
            let mut t = HashMap::from([(
                "codes".to_string(),
                Tensor::from_slice(codes.values, (codes.rows, codes.cols), &Device::Cpu)?,
            )]);
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

/// NPY version 1.0, little-endian f32, C order.
pub fn npy(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces
    // and ending in a newline, to a multiple of 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_parsable() {
        let b = npy(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
        assert_eq!(&b[10 + hlen..10 + hlen + 4], &1.0f32.to_le_bytes());
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
