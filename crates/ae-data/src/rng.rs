//! The workspace's one source of randomness: seeded ChaCha8 streams whose state can be saved and restored.
//!
//! candle cannot seed its CPU RNG, so every random draw in the workspace (weight
//! init, shuffles, noise, VAE ε, sampling) comes from an [`AeRng`].
//!
//! * [`seeded`]`(seed)` is ChaCha8 keyed by `ChaCha8Rng::seed_from_u64(seed)`,
//!   stream 0.
//! * [`stream`]`(seed, name)` is the same key with the ChaCha stream id set to the
//!   64-bit FNV-1a hash of `name` (offset basis `0xcbf29ce484222325`, prime
//!   `0x100000001b3`, over the UTF-8 bytes). Different names give independent
//!   streams, so adding a consumer never shifts another consumer's draws.
//!   The hash is part of the reproducibility contract: never change it.
//! * [`RngState`] captures key, stream and word position, so a run can be resumed
//!   bit-identically.

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The generator used everywhere in the workspace (portable across platforms).
pub type AeRng = rand_chacha::ChaCha8Rng;

/// A generator keyed by `seed` (stream 0).
pub fn seeded(seed: u64) -> AeRng {
    AeRng::seed_from_u64(seed)
}

/// An independent stream for one purpose: the key of [`seeded`]`(seed)` with the
/// stream id set to FNV-1a-64 of `name` (see the module docs).
pub fn stream(seed: u64, name: &str) -> AeRng {
    let mut rng = seeded(seed);
    rng.set_stream(fnv1a64(name.as_bytes()));
    rng
}

/// 64-bit FNV-1a hash (fixed: part of the reproducibility contract).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The complete state of an [`AeRng`], serialisable for checkpoints.
///
/// JSON form: `{"seed": "<64 hex digits>", "stream": <u64>, "word_pos": "<decimal u128>"}`
/// (`word_pos` is a string because JSON numbers cannot hold a u128 reliably).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte ChaCha key.
    #[serde(with = "hex32")]
    pub seed: [u8; 32],
    /// The ChaCha stream id.
    pub stream: u64,
    /// The position in the stream, in 32-bit words.
    #[serde(with = "u128_string")]
    pub word_pos: u128,
}

impl RngState {
    /// Captures the state of `rng`.
    pub fn of(rng: &AeRng) -> Self {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// A generator that continues exactly where the captured one was.
    pub fn restore(&self) -> AeRng {
        let mut rng = AeRng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// Lower-case hex of some bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(D::Error::custom(format!(
                "rng seed must be 64 hex digits, found {} characters",
                bytes.len()
            )));
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = digit(pair[0]).ok_or_else(|| D::Error::custom("rng seed: bad hex digit"))?;
            let lo = digit(pair[1]).ok_or_else(|| D::Error::custom("rng seed: bad hex digit"))?;
            *o = (hi << 4) | lo;
        }
        Ok(out)
    }

    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
}

mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<u128>()
            .map_err(|e| D::Error::custom(format!("rng word_pos {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore};

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (seeded(7), seeded(7));
        for _ in 0..8 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(seeded(7).next_u64(), seeded(8).next_u64());
    }

    #[test]
    fn streams_are_independent_and_stable() {
        let mut a = stream(1, "shuffle");
        let mut b = stream(1, "noise");
        let mut c = seeded(1);
        let (x, y, z) = (a.next_u64(), b.next_u64(), c.next_u64());
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert_ne!(y, z);
        assert_eq!(stream(1, "shuffle").next_u64(), x);
        // FNV-1a reference values.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stream(1, "shuffle").get_stream(), fnv1a64(b"shuffle"));
    }

    #[test]
    fn restore_continues_the_exact_sequence() {
        let mut rng = stream(42, "train");
        for _ in 0..13 {
            rng.next_u32(); // odd number of words: mid-block position
        }
        let _: f64 = rng.random();
        let state = RngState::of(&rng);
        let json = serde_json::to_string(&state).unwrap();
        let back: RngState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        let mut resumed = back.restore();
        let expected: Vec<u64> = (0..100).map(|_| rng.next_u64()).collect();
        let got: Vec<u64> = (0..100).map(|_| resumed.next_u64()).collect();
        assert_eq!(expected, got);
    }

    #[test]
    fn bad_state_json_is_an_error() {
        let bad = r#"{"seed":"zz","stream":0,"word_pos":"0"}"#;
        assert!(serde_json::from_str::<RngState>(bad).is_err());
        let bad = format!(
            r#"{{"seed":"{}","stream":0,"word_pos":"x"}}"#,
            "0".repeat(64)
        );
        assert!(serde_json::from_str::<RngState>(&bad).is_err());
        let bad = format!(
            r#"{{"seed":"{}g","stream":0,"word_pos":"0"}}"#,
            "0".repeat(63)
        );
        assert!(serde_json::from_str::<RngState>(&bad).is_err());
    }
}
