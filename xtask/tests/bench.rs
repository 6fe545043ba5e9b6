//! `cargo xtask bench --quick --no-peers`: every row of our side is measured
//! on a slice, the peer columns say why they are missing, and bench.md /
//! bench.json agree with what was printed. (`--memory` runs `train-all
//! --quick` as a child, 40 s in a debug build: its measurement is unit-tested
//! in src/bench.rs, and train-all itself in tests/train_all.rs.)
#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;
use common::xtask_ok;

#[test]
fn quick_bench_without_peers_measures_every_row_and_writes_the_table_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = xtask_ok([
        "bench",
        "--quick",
        "--no-peers",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(tmp.path().join("bench.md")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), md.trim());
    assert!(md.contains("Smoke test (`--quick`)"), "{md}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("bench.json")).unwrap())
            .unwrap();
    assert_eq!(json["quick"], true);
    let rows = json["rows"].as_array().unwrap();
    // dense x2 peers, vae, conv, 3 variants x (encode, reconstruct), idx.
    assert_eq!(rows.len(), 2 + 1 + 1 + 6 + 1, "{md}");
    let table_rows = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| work"))
        .count();
    assert_eq!(table_rows, rows.len(), "{md}");
    for row in rows {
        let work = row["work"].as_str().unwrap();
        let ours = row["ours"]["values"].as_array().unwrap();
        assert!(!ours.is_empty(), "{work}: no samples");
        for v in ours {
            let v = v.as_f64().unwrap();
            assert!(v.is_finite() && v > 0.0, "{work}: {v}");
        }
        match row["unit"].as_str().unwrap() {
            "seconds" => {
                assert_eq!(row["peer"]["missing"], "not run (--no-peers)", "{work}");
                assert!(row["peer"]["samples"].is_null(), "{work}");
            }
            "gb_per_sec" | "gib" => assert!(row["peer"].is_null(), "{work}"),
            u => panic!("{work}: unit {u}"),
        }
    }
    // The summary has each row's statistics and verdict; IDX has no peer, so no ratio.
    let summary = json["summary"].as_array().unwrap();
    assert_eq!(summary.len(), rows.len());
    for s in summary {
        let ours = s["median"]["ours"].as_f64().unwrap();
        assert!(
            s["min"]["ours"].as_f64().unwrap() > 0.0 && ours > 0.0,
            "{s}"
        );
        assert!(s["median"]["ratio"].is_null(), "{s}");
    }
    let idx = summary
        .iter()
        .find(|s| s["work"] == "reading uncompressed IDX")
        .unwrap();
    assert!(idx["median"]["met"].is_boolean(), "{idx}");
    assert!(
        md.contains("| reading uncompressed IDX |") && md.contains("| >= 1.00 GB/s |"),
        "{md}"
    );
    assert!(
        md.contains("| missing: not run (--no-peers) | - | >= 2x | ? |"),
        "{md}"
    );
}

#[test]
fn bad_options_fail_with_a_message_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, msg) in [
        (&["--epochs", "1"][..], "--epochs must be at least 2"),
        (&["--rounds", "0"][..], "--rounds must be at least 1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("bench")
            .args(args)
            .args(["--only", "idx", "--out"])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{err}");
    }
    assert!(!tmp.path().join("bench.md").exists());
}
