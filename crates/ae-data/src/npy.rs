//! NumPy `.npy` and `.npz` files as images or tables.
//!
//! * dtypes: `uint8` (pixels `v / 255`, held as bytes), `float32` and `float64` (little or big
//!   endian; values must be in [0, 1] unless `normalize = minmax`, which maps
//!   the array's min and max to 0 and 1; NaN and infinities are errors). Labels
//!   (`--label-array`) may be any integer dtype, with values in 0..=255.
//! * shapes: `[N, H, W]` (one channel), `[N, H, W, C]` (numpy's channels-last,
//!   C in {1, 3, 4}) or, with `channels_first`, `[N, C, H, W]`; `[N, D]` is a
//!   table of D columns named `0`, `1`, ... Fortran-order arrays are refused
//!   (save them with `np.ascontiguousarray`).
//! * `.npz`: the member `array` (default: the only member that is not the
//!   label array, else `x`); `label_array` names the labels.
//!
//! The header is parsed (with `py_literal`, the parser npyz uses, and npyz's
//! dtype strings) and the element count checked for overflow and against the
//! bytes the file (or `.npz` member) really holds before anything is allocated.
//! npyz's own header reader multiplies the shape without overflow checks, so it
//! is not used on untrusted headers.
//!
//! Speed (`cargo bench -p ae-benches --bench data_load`, docs/data.md): a plain `.npy` is
//! read once, into the buffer that is kept. Little-endian `float32` is read straight into
//! the `f32` buffer; `uint8` channels-last images are read in pieces of about 1 MiB, each
//! put in channels-first planes (a vectorised de-interleave, images in parallel) as it
//! arrives. `.npz` members, whose stated sizes may lie, are read as they arrive and
//! converted afterwards.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use npyz::{Endianness, TypeChar, TypeStr};

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::input::open_regular;
use crate::source::{Normalize, RawTable, SourceOptions};

/// The longest `.npy` header accepted (numpy writes a few hundred bytes).
pub const MAX_HEADER: u64 = 1 << 20;

/// What an array file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// Images in [0, 1].
    Images(ImageSet),
    /// A table (not scaled).
    Table(RawTable),
}

/// The element types read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    U8,
    F32,
    F64,
    /// Integers, for labels only: signed?, bytes.
    Int(bool, usize),
}

/// The payload of an array as read.
enum Payload {
    /// The file's bytes.
    Bytes(Vec<u8>),
    /// Little-endian `float32` on a little-endian machine, read straight into its final
    /// buffer (no second copy).
    F32(Vec<f32>),
}

/// A parsed array: dtype, shape and payload.
struct Array {
    elem: Elem,
    big_endian: bool,
    shape: Vec<usize>,
    payload: Payload,
    /// An `[N, H, W, C]` image array whose payload was put in `[N, C, H, W]` order as it
    /// was read.
    planar: bool,
    file: String,
}

impl Array {
    /// The payload's bytes (as in the file).
    fn bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Bytes(b) => b,
            Payload::F32(v) => bytemuck::cast_slice(v),
        }
    }
}

fn npy_err(file: &str, problem: impl Into<String>) -> DataError {
    DataError::Npy {
        file: file.into(),
        problem: problem.into(),
    }
}

/// Reads the header's dict and returns (elem, big endian, shape, payload bytes needed).
fn parse_dict(text: &str, file: &str) -> Result<(Elem, bool, Vec<usize>, u64)> {
    use py_literal::Value;
    let bad = |m: String| npy_err(file, format!("bad .npy header: {m}"));
    let dict = match Value::from_str(text.trim_end_matches(['\n', ' ', '\0'])) {
        Ok(Value::Dict(d)) => d,
        Ok(_) => return Err(bad("not a dict".into())),
        Err(e) => return Err(bad(e.to_string())),
    };
    let get = |k: &str| {
        dict.iter()
            .find(|(key, _)| key.as_string().map(String::as_str) == Some(k))
            .map(|(_, v)| v)
            .ok_or_else(|| bad(format!("no '{k}' key")))
    };
    if let Value::Boolean(true) = get("fortran_order")? {
        return Err(npy_err(
            file,
            "a Fortran-order array: save it with np.ascontiguousarray(x)",
        ));
    }
    let descr = match get("descr")? {
        Value::String(s) => s.clone(),
        other => {
            return Err(npy_err(
                file,
                format!(
                    "unsupported dtype {other}: a structured array? expected uint8, float32 or float64"
                ),
            ));
        }
    };
    let ts = TypeStr::from_str(&descr)
        .map_err(|e| npy_err(file, format!("unsupported dtype {descr:?}: {e}")))?;
    let size = ts.size_field();
    let elem = match (ts.type_char(), size) {
        (TypeChar::Uint, 1) => Elem::U8,
        (TypeChar::Float, 4) => Elem::F32,
        (TypeChar::Float, 8) => Elem::F64,
        (TypeChar::Int, 1 | 2 | 4 | 8) => Elem::Int(true, size as usize),
        (TypeChar::Uint, 2 | 4 | 8) => Elem::Int(false, size as usize),
        _ => {
            return Err(npy_err(
                file,
                format!(
                    "unsupported dtype {descr:?}: expected uint8, float32 or float64 (integer dtypes for labels)"
                ),
            ));
        }
    };
    let big_endian = ts.endianness() == Endianness::Big;
    let dims = match get("shape")? {
        Value::Tuple(t) | Value::List(t) => t,
        _ => return Err(bad("the shape is not a tuple".into())),
    };
    let mut shape = Vec::with_capacity(dims.len().min(8));
    for d in dims {
        let v = match d {
            Value::Integer(i) => i.to_string().parse::<usize>().ok(),
            _ => None,
        };
        shape.push(v.ok_or_else(|| bad(format!("shape entry {d} is not a size")))?);
    }
    let elem_size = match elem {
        Elem::U8 => 1,
        Elem::F32 => 4,
        Elem::F64 => 8,
        Elem::Int(_, n) => n as u64,
    };
    let need = shape
        .iter()
        .try_fold(elem_size, |a, &d| a.checked_mul(d as u64))
        .ok_or_else(|| {
            npy_err(
                file,
                format!("the shape {shape:?} overflows: more elements than any file holds"),
            )
        })?;
    Ok((elem, big_endian, shape, need))
}

/// Reads one array from `r`, which holds `len` bytes (a file, or a `.npz`
/// member's stated size, which is also checked).
///
/// A `uint8` channels-last image array (`[N, H, W, C]` with 3 or 4 channels, not
/// `opts.channels_first`) in a plain `.npy` is read in pieces of about 1 MiB, each put in
/// channels-first order straight into the final buffer: no second copy of the file.
fn read_array(
    r: &mut impl Read,
    len: u64,
    file: &str,
    stated_len_trusted: bool,
    opts: &SourceOptions,
) -> Result<Array> {
    let io = |e: std::io::Error| npy_err(file, format!("read error: {e}"));
    let mut pre = [0u8; 10];
    if len < 10 {
        return Err(npy_err(
            file,
            format!("truncated: {len} bytes, not a .npy file"),
        ));
    }
    r.read_exact(&mut pre).map_err(io)?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(npy_err(file, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (hlen, pre_len) = match pre[6] {
        1 => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        2 | 3 => {
            let mut two = [0u8; 2];
            r.read_exact(&mut two).map_err(io)?;
            (
                u64::from(u32::from_le_bytes([pre[8], pre[9], two[0], two[1]])),
                12,
            )
        }
        v => return Err(npy_err(file, format!("unknown .npy format version {v}"))),
    };
    if hlen > MAX_HEADER || pre_len + hlen > len {
        return Err(npy_err(
            file,
            format!("the header claims {hlen} bytes but the file holds {len} (limit {MAX_HEADER})"),
        ));
    }
    let mut text = vec![0u8; hlen as usize];
    r.read_exact(&mut text).map_err(io)?;
    let text = String::from_utf8(text).map_err(|_| npy_err(file, "the header is not text"))?;
    let (elem, big_endian, shape, need) = parse_dict(&text, file)?;
    let have = len - pre_len - hlen;
    if stated_len_trusted && have < need {
        return Err(npy_err(
            file,
            format!(
                "truncated payload: the header's shape {shape:?} needs {need} bytes, the file holds {have}"
            ),
        ));
    }
    if stated_len_trusted && have > need {
        return Err(npy_err(
            file,
            format!(
                "{} trailing bytes after the {need} bytes the shape {shape:?} needs",
                have - need
            ),
        ));
    }
    let interleaved = match *shape.as_slice() {
        [_, h, w, c] if matches!(c, 3 | 4) && !opts.channels_first && h * w > 0 => Some(h * w * c),
        _ => None,
    };
    let mut planar = false;
    let payload = if let (true, Elem::U8, Some(image)) = (stated_len_trusted, elem, interleaved) {
        let c = shape[3];
        let mut out = vec![0u8; need as usize];
        let mut piece = vec![0u8; image * (1usize << 20).div_ceil(image)];
        for dst in out.chunks_mut(piece.len()) {
            let src = &mut piece[..dst.len()];
            r.read_exact(src).map_err(io)?;
            planes_from_pixels(src, dst, image, c);
        }
        planar = true;
        Payload::Bytes(out)
    } else if stated_len_trusted
        && elem == Elem::F32
        && !big_endian
        && cfg!(target_endian = "little")
    {
        // Read into the `f32` buffer itself: one allocation and one copy out of the page cache.
        let mut v = vec![0f32; (need / 4) as usize];
        r.read_exact(bytemuck::cast_slice_mut(&mut v)).map_err(io)?;
        Payload::F32(v)
    } else if stated_len_trusted {
        let mut b = vec![0u8; need as usize];
        r.read_exact(&mut b).map_err(io)?;
        Payload::Bytes(b)
    } else {
        // An archive member: its stated size may lie, so memory grows with the
        // bytes that really arrive, up to what the header needs.
        let mut b = Vec::with_capacity(need.min(have).min(64 << 20) as usize);
        r.take(need + 1).read_to_end(&mut b).map_err(io)?;
        if b.len() as u64 != need {
            return Err(npy_err(
                file,
                format!(
                    "payload of {} bytes, the header's shape {shape:?} needs {need}",
                    b.len()
                ),
            ));
        }
        Payload::Bytes(b)
    };
    Ok(Array {
        elem,
        big_endian,
        shape,
        payload,
        planar,
        file: file.into(),
    })
}

/// The array's values as `f32` (moved out when read as such).
fn f32s(a: Array) -> Vec<f32> {
    let be = a.big_endian;
    let bytes = match a.payload {
        Payload::F32(v) => return v,
        Payload::Bytes(b) => b,
    };
    match a.elem {
        Elem::U8 => bytes.iter().map(|&v| f32::from(v)).collect(),
        Elem::F32 => bytes
            .chunks_exact(4)
            .map(|c| {
                let c = [c[0], c[1], c[2], c[3]];
                if be {
                    f32::from_be_bytes(c)
                } else {
                    f32::from_le_bytes(c)
                }
            })
            .collect(),
        Elem::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                (if be {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }) as f32
            })
            .collect(),
        Elem::Int(..) => Vec::new(),
    }
}

/// Labels: a 1-d integer array of `n` values in 0..=255.
fn labels(a: &Array, n: usize) -> Result<Vec<u8>> {
    let Elem::Int(signed, size) = a.elem else {
        if a.elem != Elem::U8 {
            return Err(npy_err(&a.file, "labels must be an integer array"));
        }
        return check_label_count(a, n).map(|()| a.bytes().to_vec());
    };
    check_label_count(a, n)?;
    a.bytes()
        .chunks_exact(size)
        .enumerate()
        .map(|(i, c)| {
            let mut b = [0u8; 8];
            let v: i128 = if a.big_endian {
                b[8 - size..].copy_from_slice(c);
                let u = u64::from_be_bytes(b);
                if signed {
                    i128::from((u << (64 - 8 * size)) as i64 >> (64 - 8 * size))
                } else {
                    i128::from(u)
                }
            } else {
                b[..size].copy_from_slice(c);
                let u = u64::from_le_bytes(b);
                if signed {
                    i128::from((u << (64 - 8 * size)) as i64 >> (64 - 8 * size))
                } else {
                    i128::from(u)
                }
            };
            u8::try_from(v).map_err(|_| {
                npy_err(
                    &a.file,
                    format!("label #{i} is {v}, labels must be in 0..=255"),
                )
            })
        })
        .collect()
}

fn check_label_count(a: &Array, n: usize) -> Result<()> {
    if a.shape.len() != 1 || a.shape[0] != n {
        return Err(npy_err(
            &a.file,
            format!(
                "labels of shape {:?} for {n} items: expected [{n}]",
                a.shape
            ),
        ));
    }
    Ok(())
}

/// Float pixels to [0, 1]: as they are (checked) or min-max scaled.
fn to_unit(a: Array, opts: &SourceOptions) -> Result<Vec<f32>> {
    let file = a.file.clone();
    let mut v = f32s(a);
    let not_finite = |i: usize, x: f32| {
        npy_err(
            &file,
            format!("element #{i} is {x}, expected a finite number"),
        )
    };
    match opts.normalize {
        Normalize::None => {
            // One pass: NaN is outside [0, 1] too, so the first bad element is found either way.
            if let Some(i) = v.iter().position(|x| !(0.0..=1.0).contains(x)) {
                if !v[i].is_finite() {
                    return Err(not_finite(i, v[i]));
                }
                return Err(npy_err(
                    &file,
                    format!(
                        "element #{i} is {}: float arrays must hold values in [0, 1] (give --normalize minmax to scale them)",
                        v[i]
                    ),
                ));
            }
        }
        Normalize::Minmax => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(not_finite(i, v[i]));
            }
            let (lo, hi) = v
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                });
            let range = hi - lo;
            v.iter_mut().for_each(|x| {
                *x = if range > 0.0 {
                    ((*x - lo) / range).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            });
        }
    }
    Ok(v)
}

/// `[N, H, W, C]` to `[N, C, H, W]` (one channel is the same layout: given back as it is).
fn to_channels_first<T: Copy + Default + Send + Sync>(
    v: Vec<T>,
    h: usize,
    w: usize,
    c: usize,
) -> Vec<T> {
    if c == 1 || h * w == 0 {
        return v;
    }
    let mut out = vec![T::default(); v.len()];
    planes_from_pixels(&v, &mut out, h * w * c, c);
    out
}

/// Images of `image` values each, `c` channels interleaved per pixel (`src`), into
/// channels-first planes (`dst`, as long), images in parallel.
fn planes_from_pixels<T: Copy + Send + Sync>(src: &[T], dst: &mut [T], image: usize, c: usize) {
    use rayon::prelude::*;
    let plane = image / c;
    dst.par_chunks_mut(image)
        .zip(src.par_chunks(image))
        .for_each(|(dst, src)| match c {
            3 => deinterleave::<T, 3>(src, dst, plane),
            4 => deinterleave::<T, 4>(src, dst, plane),
            _ => {
                for (p, px) in src.chunks_exact(c).enumerate() {
                    for (ch, &x) in px.iter().enumerate() {
                        dst[ch * plane + p] = x;
                    }
                }
            }
        });
}

/// One image's `plane` pixels of `C` interleaved channels (`src`) into `C` planes (`dst`).
/// With `C` a constant the compiler vectorises the strided loads (several times faster
/// than the generic loop on `uint8` RGB).
fn deinterleave<T: Copy, const C: usize>(src: &[T], dst: &mut [T], plane: usize) {
    let planes: [&mut [T]; C] = {
        let mut rest = dst;
        std::array::from_fn(|_| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(plane);
            rest = tail;
            head
        })
    };
    for (p, px) in src.chunks_exact(C).enumerate() {
        for ch in 0..C {
            planes[ch][p] = px[ch];
        }
    }
}

/// An image array as a set of `[c, h, w]` images (`channels_last`: the array is
/// `[N, H, W, C]`): `uint8` kept as bytes (read as `v / 255`), floats in [0, 1].
fn images(
    a: Array,
    labels: Option<Vec<u8>>,
    opts: &SourceOptions,
    [c, h, w]: [usize; 3],
    channels_last: bool,
) -> Result<NpyData> {
    let set = match a.payload {
        Payload::Bytes(v) if a.elem == Elem::U8 => {
            let v = if channels_last && !a.planar {
                to_channels_first(v, h, w, c)
            } else {
                v
            };
            ImageSet::from_parts_u8(v, labels, c, h, w)?
        }
        payload => {
            let v = to_unit(Array { payload, ..a }, opts)?;
            let v = if channels_last {
                to_channels_first(v, h, w, c)
            } else {
                v
            };
            ImageSet::from_parts(v, labels, c, h, w)?
        }
    };
    Ok(NpyData::Images(set))
}

fn to_data(a: Array, labels: Option<Vec<u8>>, opts: &SourceOptions) -> Result<NpyData> {
    if matches!(a.elem, Elem::Int(..)) {
        return Err(npy_err(
            &a.file,
            "integer arrays other than uint8 are only read as labels: convert the data to uint8 or float32",
        ));
    }
    let shape = a.shape.clone();
    let not_image = || {
        npy_err(
            &a.file,
            format!(
                "shape {shape:?} is not images or a table: expected [N, H, W], [N, H, W, C] (C in 1, 3, 4), \
                 [N, C, H, W] with --channels-first, or [N, D]"
            ),
        )
    };
    if shape.iter().skip(1).any(|&d| d == 0) {
        return Err(not_image());
    }
    match *shape.as_slice() {
        [_, d] => {
            let file = a.file.clone();
            let values = f32s(a);
            if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                return Err(DataError::Npy {
                    file,
                    problem: format!(
                        "row {}, column {}: {} is not a finite number",
                        i / d,
                        i % d,
                        values[i]
                    ),
                });
            }
            Ok(NpyData::Table(RawTable {
                values,
                columns: (0..d).map(|j| j.to_string()).collect(),
                labels,
            }))
        }
        [_, h, w] => images(a, labels, opts, [1, h, w], false),
        [_, c, h, w] if opts.channels_first => images(a, labels, opts, [c, h, w], false),
        [_, h, w, c] if matches!(c, 1 | 3 | 4) => images(a, labels, opts, [c, h, w], true),
        [_, _, _, c] => Err(npy_err(
            &a.file,
            format!(
                "shape {shape:?}: the last axis ({c}) is not 1, 3 or 4 channels; give --channels-first \
                 for [N, C, H, W]"
            ),
        )),
        _ => Err(not_image()),
    }
}

/// Reads an `.npy` or `.npz` file (see the module docs).
pub fn read(path: &Path, opts: &SourceOptions) -> Result<NpyData> {
    let name = path.display().to_string();
    let is_npz = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !is_npz {
        if opts.array.is_some() || opts.label_array.is_some() {
            return Err(npy_err(
                &name,
                "--array and --label-array name members of an .npz file",
            ));
        }
        let (f, len) = open_regular(path)?;
        let mut r = std::io::BufReader::with_capacity(1 << 16, f);
        let a = read_array(&mut r, len, &name, true, opts)?;
        return to_data(a, None, opts);
    }
    let (f, _) = open_regular(path)?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| npy_err(&name, format!("not a readable .npz (zip) archive: {e}")))?;
    let members: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .filter_map(|n| n.strip_suffix(".npy").map(str::to_string))
        .collect();
    let pick = match &opts.array {
        Some(a) => a.clone(),
        None => {
            let data: Vec<&String> = members
                .iter()
                .filter(|m| Some(*m) != opts.label_array.as_ref())
                .collect();
            match data.as_slice() {
                [one] => (*one).clone(),
                _ if members.iter().any(|m| m == "x") => "x".into(),
                _ => {
                    return Err(npy_err(
                        &name,
                        format!("holds the arrays {members:?}: name the data with --array"),
                    ));
                }
            }
        }
    };
    let mut member = |m: &str| -> Result<Array> {
        if !members.iter().any(|x| x == m) {
            return Err(npy_err(
                &name,
                format!("no array {m:?}; it holds {members:?}"),
            ));
        }
        let label = format!("{name}:{m}");
        let mut entry = zip
            .by_name(&format!("{m}.npy"))
            .map_err(|e| npy_err(&label, e.to_string()))?;
        let len = entry.size();
        read_array(&mut entry, len, &label, false, opts)
    };
    let a = member(&pick)?;
    let n = a.shape.first().copied().unwrap_or(0);
    let labels = match &opts.label_array {
        Some(l) => Some(labels(&member(l)?, n)?),
        None => None,
    };
    to_data(a, labels, opts)
}

/// Writes `values` of `shape` as a little-endian `.npy` of dtype `descr`
/// (`<f4`, `|u1`, ...) in memory: for tests and benches.
pub fn encode_npy(descr: &str, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_to_first_matches_the_definition_for_every_channel_count() {
        let (n, h, w) = (3, 4, 5);
        for c in 1..=5 {
            let v: Vec<u8> = (0..n * h * w * c).map(|i| (i * 7 % 251) as u8).collect();
            let out = to_channels_first(v.clone(), h, w, c);
            for i in 0..n {
                for ch in 0..c {
                    for p in 0..h * w {
                        assert_eq!(
                            out[i * c * h * w + ch * h * w + p],
                            v[i * h * w * c + p * c + ch],
                            "c {c}, image {i}, channel {ch}, pixel {p}"
                        );
                    }
                }
            }
        }
        let f: Vec<f32> = (0..2 * 6 * 3).map(|i| i as f32).collect();
        assert_eq!(
            to_channels_first(f, 2, 3, 3)[..6],
            [0., 3., 6., 9., 12., 15.]
        );
    }

    /// A channels-last RGB `.npy` of several 1 MiB pieces (read piece by piece, put in
    /// planes as it arrives) and the same array in an `.npz` (read whole, then transposed)
    /// give the same images, which are the definition's.
    #[test]
    fn streamed_channels_last_read_equals_the_whole_read() {
        let d = tempfile::tempdir().unwrap();
        let (n, h, w, c) = (7, 300, 200, 3);
        let npy = crate::fixtures::npy_u8(n, h, w, c, 5);
        let raw = crate::fixtures::pictures(n, h, w, c, 5);
        std::fs::write(d.path().join("a.npy"), &npy).unwrap();
        crate::fixtures::write_npz(&d.path().join("a.npz"), &[("x", npy)], false).unwrap();
        let opts = SourceOptions::default();
        let sets: Vec<ImageSet> = ["a.npy", "a.npz"]
            .iter()
            .map(|f| match read(&d.path().join(f), &opts).unwrap() {
                NpyData::Images(s) => s,
                NpyData::Table(_) => panic!("{f}: a table"),
            })
            .collect();
        assert_eq!(sets[0], sets[1]);
        assert_eq!(sets[0].shape(), [c, h, w]);
        let want = to_channels_first(raw, h, w, c);
        for (i, img) in want.chunks(c * h * w).enumerate() {
            let got = sets[0].image(i).unwrap();
            assert!(
                img.iter()
                    .zip(got.iter())
                    .all(|(&a, &b)| f32::from(a) / 255.0 == b),
                "image {i}"
            );
        }
    }
}
