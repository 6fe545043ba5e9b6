//! Parsing the peers' output: their per-epoch times and inference timings.

use std::collections::BTreeMap;

/// `(epoch, seconds)` of every line of a peer's output that has an
/// `epoch <n>` and a `time <seconds>s` token pair (torch_seed.py, jax_seed.py,
/// torch_variants.py, keras_seed.py all print one per epoch).
pub fn parse_epoch_times(stdout: &str) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            toks.iter()
                .position(|t| *t == key)
                .and_then(|i| toks.get(i + 1))
                .copied()
        };
        let epoch = after("epoch").and_then(|t| t.parse::<usize>().ok());
        let secs = after("time")
            .and_then(|t| t.strip_suffix('s'))
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0);
        if let (Some(e), Some(s)) = (epoch, secs) {
            out.push((e, s));
        }
    }
    out
}

/// The epoch times of a peer run, its first epoch (0) dropped.
pub fn peer_epoch_seconds(stdout: &str) -> std::result::Result<Vec<f64>, String> {
    let all = parse_epoch_times(stdout);
    if all.is_empty() {
        return Err("no `epoch N ... time Ts` line in its output".into());
    }
    let kept: Vec<f64> = all
        .iter()
        .filter(|(e, _)| *e > 0)
        .map(|&(_, s)| s)
        .collect();
    if kept.is_empty() {
        return Err("only epoch 0 ran (give --epochs 2 or more)".into());
    }
    Ok(kept)
}

/// The `infer <variant> <op> rep <i> seconds <s>` lines of torch_infer.py,
/// by (variant, op), in order.
pub fn parse_infer_lines(stdout: &str) -> BTreeMap<(String, String), Vec<f64>> {
    let mut out: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for line in stdout.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if let ["infer", variant, op, "rep", _, "seconds", s] = toks.as_slice()
            && let Ok(v) = s.parse::<f64>()
            && v.is_finite()
            && v >= 0.0
        {
            out.entry((variant.to_string(), op.to_string()))
                .or_default()
                .push(v);
        }
    }
    out
}
