//! Unit tests of the bench's modules.

use std::path::{Path, PathBuf};
use std::process::Command;

use ae_data::DataConfig;
use ae_models::ModelKind;
use ae_models::init::seeded_model;
use candle_core::Device;

#[cfg(target_os = "linux")]
use super::machine::peak_rss;
use super::ours::{our_config, peer_model};
use super::parse::{parse_epoch_times, parse_infer_lines, peer_epoch_seconds};
use super::peers::{JAX_SEED, Peers, TORCH_CONV, TORCH_VAE, run_python};
use super::table::*;
use super::*;

#[test]
fn epoch_lines_of_every_peer_script_parse() {
    let torch = "epoch 0 train_loss 0.2345 val_loss 0.1500 time 2.31s threads 2\n\
                 epoch 1 train_loss 0.1400 val_loss 0.1300 time 1.87s threads 2\n";
    assert_eq!(parse_epoch_times(torch), vec![(0, 2.31), (1, 1.87)]);
    let jax = "epoch 0 val_loss 0.1612 time 3.90s\nepoch 1 val_loss 0.1302 time 1.21s\n";
    assert_eq!(peer_epoch_seconds(jax), Ok(vec![1.21]));
    let variants = "WARNING: something\nconv epoch 0 test_loss 0.0900 time 38.20s\n\
                    conv epoch 1 test_loss 0.0800 time 37.10s\n\
                    conv epoch 2 test_loss 0.0790 time 36.90s\n";
    assert_eq!(peer_epoch_seconds(variants), Ok(vec![37.10, 36.90]));
    let keras = "epoch 3 train_loss 0.1 val_loss 0.1 time 2.00s\nfinal test_mse 0.01195\n";
    assert_eq!(parse_epoch_times(keras), vec![(3, 2.0)]);
}

#[test]
fn malformed_or_missing_epoch_lines_are_reported() {
    assert!(parse_epoch_times("epoch x time 1.0s\nepoch 1 time fast\nepoch 2\n").is_empty());
    assert!(parse_epoch_times("epoch 1 time -1.0s\nepoch 2 time NaNs\n").is_empty());
    assert!(peer_epoch_seconds("Traceback ...\n").is_err());
    let only_first = peer_epoch_seconds("epoch 0 val_loss 0.2 time 4.00s\n");
    assert!(only_first.is_err_and(|e| e.contains("only epoch 0")));
}

#[test]
fn inference_lines_parse_by_variant_and_op() {
    let out = "torch 2.5.1 threads 2\n\
               infer vanilla encode rep 0 seconds 0.011941\n\
               infer vanilla encode rep 1 seconds 0.012031\n\
               infer conv reconstruct rep 0 seconds 5.298311\n\
               infer conv reconstruct rep x seconds bad\n\
               infer vae encode rep 0 seconds\n";
    let m = parse_infer_lines(out);
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[&("vanilla".into(), "encode".into())],
        vec![0.011941, 0.012031]
    );
    assert_eq!(m[&("conv".into(), "reconstruct".into())], vec![5.298311]);
}

#[test]
fn our_default_runs_are_the_peers_models_and_batch_sizes() {
    for (kind, batch) in [
        (ModelKind::Vanilla, 256),
        (ModelKind::Vae, 128),
        (ModelKind::Conv, 128),
    ] {
        let cfg = our_config(kind, &DataConfig::default()).unwrap();
        assert_eq!(cfg.train.batch_size, batch, "{kind}");
    }
    assert!(our_config(ModelKind::Sparse, &DataConfig::default()).is_err());
    // 784-128-64-32-64-128-784 has 222,384 parameters (README); 784-400-20 has 652,824.
    let count = |kind| {
        let cfg = peer_model(kind).unwrap();
        let (_, varmap) = seeded_model(&cfg, &Device::Cpu, &mut ae_data::rng::seeded(0)).unwrap();
        varmap
            .all_vars()
            .iter()
            .map(|v| v.elem_count())
            .sum::<usize>()
    };
    assert_eq!(count(ModelKind::Vanilla), 222_384);
    assert_eq!(count(ModelKind::Vae), 652_824);
}

#[test]
fn statistics() {
    let s = Samples::new(vec![3.0, 1.0, 2.0, f64::NAN]);
    assert_eq!(s.median(), Some(2.0));
    assert_eq!(s.best(false), Some(1.0));
    assert_eq!(s.best(true), Some(3.0));
    assert_eq!(Samples::new(vec![4.0, 1.0, 2.0, 3.0]).median(), Some(2.5));
    assert_eq!(Samples::default().median(), None);
}

fn time_row(ours: Vec<f64>, peer: Option<Vec<f64>>, target: f64) -> Row {
    Row {
        work: "w".into(),
        unit: Unit::Seconds,
        ours: Samples::new(ours),
        peer: Some(match peer {
            Some(v) => PeerSide::measured("PyTorch 2.5", v),
            None => PeerSide::missing("PyTorch", "not run (--no-peers)"),
        }),
        target: Target::RatioAtLeast { ratio: target },
        note: String::new(),
    }
}

#[test]
fn ratio_is_peer_time_over_ours_and_the_verdict_follows_the_target() {
    let r = time_row(vec![1.0, 1.2, 0.8], Some(vec![2.2, 2.0, 2.6]), 2.0);
    let o = r.outcome(Stat::Median);
    assert_eq!((o.ours, o.peer), (Some(1.0), Some(2.2)));
    assert!((o.ratio.unwrap() - 2.2).abs() < 1e-12);
    assert_eq!(o.met, Some(true));
    let o = r.outcome(Stat::Min);
    assert!((o.ratio.unwrap() - 2.5).abs() < 1e-12);
    // Slower than the target.
    let r = time_row(vec![1.5], Some(vec![2.0]), 2.0);
    assert_eq!(r.outcome(Stat::Median).met, Some(false));
    // No peer: no ratio, no verdict.
    let r = time_row(vec![1.5], None, 2.0);
    let o = r.outcome(Stat::Median);
    assert_eq!((o.ratio, o.met), (None, None));
}

#[test]
fn throughput_and_memory_targets() {
    let mut r = time_row(vec![0.8, 1.4, 1.2], None, 1.0);
    r.peer = None;
    r.unit = Unit::GbPerSec;
    r.target = Target::AtLeast { value: 1.0 };
    assert_eq!(r.outcome(Stat::Median).met, Some(true));
    assert_eq!(r.outcome(Stat::Min).ours, Some(1.4));
    r.ours = Samples::new(vec![0.5]);
    assert_eq!(r.outcome(Stat::Median).met, Some(false));
    r.unit = Unit::Gib;
    r.target = Target::Below { value: 1.0 };
    assert_eq!(r.outcome(Stat::Median).met, Some(true));
    r.ours = Samples::new(vec![1.0]);
    assert_eq!(r.outcome(Stat::Median).met, Some(false));
}

#[test]
fn the_table_has_a_row_per_measurement_with_ratio_target_and_why_a_peer_is_missing() {
    let report = Report {
        command: "cargo xtask bench".into(),
        stat: Stat::Median,
        rounds: 3,
        epochs: 3,
        quick: false,
        machine: Machine {
            cpu: "Test CPU".into(),
            threads: 2,
            load_start: Some(0.5),
            load_end: None,
        },
        rows: vec![
            time_row(vec![1.0], Some(vec![2.5]), 2.0),
            time_row(vec![0.012], None, 1.0),
        ],
    };
    let md = render_markdown(&report);
    let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| w |")).collect();
    assert_eq!(lines.len(), 2, "{md}");
    assert_eq!(
        lines[0],
        "| w | 1.00 s | PyTorch 2.5 | 2.50 s | 2.50x | >= 2x | yes |"
    );
    assert_eq!(
        lines[1],
        "| w | 12.0 ms | PyTorch | missing: not run (--no-peers) | - | >= 1x | ? |"
    );
    assert!(md.contains("Test CPU, 2 threads; load average 0.50 at the start, ? at the end"));
    assert!(md.contains("Ratio = peer time / our time"));
}

#[cfg(target_os = "linux")]
#[test]
fn peak_rss_is_the_childs_own_high_water_mark() {
    // A shell holding a 64 MB string peaks above 64 MB; a bare shell far below.
    let mut big = Command::new("sh");
    big.args([
        "-c",
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null",
    ]);
    let (bytes, secs) = peak_rss(&mut big).unwrap();
    assert!(bytes > 64_000_000, "{bytes}");
    assert!(secs > 0.0);
    let (small, _) = peak_rss(Command::new("sh").args(["-c", "exit 0"])).unwrap();
    assert!(small > 0 && small < 32_000_000, "{small}");
    let failed = peak_rss(Command::new("sh").args(["-c", "exit 3"]));
    assert!(failed.is_err_and(|e| e.to_string().contains("failed")));
}

#[cfg(unix)]
#[test]
fn a_peer_script_runs_with_the_epochs_and_data_in_its_environment() {
    // `sh` stands in for python (so no freshly written file is executed):
    // the fake torch_variants.py prints an epoch line per EPOCHS, with MNIST_DIR in it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("torch_variants.py"),
        "for e in $(seq 0 $((EPOCHS - 1))); do \
         echo \"$1 epoch $e data $MNIST_DIR time 1.5${e}s\"; done\n",
    )
    .unwrap();
    let peers = Peers {
        python: PathBuf::from("sh"),
        anchors: Ok(dir.path().to_path_buf()),
        mnist_dir: PathBuf::from("/data/mnist"),
        versions: [("torch".to_string(), "2.5.1+cpu".to_string())].into(),
    };
    assert_eq!(TORCH_VAE.run(&peers, 3), Ok(vec![1.51, 1.52]));
    assert_eq!(TORCH_VAE.label(Some(&peers)), "PyTorch 2.5.1");
    let out = run_python(
        Path::new("sh"),
        &dir.path().join("torch_variants.py"),
        &["conv".into()],
        &[("EPOCHS", "1".into()), ("MNIST_DIR", "/d".into())],
        dir.path(),
    )
    .unwrap();
    assert_eq!(out.trim(), "conv epoch 0 data /d time 1.50s");
    // JAX is missing from this Python: the row says so.
    assert!(
        JAX_SEED
            .run(&peers, 3)
            .is_err_and(|e| e.contains("no `jax`"))
    );
    // A failing script: its last stderr line is the reason.
    std::fs::write(
        dir.path().join("torch_variants.py"),
        "echo 'ModuleNotFoundError: torch' >&2\nexit 1\n",
    )
    .unwrap();
    let err = TORCH_CONV.run(&peers, 3).unwrap_err();
    assert!(err.contains("ModuleNotFoundError: torch"), "{err}");
    // No python at all.
    let none = Peers {
        python: dir.path().join("no-such-python"),
        ..peers
    };
    assert!(
        TORCH_CONV
            .run(&none, 3)
            .is_err_and(|e| e.contains("cannot run"))
    );
}
