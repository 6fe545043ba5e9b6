//! `ae anomaly fit` on a table without flags: the table defaults sized by its
//! columns (`ae_uses::table_detector`) are used and recorded in
//! `config.json`, and a flag still overrides them. A tiny table.

#![allow(clippy::unwrap_used)]

use ae_data::fixtures;

mod common;

use common::{config, ok, s};

#[test]
fn a_table_detector_gets_the_table_defaults() {
    let t = tempfile::tempdir().unwrap();
    // 100 normal rows of 6 columns: 90 train (10 held out)
    let (x, _) = fixtures::table(100, 6, 0, 3);
    let csv = t.path().join("normal.csv");
    std::fs::write(&csv, fixtures::csv_text(&x, 6, None)).unwrap();
    let det = t.path().join("det");
    let out = ok(&["anomaly", "fit", "--data", s(&csv), "--out", s(&det)]);
    assert!(out.contains("90 normal rows"), "{out}");
    let c = config(&det);
    // 6 columns: a code of 2 and hidden layers of 16 and 8, trained as on images
    let d = ae_uses::table_detector(6);
    assert_eq!((d.hidden.clone(), d.latent_dim), (vec![16, 8], 2));
    assert_eq!(c["model"]["latent_dim"], 2, "{}", c["model"]);
    assert_eq!(c["model"]["hidden"], serde_json::json!(d.hidden));
    assert_eq!(c["train"]["epochs"], 60, "{}", c["train"]);
    assert_eq!(c["train"]["batch_size"], 64, "{}", c["train"]);
    assert_eq!(c["train"]["lr"], 1e-3);
    // --epochs and --hidden still win
    let det2 = t.path().join("det2");
    ok(&[
        "anomaly",
        "fit",
        "--data",
        s(&csv),
        "--out",
        s(&det2),
        "--epochs",
        "3",
        "--hidden",
        "5",
    ]);
    let c = config(&det2);
    assert_eq!(c["train"]["epochs"], 3);
    assert_eq!(c["model"]["hidden"], serde_json::json!([5]));
    assert_eq!(c["model"]["latent_dim"], 2);
}
