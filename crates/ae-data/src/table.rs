//! Tables: CSV (with a header row) and Parquet files as rows of numeric features.
//!
//! Every column but the label column (`label_column`) is a feature and must be
//! numeric. Labels may be integers in 0..=255, or any text: then the sorted
//! distinct values get the labels 0, 1, ... (at most 256).
//!
//! Errors name the file, and the row (1-based, the header not counted) and
//! column: a ragged row, an empty or non-numeric cell, NaN or an infinity, a
//! duplicated or empty header name, a missing label column, a Parquet column
//! that is nested, repeated, or holds text or null values. A table of more than
//! [`MAX_COLUMNS`] columns, or (Parquet) more than [`MAX_CELLS`] cells, is
//! refused before its rows are read.
//!
//! Parquet files may be uncompressed or compressed with Snappy (the default
//! of pandas, pyarrow and Spark), gzip or LZ4; zstd and Brotli are not built in
//! (re-save with `df.to_parquet(path, compression="snappy")`).

use std::collections::HashSet;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::input::open_regular;
use crate::source::{RawTable, SourceOptions};

/// The most columns a table may have.
pub const MAX_COLUMNS: usize = 100_000;

/// The most cells (rows x columns) a Parquet table may declare.
pub const MAX_CELLS: u64 = 1 << 31;

fn table_err(file: &Path, problem: impl Into<String>) -> DataError {
    DataError::Table {
        file: file.into(),
        problem: problem.into(),
    }
}

fn cell_err(file: &Path, row: u64, column: &str, problem: impl Into<String>) -> DataError {
    DataError::Cell {
        file: file.into(),
        row,
        column: column.into(),
        problem: problem.into(),
    }
}

/// Checks the header: names, duplicates, width, and finds the label column.
fn columns(
    file: &Path,
    names: &[String],
    opts: &SourceOptions,
) -> Result<(Vec<String>, Option<usize>)> {
    if names.len() > MAX_COLUMNS {
        return Err(table_err(
            file,
            format!("{} columns: at most {MAX_COLUMNS}", names.len()),
        ));
    }
    let mut seen = HashSet::new();
    for (j, n) in names.iter().enumerate() {
        if n.trim().is_empty() {
            return Err(table_err(
                file,
                format!("column #{} has no name in the header row", j + 1),
            ));
        }
        if !seen.insert(n.as_str()) {
            return Err(table_err(
                file,
                format!("the header names the column {n:?} twice"),
            ));
        }
    }
    let label = match &opts.label_column {
        Some(l) => Some(names.iter().position(|n| n == l).ok_or_else(|| {
            table_err(
                file,
                format!("no label column {l:?}; the columns are {names:?}"),
            )
        })?),
        None => None,
    };
    let features: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|&(j, _)| Some(j) != label)
        .map(|(_, n)| n.clone())
        .collect();
    if features.is_empty() {
        return Err(table_err(file, "no feature column"));
    }
    Ok((features, label))
}

/// Labels from their text: integers 0..=255 as they are, else sorted distinct values.
fn labels_from_text(file: &Path, column: &str, text: Vec<String>) -> Result<Vec<u8>> {
    if let Ok(v) = text
        .iter()
        .map(|t| t.trim().parse::<u8>())
        .collect::<std::result::Result<Vec<u8>, _>>()
    {
        return Ok(v);
    }
    let mut classes: Vec<&str> = text.iter().map(|t| t.trim()).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.len() > 256 {
        return Err(table_err(
            file,
            format!(
                "the label column {column:?} has {} distinct values: at most 256",
                classes.len()
            ),
        ));
    }
    Ok(text
        .iter()
        .map(|t| classes.binary_search(&t.trim()).unwrap_or(0) as u8)
        .collect())
}

fn number(file: &Path, row: u64, column: &str, cell: &str) -> Result<f32> {
    let t = cell.trim();
    if t.is_empty() {
        return Err(cell_err(file, row, column, "empty cell"));
    }
    let v: f64 = t
        .parse()
        .map_err(|_| cell_err(file, row, column, format!("{t:?} is not a number")))?;
    if !v.is_finite() || !(v as f32).is_finite() {
        return Err(cell_err(
            file,
            row,
            column,
            format!("{t} is not a finite number (or overflows f32)"),
        ));
    }
    Ok(v as f32)
}

/// Reads a CSV file with a header row (see the module docs).
pub fn read_csv(path: &Path, opts: &SourceOptions) -> Result<RawTable> {
    let (f, _) = open_regular(path)?;
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(std::io::BufReader::with_capacity(1 << 16, f));
    let header: Vec<String> = rd
        .headers()
        .map_err(|e| table_err(path, format!("cannot read the header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(table_err(
            path,
            "empty file: a header row naming the columns is needed",
        ));
    }
    let (features, label) = columns(path, &header, opts)?;
    let mut values = Vec::new();
    let mut label_text = Vec::new();
    let mut rec = csv::StringRecord::new();
    let mut row = 0u64;
    loop {
        match rd.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = row + 1;
                return Err(match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        len, expected_len, ..
                    } => cell_err(
                        path,
                        at,
                        "*",
                        format!("a ragged row: {len} cells, the header has {expected_len} columns"),
                    ),
                    _ => table_err(path, format!("row {at}: {e}")),
                });
            }
        }
        row += 1;
        for (j, cell) in rec.iter().enumerate() {
            if Some(j) == label {
                if cell.trim().is_empty() {
                    return Err(cell_err(path, row, &header[j], "empty label"));
                }
                label_text.push(cell.to_string());
            } else {
                values.push(number(path, row, &header[j], cell)?);
            }
        }
    }
    if row == 0 {
        return Err(table_err(path, "no data rows after the header"));
    }
    let labels = match label {
        Some(j) => Some(labels_from_text(path, &header[j], label_text)?),
        None => None,
    };
    Ok(RawTable {
        values,
        columns: features,
        labels,
    })
}

/// Reads a Parquet file of flat numeric columns (see the module docs).
pub fn read_parquet(path: &Path, opts: &SourceOptions) -> Result<RawTable> {
    use parquet::basic::{ConvertedType, Type as Physical};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let (f, _) = open_regular(path)?;
    let reader = SerializedFileReader::new(f)
        .map_err(|e| table_err(path, format!("not a readable Parquet file: {e}")))?;
    let meta = reader.metadata().file_metadata();
    let schema = meta.schema_descr();
    let root = schema.root_schema();
    let mut names = Vec::new();
    for field in root.get_fields() {
        if field.is_group() {
            return Err(table_err(
                path,
                format!(
                    "column {:?} is nested (a struct, list or map): only flat columns are read",
                    field.name()
                ),
            ));
        }
        names.push(field.name().to_string());
    }
    let (features, label) = columns(path, &names, opts)?;
    for (j, col) in schema.columns().iter().enumerate() {
        if col.max_rep_level() > 0 {
            return Err(table_err(
                path,
                format!(
                    "column {:?} is repeated (a list): only flat columns are read",
                    col.name()
                ),
            ));
        }
        let text = col.physical_type() == Physical::BYTE_ARRAY
            || col.physical_type() == Physical::FIXED_LEN_BYTE_ARRAY
            || col.converted_type() == ConvertedType::UTF8;
        if text && Some(j) != label {
            return Err(table_err(
                path,
                format!(
                    "column {:?} holds text or bytes: every column but the label column must be numeric",
                    col.name()
                ),
            ));
        }
    }
    let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
    if rows.saturating_mul(names.len() as u64) > MAX_CELLS {
        return Err(table_err(
            path,
            format!(
                "{rows} rows x {} columns: at most {MAX_CELLS} cells",
                names.len()
            ),
        ));
    }
    let mut values = Vec::new();
    let mut label_text = Vec::new();
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| table_err(path, format!("cannot read the rows: {e}")))?;
    let mut row = 0u64;
    for r in iter {
        row += 1;
        let r = r.map_err(|e| table_err(path, format!("row {row}: {e}")))?;
        for (j, (name, field)) in r.get_column_iter().enumerate() {
            if Some(j) == label {
                let t = match field {
                    Field::Null => return Err(cell_err(path, row, name, "empty (null) label")),
                    Field::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                label_text.push(t);
                continue;
            }
            let v: f64 = match *field {
                Field::Bool(b) => f64::from(u8::from(b)),
                Field::Byte(v) => f64::from(v),
                Field::Short(v) => f64::from(v),
                Field::Int(v) => f64::from(v),
                Field::Long(v) => v as f64,
                Field::UByte(v) => f64::from(v),
                Field::UShort(v) => f64::from(v),
                Field::UInt(v) => f64::from(v),
                Field::ULong(v) => v as f64,
                Field::Float16(v) => f64::from(v),
                Field::Float(v) => f64::from(v),
                Field::Double(v) => v,
                Field::Null => return Err(cell_err(path, row, name, "empty (null) cell")),
                ref other => {
                    return Err(cell_err(
                        path,
                        row,
                        name,
                        format!("{other} is not a number"),
                    ));
                }
            };
            if !v.is_finite() || !(v as f32).is_finite() {
                return Err(cell_err(
                    path,
                    row,
                    name,
                    format!("{v} is not a finite number (or overflows f32)"),
                ));
            }
            values.push(v as f32);
        }
    }
    if row == 0 {
        return Err(table_err(path, "no rows"));
    }
    let labels = match label {
        Some(j) => Some(labels_from_text(path, &names[j], label_text)?),
        None => None,
    };
    Ok(RawTable {
        values,
        columns: features,
        labels,
    })
}
