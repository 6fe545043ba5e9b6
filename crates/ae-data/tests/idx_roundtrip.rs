//! Property tests of the IDX codec: write→read round trips and no panics on arbitrary bytes.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use ae_data::{IdxArray, IdxData, IdxType, encode_idx, parse_idx, read_idx, write_idx};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use std::io::Write;

fn data_strategy(dtype: IdxType, n: usize) -> BoxedStrategy<IdxData> {
    match dtype {
        IdxType::U8 => proptest::collection::vec(any::<u8>(), n)
            .prop_map(IdxData::U8)
            .boxed(),
        IdxType::I8 => proptest::collection::vec(any::<i8>(), n)
            .prop_map(IdxData::I8)
            .boxed(),
        IdxType::I16 => proptest::collection::vec(any::<i16>(), n)
            .prop_map(IdxData::I16)
            .boxed(),
        IdxType::I32 => proptest::collection::vec(any::<i32>(), n)
            .prop_map(IdxData::I32)
            .boxed(),
        // Finite values: NaN != NaN would break the equality check, not the codec.
        IdxType::F32 => proptest::collection::vec(-1e30f32..1e30, n)
            .prop_map(IdxData::F32)
            .boxed(),
        IdxType::F64 => proptest::collection::vec(-1e300f64..1e300, n)
            .prop_map(IdxData::F64)
            .boxed(),
    }
}

fn array_strategy() -> impl Strategy<Value = IdxArray> {
    (
        prop::sample::select(IdxType::ALL.to_vec()),
        proptest::collection::vec(0usize..5, 1..=4),
    )
        .prop_flat_map(|(dtype, dims)| {
            let n = dims.iter().product();
            (Just(dims), data_strategy(dtype, n))
        })
        .prop_map(|(dims, data)| IdxArray::new(dims, data).unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn write_read_roundtrip(arr in array_strategy(), gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.idx");
        write_idx(&path, &arr, gz).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        prop_assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), gz);
        let back = read_idx(&path).unwrap();
        prop_assert_eq!(&back, &arr);
        // Nothing but the target in the directory (temp file renamed away).
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // In-memory encode agrees with the file (raw) and parses back too.
        let enc = encode_idx(&arr);
        if !gz {
            prop_assert_eq!(&enc, &bytes);
        }
        prop_assert_eq!(parse_idx(&enc, "mem").unwrap(), arr);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_idx(&bytes, "fuzz");
    }

    #[test]
    fn parse_never_panics_after_a_valid_header(
        code in prop::sample::select(vec![0x08u8, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xff]),
        dims in proptest::collection::vec(any::<u32>(), 1..5),
        small_dims in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        gz in any::<bool>(),
    ) {
        let mut bytes = vec![0, 0, code, dims.len() as u8];
        for d in &dims {
            let d = if small_dims { d % 8 } else { *d };
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&tail);
        let bytes = if gz { gzip(&bytes) } else { bytes };
        let _ = parse_idx(&bytes, "fuzz");
    }

    #[test]
    fn parse_never_panics_on_gzip_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_idx(&gzip(&bytes), "fuzz.gz");
    }

    #[test]
    fn parse_never_panics_on_damaged_gzip(
        arr in array_strategy(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let gz = gzip(&encode_idx(&arr));
        let _ = parse_idx(&gz[..cut.index(gz.len())], "cut.gz");
        let mut bad = gz.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 0x55;
        let _ = parse_idx(&bad, "flipped.gz");
    }
}
