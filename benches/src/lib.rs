//! Shared helpers for the criterion benches in `benches/` (see `benches/benches/*.rs`).
