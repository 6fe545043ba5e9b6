//! The measured rows: training epochs and inference passes, ours and the peers'
//! alternately.

use std::collections::BTreeMap;

use ae_models::ModelKind;
use anyhow::Result;

use super::Ctx;
use super::ours::{INFER_BATCH, our_epochs, our_inference, our_model};
use super::parse::parse_infer_lines;
use super::peers::{PeerScript, TORCH_SEED, peer_command, repo_root, run_python};
use super::table::{PeerSide, Row, Samples, Target, Unit};

/// One training row pair (ours against each peer), alternating for `rounds`.
pub(super) fn training_rows(
    kind: ModelKind,
    work: &str,
    peer_scripts: &[(&PeerScript, f64)],
    ctx: &Ctx<'_>,
) -> Result<Vec<Row>> {
    let mut ours = Vec::new();
    let mut theirs: Vec<std::result::Result<Vec<f64>, String>> =
        peer_scripts.iter().map(|_| Ok(Vec::new())).collect();
    for round in 0..ctx.rounds {
        tracing::info!("bench: {kind}, round {}/{}: ours", round + 1, ctx.rounds);
        ours.extend(our_epochs(kind, ctx.split, ctx.data, ctx.epochs)?);
        for ((script, _), acc) in peer_scripts.iter().zip(theirs.iter_mut()) {
            let (Ok(peers), Ok(v)) = (ctx.peers, acc.as_mut()) else {
                continue;
            };
            tracing::info!(
                "bench: {kind}, round {}/{}: {}",
                round + 1,
                ctx.rounds,
                script.name
            );
            match script.run(peers, ctx.epochs) {
                Ok(s) => v.extend(s),
                Err(e) => *acc = Err(e),
            }
        }
    }
    let slice = if ctx.quick {
        format!(" on the first {} training images", ctx.split.train.len())
    } else {
        String::new()
    };
    Ok(peer_scripts
        .iter()
        .zip(theirs)
        .map(|((script, target), result)| {
            let label = script.label(ctx.peers.as_ref().ok());
            let peer = match (ctx.peers, result) {
                (Err(why), _) => PeerSide::missing(&label, why.clone()),
                (Ok(_), Err(why)) => PeerSide::missing(&label, why),
                (Ok(_), Ok(v)) => PeerSide::measured(&label, v),
            };
            Row {
                work: work.to_string(),
                unit: Unit::Seconds,
                ours: Samples::new(ours.clone()),
                peer: Some(peer),
                target: Target::RatioAtLeast { ratio: *target },
                note: format!(
                    "training-loop seconds per epoch{slice} (no evaluation or checkpoint), \
                     {kept} of every {}-epoch run; ours in-process (`ae_train::train_on`, \
                     default config), the peer `{}`, alternately",
                    ctx.epochs,
                    peer_command(script),
                    kept = if ctx.epochs == 2 {
                        "epoch 2".to_string()
                    } else {
                        format!("epochs 2-{}", ctx.epochs)
                    },
                ),
            }
        })
        .collect())
}

pub(super) fn inference_rows(ctx: &Ctx<'_>, reps: usize) -> Result<Vec<Row>> {
    let kinds = [ModelKind::Vanilla, ModelKind::Conv, ModelKind::Vae];
    let models = kinds
        .iter()
        .map(|&k| our_model(k))
        .collect::<Result<Vec<_>>>()?;
    let mut ours: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut theirs: std::result::Result<BTreeMap<(String, String), Vec<f64>>, String> =
        Ok(BTreeMap::new());
    let script = repo_root().join("xtask/peers/torch_infer.py");
    let test = &ctx.split.test;
    for round in 0..ctx.rounds {
        tracing::info!("bench: inference, round {}/{}: ours", round + 1, ctx.rounds);
        for (k, m) in kinds.iter().zip(&models) {
            for (op, v) in our_inference(m.as_ref(), test, reps)? {
                ours.entry((k.to_string(), op.to_string()))
                    .or_default()
                    .extend(v);
            }
        }
        if let (Ok(peers), Ok(acc)) = (ctx.peers, theirs.as_mut()) {
            tracing::info!(
                "bench: inference, round {}/{}: PyTorch",
                round + 1,
                ctx.rounds
            );
            let args = [
                "--variants".to_string(),
                kinds.map(|k| k.to_string()).join(","),
                "--reps".into(),
                reps.to_string(),
                "--batch".into(),
                INFER_BATCH.to_string(),
                "--limit".into(),
                test.len().to_string(),
            ];
            let run = if peers.versions.contains_key("torch") {
                run_python(
                    &peers.python,
                    &script,
                    &args,
                    &[("MNIST_DIR", peers.mnist_dir.display().to_string())],
                    &repo_root(),
                )
            } else {
                Err(format!("{} has no `torch`", peers.python.display()))
            };
            match run {
                Ok(stdout) => {
                    for (key, v) in parse_infer_lines(&stdout) {
                        acc.entry(key).or_default().extend(v);
                    }
                }
                Err(e) => theirs = Err(e),
            }
        }
    }
    let label = TORCH_SEED.label(ctx.peers.as_ref().ok());
    let mut rows = Vec::new();
    for k in kinds {
        for op in ["encode", "reconstruct"] {
            let key = (k.to_string(), op.to_string());
            let peer = match (ctx.peers, &theirs) {
                (Err(why), _) => PeerSide::missing(&label, why.clone()),
                (Ok(_), Err(why)) => PeerSide::missing(&label, why.clone()),
                (Ok(_), Ok(map)) => match map.get(&key) {
                    Some(v) if !v.is_empty() => PeerSide::measured(&label, v.clone()),
                    _ => PeerSide::missing(&label, format!("no `infer {k} {op}` line")),
                },
            };
            rows.push(Row {
                work: format!("{k} {op}, {} test images, batch {INFER_BATCH}", test.len()),
                unit: Unit::Seconds,
                ours: Samples::new(ours.get(&key).cloned().unwrap_or_default()),
                peer: Some(peer),
                target: Target::RatioAtLeast { ratio: 1.0 },
                note: format!(
                    "seconds per pass over the test images (seeded weights; batches made \
                     before timing; one warm-up pass), {reps} passes per round, against \
                     `python xtask/peers/torch_infer.py` (the same models, torch.no_grad), \
                     alternately"
                ),
            });
        }
    }
    Ok(rows)
}
